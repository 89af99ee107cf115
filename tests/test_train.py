"""Trainer: every strategy learns, seeds reproduce, jitter changes the result, logs/metrics/resume/NaN."""

import csv
import json

import pytest
import torch

from landscape.data import make_task
from landscape.strategies import STRATEGIES, make_strategy
from landscape.train import PRESETS, TrainConfig, Trainer, make_train_config

TASK_OPTIONS = {"length": 16, "min_jumps": 1, "max_jumps": 2}


def tiny_config(strategy="mse", *, epochs=2, seed=0, **strategy_options):
    if strategy == "adversarial":
        strategy_options = {"eps": 0.1, "relative": True, "steps": 2, "step_size": 0.5, **strategy_options}
    return TrainConfig(
        task="denoise",
        task_options=TASK_OPTIONS,
        strategy=make_strategy(strategy, **strategy_options).to_dict(),
        model={"n_iter": 3, "regularizer": {"kind": "cnn", "width": 8, "depth": 2}},
        epochs=epochs,
        batch_size=16,
        lr=1e-2,
        train_size=64,
        val_size=32,
        seed=seed,
    )


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_lowers_the_validation_loss(strategy):
    result = Trainer(tiny_config(strategy), progress=False).fit()
    h = result.history
    assert [r["epoch"] for r in h] == [0, 1, 2]
    assert h[-1]["val_loss"] < h[0]["val_loss"]
    assert not result.model.training


def test_same_seed_reproduces_and_jitter_changes_the_weights():
    a = Trainer(tiny_config("mse"), progress=False).fit()
    b = Trainer(tiny_config("mse"), progress=False).fit()
    assert torch.equal(params(a.model), params(b.model))
    s = Trainer(tiny_config("sgd-jitter", sigma=0.5), progress=False).fit()
    assert a.history[0]["val_loss"] == s.history[0]["val_loss"]  # same initial weights
    assert not torch.allclose(params(a.model), params(s.model))
    c = Trainer(tiny_config("mse", seed=1), progress=False).fit()
    assert not torch.equal(params(a.model), params(c.model))


def test_outputs_log_and_metrics(tmp_path):
    out = tmp_path / "run"
    result = Trainer(tiny_config("sgd-jitter", sigma=[0.1, 0.1, 0.0]), out_dir=out, progress=False).fit()
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "log.csv", "metrics.json"]
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert float(rows[-1]["val_loss"]) == pytest.approx(result.history[-1]["val_loss"], rel=1e-6)
    m = json.loads((out / "metrics.json").read_text())
    assert m["strategy"] == "sgd-jitter"  # its options live once, in the run config
    from landscape.checkpoint import load_checkpoint

    assert load_checkpoint(out).saved_config["strategy"] == {
        "name": "sgd-jitter",
        "sigma": [0.1, 0.1, 0.0],
        "mode": "paper",
    }
    assert m["final"]["val_loss"] < m["initial"]["val_loss"]
    assert m["steps"] == 8 and m["seed"] == 0 and "torch" in m["versions"]


def test_resume_continues_the_same_streams(tmp_path):
    straight = Trainer(tiny_config("sgd-jitter", sigma=0.3, epochs=3), progress=False).fit()
    Trainer(tiny_config("sgd-jitter", sigma=0.3, epochs=2), out_dir=tmp_path, progress=False).fit()
    resumed = Trainer(tiny_config("sgd-jitter", sigma=0.3, epochs=3), out_dir=tmp_path, progress=False).fit(
        resume=True
    )
    assert torch.equal(params(straight.model), params(resumed.model))
    assert [r["epoch"] for r in resumed.history] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="differs"):
        Trainer(tiny_config("mse", epochs=4), out_dir=tmp_path, progress=False).fit(resume=True)


