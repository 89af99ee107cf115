"""`landscape hessian`: a saved checkpoint in, per-iterate curvature table and a JSON record out."""

import json

import numpy as np
import pytest
import torch

from landscape.cli import main
from landscape.data import make_task
from landscape.models import ModelConfig, RegularizerConfig, build_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from landscape.checkpoint import save_checkpoint

    task = make_task("denoise", size="small")
    torch.manual_seed(0)
    cfg = ModelConfig(
        arch="gd",
        signal_shape=task.signal_shape,
        n_iter=3,
        regularizer=RegularizerConfig(kind="cnn", width=4, depth=2, kernel_size=3, out_scale=1.0),
    )
    model = build_model(cfg, task.physics)
    path = tmp_path_factory.mktemp("run") / "checkpoint.pt"
    save_checkpoint(path, model, task, {"seed": 0, "test_seed": 11, "dtype": "float32"}, {})
    return path, model, task


def test_hessian_cli_writes_record_matching_the_python_api(checkpoint, tmp_path, capsys):
    path, model, task = checkpoint
    out = tmp_path / "h.json"
    code = main(
        [
            "hessian",
            str(path),
            "--iterates",
            "0,3",
            "--top-k",
            "2",
            "--samples",
            "2",
            "--seed",
            "5",
            "--backend",
            "vjp_grad",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "lambda_max" in printed and "trace" in printed
    rec = json.loads(out.read_text())
    r = rec["result"]
    assert rec["command"] == "hessian" and rec["data_seed"] == 11 and rec["split"] == "id"
    assert r["iterates"] == [0, 3] and r["n_samples"] == 2 and r["seed"] == 5 and r["dtype"] == "float64"
    assert r["loss"].startswith("L_k(x_k)") and r["backend"] == "vjp_grad"
    # the same numbers from the Python API on the same samples (the checkpoint round-trips the weights)
    pairs = task.pairs(2, split="id", seed=11, dtype=torch.float64)
    from landscape.curvature.operators import dense_matrix, make_iterate_hvp

    lmax = []
    for b in range(2):
        H = dense_matrix(
            make_iterate_hvp(model, pairs.y[b : b + 1], pairs.x[b : b + 1], 0, backend="jvp_grad")
        )
        lmax.append(float(torch.linalg.eigvalsh(H)[-1]))
    agg = r["aggregate"]["0"]["lambda_max"]
    assert agg["mean"] == pytest.approx(np.mean(lmax), rel=1e-6) and agg["n"] == 2
    assert r["aggregate"]["3"]["lambda_max"]["mean"] == pytest.approx(2.0)
    assert len(r["per_sample"]) == 4 and all(s["converged"] for s in r["per_sample"])
    assert r["aggregate"]["3"]["lambda_min"]["mean"] == pytest.approx(2.0)  # H_K = 2I: both ends


def test_hessian_json_rerenders_into_the_report_figures(checkpoint, tmp_path):
    """A `landscape hessian` record is a typed IterateCurvature: the report's figure builders draw it."""
    from landscape import figures as F
    from landscape.curvature import IterateCurvature, analyze_iterates

    path, model, task = checkpoint
    out = tmp_path / "h.json"
    assert (
        main(
            [
                "hessian",
                str(path),
                "--iterates",
                "all",
                "--samples",
                "2",
                "--density",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    res = IterateCurvature.from_dict(json.loads(out.read_text()))
    pairs = task.pairs(2, split="id", seed=11, dtype=torch.float64)
    direct = analyze_iterates(model, x_true=pairs.x, y=pairs.y, iterates="all", density=True)
    for q in ("lambda_max", "lambda_min", "trace"):
        a = F.curvature_figure([("cli", res)], q).data[0]
        b = F.curvature_figure([("api", direct)], q).data[0]
        assert list(a.x) == list(b.x) and np.allclose(a.y, b.y, rtol=1e-12)
    d = F.density_figure([("cli", res, 0)]).data[0]
    e = F.density_figure([("api", direct, 0)]).data[0]
    assert np.allclose(np.asarray(d.y, dtype=float), np.asarray(e.y, dtype=float), equal_nan=True)


def test_hessian_cli_params_and_errors(checkpoint, tmp_path, capsys):
    path, _, _ = checkpoint
    assert (
        main(
            [
                "hessian",
                str(path),
                "--iterates",
                "0",
                "--wrt",
                "params",
                "--params",
                "regularizers",
                "--samples",
                "1",
                "--backend",
                "double_backward",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "lambda_max" in capsys.readouterr().out
    assert main(["hessian", str(path), "--split", "nope", "--no-progress"]) == 2
    assert "--split 'nope'" in capsys.readouterr().err
    assert main(["hessian", str(path), "--iterates", "9", "--no-progress"]) == 2
    assert main(["hessian", str(path), "--top-k", "0", "--bottom-k", "0", "--no-trace", "--no-progress"]) == 2
    assert "nothing to compute" in capsys.readouterr().err
    assert main(["hessian", str(tmp_path / "missing.pt")]) == 2
