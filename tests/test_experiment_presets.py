"""landscape.presets: every preset is a frozen dataclass or a read-only table, its accessors name an unknown
name in one line, and what a caller gets is its own copy (the numbers themselves are pinned by the configs
they produce: tests/test_train.py, tests/test_experiment.py)."""

import dataclasses

import pytest

from landscape.data import make_task
from landscape.experiment import plan_experiment, train_config
from landscape.presets import (
    EXPERIMENT_PRESETS,
    TASK_PRESETS,
    TRAIN_PRESETS,
    ExperimentPreset,
    TrainPreset,
    experiment_preset,
    task_options,
    thaw,
    train_preset,
)
from landscape.train import make_train_config


def test_presets_are_frozen_and_hand_out_copies():
    p = train_preset("denoise", "small")
    assert isinstance(p, TrainPreset) and p is TRAIN_PRESETS["denoise"]["small"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.epochs = 1
    with pytest.raises(TypeError):  # nested tables are read-only
        p.model["n_iter"] = 3
    with pytest.raises(TypeError):
        p.strategy["sgd-jitter"]["sigma"] = 1.0
    d = p.to_dict()  # a plain, fresh copy: changing it changes nothing else
    d["model"]["regularizer"]["width"] = 1
    d["evaluation"]["attack_eps"].append(9.0)
    opts = p.strategy_options("sgd-jitter")
    opts["sigma"] = 5.0
    assert p.model["regularizer"]["width"] == 32 and list(p.evaluation["attack_eps"]) == [0.1]
    assert p.strategy_options("sgd-jitter") == {"sigma": 0.1, "mode": "paper"}
    assert type(p.to_dict()["evaluation"]["attack_eps"]) is list  # lists come back as lists
    cfg = make_train_config("denoise", "sgd-jitter", n_iter=3, regularizer={"width": 8})
    assert (
        cfg.model.effective.n_iter == 3 and p.model["n_iter"] == 10 and p.model["regularizer"]["width"] == 32
    )


def test_experiment_preset_records_what_it_states():
    e = experiment_preset("fast", "seismic")
    assert isinstance(e, ExperimentPreset) and e.seeds == 3 and e.size == "small"
    d = e.to_dict()  # the record's preset_settings: the stated settings, in order
    assert list(d)[:3] == ["size", "n_iter", "epochs"] and "seeds" not in d
    assert d["attack_eps"] == [0.05, 0.1, 0.2] and d["claims"]["sigmas"] == (0.05, 0.1)
    d["curvature"]["top_k"] = 7
    assert e.curvature["top_k"] == 1
    with pytest.raises(TypeError):
        e.claims["n_eval"] = 1
    paper = experiment_preset("paper", "mri").to_dict()  # an explicit None is stated, so recorded
    assert paper["epochs"] is None and paper["claims"] == {}
    other = dataclasses.replace(
        e, epochs=3, seeds=4
    )  # a changed setting the preset did not state is recorded too
    assert other.to_dict()["epochs"] == 3 and other.to_dict()["seeds"] == 4 and e.epochs == 80
    assert e.train_overrides()["n_iter"] == 5 and "snapshots" not in e.train_overrides()


def test_accessors_name_an_unknown_name():
    for call, match in (
        (lambda: train_preset("nope"), r"task='nope': expected one of \('denoise'"),
        (lambda: train_preset("mri", "huge"), r"size='huge': expected one of \('small', 'paper'\)"),
        (lambda: experiment_preset("huge", "mri"), r"preset='huge': expected one of \('fast'"),
        (lambda: experiment_preset("fast", "nope"), r"task='nope'"),
        (lambda: task_options("nope"), r"task='nope'"),
    ):
        with pytest.raises(ValueError, match=match) as err:
            call()
        assert "\n" not in str(err.value)


def test_task_presets_are_the_tasks_options():
    for task, sizes in TASK_PRESETS.items():
        for size in sizes:
            opts = task_options(task, size)
            opts["noise_sigma"] = -1.0  # a copy
            assert TASK_PRESETS[task][size]["noise_sigma"] > 0
        t = make_task(task, size="small")
        assert type(t).PRESETS is TASK_PRESETS[task]
        assert {"noise_sigma": t.noise_sigma, **t.options} == {**task_options(task), **t.options}
    with pytest.raises(TypeError):
        TASK_PRESETS["mri"]["small"]["shape"] = (8, 8)
    assert task_options("mri", "paper")["shape"] == (320, 320)


def test_a_swapped_experiment_preset_is_what_the_plan_reads(monkeypatch):
    old = EXPERIMENT_PRESETS["tiny"]["denoise"]
    monkeypatch.setitem(
        EXPERIMENT_PRESETS["tiny"], "denoise", dataclasses.replace(old, epochs=5, snapshots=0)
    )
    plan = plan_experiment("denoise", "tiny", seeds=1)
    assert all(not s.options.get("snapshots") for s in plan)
    assert train_config("denoise", "tiny", plan[0]).epochs == 5
    assert thaw(old.claims)["sigmas"] == (0.1,)
