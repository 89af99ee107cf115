"""Metrics against independent references: a hand PSNR, a window-by-window SSIM in NumPy, summaries."""

import json
import math

import numpy as np
import pytest
import torch

from landscape.curvature.analysis import summarize as curvature_summarize
from landscape.evaluate import format_table
from landscape.io import json_safe
from landscape.metrics import display, mse, psnr, score, ssim, summarize
from landscape.stats import paired_interval, seed_interval


def ssim_reference(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """SSIM of one channel by explicit loops over the valid window positions (1-D or 2-D)."""
    taps = [min(11, s) if min(11, s) % 2 else min(11, s) - 1 for s in b.shape]
    ws = []
    for t in taps:
        u = np.arange(t) - (t - 1) / 2
        w = np.exp(-(u**2) / (2 * 1.5**2))
        ws.append(w / w.sum())
    w = ws[0] if len(ws) == 1 else np.outer(ws[0], ws[1])
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    vals = []
    ranges = [range(s - t + 1) for s, t in zip(b.shape, taps)]
    for idx in np.ndindex(*[len(r) for r in ranges]):
        sl = tuple(slice(i, i + t) for i, t in zip(idx, taps))
        pa, pb = a[sl], b[sl]
        ma, mb = (w * pa).sum(), (w * pb).sum()
        va = (w * (pa - ma) ** 2).sum()
        vb = (w * (pb - mb) ** 2).sum()
        cov = (w * (pa - ma) * (pb - mb)).sum()
        vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_psnr_and_mse_by_hand():
    x = torch.tensor([[[1.0, -2.0, 0.5, 0.0]]], dtype=torch.float64)
    x_hat = torch.tensor([[[1.5, -2.0, 0.0, 0.0]]], dtype=torch.float64)
    err = (0.25 + 0.25) / 4
    assert mse(x_hat, x).item() == pytest.approx(err)
    assert psnr(x_hat, x).item() == pytest.approx(10 * math.log10(4.0 / err))


@pytest.mark.parametrize("shape", [(3, 2, 40), (2, 1, 7), (2, 2, 14, 17), (1, 1, 9, 30)])
def test_ssim_matches_window_loop(shape, gen):
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    x_hat = x + 0.3 * torch.randn(shape, generator=gen, dtype=torch.float64)
    got = ssim(x_hat, x)
    for i in range(shape[0]):
        rng = float(x[i].max() - x[i].min())
        ref = np.mean([ssim_reference(x_hat[i, c].numpy(), x[i, c].numpy(), rng) for c in range(shape[1])])
        assert got[i].item() == pytest.approx(ref, rel=1e-10, abs=1e-12)


def test_ssim_identity_is_one_and_noise_lowers_it(gen):
    x = torch.randn(4, 1, 64, generator=gen, dtype=torch.float64)
    assert torch.allclose(ssim(x, x), torch.ones(4, dtype=torch.float64))
    small = ssim(x + 0.05 * torch.randn_like(x), x)
    large = ssim(x + 0.5 * torch.randn_like(x), x)
    assert (large < small).all() and (small < 1).all()


def test_shape_mismatch_is_a_value_error():
    with pytest.raises(ValueError, match="shape"):
        psnr(torch.zeros(2, 1, 8), torch.zeros(2, 1, 9))


def test_magnitude_convention_for_complex_images(gen):
    x = torch.randn(2, 2, 12, 12, generator=gen, dtype=torch.float64)
    x_hat = x + 0.1 * torch.randn_like(x)
    s = score(x_hat, x, magnitude=True)
    mag = torch.sqrt(x[:, :1] ** 2 + x[:, 1:] ** 2)
    mag_hat = torch.sqrt(x_hat[:, :1] ** 2 + x_hat[:, 1:] ** 2)
    assert torch.allclose(display(x, True), mag)
    assert torch.allclose(s["psnr"], psnr(mag_hat, mag))
    assert torch.allclose(s["ssim"], ssim(mag_hat, mag))
    assert torch.allclose(s["mse"], ((x_hat - x) ** 2).flatten(1).mean(1))  # model-space MSE


def test_summarize_matches_numpy():
    v = np.array([1.0, 2.0, 4.0, 7.0])
    s = summarize(torch.tensor(v))
    assert s["mean"] == pytest.approx(v.mean())
    assert s["stderr"] == pytest.approx(v.std(ddof=1) / 2)
    assert s["n"] == 4
    one = summarize([3.0])
    assert one["mean"] == 3.0 and one["n"] == 1 and math.isnan(one["stderr"])  # one value has no spread


def test_one_sample_has_no_spread_in_every_summary():
    """One convention for n = 1: the spread is NaN (never 0) in the metrics' and the curvature's summaries,
    and landscape.stats gives no interval; with two values all three agree on s/sqrt(n)."""
    assert math.isnan(summarize([3.0])["stderr"])
    assert math.isnan(curvature_summarize([3.0]).stderr)
    assert paired_interval([3.0]) is None and seed_interval([3.0]) is None
    v = [1.0, 4.0]
    se = float(np.std(v, ddof=1) / math.sqrt(2))
    assert summarize(v)["stderr"] == pytest.approx(se)
    assert curvature_summarize(v).stderr == pytest.approx(se)
    iv = seed_interval(v)
    assert iv.estimate == pytest.approx(2.5) and iv.high - iv.estimate == pytest.approx(12.706204736 * se)


def test_one_sample_summary_survives_json_into_the_evaluation_table():
    """A one-sample evaluation written to JSON ("nan" spread) still renders: the mean alone, no ± 0."""
    cell = {"psnr": summarize([20.0]), "ssim": summarize([0.5]), "mse": summarize([0.1])}
    rec = {
        "task": {"name": "denoise", "size": "small"},
        "eval_config": {"n_test": 1},
        "conditions": [{"key": "id", "split": "id", "kind": "clean", "eps": 0.0}],
        "rows": [{"name": "mse", "results": {"id": cell}}],
    }
    back = json.loads(json.dumps(json_safe(rec), allow_nan=False))
    assert back["rows"][0]["results"]["id"]["psnr"]["stderr"] == "nan"
    for r in (rec, back):
        assert "| 20.00 / 0.500 |" in format_table(r)
    two = {
        **rec,
        "rows": [
            {
                "name": "mse",
                "results": {"id": {"psnr": summarize([19.0, 21.0]), "ssim": summarize([0.5, 0.5])}},
            }
        ],
    }
    assert "20.00±1.00 / 0.500±0.000" in format_table(two)
