"""The toy checkpoints shipped in the package: they load through the normal path, are small, ship in the
wheel, and their curvature agrees with a dense torch.func.hessian."""

import hashlib
import json
import subprocess
import sys
import zipfile

import pytest
import torch

from landscape.checkpoint import load_checkpoint
from landscape.curvature import analyze_iterates
from landscape.examples import TOY_STRATEGIES, checkpoints_dir, toy_checkpoint


@pytest.mark.parametrize("strategy", TOY_STRATEGIES)
def test_shipped_checkpoint_loads_and_matches_its_provenance(strategy):
    path = toy_checkpoint(strategy)
    ck = load_checkpoint(path)  # every integrity check of landscape.checkpoint applies
    assert ck.config.strategy.name == strategy and ck.config.seed == 0 and ck.test_seed == 2024
    assert ck.task.config()["name"] == "denoise" and ck.model.n_iter == 10
    assert (path / "checkpoint.pt").stat().st_size < 150_000  # slim: no optimizer state
    prov = json.loads((checkpoints_dir() / "PROVENANCE.json").read_text())
    assert prov["command"] == "python -m landscape.examples.regenerate"
    files = prov["runs"][path.name]["files"]
    for name, digest in files.items():
        assert hashlib.sha256((path / name).read_bytes()).hexdigest() == digest, (
            f"{name} differs from its record"
        )
    # trained, not random: the model beats the measurement by a wide margin on fresh test samples
    p = ck.test_pairs(32, dtype=torch.float32)
    with torch.no_grad():
        err_model = (ck.model(p.y) - p.x).pow(2).mean()
        err_y = (p.y - p.x).pow(2).mean()
    assert err_model < 0.5 * err_y


def test_unknown_toy_strategy_is_refused():
    with pytest.raises(ValueError, match="mse, sgd-jitter"):
        toy_checkpoint("adversarial")


def test_shipped_checkpoint_analysis_matches_a_dense_hessian():
    ck = load_checkpoint(toy_checkpoint("sgd-jitter"))
    model = ck.model.double().requires_grad_(False)
    p = ck.test_pairs(2)
    res = analyze_iterates(model, x_true=p.x, y=p.y, iterates=[0, 5], top_k=2, bottom_k=1)
    for k in (0, 5):
        traj = model(p.y, return_iterates=True)
        for b in range(2):
            xk = traj.iterates[k][b : b + 1].detach()

            def loss(v, b=b, k=k, xk=xk):
                return (model.tail(v.reshape(xk.shape), p.y[b : b + 1], k) - p.x[b : b + 1]).pow(2).sum()

            H = torch.func.hessian(loss)(xk.reshape(-1))
            ev = torch.linalg.eigvalsh(H)
            s = next(s for s in res.at(k) if s.sample == b).scalars()
            assert s["lambda_max"] == pytest.approx(float(ev[-1]), rel=1e-8, abs=1e-10)
            assert s["lambda_2"] == pytest.approx(float(ev[-2]), rel=1e-8, abs=1e-10)
            assert s["lambda_min"] == pytest.approx(float(ev[0]), rel=1e-8, abs=1e-10)
            assert s["trace"] == pytest.approx(float(torch.trace(H)), rel=1e-8)


def test_wheel_ships_the_checkpoints(tmp_path):
    root = checkpoints_dir().parents[2]
    if not (root / "pyproject.toml").is_file():
        pytest.skip("landscape is installed, not a source tree: nothing to build")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(root),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode != 0 and "No module named pip" in r.stderr:
        pytest.skip("no pip in this interpreter")
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("landscape-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for s in TOY_STRATEGIES:
        for f in ("checkpoint.pt", "metrics.json", "log.csv"):
            assert f"landscape/examples/checkpoints/toy-{s}/{f}" in names
    assert "landscape/examples/checkpoints/PROVENANCE.json" in names
