"""Seismic reflectivity sections: the layered ID law and each OOD shift, measured with a margin."""

import torch

from landscape.data import make_task

N = 64


def _clean(split, **options):
    task = make_task("seismic", **options)
    return task.clean(N, split=split, generator=torch.Generator().manual_seed(0))[:, 0]  # (N, T, traces)


def weak_entries(x):
    """Entries with 0 < |x| < 0.15 (the ID amplitudes are >= 0.2 except where reflectors cancel)."""
    return ((x.abs() > 0) & (x.abs() < 0.15)).flatten(1).sum(1).double()


def lateral_continuity(x, max_lag=2):
    """Worst adjacent-trace pair of a section: max over lags |l| <= max_lag of the normalised correlation."""
    a, b = x[:, :, :-1], x[:, :, 1:]
    best = torch.full((x.shape[0], x.shape[2] - 1), -1.0, dtype=x.dtype)
    for lag in range(-max_lag, max_lag + 1):
        bs = torch.roll(b, lag, dims=1)
        c = (a * bs).sum(1) / (a.norm(dim=1) * bs.norm(dim=1)).clamp_min(1e-12)
        best = torch.maximum(best, c)
    return best.min(1).values


def test_id_sections_are_sparse_signed_and_layered():
    x = _clean("id")
    assert x.shape == (N, 64, 16)
    nnz_per_trace = (x != 0).sum(1).double()
    assert 2 <= float(nnz_per_trace.mean()) <= 8
    assert float(x.min()) < 0 < float(x.max())
    assert float(weak_entries(x).mean()) < 2


def test_inserted_reflector_is_a_weak_flat_event():
    x_id, x_ood = _clean("id"), _clean("inserted_reflector")
    w_id, w_ood = weak_entries(x_id), weak_entries(x_ood)
    assert float(w_ood.mean()) > float(w_id.mean()) + 7
    # exactly one time sample holds -0.1 over 10 consecutive traces
    for sec in x_ood[:8]:
        rows = ((sec == -0.1).sum(1) == 10).nonzero().flatten()
        assert len(rows) >= 1


def test_inserted_reflector_paper_preset():
    x = make_task("seismic", size="paper").clean(
        2, split="inserted_reflector", generator=torch.Generator().manual_seed(0)
    )
    assert x.shape == (2, 1, 352, 64)
    assert int(((x == -0.1).sum(-1) == 10).sum()) >= 2


def test_faults_break_lateral_continuity():
    c_id, c_ood = lateral_continuity(_clean("id")), lateral_continuity(_clean("faults"))
    assert float(c_id.mean()) > float(c_ood.mean()) + 0.25
    assert float((c_ood < 0.3).double().mean()) > 0.6
    assert float((c_id < 0.3).double().mean()) < 0.1


def test_denser_layers_have_more_reflectors():
    nnz = lambda x: (x != 0).sum(1).double().mean(1)  # noqa: E731
    assert float(nnz(_clean("denser_layers")).mean()) > 2 * float(nnz(_clean("id")).mean())
