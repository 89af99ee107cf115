"""The typed run config's model block (:class:`landscape.config.ModelOverrides`): checked when built, and a
saved config's JSON round-trips byte for byte."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest
import torch

import landscape
from landscape.config import ModelOverrides, TrainConfig
from landscape.models import ModelConfig, RegularizerConfig
from landscape.presets import TRAIN_PRESETS, train_preset
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


@pytest.mark.parametrize("which", ["presets", "examples"])
def test_saved_configs_round_trip_byte_for_byte_and_build_the_same_model(which):
    configs = _preset_configs() if which == "presets" else _example_configs()
    assert len(configs) == (
        len(STRATEGIES) * sum(map(len, TRAIN_PRESETS.values())) if which == "presets" else 2
    )
    for d in configs:
        text = json.dumps(d)
        cfg = TrainConfig.from_dict(json.loads(text))
        assert isinstance(cfg.model, ModelOverrides)
        assert json.dumps(cfg.to_dict()) == text
        assert json.dumps(cfg.model.to_dict()) == json.dumps(d["model"])
        assert cfg == TrainConfig.from_dict(cfg.to_dict()) and hash(cfg.model) == hash(
            ModelOverrides(d["model"])
        )
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
