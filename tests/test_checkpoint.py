"""Checkpoints: exact round trip, plain contents (weights_only), atomic writes, clear errors."""

import json
import os
import pickle
import zipfile

import pytest
import torch

import landscape
from landscape.checkpoint import FORMAT_VERSION, load_checkpoint, read_checkpoint, save_checkpoint
from landscape.strategies import make_strategy, trained_noise
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
    assert (
        trained_noise(ck.saved_config).sigma == 0.2 and "jitter" not in ck.model.config()
    )  # σ: the strategy's
    assert ck.config.strategy.noise == trained_noise(ck.saved_config)
    test = ck.test_pairs(8, dtype=torch.float32)
    trained = result.model.eval()
    assert torch.equal(ck.model(test.y), trained(test.y))
    same = trainer.task.pairs(8, split="id", seed=trainer.config.test_seed)
    assert torch.equal(test.x, same.x) and torch.equal(test.y, same.y)  # the task regenerates its samples
    assert ck.config.seed == 3 and ck.config.strategy.name == "sgd-jitter" and ck.name == "sgd-jitter"
    # the typed config writes back the saved one (which holds the full model config and the resolved data seed)
    assert (
        isinstance(ck.config, TrainConfig)
        and ck.config.resolved_data_seed == trainer.config.resolved_data_seed
    )
    assert ck.config.to_dict() == {k: v for k, v in ck.saved_config.items() if k != "task_config"}
    assert ck.test_seed == trainer.config.test_seed == 2024
    assert ck.metrics["final"]["val_loss"] == pytest.approx(result.metrics["final"]["val_loss"])
    assert ck.extra["versions"]["torch"] == str(torch.__version__)
    assert ck.extra["epoch"] == 1 and len(ck.extra["history"]) == 2
    json.dumps(ck.saved_config)  # JSON-compatible
    assert ck.saved_config == trainer._run_config()  # the run config exactly as saved
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


def test_a_hand_written_config_loads_typed_with_the_defaults(run_dir, tmp_path):
    """Keys the saved config leaves out take TrainConfig's defaults (test_seed 2024, the one rule); keys
    TrainConfig does not have stay in saved_config; an invalid value is refused in one line."""
    _, trainer, _ = run_dir
    cfg = {"seed": 5, "dtype": "float32", "note": "kept", "task_config": trainer.task.config()}
    ck = load_checkpoint(
        save_checkpoint(tmp_path / "hand" / "checkpoint.pt", trainer.model, trainer.task, cfg)
    )
    assert ck.config.seed == 5 and ck.test_seed == 2024 and ck.saved_config == cfg
    assert ck.name == "hand"  # no strategy saved: the run folder names it
    p = ck.test_pairs(3, start=1)
    q = trainer.task.pairs(4, split="id", seed=2024, dtype=torch.float64)
    assert p.x.dtype == torch.float64 and torch.equal(p.x, q.x[1:]) and torch.equal(p.y, q.y[1:])
    bad = save_checkpoint(tmp_path / "bad.pt", trainer.model, trainer.task, {"seed": -1})
    with pytest.raises(
        ValueError, match=r"does not match this version of landscape: seed=-1: expected an integer"
    ):
        load_checkpoint(bad)


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
    with pytest.raises(ValueError, match="refused: unsafe content.*zipfile.ZipInfo"):
        load_checkpoint(pickled)
    with pytest.raises(ValueError, match="not a regular file"):
        load_checkpoint("/dev/null")
    with pytest.raises(FileNotFoundError, match="holds no checkpoint.pt"):
        load_checkpoint(tmp_path)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not a landscape checkpoint"):
        load_checkpoint(foreign)
    payload = torch.load(out / "checkpoint.pt", weights_only=True)
    newer = tmp_path / "newer.pt"
    torch.save({**payload, "format_version": FORMAT_VERSION + 1}, newer)
    with pytest.raises(ValueError, match=r"format_version=2 \(written by landscape .*reads version 1"):
        load_checkpoint(newer)
    mismatched = tmp_path / "mismatched.pt"
    sd = dict(payload["state_dict"])
    sd.pop(next(iter(sd)))
    torch.save({**payload, "state_dict": sd}, mismatched)
    with pytest.raises(ValueError, match="does not match.*missing weights"):
        load_checkpoint(mismatched)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(run_dir, tmp_path):
    out, _, _ = run_dir
    p = tmp_path / "locked.pt"
    p.write_bytes((out / "checkpoint.pt").read_bytes())
    p.chmod(0)
    with pytest.raises(PermissionError):
        load_checkpoint(p)


# -------------------------------------------------------------------------------------------------
# safety: a checkpoint never runs code; incompatible files say what differs
# -------------------------------------------------------------------------------------------------
class _RunsShell:
    """Unpickling this calls ``os.system(command)``."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _OpensFile:
    """Unpickling this calls ``open(path, 'w')``, creating the file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _write_malicious(kind, path, marker):
    payload = {"format": "landscape-checkpoint", "format_version": FORMAT_VERSION}
    if kind == "torch-zip-system":
        torch.save({**payload, "state_dict": _RunsShell(f"touch {marker}")}, path)
    elif kind == "torch-zip-open":
        torch.save({**payload, "config": _OpensFile(marker)}, path)
    else:  # a plain pickle file, as pickle.dump writes it
        with open(path, "wb") as fh:
            pickle.dump({**payload, "state_dict": _RunsShell(f"touch {marker}")}, fh, protocol=4)


