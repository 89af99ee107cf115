"""landscape.claims: the penalty check against exact traces, verdict logic, order independence, round trip."""

import json

import numpy as np
import pytest
import torch

from landscape.claims import ClaimsResult, Interval, penalty_check, seed_interval, verdict
from landscape.jitter import JitterConfig
from landscape.models import ModelConfig, RegularizerConfig, build_model
from landscape.physics import Deconvolution


def _setup(activation, n=10, K=4, seed=0):
    physics = Deconvolution(wavelet_length=7, wavelet_width=1.5, noise_sigma=0.05)
    cfg = ModelConfig(
        signal_shape=(1, n),
        n_iter=K,
        regularizer=RegularizerConfig(
            kind="cnn", activation=activation, width=6, depth=2, kernel_size=3, out_scale=1.0
        ),
    )
    torch.manual_seed(seed)
    model = build_model(cfg, physics).double().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, n, generator=g, dtype=torch.float64)
    return model, x, physics.measure(x, generator=g)


def _exact_traces(model, x, y):
    """tr H_{j+1} (j = 0..K-1) per sample by dense autograd Hessians."""
    n = x.shape[-1]
    out = np.zeros((x.shape[0], model.n_iter))
    for b in range(x.shape[0]):
        xk = model.initial(y[b : b + 1])
        for j in range(model.n_iter):
            xk = model.step(xk, y[b : b + 1], j)

            def loss(v, k=j + 1, b=b):
                return (model.tail(v.reshape(1, 1, n), y[b : b + 1], k) - x[b : b + 1]).pow(2).sum()

            out[b, j] = float(torch.trace(torch.func.hessian(loss)(xk.reshape(-1))))
    return out


def test_affine_model_mc_and_predicted_penalty_agree_within_3_standard_errors():
    model, x, y = _setup("identity")
    tr = _exact_traces(model, x, y)
    rows = penalty_check(
        model, x, y, tr, np.zeros_like(tr), mode="absolute", sigmas=(0.5, 1.0, 2.0), pairs=4000
    )
    for r in rows:  # exact at any sigma: the jittered loss is a quadratic polynomial in the noise
        assert abs(r["excess_total"] - r["predicted_total"]) < 3 * r["excess_total_se"], r
        assert r["excess_total"] > 10 * r["excess_total_se"]  # the penalty is resolved, so the test has teeth


def test_affine_model_is_exact_for_the_clean_path_rule_too():
    model, x, y = _setup("identity")
    tr = _exact_traces(model, x, y)
    rows = penalty_check(
        model, x, y, tr, np.zeros_like(tr), mode="paper-clean-path", sigmas=(0.1, 0.4), pairs=2000
    )
    for r in rows:
        assert abs(r["excess_total"] - r["predicted_total"]) < 3 * r["excess_total_se"], r


def test_smooth_model_disagreement_shrinks_with_sigma():
    model, x, y = _setup("gelu", seed=3)
    with torch.no_grad():  # a regularizer 3x its initial size, so the O(sigma^4) remainder is visible
        for name, p in model.named_parameters():
            if "regularizer" in name:
                p.mul_(3.0)
    tr = _exact_traces(model, x, y)
    rows = penalty_check(
        model, x, y, tr, np.zeros_like(tr), mode="absolute", sigmas=(4.0, 2.0, 1.0), pairs=4000
    )
    gaps = [abs(r["ratio"]["estimate"] - 1) for r in rows]
    assert gaps[0] > gaps[1] > gaps[2], gaps
    assert (
        gaps[0] > 3 * rows[0]["excess_total_se"] / rows[0]["predicted_total"]
    )  # the largest gap is resolved


def _iv(lo, hi):
    return Interval((lo + hi) / 2, lo, hi, 0.95, "constructed", 3, "test")


