"""Checkpoints: exact round trip, plain contents (weights_only), atomic writes, clear errors."""

import json
import os
import zipfile

import pytest
import torch

import landscape
from landscape.checkpoint import FORMAT_VERSION, load_checkpoint, read_checkpoint, save_checkpoint
from landscape.strategies import make_strategy
from landscape.train import TrainConfig, Trainer

TASK_OPTIONS = {"length": 16, "min_jumps": 1, "max_jumps": 2}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(
        task="denoise",
        task_options=TASK_OPTIONS,
        strategy=make_strategy("sgd-jitter", sigma=0.2).to_dict(),
        model={"n_iter": 3, "regularizer": {"kind": "cnn", "width": 8, "depth": 2}},
        epochs=1,
        batch_size=16,
        lr=1e-2,
        train_size=32,
        val_size=16,
        seed=3,
    )
    trainer = Trainer(cfg, out_dir=out, progress=False)
    result = trainer.fit()
    return out, trainer, result


def test_round_trip_gives_identical_outputs(run_dir):
    out, trainer, result = run_dir
    ck = landscape.load_checkpoint(out / "checkpoint.pt")
    assert not ck.model.training and ck.model.arch == "gd"
    assert ck.model.jitter.sigma == 0.2
    test = ck.task.pairs(8, split="id", seed=ck.config["test_seed"])
    trained = result.model.eval()
    assert torch.equal(ck.model(test.y), trained(test.y))
    same = trainer.task.pairs(8, split="id", seed=ck.config["test_seed"])
    assert torch.equal(test.x, same.x) and torch.equal(test.y, same.y)  # the task regenerates its samples
    assert ck.config["seed"] == 3 and ck.config["strategy"]["name"] == "sgd-jitter"
    assert ck.metrics["final"]["val_loss"] == pytest.approx(result.metrics["final"]["val_loss"])
    assert ck.extra["versions"]["torch"] == str(torch.__version__)
    assert ck.extra["epoch"] == 1 and len(ck.extra["history"]) == 2
    json.dumps(ck.config)  # JSON-compatible
    assert load_checkpoint(out).path == ck.path  # a run directory works too


def test_contents_are_plain_and_loadable_weights_only(run_dir):
    out, _, _ = run_dir
    payload = torch.load(out / "checkpoint.pt", weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION
    assert set(payload["rng"]) == {"data", "jitter", "strategy"}
    assert "state" in payload["optimizer"]


def test_atomic_save_leaves_no_temporary_files(run_dir, tmp_path):
    _, trainer, _ = run_dir
    path = tmp_path / "ck.pt"
    for _ in range(2):
        save_checkpoint(path, trainer.model, trainer.task, {"seed": 0, "dtype": "float32"}, {"a": 1.0})
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(path, trainer.model, trainer.task, {"seed": object()})
    assert read_checkpoint(path)["metrics"] == {"a": 1.0}  # the failed save did not touch the file


def test_missing_corrupt_and_foreign_files(run_dir, tmp_path):
    out, _, _ = run_dir
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(garbage)
    truncated = tmp_path / "truncated.pt"
    data = (out / "checkpoint.pt").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(truncated)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "landscape-checkpoint", "obj": zipfile.ZipInfo("x")}, pickled)
    with pytest.raises(ValueError, match="corrupt or not a landscape checkpoint"):
        load_checkpoint(pickled)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not a landscape checkpoint"):
        load_checkpoint(foreign)
    payload = torch.load(out / "checkpoint.pt", weights_only=True)
    newer = tmp_path / "newer.pt"
    torch.save({**payload, "format_version": FORMAT_VERSION + 1}, newer)
    with pytest.raises(ValueError, match="format_version"):
        load_checkpoint(newer)
    mismatched = tmp_path / "mismatched.pt"
    sd = dict(payload["state_dict"])
    sd.pop(next(iter(sd)))
    torch.save({**payload, "state_dict": sd}, mismatched)
    with pytest.raises(ValueError, match="does not match"):
        load_checkpoint(mismatched)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(run_dir, tmp_path):
    out, _, _ = run_dir
    p = tmp_path / "locked.pt"
    p.write_bytes((out / "checkpoint.pt").read_bytes())
    p.chmod(0)
    with pytest.raises(PermissionError):
        load_checkpoint(p)