class NaNAfter:
    """A strategy that returns NaN from its ``n``-th step on."""

    name = "nan"

    def __init__(self, inner, n):
        self.inner, self.n, self.calls = inner, n, 0

    def configure_model(self, config):
        return config

    def train_step(self, model, x, y, *, generator=None):
        self.calls += 1
        loss = self.inner.train_step(model, x, y, generator=generator)
        return loss * float("nan") if self.calls >= self.n else loss

    def to_dict(self):
        return self.inner.to_dict()


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(tiny_config("mse", epochs=3), out_dir=tmp_path, progress=False)
    trainer.strategy = NaNAfter(trainer.strategy, n=6)  # 4 steps per epoch: fails at epoch 2, step 2
    with pytest.raises(ValueError, match=r"epoch 2, step 2"):
        trainer.fit()
    from landscape.checkpoint import load_checkpoint

    ck = load_checkpoint(tmp_path)
    assert ck.extra["epoch"] == 1
    assert all(torch.isfinite(p).all() for p in ck.model.parameters())


def test_make_train_config_presets_and_overrides():
    cfg = make_train_config("denoise", "sgd-jitter", sigma=0.2, n_iter=4, activation="relu", fixed_step=True)
    assert cfg.strategy.sigma == 0.2 and cfg.to_dict()["strategy"]["sigma"] == 0.2
    assert cfg.model.effective.n_iter == 4 and cfg.model.effective.learn_step is False
    assert cfg.model.stated("regularizer.activation") == "relu"
    assert cfg.epochs == PRESETS["denoise"]["small"].epochs
    paper = make_train_config("seismic", "mse", size="paper")
    assert paper.lr == 1e-4 and paper.model.effective.n_iter == 10
    assert make_train_config("mri", "mse", size="paper").model.effective.n_iter == 10
    with pytest.raises(ValueError, match="strategy"):
        make_train_config("denoise", "nope")
    with pytest.raises(ValueError, match="task"):
        make_train_config("nope", "mse")
    with pytest.raises(ValueError, match="sigma"):
        make_train_config("denoise", "sgd-jitter", sigma=-1.0)
    with pytest.raises(ValueError, match="sigma"):
        make_train_config("denoise", "mse", sigma=0.1)
    assert TrainConfig.from_dict(cfg.to_dict()) == TrainConfig.from_dict(cfg.to_dict())


def test_fresh_noise_and_spgd_train_prox_models():
    cfg = tiny_config("spgd-jitter", sigma=0.2)
    cfg = TrainConfig.from_dict({**cfg.to_dict(), "fresh_noise": True})
    t = Trainer(cfg, progress=False, task=make_task("denoise", **TASK_OPTIONS))
    assert t.model.arch == "prox" and t.train_set.fresh_noise
    assert t.fit().history[-1]["val_loss"] < t.history[0]["val_loss"]


def test_non_finite_weights_stop_training_and_keep_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(tiny_config("mse", epochs=3), out_dir=tmp_path, progress=False)
    real_step, calls = trainer.optimizer.step, []

    def poisoned_step(*args, **kwargs):  # the 7th update leaves an Inf in a weight; the loss is still finite
        out = real_step(*args, **kwargs)
        calls.append(1)
        if len(calls) == 7:
            with torch.no_grad():
                next(trainer.model.parameters()).view(-1)[0] = float("inf")
        return out

    trainer.optimizer.step = poisoned_step
    with pytest.raises(ValueError, match=r"weights became non-finite \(NaN/Inf in '.+'\) at epoch 2, step 3"):
        trainer.fit()
    from landscape.checkpoint import load_checkpoint

    ck = load_checkpoint(tmp_path)
    assert ck.extra["epoch"] == 1 and len(ck.extra["history"]) == 2
    assert all(torch.isfinite(p).all() for p in ck.model.parameters())


@pytest.mark.parametrize("lr", ["1e12", "1e38"])
def test_absurd_learning_rate_stops_with_epoch_and_step(lr, tmp_path, capsys):
    """From the CLI: exit 2, one line naming epoch and step; the epoch-0 checkpoint stays loadable."""
    from landscape.checkpoint import load_checkpoint
    from landscape.cli import main

    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--task",
            "denoise",
            "--train-size",
            "32",
            "--batch-size",
            "8",
            "--epochs",
            "2",
            "-K",
            "2",
            "--lr",
            lr,
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "at epoch 1, step" in err and "last good checkpoint is epoch 0" in err
    ck = load_checkpoint(out)
    assert ck.extra["epoch"] == 0
    assert all(torch.isfinite(p).all() for p in ck.model.parameters())
    assert not (out / "metrics.json").exists()
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "log.csv"]  # no temporary files left


