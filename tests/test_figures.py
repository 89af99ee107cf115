"""Figures are pure builders over the saved JSON records (no model needed to draw them)."""

import json

import numpy as np
import pytest
import torch

from landscape import figures as F
from landscape.curvature import CurvatureSettings


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    """A small analysis record, written to JSON and read back (what a report re-render sees)."""
    from landscape.io import write_json
    from landscape.models import ModelConfig, RegularizerConfig, build_model
    from landscape.physics import Denoising
    from landscape.survey import analyze_loaded

    torch.manual_seed(0)
    cfg = ModelConfig(
        arch="gd",
        signal_shape=(1, 12),
        n_iter=3,
        regularizer=RegularizerConfig(kind="cnn", width=4, depth=2, kernel_size=3, out_scale=1.0),
    )
    entries = []
    for i, label in enumerate(("mse", "sgd-jitter")):
        torch.manual_seed(i)
        m = build_model(cfg, Denoising(0.2)).double().eval()
        g = torch.Generator().manual_seed(7)
        x = torch.randn(3, 1, 12, generator=g, dtype=torch.float64)
        y = m.physics.measure(x, generator=g)
        entries.append(
            analyze_loaded(
                m,
                y,
                x,
                iterates=[0, 1, 2, 3],
                curvature=CurvatureSettings(top_k=3, backend="jvp_grad", seed=0),
                label=label,
                settings={"slice_n": 7, "param_slice_n": 5, "eps": (0.0, 0.5), "pgd_steps": 2},
            )
        )
    rec = {
        "format": "landscape-analysis/2",
        "settings": {"samples": 3, "density_k": 0, "curvature": CurvatureSettings(top_k=3, seed=0).to_dict()},
        "checkpoints": entries,
    }
    path = tmp_path_factory.mktemp("an") / "analysis.json"
    write_json(path, rec)
    return json.loads(path.read_text())


def test_slice_figures(analysis):
    s = analysis["checkpoints"][0]["slices"]["input"]
    fig = F.slice_contour_figure(s)
    d = fig.to_dict()
    assert [t["type"] for t in d["data"]] == ["contour", "scatter"]
    assert np.asarray(fig.data[0].z).shape == (7, 7)
    assert "k = 0" in d["layout"]["title"]["text"]
    assert "random" in d["layout"]["xaxis"]["title"]["text"]
    surf = F.slice_surface_figure(s, log=True).to_dict()
    assert surf["data"][0]["type"] == "surface"
    one_d = dict(
        s,
        coords=s["coords"][:1],
        values=np.asarray(s["values"])[:, 3].tolist(),
        directions=s["directions"][:1],
    )
    line = F.slice_contour_figure(one_d).to_dict()
    assert [t["type"] for t in line["data"]] == ["scatter", "scatter"]
    with pytest.raises(ValueError, match="2-D"):
        F.slice_surface_figure(one_d)


def test_side_by_side_shares_one_colour_scale(analysis):
    slices = [e["slices"]["input"] for e in analysis["checkpoints"]]
    fig = F.slices_side_by_side_figure(slices, ["a", "b"], log=True)
    d = fig.to_dict()
    contours = [t for t in fig.data if t.type == "contour"]
    assert len(contours) == 2 and all(t.coloraxis == "coloraxis" for t in contours)
    allz = np.concatenate([np.asarray(t.z, dtype=float).ravel() for t in contours])
    ca = d["layout"]["coloraxis"]
    assert ca["cmin"] == pytest.approx(allz.min()) and ca["cmax"] == pytest.approx(allz.max())
    assert [a["text"] for a in d["layout"]["annotations"]] == ["a", "b"]
    params = [e["slices"]["parameter"] for e in analysis["checkpoints"]]
    assert len(F.slices_side_by_side_figure(params, ["a", "b"]).to_dict()["data"]) == 4


def test_curvature_figures(analysis):
    from landscape.survey import curvature_of
    from landscape.viz.report import _densities

    entries = analysis["checkpoints"]
    curv = [(e["label"], curvature_of(e)) for e in entries]  # typed results rebuilt from the saved JSON
    lam = F.curvature_figure(curv, "lambda_max")
    assert [t.name for t in lam.data] == ["mse", "sgd-jitter"]
    assert list(lam.data[0].x) == [0, 1, 2, 3]
    assert lam.data[0].error_y.visible and len(lam.data[0].error_y.array) == 4
    assert list(lam.data[1].y) == pytest.approx(list(curv[1][1].series("lambda_max")[1]))
    tr = F.curvature_figure(curv, "trace").to_dict()
    assert "tr(H_k)" in tr["layout"]["yaxis"]["title"]["text"]
    low = F.curvature_figure(curv, "lambda_min")
    assert list(low.data[0].y) == pytest.approx(list(curv[0][1].series("lambda_min")[1]))
    with pytest.raises(ValueError):
        F.curvature_figure(curv, "nope")
    dens = F.density_figure(_densities(entries), floor=1e-6)
    assert len(dens.data) == 2 and dens.layout.yaxis.type == "log"
    for t in dens.data:  # nothing is drawn below the floor: values there are gaps, not a flat line
        ys = np.asarray([np.nan if v is None else v for v in t.y], dtype=float)
        peak = np.nanmax(ys)
        assert np.all(np.isnan(ys) | (ys >= 1e-6 * peak)) and np.isnan(ys).any()
        assert "eigenvalues < 0" in t.name
    lad = F.eigenvalue_ladder_figure(curv)
    assert len(lad.data) == 2
    rungs = [v for v in lad.data[0].y if v is not None]
    assert len(rungs) == 2 * 4 * (3 + 1)  # two ends per rung, 4 iterates, top 3 and lambda_min


def test_evaluation_figures(analysis):
    entries = analysis["checkpoints"]
    rob = F.robustness_figure(entries)
    assert len(rob.data) == 2 and list(rob.data[0].x) == [0.0, 0.5]
    rec = F.reconstruction_figure(entries).to_dict()
    # truth, x_0, then (reconstruction, error) per checkpoint
    assert len(rec["data"]) == 2 + 2 * 2
    img = dict(
        entries[0],
        reconstruction={
            "display": "image",
            "x_true": [[0.0, 1.0], [1.0, 0.0]],
            "x_hat": [[0.1, 0.9], [1.0, 0.2]],
            "psnr": 20.0,
        },
    )
    d = F.reconstruction_figure([img, img]).to_dict()
    assert [t["type"] for t in d["data"]] == ["heatmap"] * 6
    with pytest.raises(ValueError):
        F.reconstruction_figure([{"label": "x"}])


def test_figures_module_is_light():
    import subprocess
    import sys

    code = (
        "import sys, importlib.util; "
        "spec = importlib.util.spec_from_file_location('f', 'landscape/viz/figures.py'); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
        "assert 'torch' not in sys.modules and 'plotly' not in sys.modules"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1])
    )