@pytest.mark.parametrize("kind", ["torch-zip-system", "torch-zip-open", "plain-pickle"])
def test_malicious_checkpoint_is_refused_and_runs_no_code(kind, tmp_path):
    # the crafted file really is malicious: unpickling it the unsafe way creates its marker
    probe_marker, probe = tmp_path / "probe-marker", tmp_path / "probe.pt"
    _write_malicious(kind, probe, probe_marker)
    if kind == "plain-pickle":
        with open(probe, "rb") as fh:
            pickle.load(fh)
    else:
        torch.load(probe, weights_only=False)
    assert probe_marker.exists()

    marker, evil = tmp_path / "PWNED", tmp_path / "evil.pt"
    _write_malicious(kind, evil, marker)
    with pytest.raises(ValueError, match=r"refused: unsafe content.*(weights_only|posix.system|open)") as exc:
        load_checkpoint(evil)
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="refused: unsafe content"):
        read_checkpoint(evil)
    assert not marker.exists()
    from landscape.cli import main

    assert main(["evaluate", str(evil), "--out", str(tmp_path / "r.json"), "--quiet"]) == 2
    assert not marker.exists() and not (tmp_path / "r.json").exists()


def test_plain_pickle_without_code_is_not_a_checkpoint(tmp_path):
    p = tmp_path / "plain.pkl"
    with open(p, "wb") as fh:
        pickle.dump({"format": "landscape-checkpoint", "weights": [1.0, 2.0]}, fh)
    with pytest.raises(ValueError, match="plain pickle, not a torch zip file"):
        load_checkpoint(p)


def _resaved(run_dir, tmp_path, name, **changes):
    out, _, _ = run_dir
    payload = torch.load(out / "checkpoint.pt", weights_only=True)
    for key, value in changes.items():
        payload[key] = value(payload[key]) if callable(value) else value
    p = tmp_path / name
    torch.save(payload, p)
    return p


def test_incompatible_package_version_says_what_differs(run_dir, tmp_path):
    future = _resaved(run_dir, tmp_path, "future.pt", versions=lambda v: {**v, "landscape": "9.1.0"})
    this = landscape.__version__
    with pytest.raises(ValueError, match=rf"written by landscape 9.1.0, this is landscape {this}"):
        load_checkpoint(future)
    # a different torch / numpy / python, or a patch release of landscape, still loads
    major, minor = landscape.__version__.split(".")[:2]
    other = {"landscape": f"{major}.{minor}.99", "torch": "2.0.0", "python": "3.9.0"}
    patch = _resaved(run_dir, tmp_path, "patch.pt", versions=lambda v: {**v, **other})
    assert load_checkpoint(patch).extra["versions"]["torch"] == "2.0.0"


def test_incompatible_config_says_what_differs(run_dir, tmp_path):
    unknown = _resaved(run_dir, tmp_path, "unknown.pt", model_config=lambda m: {**m, "attention_heads": 4})
    with pytest.raises(ValueError, match=r"does not know: model.attention_heads"):
        load_checkpoint(unknown)
    nested = _resaved(
        run_dir,
        tmp_path,
        "nested.pt",
        model_config=lambda m: {**m, "regularizer": {**m["regularizer"], "dropout": 0.1}},
    )
    with pytest.raises(ValueError, match=r"does not know: model.regularizer.dropout"):
        load_checkpoint(nested)
    wider = _resaved(
        run_dir,
        tmp_path,
        "wider.pt",
        model_config=lambda m: {**m, "regularizer": {**m["regularizer"], "width": 9}},
    )
    with pytest.raises(ValueError, match=r"does not match.*has shape .* this model expects"):
        load_checkpoint(wider)
    badtask = _resaved(run_dir, tmp_path, "badtask.pt", task_config=lambda t: {**t, "name": "ct"})
    with pytest.raises(ValueError, match=r"does not match this version of landscape: task name='ct'"):
        load_checkpoint(badtask)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(run_dir, tmp_path, value):
    def poison(sd):
        sd = dict(sd)
        name = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
        sd[name] = sd[name].clone()
        sd[name].view(-1)[1] = value
        return sd

    p = _resaved(run_dir, tmp_path, "nan.pt", state_dict=poison)
    with pytest.raises(ValueError, match=r"non-finite weights: 1 NaN/Inf value\(s\) in '.*'"):
        load_checkpoint(p)


def test_comparisons_take_checkpoints_of_one_task_only(tmp_path):
    """evaluate and check_claims compare models on one task's data: none, or a second task, is one line."""
    from landscape.checkpoint import load_one_task
    from landscape.claims import check_claims
    from landscape.evaluate import evaluate
    from landscape.examples import toy_checkpoint
    from tests.cli_helpers import tiny_checkpoints

    shipped = [toy_checkpoint("mse"), toy_checkpoint("sgd-jitter")]
    cks = load_one_task([shipped[0], load_checkpoint(shipped[1])], who="evaluate")
    assert [c.path for c in cks] == [load_checkpoint(p).path for p in shipped]
    (other,) = tiny_checkpoints(tmp_path, ("mse",), length=12)  # denoise too, but signals of another length
    for call, who in ((evaluate, "evaluate"), (check_claims, "check_claims")):
        with pytest.raises(ValueError, match=f"^{who}: expected at least one checkpoint$"):
            call([])
        with pytest.raises(
            ValueError, match=f"is for a different task than .*: {who} compares one task at a time$"
        ):
            call([shipped[0], other])
