"""Evaluation: deterministic, every condition present, summaries match per-sample values, references right."""

import json

import pytest
import torch

from landscape.attacks import per_sample_norm
from landscape.checkpoint import load_checkpoint
from landscape.evaluate import EvalConfig, conditions, evaluate, format_table
from landscape.metrics import psnr
from landscape.strategies import make_strategy
from landscape.train import TrainConfig, Trainer

TASK_OPTIONS = {"length": 16, "min_jumps": 1, "max_jumps": 2}
EVAL = {
    "n_test": 12,
    "attack_eps": [0.1],
    "random_eps": [0.1],
    "relative": True,
    "steps": 3,
    "step_size": 0.5,
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    dirs = []
    for name in ("mse", "sgd-jitter"):
        cfg = TrainConfig(
            task="denoise",
            task_options=TASK_OPTIONS,
            strategy=make_strategy(name).to_dict(),
            model={"n_iter": 3, "regularizer": {"kind": "cnn", "width": 8, "depth": 2}},
            epochs=1,
            batch_size=16,
            lr=1e-2,
            train_size=32,
            val_size=16,
            evaluation=EVAL,
        )
        Trainer(cfg, out_dir=root / name, progress=False).fit()
        dirs.append(root / name)
    return dirs


def test_report_structure_and_determinism(runs):
    a = evaluate(runs)
    b = evaluate(runs)
    strip = lambda r: json.dumps([row["results"] for row in r["rows"]], sort_keys=True)  # noqa: E731
    assert strip(a) == strip(b)
    assert [r["name"] for r in a["rows"]] == ["measurement", "affine", "mse", "sgd-jitter"]
    keys = [c["key"] for c in a["conditions"]]
    assert keys == ["id", "pgd:0.1", "random:0.1", "ood:spikes", "ood:amplitude", "ood:smooth"]
    for row in a["rows"]:
        for key in keys:
            e = row["results"][key]
            for m in ("psnr", "ssim", "mse"):
                v = torch.tensor(e["per_sample"][m], dtype=torch.float64)
                assert len(v) == 12
                assert e[m]["mean"] == pytest.approx(float(v.mean()))
                assert e[m]["stderr"] == pytest.approx(float(v.std() / 12**0.5))
        r = row["results"]
        assert r["pgd:0.1"]["mse"]["mean"] > r["id"]["mse"]["mean"]  # the attack hurts every estimator
        assert r["pgd:0.1"]["mse"]["mean"] >= r["random:0.1"]["mse"]["mean"]
    table = format_table(a)
    for text in ("measurement", "affine", "sgd-jitter", "ID", "PGD ε=0.1", "OOD spikes"):
        assert text in table


def test_measurement_row_and_perturbation_norms(runs):
    ck = load_checkpoint(runs[0])
    cfg = EvalConfig.from_run_config(ck.config)
    assert cfg.n_test == 12 and cfg.attack_steps == 3 and cfg.relative
    rep = evaluate([ck], cfg)
    test = ck.task.pairs(12, split="id", seed=cfg.test_seed)
    meas = rep["rows"][0]["results"]["id"]
    assert torch.allclose(
        torch.tensor(meas["per_sample"]["psnr"], dtype=torch.float64), psnr(test.y.double(), test.x.double())
    )
    expected = float((0.1 * per_sample_norm(test.y.double())).mean())
    for key in ("pgd:0.1", "random:0.1"):
        norm = rep["rows"][2]["results"][key]["perturbation_norm"]["mean"]
        assert norm == pytest.approx(expected, rel=1e-5)


def test_affine_row_is_the_least_squares_fit(runs):
    ck = load_checkpoint(runs[0])
    rep = evaluate([ck], EvalConfig(n_test=12, attack_eps=(), random_eps=(), splits=("id",)))
    train = ck.task.training_set(ck.config.train_size, seed=ck.config.resolved_data_seed)
    X = train.x.double().flatten(1)
    Y = torch.cat([train.y.double().flatten(1), torch.ones(len(X), 1, dtype=torch.float64)], 1)
    coef = torch.linalg.lstsq(Y, X, driver="gelsd").solution
    test = ck.task.pairs(12, split="id", seed=2024)
    yt = torch.cat([test.y.double().flatten(1), torch.ones(12, 1, dtype=torch.float64)], 1)
    ref = psnr((yt @ coef).view_as(test.x), test.x.double())
    got = torch.tensor(rep["rows"][1]["results"]["id"]["per_sample"]["psnr"], dtype=torch.float64)
    assert torch.allclose(got, ref, atol=1e-3)


def test_conditions_and_errors(runs):
    ck = load_checkpoint(runs[0])
    cfg = EvalConfig(attack_eps=(0.05, 0.2), random_eps=(), splits=("id", "smooth"))
    assert [c.key for c in conditions(ck.task, cfg)] == ["id", "pgd:0.05", "pgd:0.2", "ood:smooth"]
    with pytest.raises(ValueError, match="split"):
        conditions(ck.task, EvalConfig(splits=("id", "nope")))
    with pytest.raises(ValueError, match="attack_eps"):
        EvalConfig(attack_eps=(-0.1,))
