"""The typed run config's blocks (:class:`landscape.config.ModelOverrides`, :class:`~landscape.config.EvaluationBlock`,
:class:`~landscape.config.TaskOptions`, all :class:`~landscape.config.ConfigBlock` s): checked when built, and a
saved config's JSON round-trips byte for byte."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from pathlib import Path

import pytest
import torch

import landscape
from landscape.config import (
    ConfigBlock,
    EvaluationBlock,
    EvaluationSettings,
    ModelOverrides,
    TaskOptions,
    TrainConfig,
)
from landscape.data import make_task
from landscape.evaluate import EvalConfig
from landscape.experiment import plan_experiment, train_config
from landscape.models import ModelConfig, RegularizerConfig
from landscape.presets import EXPERIMENT_PRESETS, TASK_PRESETS, TRAIN_PRESETS, train_preset
from landscape.strategies import STRATEGIES
from landscape.train import make_train_config

SHAPES = ((1, 64), (1, 8, 8))


def _example_configs() -> list[dict]:
    """The saved run configs of the shipped example checkpoints (as written, less the derived task config)."""
    paths = sorted((Path(landscape.__file__).parent / "examples" / "checkpoints").glob("*/checkpoint.pt"))
    configs = [torch.load(p, weights_only=False)["config"] for p in paths]
    assert len(configs) == 2
    return [{k: v for k, v in c.items() if k != "task_config"} for c in configs]


def _preset_configs() -> list[dict]:
    """``make_train_config`` of every training preset (task x size) and strategy, as saved."""
    return [
        make_train_config(task, strategy, size=size).to_dict()
        for task, sizes in TRAIN_PRESETS.items()
        for size in sizes
        for strategy in sorted(STRATEGIES)
    ]


def _old_model_config(d: dict, shape: tuple[int, ...]) -> ModelConfig:
    """How the trainer built its model config before the block was typed."""
    return ModelConfig.from_dict({**d, "signal_shape": list(shape)})


def _planned_configs() -> list[dict]:
    """The run config of every main run (seed 0) of every experiment preset and task, as saved."""
    return [
        train_config(task, preset, spec).to_dict()
        for preset, tasks in EXPERIMENT_PRESETS.items()
        for task in tasks
        for spec in plan_experiment(task, preset, seeds=1)
    ]


@pytest.mark.parametrize("which", ["presets", "examples", "planned"])
def test_saved_configs_round_trip_byte_for_byte_and_build_the_same_model(which):
    configs = {"presets": _preset_configs, "examples": _example_configs, "planned": _planned_configs}[which]()
    assert (
        len(configs)
        == {
            "presets": len(STRATEGIES) * sum(map(len, TRAIN_PRESETS.values())),
            "examples": 2,
            "planned": 6 * sum(map(len, EXPERIMENT_PRESETS.values())),
        }[which]
    )
    for d in configs:
        text = json.dumps(d)
        cfg = TrainConfig.from_dict(json.loads(text))
        assert isinstance(cfg.model, ModelOverrides)
        assert isinstance(cfg.evaluation, EvaluationBlock) and isinstance(cfg.task_options, TaskOptions)
        assert json.dumps(cfg.to_dict()) == text
        for name in ("model", "evaluation", "task_options"):
            assert json.dumps(getattr(cfg, name).to_dict()) == json.dumps(d[name])
        assert cfg == TrainConfig.from_dict(cfg.to_dict()) and hash(cfg.model) == hash(
            ModelOverrides(d["model"])
        )
        assert hash(cfg) == hash(TrainConfig.from_dict(json.loads(text)))  # every field hashable now
        for shape in SHAPES:
            assert cfg.model.model_config(shape) == _old_model_config(d["model"], shape)


def test_preset_model_blocks_are_kept_as_the_preset_states_them():
    for task, sizes in TRAIN_PRESETS.items():
        for size in sizes:
            block = train_preset(task, size).to_dict()["model"]
            cfg = make_train_config(task, "mse", size=size)
            assert json.dumps(cfg.to_dict()["model"]) == json.dumps(block)
            assert ModelOverrides(train_preset(task, size).model) == cfg.model  # a read-only preset table too


def test_order_and_explicit_nulls_are_kept():
    d = {
        "step": None,
        "x0": "zero",
        "n_iter": 3,
        "regularizer": {"width": 8, "kind": "mlp", "activation": "relu"},
    }
    m = ModelOverrides(d)
    assert json.dumps(m.to_dict()) == json.dumps(d)
    assert json.dumps(TrainConfig(model=d).to_dict()["model"]) == json.dumps(d)
    assert m.stated("step") is None and m.stated("n_iter") == 3 and m.stated("arch") is None
    assert m.stated("regularizer.activation") == "relu" and m.stated("regularizer.depth") is None
    e = m.effective  # the typed values, each as stated or its default
    assert (e.n_iter, e.step, e.x0, e.arch, e.learn_step) == (3, None, "zero", "gd", True)
    assert e.regularizer == RegularizerConfig(kind="mlp", activation="relu", width=8)
    assert m.model_config((1, 16)) == _old_model_config(d, (1, 16))
    assert ModelOverrides().to_dict() == {} and TrainConfig().model == ModelOverrides()


def test_the_block_is_immutable_and_equal_by_content():
    d = {"n_iter": 3, "regularizer": {"width": 8}}
    m = ModelOverrides(d)
    d["regularizer"]["width"] = 1  # the block holds its own copy ...
    out = m.to_dict()
    out["regularizer"]["width"] = 2  # ... and hands out fresh ones
    assert m.to_dict() == {"n_iter": 3, "regularizer": {"width": 8}}
    with pytest.raises(AttributeError):
        m.n_iter = 4
    same = ModelOverrides({"regularizer": {"width": 8}, "n_iter": 3})  # equal as the dicts are
    assert same == m and hash(same) == hash(m) and m != ModelOverrides({"n_iter": 3})
    assert m != {"n_iter": 3, "regularizer": {"width": 8}}
    assert pickle.loads(pickle.dumps(m)) == m and copy.deepcopy(m) == m
    cfg = TrainConfig(model=m)
    assert cfg.model is m and pickle.loads(pickle.dumps(cfg)) == cfg


def test_unknown_keys_are_refused_in_one_line():
    with pytest.raises(
        ValueError, match=r"model keys \['widht'\]: expected ModelConfig fields \['arch'"
    ) as err:
        TrainConfig(model={"n_iter": 3, "widht": 8})
    assert "\n" not in str(err.value)
    with pytest.raises(
        ValueError, match=r"model.regularizer keys \['widht'\]: expected RegularizerConfig fields"
    ):
        TrainConfig.from_dict({"model": {"regularizer": {"kind": "cnn", "widht": 8}}})
    with pytest.raises(ValueError, match=r"model.regularizer=None: expected a mapping"):
        ModelOverrides({"regularizer": None})
    with pytest.raises(ValueError, match=r"model=\[1\]: expected a mapping"):
        ModelOverrides([1])
    with pytest.raises(ValueError, match=r"model field 'regularizer.widht': expected one of"):
        ModelOverrides().stated("regularizer.widht")
    with pytest.raises(ValueError, match=r"model field 'n_iter.x'"):
        ModelOverrides().stated("n_iter.x")


def test_bad_values_are_refused_at_config_time_by_the_model_config():
    for bad, message in (
        ({"n_iter": 0}, r"n_iter=0: expected an integer"),
        ({"step": -1.0}, r"step=-1.0: expected a number > 0"),
        ({"arch": "cnn"}, r"arch='cnn': expected 'gd'"),
        ({"regularizer": {"kernel_size": 4}}, r"kernel_size=4: expected an odd integer"),
    ):
        with pytest.raises(ValueError, match=message):
            TrainConfig(model=bad)
    with pytest.raises(ValueError, match=r"n_iter=0"):
        make_train_config("denoise", "mse", n_iter=0)


def test_a_legacy_jitter_entry_is_kept_and_left_out_of_the_model():
    d = {"n_iter": 2, "jitter": {"sigma": 0.1, "mode": "relative"}, "regularizer": {"width": 8}}
    cfg = TrainConfig(model=d)
    assert json.dumps(cfg.to_dict()["model"]) == json.dumps(d)
    assert cfg.model.model_config((1, 64)) == _old_model_config(d, (1, 64))
    assert "jitter" not in cfg.model.model_config((1, 64)).to_dict()


# -- the shared block ------------------------------------------------------------------------------------------


def test_every_block_is_a_config_block_and_shares_its_generic_part():
    generic = (
        "to_dict",
        "__setattr__",
        "__eq__",
        "__hash__",
        "__repr__",
        "__reduce__",
        "__copy__",
        "__deepcopy__",
    )
    for cls in (ModelOverrides, EvaluationBlock, TaskOptions):
        assert issubclass(cls, ConfigBlock)
        assert [m for m in generic if m in vars(cls)] == []  # none repeats the base class's
    assert "__init__" not in vars(ModelOverrides) and "__init__" not in vars(EvaluationBlock)
    assert repr(ModelOverrides({"n_iter": 3})) == "ModelOverrides({'n_iter': 3})"
    assert ModelOverrides() != EvaluationBlock() and hash(ModelOverrides()) != hash(EvaluationBlock())
    with pytest.raises(ValueError, match=r"evaluation=ModelOverrides\(\{\}\): expected a mapping"):
        EvaluationBlock(ModelOverrides())  # a block of another kind is not this one


# -- evaluation ------------------------------------------------------------------------------------------------


def test_the_evaluation_block_reads_typed_with_evalconfigs_defaults():
    ev = EvaluationBlock().effective
    assert ev == EvaluationSettings(256, (0.1,), (0.1,), True, 20, 0.1, 1)
    e = EvalConfig()  # the defaults are EvalConfig's
    assert (e.n_test, e.attack_eps, e.random_eps, e.relative) == (
        ev.n_test,
        ev.attack_eps,
        ev.random_eps,
        ev.relative,
    )
    assert (e.attack_steps, e.attack_step_size, e.attack_restarts) == (ev.steps, ev.step_size, ev.restarts)
    assert EvalConfig.from_run_config(TrainConfig()) == e
    d = {"relative": False, "attack_eps": [1, 2.5], "steps": 3, "restarts": 2, "step_size": 1}
    block = TrainConfig(evaluation=d).evaluation
    ev = block.effective
    assert ev == EvaluationSettings(256, (1.0, 2.5), (0.1,), False, 3, 1.0, 2)
    assert type(ev.step_size) is float and all(type(x) is float for x in ev.attack_eps)
    assert (
        block.stated("steps") == 3
        and block.stated("n_test") is None
        and block.stated("attack_eps") == [1, 2.5]
    )
    cfg = EvalConfig.from_run_config(TrainConfig(evaluation=d))
    assert (cfg.attack_eps, cfg.relative, cfg.attack_steps, cfg.attack_restarts) == ((1.0, 2.5), False, 3, 2)
    assert cfg == EvalConfig.from_run_config({"evaluation": d})  # a saved config's dict reads the same
    assert json.dumps(TrainConfig(evaluation=d).to_dict()["evaluation"]) == json.dumps(
        d
    )  # as given: 1, not 1.0


def test_the_evaluation_block_keeps_the_presets_bytes_and_holds_its_own_copy():
    for task, sizes in TRAIN_PRESETS.items():
        for size in sizes:
            block = train_preset(task, size).to_dict()["evaluation"]
            ev = EvaluationBlock(train_preset(task, size).evaluation)  # the read-only table: lists again
            assert json.dumps(ev.to_dict()) == json.dumps(block) and type(ev.to_dict()["attack_eps"]) is list
            assert ev == make_train_config(task, "mse", size=size).evaluation
            assert ev.effective == EvaluationSettings(**block)
    d = {"attack_eps": [0.1], "n_test": 8}
    ev = EvaluationBlock(d)
    d["attack_eps"].append(0.2)
    ev.to_dict()["attack_eps"].append(0.3)
    assert ev.to_dict() == {"attack_eps": [0.1], "n_test": 8} and ev.effective.attack_eps == (0.1,)
    with pytest.raises(AttributeError, match="EvaluationBlock is immutable"):
        ev.n_test = 4
    same = EvaluationBlock({"n_test": 8, "attack_eps": [0.1]})
    assert same == ev and hash(same) == hash(ev) and ev != EvaluationBlock({"n_test": 8})
    assert ev != {"attack_eps": [0.1], "n_test": 8}
    assert pickle.loads(pickle.dumps(ev)) == ev and copy.deepcopy(ev) is ev and copy.copy(ev) is ev
    assert repr(ev) == "EvaluationBlock({'attack_eps': [0.1], 'n_test': 8})"
    cfg = TrainConfig(evaluation=ev)
    assert cfg.evaluation is ev and pickle.loads(pickle.dumps(cfg)) == cfg


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"n_tset": 8}, r"evaluation keys \['n_tset'\]: expected evaluation keys \['n_test', 'attack_eps'"),
        ({"n_test": 0}, r"evaluation.n_test=0: expected an integer >= 1"),
        ({"n_test": 8.0}, r"evaluation.n_test=8.0: expected an integer >= 1"),
        ({"restarts": 0}, r"evaluation.restarts=0: expected an integer >= 1"),
        ({"steps": -1}, r"evaluation.steps=-1: expected an integer >= 0"),
        ({"steps": True}, r"evaluation.steps=True: expected an integer >= 0"),
        ({"step_size": 0}, r"evaluation.step_size=0: expected a number > 0"),
        ({"step_size": float("nan")}, r"evaluation.step_size=nan: expected a number > 0"),
        ({"attack_eps": 0.1}, r"evaluation.attack_eps=0.1: expected a list of finite numbers >= 0"),
        (
            {"attack_eps": [0.1, -1]},
            r"evaluation.attack_eps=\[0.1, -1\]: expected a list of finite numbers >= 0",
        ),
        ({"random_eps": [float("inf")]}, r"evaluation.random_eps=\[inf\]: expected a list of finite"),
        ({"random_eps": None}, r"evaluation.random_eps=None: expected a list"),
        ({"relative": 1}, r"evaluation.relative=1: expected true or false"),
        ([1], r"evaluation=\[1\]: expected a mapping of evaluation keys"),
    ],
)
def test_bad_evaluation_blocks_are_refused_in_one_line(bad, message):
    with pytest.raises(ValueError, match=message) as err:
        TrainConfig.from_dict({"evaluation": bad})
    assert "\n" not in str(err.value)


def test_an_unknown_evaluation_setting_is_refused_by_stated():
    with pytest.raises(ValueError, match=r"evaluation field 'eps': expected one of \['n_test'"):
        EvaluationBlock().stated("eps")


# -- task options ----------------------------------------------------------------------------------------------


def test_task_options_are_checked_against_the_task_they_belong_to():
    for task, sizes in TASK_PRESETS.items():
        for size, options in sizes.items():
            opts = TaskOptions({"noise_sigma": 0.3}, task, size)
            assert (opts.task, opts.size, opts.stated("noise_sigma")) == (task, size, 0.3)
            assert TaskOptions(dict(options), task, size).to_dict().keys() == options.keys()
    with pytest.raises(
        ValueError,
        match=r"task_options keys \['nosie_sigma'\]: expected options of task 'denoise' \['noise_sigma', 'length'",
    ) as err:
        TrainConfig(task_options={"nosie_sigma": 0.1})
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"task_options keys \['length'\]: expected options of task 'mri'"):
        TrainConfig(task="mri", task_options={"length": 32})  # a denoise option
    with pytest.raises(ValueError, match=r"task name='nope': expected one of"):
        TrainConfig(task="nope")
    with pytest.raises(ValueError, match=r"task_options field 'shape': expected one of \['noise_sigma'"):
        TaskOptions().stated("shape")
    cfg = TrainConfig(task="mri", task_options={"shape": 16})
    with pytest.raises(
        ValueError, match=r"task_options keys \['shape'\]: expected options of task 'denoise'"
    ):
        dataclasses.replace(cfg, task="denoise")  # checked again for the new task
    assert dataclasses.replace(cfg, size="paper").task_options == TaskOptions({"shape": 16}, "mri", "paper")


def test_task_options_keep_their_bytes_and_build_the_task():
    d = {"shape": [16, 16], "noise_sigma": 0.05, "data_dir": None}
    cfg = TrainConfig(task="mri", task_options=d)
    assert json.dumps(cfg.to_dict()["task_options"]) == json.dumps(d)
    task = make_task(cfg.task, size=cfg.size, **cfg.task_options.to_dict())
    assert task.signal_shape[-2:] == (16, 16) and task.noise_sigma == 0.05
    opts = cfg.task_options
    assert opts == TaskOptions(dict(d), "mri") and hash(opts) == hash(TaskOptions(dict(d), "mri"))
    assert opts != TaskOptions(d, "mri", "paper") and TaskOptions() != TaskOptions(None, "seismic")
    assert pickle.loads(pickle.dumps(opts)) == opts and copy.deepcopy(opts) is opts
    assert repr(TaskOptions({"length": 32})) == "TaskOptions({'length': 32}, 'denoise', 'small')"
    with pytest.raises(AttributeError, match="TaskOptions is immutable"):
        opts.task = "denoise"
    assert (
        pickle.loads(pickle.dumps(cfg)) == cfg
        and TrainConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()
    )
    with pytest.raises(ValueError, match=r"shape"):  # the values are the task's to check, when it is built
        make_task("mri", **TrainConfig(task="mri", task_options={"shape": -1}).task_options.to_dict())