def test_metrics_record_every_seed(tmp_path):
    cfg = TrainConfig.from_dict({**tiny_config("mse", epochs=1).to_dict(), "data_seed": 5, "test_seed": 77})
    Trainer(cfg, out_dir=tmp_path, progress=False).fit()
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert (m["seed"], m["data_seed"], m["test_seed"]) == (0, 5, 77)
    from landscape.checkpoint import load_checkpoint

    ck = load_checkpoint(tmp_path)
    assert (ck.config.seed, ck.config.data_seed, ck.config.test_seed, ck.test_seed) == (0, 5, 77, 77)


@pytest.mark.parametrize(
    "strategy, options",
    [("input-jitter", {"sigma": 0.1}), ("adversarial", {}), ("spgd-jitter", {"sigma": 0.2})],
)
def test_resume_is_bitwise_for_every_random_strategy(strategy, options, tmp_path):
    """Every random stream (batch order, fresh noise, input noise, PGD start, jitter) continues on resume."""

    def cfg(epochs):
        c = tiny_config(strategy, epochs=epochs, **options)
        return TrainConfig.from_dict({**c.to_dict(), "fresh_noise": True, "train_size": 32})

    straight = Trainer(cfg(2), progress=False).fit()
    Trainer(cfg(1), out_dir=tmp_path, progress=False).fit()
    resumed = Trainer(cfg(2), out_dir=tmp_path, progress=False).fit(resume=True)
    assert torch.equal(params(straight.model), params(resumed.model))


def test_the_strategy_is_built_once_and_sigma_stored_once(tmp_path, monkeypatch):
    """From make_train_config to the saved checkpoint the typed strategy is built once; σ lives in one place."""
    import torch

    import landscape.strategies as S
    import landscape.train as T

    calls = []
    real = S.make_strategy

    def counting(name, **options):
        calls.append(name)
        return real(name, **options)

    monkeypatch.setattr(S, "make_strategy", counting)
    monkeypatch.setattr(T, "make_strategy", counting)
    cfg = T.make_train_config(
        "denoise", "sgd-jitter", sigma=0.2, epochs=1, train_size=16, batch_size=8, val_size=8, n_iter=2
    )
    T.Trainer(cfg, out_dir=tmp_path / "run", progress=False).fit()
    assert calls == ["sgd-jitter"]
    payload = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    text = json.dumps({k: payload[k] for k in ("model_config", "config", "metrics")}, default=str)
    assert text.count('"sigma"') == 1 and payload["config"]["strategy"]["sigma"] == 0.2


def test_train_config_to_dict_round_trips_byte_for_byte():
    """``TrainConfig.to_dict()`` is what checkpoints store: ``from_dict`` of it gives the same JSON, for the shipped
    example runs' configs (as written) and for make_train_config outputs of every strategy."""
    import glob
    from pathlib import Path

    import landscape

    saved = []
    for p in sorted(
        glob.glob(str(Path(landscape.__file__).parent / "examples" / "checkpoints" / "*" / "checkpoint.pt"))
    ):
        c = torch.load(p, weights_only=False)["config"]
        saved.append({k: v for k, v in c.items() if k != "task_config"})  # the task's config, added beside it
    assert len(saved) == 2
    made = [
        make_train_config("denoise", name, seed=1, n_iter=4).to_dict()
        for name in ("mse", "input-jitter", "adversarial", "sgd-jitter", "spgd-jitter", "curvature-penalty")
    ]
    made.append(
        make_train_config(
            "denoise",
            "sgd-jitter",
            sigma=[0.1, 0.0, 0.1],
            jitter_mode="absolute",
            n_iter=3,
            patience=2,
            lr_decays=1,
            regularizer={"width": 4},
        ).to_dict()
    )
    made.append(
        make_train_config("denoise", "adversarial", eps=0.2, eps_relative=False, attack_steps=2).to_dict()
    )
    for d in saved + made:
        cfg = TrainConfig.from_dict(json.loads(json.dumps(d)))
        assert json.dumps(cfg.to_dict()) == json.dumps(d)
        assert cfg == TrainConfig.from_dict(cfg.to_dict())
    assert TrainConfig().strategy == make_strategy("mse")  # the default is the typed strategy
