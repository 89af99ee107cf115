"""Toy denoising signals: the ID law and each OOD shift, measured by a statistic with a clear margin."""

import torch

from landscape.data import make_task
from landscape.data.toy import piecewise_constant

N = 200


def _clean(split, seed=0):
    return make_task("denoise").clean(N, split=split, generator=torch.Generator().manual_seed(seed))[:, 0]


def isolated_spikes(x, thr=0.3):
    """Samples that stand out from both neighbours by more than thr, on the same side."""
    a = x[:, 1:-1] - x[:, :-2]
    b = x[:, 1:-1] - x[:, 2:]
    return ((a.abs() > thr) & (b.abs() > thr) & (a.sign() == b.sign())).sum(1).double()


def test_id_is_piecewise_constant_with_bounded_levels():
    x = _clean("id")
    d = x.diff(dim=-1)
    jumps = (d != 0).sum(1)
    assert int(jumps.min()) >= 1 and int(jumps.max()) <= 6
    assert float(x.abs().max()) <= 1.0
    assert isolated_spikes(x).sum() == 0  # segments are >= 4 samples long


def test_segments_respect_min_length():
    x = piecewise_constant(50, 32, torch.Generator().manual_seed(1), min_jumps=3, max_jumps=3, min_segment=6)[
        :, 0
    ]
    for row in x:
        change = torch.nonzero(row.diff() != 0).flatten() + 1
        bounds = torch.cat([torch.tensor([0]), change, torch.tensor([32])])
        assert int(bounds.diff().min()) >= 6


def test_spikes_shift_adds_isolated_spikes():
    s_id, s_ood = isolated_spikes(_clean("id")), isolated_spikes(_clean("spikes"))
    assert float(s_id.mean()) == 0.0
    assert float(s_ood.mean()) > 2.0
    assert float((s_ood > 0).double().mean()) > 0.95


def test_amplitude_shift_exceeds_the_training_range():
    m_id = _clean("id").abs().amax(1)
    m_ood = _clean("amplitude").abs().amax(1)
    assert float((m_id > 1).double().mean()) == 0.0
    assert float((m_ood > 1).double().mean()) > 0.8
    assert float(m_ood.mean()) > float(m_id.mean()) + 0.5


def test_smooth_shift_has_no_flat_runs():
    flat = lambda x: (x.diff(dim=-1) == 0).double().mean(1)  # noqa: E731
    assert float(flat(_clean("id")).min()) > 0.85
    assert float(flat(_clean("smooth")).max()) < 0.05