def test_verdicts_come_from_intervals_and_overlap_is_inconclusive():
    assert verdict(_iv(-2, -1), kind="lower") == "supported"
    assert verdict(_iv(1, 2), kind="lower") == "contradicted"
    assert verdict(_iv(-1, 0.5), kind="lower") == "inconclusive"  # overlaps 0
    assert verdict(_iv(-0.001, 3), kind="higher") == "inconclusive"
    assert verdict(_iv(0.2, 3), kind="higher") == "supported"
    assert verdict(_iv(-0.05, 0.3), kind="noninferior", margin=0.1) == "supported"
    assert verdict(_iv(-0.3, 0.3), kind="noninferior", margin=0.1) == "inconclusive"
    assert verdict(_iv(-0.5, -0.2), kind="noninferior", margin=0.1) == "contradicted"
    assert verdict(_iv(0.95, 1.05), kind="equal", margin=0.1) == "supported"
    assert verdict(_iv(0.95, 1.3), kind="equal", margin=0.1) == "inconclusive"
    assert verdict(_iv(2.0, 3.0), kind="equal", margin=0.1) == "contradicted"
    assert verdict(None) == "inconclusive"
    # a tiny point estimate far from 0 with an interval straddling 0 is still inconclusive
    assert verdict(Interval(-5.0, -9.0, 0.1, 0.95, "c", 3, "t"), kind="lower") == "inconclusive"
    iv = seed_interval([1.0, 2.0, 3.0])
    assert iv.method == "t (2 df)" and iv.kind == "seeds" and iv.low <= 2 <= iv.high
    assert seed_interval([1.0]) is None and seed_interval([1.0, 2.0]).method == "t (1 df)"


# -- check_claims end to end on tiny checkpoints -------------------------------------------------
TINY = ["--task", "denoise", "--train-size", "16", "--batch-size", "8", "--epochs", "1", "-K", "2", "--quiet"]
FAST = dict(
    n_curvature=2, n_ood_curvature=0, n_eval=4, mc_pairs=16, sigmas=(0.05, 0.1), n_directions=2, attack=False
)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    from landscape.cli import main

    root = tmp_path_factory.mktemp("claims_runs")
    paths = []
    for seed in (0, 1, 2):
        for strategy in ("mse", "sgd-jitter"):
            out = root / f"{strategy}-s{seed}"
            assert main(["train", *TINY, "--strategy", strategy, "--seed", str(seed), "--out", str(out)]) == 0
            paths.append(out)
    return paths


def test_check_claims_does_not_depend_on_checkpoint_order_and_round_trips(tiny_runs):
    from landscape.claims import check_claims
    from landscape.viz.claims_report import claims_figure, claims_section, flatness_figure

    a = check_claims(tiny_runs, **FAST)
    b = check_claims(list(reversed(tiny_runs)), **FAST)
    assert a.verdicts() == b.verdicts()
    timing = ("seconds", "timings")
    assert [{k: v for k, v in e.items() if k not in timing} for e in a.checkpoints] == [
        {k: v for k, v in e.items() if k not in timing} for e in b.checkpoints
    ]
    assert {g["group"] for g in a.groups} == {"mse", "sgd-jitter (paper, σ=0.1)"}
    c = a.claim("flatness: Σ tr H_k [id]")
    assert c.seed_level is not None and c.seed_level.n == 3 and c.basis == "seed-level"
    assert c.paired is not None and "test samples" in c.paired.over and "seed pairs" in c.seed_level.over
    assert all(x.verdict in ("supported", "contradicted", "inconclusive", "too few seeds") for x in a.claims)
    # the link with 3 seeds cannot reach the 2.5 % level (3! = 6 seed permutations): it says so
    link = [x for x in a.claims if x.name.startswith("link")]
    assert link and all(x.verdict == "too few seeds" and x.test.n_seeds == 3 for x in link)
    again = ClaimsResult.from_dict(json.loads(json.dumps(a.to_dict())))
    assert again == a
    html = claims_section(a)
    assert "flatness" in html and "<table" in html and "plotly" not in html.split("<script")[0][:0]
    assert claims_figure(a).data and flatness_figure(a).data


def test_claims_cli_writes_json_and_html(tiny_runs, tmp_path, capsys):
    from landscape.cli import main

    out = tmp_path / "claims"
    code = main(
        [
            "claims",
            *map(str, tiny_runs[:2]),
            "--out",
            str(out),
            "--n-curvature",
            "2",
            "--n-ood-curvature",
            "0",
            "--n-eval",
            "4",
            "--mc-pairs",
            "8",
            "--sigmas",
            "0.1",
            "--directions",
            "2",
            "--no-attack",
            "--trace-max-matvecs",
            "30",
        ]
    )
    assert code == 0
    d = json.loads((out / "claims.json").read_text())
    assert d["format"] == "landscape-claims" and d["claims"]
    page = (out / "claims.html").read_text()
    assert "<table" in page and "http://" not in page.split("<script")[0]
    assert "claims" in capsys.readouterr().out


