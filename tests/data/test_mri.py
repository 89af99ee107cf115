"""MRI phantoms, lesions, real brain slices and the masked measurement noise."""

import math
import sys

import pytest
import torch
import torch.nn.functional as F

from landscape.data import make_task, real

N = 32


@pytest.fixture(scope="module")
def task():
    return make_task("mri")


def _mag(task, split, n=N, seed=0):
    x = task.clean(n, split=split, generator=torch.Generator().manual_seed(seed))
    return x.norm(dim=1)  # (n, H, W)


def flat_fraction(img, thr=1e-3):
    """Fraction of in-object pixels with a (near) zero vertical difference (high if piecewise constant)."""
    g = (img[:, 1:] - img[:, :-1]).abs()
    inside = img[:, 1:] > 0.05
    return ((g < thr) & inside).flatten(1).sum(1) / inside.flatten(1).sum(1)


def central_tophat(img, k=7, radius=0.5):
    """Largest white top-hat (image minus its k x k opening) inside the central disk: small bright spots."""
    x = img[:, None]
    opened = F.max_pool2d(-F.max_pool2d(-x, k, 1, k // 2), k, 1, k // 2)
    th = (x - opened)[:, 0]
    h, w = img.shape[-2:]
    yy, xx = torch.meshgrid(
        torch.linspace(-1, 1, h, dtype=img.dtype), torch.linspace(-1, 1, w, dtype=img.dtype), indexing="ij"
    )
    return (th * ((xx**2 + yy**2) < radius**2)).flatten(1).amax(1)


def test_phantoms_range_and_real_channels(task):
    x = task.clean(4, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 2, 64, 64)
    assert torch.all(x[:, 1] == 0)  # phase="none": real images
    assert float(x[:, 0].min()) >= 0
    torch.testing.assert_close(x[:, 0].flatten(1).amax(1), torch.ones(4, dtype=torch.float64))


def test_smooth_phase_keeps_the_magnitude():
    a = make_task("mri", shape=32).clean(3, generator=torch.Generator().manual_seed(0))
    b = make_task("mri", shape=32, phase="smooth").clean(3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a[:, 0], b.norm(dim=1))
    assert float(b[:, 1].abs().max()) > 0.05
    phase = torch.atan2(b[:, 1], b[:, 0])[b.norm(dim=1) > 0.1]
    assert float(phase.abs().max()) <= math.pi / 2 + 1e-9


def test_lesions_add_small_bright_spots(task):
    t_id, t_ood = central_tophat(_mag(task, "id")), central_tophat(_mag(task, "lesions"))
    assert float(t_ood.mean()) > float(t_id.mean()) + 0.25
    assert float(t_ood.min()) > float(t_id.max())


def test_real_brain_is_not_piecewise_constant(task):
    f_id, f_ood = flat_fraction(_mag(task, "id")), flat_fraction(_mag(task, "real_brain"))
    assert float(f_id.min()) > 0.5
    assert float(f_ood.max()) < 0.2
    m = _mag(task, "real_brain", n=8)
    assert float(m.min()) >= 0
    torch.testing.assert_close(m.flatten(1).amax(1), torch.ones(8, dtype=torch.float64))


def test_real_brain_sources_load():
    mpl = real.matplotlib_brain()
    assert mpl.shape == (256, 256) and float(mpl.max()) == 1.0 and float(mpl.mean()) > 0.05
    epi = real.nibabel_epi_slices()
    assert epi.shape == (32, 128, 128)
    imgs = real.real_brain_images(5, (40, 24), torch.Generator().manual_seed(0))
    assert imgs.shape == (5, 40, 24) and imgs.dtype == torch.float64


@pytest.mark.parametrize(
    "package, loader", [("nibabel", "nibabel_epi_slices"), ("matplotlib", "matplotlib_brain")]
)
def test_missing_package_raises_value_error(monkeypatch, package, loader):
    fn = getattr(real, loader)
    fn.cache_clear()
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` fail
    try:
        with pytest.raises(ValueError, match=f"{package}.*not installed"):
            fn()
    finally:
        fn.cache_clear()


def test_noise_lands_only_on_sampled_lines(task):
    p = task.pairs(4, split="id", seed=0, dtype=torch.float64)
    z = p.y - task.physics.forward(p.x)
    mask = task.physics.mask
    assert 0 < int(mask.sum()) < mask.numel()
    assert torch.all(z[..., ~mask] == 0)
    assert torch.all(p.y[..., ~mask] == 0)
    assert float(z[..., mask].abs().min()) > 0
    # fresh-noise batches too
    ts = task.training_set(4, seed=0, fresh_noise=True)
    _, yb = next(ts.batches(4, generator=torch.Generator().manual_seed(0)))
    assert torch.all(yb[..., ~mask] == 0)


def test_physics_follows_options():
    t = make_task("mri", shape=(32, 48), acceleration=8, center_fraction=0.1, mask_seed=3)
    assert t.signal_shape == (2, 32, 48)
    assert t.physics.config() == {
        "name": "mri",
        "noise_sigma": 0.01,
        "shape": [32, 48],
        "acceleration": 8.0,
        "center_fraction": 0.1,
        "mask_seed": 3,
    }


def test_rasterizer_matches_a_dense_evaluation():
    from landscape.data.mri import _grid, _phantom_params, rasterize_ellipses

    g = torch.Generator().manual_seed(0)
    extra = torch.tensor([[0.5, 0.3, 0.2, 0.95, -0.9, 0.3]], dtype=torch.float64)  # clipped by the border
    params = torch.cat([_phantom_params(g), _phantom_params(g), extra])
    for size in [(32, 32), (20, 27)]:
        yy, xx = _grid(size, 2)
        v, a, b, x0, y0, th = (params[:, i, None, None] for i in range(6))
        c, s = torch.cos(th), torch.sin(th)
        u = (c * (xx - x0) + s * (yy - y0)) / a
        w = (-s * (xx - x0) + c * (yy - y0)) / b
        dense = F.avg_pool2d((v * ((u * u + w * w) <= 1).double()).sum(0)[None, None], 2)[0, 0]
        torch.testing.assert_close(rasterize_ellipses(params, size), dense, rtol=0, atol=1e-12)
