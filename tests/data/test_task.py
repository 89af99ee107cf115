"""The Task API shared by every task: shapes, dtypes, seeds, streams, regimes, config, bad arguments."""

import json

import pytest
import torch

from landscape.data import TASKS, Pairs, TrainingSet, make_task, task_from_config
from landscape.data.streams import stream
from landscape.seeding import derive_seed

SHAPES = {"denoise": (1, 64), "seismic": (1, 64, 16), "mri": (2, 64, 64)}


@pytest.fixture(scope="module", params=TASKS)
def task(request):
    return make_task(request.param)


def test_task_names_and_shapes(task):
    assert task.name in TASKS
    assert task.size == "small"
    assert task.signal_shape == SHAPES[task.name]
    assert task.splits == ("id", *task.shifts)
    assert len(task.shifts) >= 2


def test_clean_and_pairs_shapes_dtypes(task):
    for split in (*task.splits, "train"):
        x = task.clean(3, split=split, generator=torch.Generator().manual_seed(0))
        assert x.dtype == torch.float64 and x.shape == (3, *task.signal_shape)
        assert torch.isfinite(x).all()
    p = task.pairs(4, split=task.shifts[0], seed=0)
    assert isinstance(p, Pairs) and len(p) == 4 and p.split == task.shifts[0]
    x, y = p
    assert x.dtype == y.dtype == torch.float32
    assert x.shape == (4, *task.signal_shape)
    assert y.shape == task.physics.forward(x).shape
    p64 = task.pairs(4, split=task.shifts[0], seed=0, dtype=torch.float64)
    assert p64.x.dtype == torch.float64
    torch.testing.assert_close(p64.x.float(), x)  # generated in float64, cast at the end
    torch.testing.assert_close(p64.y.float(), y)


def test_same_seed_identical_different_seed_different(task):
    for split in task.splits:
        a = task.pairs(3, split=split, seed=7)
        b = task.pairs(3, split=split, seed=7)
        c = task.pairs(3, split=split, seed=8)
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
        assert not torch.equal(a.x, c.x) and not torch.equal(a.y, c.y)


def test_splits_and_training_set_use_independent_streams(task):
    tr = task.training_set(3, seed=0)
    te = task.pairs(3, split="id", seed=0)
    assert not torch.equal(tr.x, te.x)
    assert not torch.equal(tr.y - task.physics.forward(tr.x), te.y - task.physics.forward(te.x))
    # the same law: "train" pairs of the same seed are what the training set holds
    p = task.pairs(3, split="train", seed=0)
    assert torch.equal(p.x, tr.x) and torch.equal(p.y, tr.y)
    seeds = {derive_seed(0, s, "clean") for s in (*task.splits, "train")}
    assert len(seeds) == len(task.splits) + 1


def test_measurement_noise_level(task):
    p = task.pairs(16, split="id", seed=3, dtype=torch.float64)
    z = p.y - task.physics.forward(p.x)
    if task.name == "mri":
        z = z[..., task.physics.mask]
    assert abs(float(z.std()) / task.noise_sigma - 1) < 0.05


def test_config_round_trip(task):
    cfg = task.config()
    again = task_from_config(json.loads(json.dumps(cfg)))
    assert again.config() == cfg
    a = task.pairs(2, split=task.shifts[-1], seed=1)
    b = again.pairs(2, split=task.shifts[-1], seed=1)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_options_and_noise_override():
    t = make_task("denoise", noise_sigma=0.1, length=32)
    assert t.signal_shape == (1, 32) and t.physics.noise_sigma == 0.1
    s = make_task("seismic", size="paper")
    assert s.signal_shape == (1, 352, 64) and s.physics.noise_sigma == 0.01
    m = make_task("mri", size="paper")
    assert m.signal_shape == (2, 320, 320) and m.physics.config()["acceleration"] == 4.0
    assert make_task("mri", shape=32).signal_shape == (2, 32, 32)
    assert (
        make_task("denoise", noise_sigma=0).pairs(2, seed=0).y.equal(make_task("denoise").pairs(2, seed=0).x)
    )


def _by_row(xs, ys):
    return {tuple(x.flatten().tolist()): y for x, y in zip(xs, ys, strict=True)}