def test_claims_join_the_report(tiny_runs, tmp_path):
    """`landscape report` merges a claims result: its verdict table and figures become the claims section."""
    from landscape.claims import check_claims
    from landscape.cli import main
    from landscape.io import json_safe, write_json

    res = check_claims(tiny_runs, **FAST)
    write_json(tmp_path / "c" / "claims.json", json_safe(res.to_dict()))
    out = tmp_path / "page.html"
    assert main(["report", str(tmp_path / "c"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "Claims: verdicts with intervals" in text and "claims-penalty" in text
    assert any(v in text for v in ("supported", "contradicted", "inconclusive"))


def test_noise_and_regularizer_coordinates_on_ood_splits(tiny_runs):
    """Flatness in all three coordinates is measured on the OOD splits too when their curvature covers 1..K."""
    from landscape.claims import check_claims

    res = check_claims(tiny_runs, **{**FAST, "n_ood_curvature": 1, "ood_iterates": "all"})
    names = {c.name for c in res.claims}
    task_splits = {n.split("[")[1].rstrip("]") for n in names if n.startswith("flatness: Σ tr H_k [")}
    assert "id" in task_splits and len(task_splits) >= 2
    for split in task_splits:
        assert f"flatness: Σ noise coordinates [{split}]" in names
        assert f"flatness: Σ ‖J_R‖_F² [{split}]" in names


def test_the_attack_claim_runs_pgd_with_the_steps_asked_for(tiny_runs):
    """``attack_steps`` sets the claims' PGD (the experiment passes its evaluation's): the recorded attacked
    PSNR equals a hand call of :func:`pgd_attack` with those steps on the same test pairs; the default keeps
    the run's own evaluation steps."""
    from landscape.attacks import PGDConfig, pgd_attack
    from landscape.checkpoint import load_checkpoint
    from landscape.claims import ClaimsSettings, check_claims
    from landscape.metrics import score
    from landscape.models import clone_model

    st = {**FAST, "attack": True, "n_curvature": 1, "attack_steps": 3}
    res = check_claims(tiny_runs[:2], **st)
    ck = load_checkpoint(tiny_runs[0])
    e = next(e for e in res.checkpoints if e["path"] == str(ck.path))
    att = e["splits"]["id"]["attack"]
    assert att["steps"] == 3
    ev = ck.config.evaluation.effective
    model = clone_model(ck.model).double().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    pairs = ck.test_pairs(4)
    cfg = PGDConfig(eps=ev.attack_eps[0], steps=3, step_size=ev.step_size, relative=True)
    delta = pgd_attack(model, pairs.y, pairs.x, cfg, project=ck.task.physics.project_measurement)
    with torch.no_grad():
        want = score(model(pairs.y + delta), pairs.x)["psnr"].tolist()
    np.testing.assert_allclose(att["psnr"], want, rtol=1e-10)
    assert ClaimsSettings().attack_steps is None and ev.steps == 20
    with pytest.raises(ValueError, match="attack_steps=0"):
        ClaimsSettings(attack_steps=0)


def test_the_claims_coefficient_is_the_variance_of_the_noise_training_draws():
    """The noise coordinates' s_k (``trained_unit_scales``) is the scale of the noise that training draws for the
    same batch: at k = 0 the noise recovered from a training step, divided by its standard-normal draw, is
    σ·s_0 in every entry, exactly; the per-sample max (a batch of one) is a different number."""
    from landscape.claims.expansion import clean_path, trained_unit_scales, unit_scales
    from landscape.jitter import standard_normal

    model, _, _ = _setup("gelu", n=10, K=3)
    sigma = 0.1
    g = torch.Generator().manual_seed(2)
    y = torch.randn(6, 1, 10, generator=g, dtype=torch.float64)
    y[0] *= 0.2  # the analysed sample (row 0) does not hold the batch max
    unit = trained_unit_scales(model, y, "paper")[0]
    model.train()
    model.set_generator(torch.Generator().manual_seed(5))
    with torch.no_grad():
        x0 = model.initial(y)
        x1 = model.step(x0, y, 0, jitter=JitterConfig(sigma, "paper"))
        eps = standard_normal(x0, torch.Generator().manual_seed(5))
        eta = model.step_size(0)
        noise = (x0 - eta * model.data_gradient(x0, y) - x1) / eta - model.regularizer(0)(x0)
    model.eval()
    scale = (noise / eps).flatten()
    np.testing.assert_allclose(scale.numpy(), sigma * unit[0], rtol=1e-9)
    per_sample = unit_scales(model, clean_path(model, y), y, "paper")[0, 0]
    assert abs(per_sample - unit[0]) > 0.1 * unit[0]  # the batch of one is another quantity


def test_batch_penalty_as_trained_is_exact_on_an_affine_model_for_the_clean_path_rule():
    """With training batches the scale is one max over the batch (the rule as trained); for an affine network
    and a scale frozen on the clean path the expansion is exact, so MC and prediction agree within 3 s.e."""
    from landscape.claims import training_batches

    model, x, y = _setup("identity")
    tr = _exact_traces(model, x, y)
    others = 4 * torch.randn(12, 1, 10, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    batches = training_batches(y, others, 5, seed=0, sample_ids=[0, 1])
    assert (
        batches.rows == (2,) and batches.batches[0].shape[0] == 5 and torch.equal(batches.batches[0][:2], y)
    )
    rows = penalty_check(
        model,
        x,
        y,
        tr,
        np.zeros_like(tr),
        mode="paper-clean-path",
        sigmas=(0.2,),
        pairs=2000,
        batches=batches,
    )
    per = penalty_check(
        model, x, y, tr, np.zeros_like(tr), mode="paper-clean-path", sigmas=(0.2,), pairs=2000
    )
    for r in rows:
        assert r["scale"] == "batch of 5 (as trained)"
        assert abs(r["excess_total"] - r["predicted_total"]) < 3 * r["excess_total_se"], r
        assert r["excess_total"] > 10 * r["excess_total_se"]
    assert rows[0]["predicted_total"] > 1.2 * per[0]["predicted_total"]  # the batch max is larger


def test_training_batches_put_the_analysed_samples_in_as_few_batches_as_fit_and_split_when_they_do_not():
    """Three samples at batch size 2: rows (2, 1), each batch topped up from the training set without repeats;
    the batch rule on the split batches is still exact on the affine model (within 3 s.e. of the total, whose
    s.e. comes from the per-draw sums of rows that share draws)."""
    from landscape.claims import training_batches

    model, _, _ = _setup("identity")
    physics = Deconvolution(wavelet_length=7, wavelet_width=1.5, noise_sigma=0.05)
    g = torch.Generator().manual_seed(9)
    x = torch.randn(3, 1, 10, generator=g, dtype=torch.float64)
    y = physics.measure(x, generator=g)
    others = 4 * torch.randn(12, 1, 10, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    tb = training_batches(y, others, 2, seed=0, sample_ids=[0, 1, 2])
    assert tb.rows == (2, 1) and [b.shape[0] for b in tb.batches] == [2, 2]
    assert torch.equal(tb.batches[0], y[:2]) and torch.equal(tb.batches[1][0], y[2])
    assert any(torch.equal(tb.batches[1][1], o) for o in others)
    one = training_batches(y, others, 64, seed=0, sample_ids=[0, 1, 2])
    assert one.rows == (3,) and one.size == 15  # at most the whole training set besides the samples
    tr = _exact_traces(model, x, y)
    rows = penalty_check(
        model, x, y, tr, np.zeros_like(tr), mode="paper-clean-path", sigmas=(0.2,), pairs=2000, batches=tb
    )
    r = rows[0]
    assert r["scale"] == "batch of 2 (as trained)"
    assert abs(r["excess_total"] - r["predicted_total"]) < 3 * r["excess_total_se"], r
    with pytest.raises(ValueError, match="expected 2"):
        penalty_check(
            model,
            x[:2],
            y[:2],
            tr[:2],
            np.zeros_like(tr[:2]),
            mode="paper",
            sigmas=(0.2,),
            pairs=10,
            batches=tb,
        )


def test_the_runs_own_noise_rule_comes_from_its_strategy(tmp_path):
    """The reference rule and the penalty check's own rule are the rule the run trained with (its strategy's
    noise), not a default: an absolute-rule run is checked under 'absolute' alone, never under 'paper'."""
    from landscape.claims import check_claims
    from landscape.cli import main

    out = tmp_path / "abs"
    assert (
        main(
            [
                "train",
                *TINY,
                "--strategy",
                "sgd-jitter",
                "--jitter-mode",
                "absolute",
                "--sigma",
                "0.05",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    r = check_claims([out], **FAST)
    assert r.reference_jitter == {"mode": "absolute", "sigma": 0.05}
    rows = r.checkpoints[0]["splits"]["id"]["penalty"]
    assert rows and {row["mode"] for row in rows} == {"absolute"}