def test_fixed_noise_batches_repeat_the_stored_pairs():
    task = make_task("denoise")
    ts = task.training_set(10, seed=0)
    assert isinstance(ts, TrainingSet) and len(ts) == 10 and not ts.fresh_noise
    g = torch.Generator().manual_seed(0)
    stored = _by_row(ts.x, ts.y)
    orders = []
    for _ in range(2):
        batches = list(ts.batches(4, generator=g))
        assert [len(b[0]) for b in batches] == [4, 4, 2]
        xs = torch.cat([b[0] for b in batches])
        ys = torch.cat([b[1] for b in batches])
        orders.append(xs)
        for key, y in _by_row(xs, ys).items():
            assert torch.equal(y, stored[key])
    assert not torch.equal(orders[0], orders[1])  # reshuffled every epoch
    assert [len(b[0]) for b in ts.batches(4, generator=g, drop_last=True)] == [4, 4]


def test_fresh_noise_batches_differ_between_epochs():
    task = make_task("denoise")
    ts = task.training_set(64, seed=0, fresh_noise=True)
    g = torch.Generator().manual_seed(0)
    epochs = []
    for _ in range(2):
        xs, ys = zip(*ts.batches(16, generator=g), strict=True)
        epochs.append(_by_row(torch.cat(xs), torch.cat(ys)))
    stored = _by_row(ts.x, ts.y)
    assert epochs[0].keys() == epochs[1].keys() == stored.keys()
    for key in stored:
        assert not torch.equal(epochs[0][key], epochs[1][key])
        assert not torch.equal(epochs[0][key], stored[key])
    noise = torch.stack([y - torch.tensor(k).view(1, -1) for k, y in epochs[1].items()])
    assert abs(float(noise.std()) / task.noise_sigma - 1) < 0.1
    # reproducible from the generator's seed
    a = [y for _, y in ts.batches(16, generator=torch.Generator().manual_seed(5))]
    b = [y for _, y in ts.batches(16, generator=torch.Generator().manual_seed(5))]
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_training_set_to_dtype():
    ts = make_task("seismic").training_set(4, seed=0, fresh_noise=True).to(dtype=torch.float64)
    xb, yb = next(ts.batches(4, generator=torch.Generator().manual_seed(0)))
    assert xb.dtype == yb.dtype == torch.float64 and yb.shape == xb.shape


def test_streams_are_seeded_generators():
    assert torch.equal(torch.rand(3, generator=stream(1, "id")), torch.rand(3, generator=stream(1, "id")))
    assert not torch.equal(
        torch.rand(3, generator=stream(1, "id")), torch.rand(3, generator=stream(1, "train"))
    )


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: make_task("nope"), ["task name='nope'", "denoise", "seismic", "mri"]),
        (lambda: make_task("denoise", size="huge"), ["size='huge'", "small", "paper"]),
        (lambda: make_task("denoise", noise_sigma=-0.1), ["noise_sigma=-0.1", ">= 0"]),
        (lambda: make_task("denoise", colour=3), ["colour", "length"]),
        (lambda: make_task("denoise", length=0), ["length=0", ">= 8"]),
        (lambda: make_task("seismic", n_traces=0), ["n_traces=0", ">= 1"]),
        (lambda: make_task("mri", shape=(4, 4)), ["shape=(4, 4)", "(H, W)"]),
        (lambda: make_task("mri", phase="random"), ["phase='random'", "none", "smooth"]),
        (lambda: make_task("mri", source="fastmri"), ["data_dir=None", "fastMRI"]),
        (lambda: make_task("denoise").pairs(0, seed=0), ["n=0", ">= 1"]),
        (lambda: make_task("denoise").pairs(-3, seed=0), ["n=-3", ">= 1"]),
        (lambda: make_task("denoise").pairs(2, seed=-1), ["seed=-1", ">= 0"]),
        (lambda: make_task("denoise").pairs(2, split="lesions", seed=0), ["split='lesions'", "spikes", "id"]),
        (
            lambda: make_task("mri").pairs(2, split="faults", seed=0),
            ["split='faults'", "lesions", "real_brain"],
        ),
        (lambda: make_task("denoise").pairs(2, seed=0, dtype=torch.int64), ["dtype", "float32", "float64"]),
        (lambda: make_task("denoise").clean(2, generator=None), ["generator", "torch.Generator"]),
        (
            lambda: next(
                make_task("denoise").training_set(4, seed=0).batches(0, generator=torch.Generator())
            ),
            ["batch_size=0"],
        ),
        (lambda: make_task("denoise").training_set(4, seed=0, fresh_noise="yes"), ["fresh_noise='yes'"]),
        (lambda: task_from_config({"size": "small"}), ["name"]),
    ],
)
def test_bad_arguments_raise_clear_value_errors(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))
