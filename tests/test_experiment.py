"""landscape experiment: each task end to end at a tiny size, reuse and resume, the studies' plan, the matched
σ against a hand-written copy of the paper's rule, PGD restarts, early stopping and snapshots."""

import json
import math

import pytest
import torch

from landscape.attacks import PGDConfig, pgd_attack, pgd_restarts
from landscape.checkpoint import load_checkpoint
from landscape.experiment import MAIN, matched_absolute_sigma, plan_experiment, run_experiment, t_interval
from landscape.io import check_group
from landscape.train import Trainer, make_train_config


def _check_complete(out, rec, task):
    for name in ("results.json", "results.md", "report.html"):
        assert (out / name).is_file(), name
    check_group(out, ["results.json", "results.md", "report.html"])  # written together, manifest intact
    saved = json.loads((out / "results.json").read_text())
    assert saved["task"] == task and set(saved["runs"]) == set(rec["runs"])
    md = (out / "results.md").read_text()
    cols = rec["tables"]["columns"]
    assert (
        "id" in cols and any(c.startswith("pgd:") for c in cols) and any(c.startswith("ood:") for c in cols)
    )
    for arch, strat in MAIN:
        row = [r for r in rec["tables"]["main"] if r["arch"] == arch and r["strategy"] == strat]
        assert len(row) == 1 and set(row[0]["cells"]) == set(cols)
        assert row[0]["label"] in md
    extra = int(
        any(r["strategy"] == "curvature-penalty" for r in rec["tables"]["main"])
    )  # explicit-penalty study
    assert len(rec["tables"]["paired"]) == len(MAIN) - 2 + extra  # every non-MSE row against its arch's MSE
    for r in rec["runs"].values():
        assert math.isfinite(r["sum_trace"]) and r["stopping"]["reason"] in ("plateau", "budget")
    html = (out / "report.html").read_text()
    assert (
        "<script" in html and "results.json" in html and "<pre>" in html
    )  # self-contained: the tables inline


@pytest.mark.parametrize("task", ["seismic", "mri"])
def test_tiny_experiment_of_each_task_writes_complete_tables(tmp_path, task):
    out = tmp_path / task
    rec = run_experiment(task, out, preset="tiny", seeds=1, claims=False, progress=False)
    _check_complete(out, rec, task)
    assert {r["action"] for r in rec["runs"].values()} == {"trained"}
    # PGD keeps the worst of the restarts: with the same test samples it is never better than random noise of
    # the same radius (a random direction is one of the points PGD could have reached)
    for r in rec["runs"].values():
        res = [x for x in r["evaluation"]["rows"] if x["kind"] == "model"][0]["results"]
        assert r["evaluation"]["eval_config"]["attack_restarts"] == 2
        eps = max(float(k.split(":")[1]) for k in res if k.startswith("pgd:"))
        assert res[f"pgd:{eps:g}"]["psnr"]["mean"] <= res[f"random:{eps:g}"]["psnr"]["mean"] + 1e-6


def test_denoise_experiment_with_studies_reuses_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "denoise"
    kw = dict(
        preset="tiny",
        seeds=1,
        sigmas=[0.05],
        activations=["softplus", "gelu"],
        ablations=["fixed-step", "no-jitter-last", "small-data", "matched-absolute", "explicit-penalty"],
        progress=False,
    )
    plan = plan_experiment("denoise", **{k: v for k, v in kw.items() if k != "progress"})
    names = [s.name for s in plan]
    interrupted = "gd-sgd-jitter-s0"
    import landscape.train as train_mod

    real_validate = train_mod.Trainer.validate

    def flaky(self):  # the run is killed right after its first epoch was saved
        if self.out_dir is not None and self.out_dir.name == interrupted and len(self.history) == 2:
            raise KeyboardInterrupt
        return real_validate(self)

    monkeypatch.setattr(train_mod.Trainer, "validate", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_experiment("denoise", out, **kw)
    monkeypatch.setattr(train_mod.Trainer, "validate", real_validate)
    assert not (out / "results.json").exists()  # nothing half-written
    assert (out / "runs" / interrupted / "checkpoint.pt").exists()
    assert not (out / "runs" / interrupted / "metrics.json").exists()
    rec = run_experiment("denoise", out, **kw)
    _check_complete(out, rec, "denoise")
    # the explicit-penalty study joins the main comparison: a table row, and claims against sgd-jitter
    assert "explicit penalty (GD)" in [r["label"] for r in rec["tables"]["main"]]
    assert rec["runs"]["gd-curvature-penalty-s0"]["study"] == "main"
    eq = [c for c in rec["claims"]["claims"] if c["name"].startswith("explicit ≈ jitter: ")]
    assert eq and all(c["baseline"].startswith("sgd-jitter") and c["verdict"] == "too few seeds" for c in eq)
    actions = {n: rec["runs"][n]["action"] for n in names}
    done_before = names[: names.index(interrupted)]
    assert all(actions[n] == "reused" for n in done_before)
    assert actions[interrupted] == "resumed"
    assert all(actions[n] == "trained" for n in names[names.index(interrupted) + 1 :])
    # the resumed run ends with the weights of an uninterrupted one
    ref = Trainer(make_train_config(**_config_kw(out / "runs" / interrupted)), progress=False).fit()
    got = load_checkpoint(out / "runs" / interrupted).model.state_dict()
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, got[k]), k
    # a second call reuses every run and gives the same tables
    stamp = {n: (out / "runs" / n / "checkpoint.pt").stat().st_mtime_ns for n in names}
    again = run_experiment("denoise", out, **kw, export=("html",))  # and the report's figures as files
    assert {r["action"] for r in again["runs"].values()} == {"reused"}
    from landscape.claims import ClaimsResult
    from landscape.experiment import figure_sections

    figs = sorted(out.glob("denoise-tiny_*.html"))
    ids = [s["id"] for s in figure_sections(again, ClaimsResult.from_dict(again["claims"]))]
    assert [f.name for f in figs] == sorted(f"denoise-tiny_{i}.html" for i in ids) and "over-training" in ids
    check_group(
        out, ["results.json", "results.md", "report.html", *[f.name for f in figs]]
    )  # written together
    import sys

    monkeypatch.setitem(sys.modules, "kaleido", None)  # svg without kaleido: one line, before any work
    with pytest.raises(Exception, match="kaleido") as err:
        run_experiment("denoise", tmp_path / "never", **kw, export=("svg",))
    assert "\n" not in str(err.value) and not (tmp_path / "never").exists()
    assert stamp == {n: (out / "runs" / n / "checkpoint.pt").stat().st_mtime_ns for n in names}
    assert json.dumps(again["tables"], sort_keys=True) == json.dumps(rec["tables"], sort_keys=True)
    t = rec["tables"]
    assert [r["sigma"] for r in t["sigma"]] == [0.0, 0.05, 0.1]  # 0.1: the main sgd-jitter runs' σ
    # gelu is the main runs' activation: not trained again, its row is the main runs' comparison
    assert [r["activation"] for r in t["activation"]] == ["gelu", "softplus"]
    assert not [n for n in names if n.startswith("act-gelu")] and "act-softplus-mse-s0" in names
    main_row = next(r for r in t["ablation"] if r["variant"] == "main")
    for key in ("d_id", "d_ood", "d_pgd", "trace_ratio"):  # (json: NaN half-widths with one seed)
        assert json.dumps(t["activation"][0][key]) == json.dumps(main_row[key]), key
    assert {r["variant"] for r in t["ablation"]} == {
        "main",
        "fixed-step",
        "small-fixed",
        "fresh-noise",
        "no-jitter-last1",
        "no-jitter-last2",
        "matched-absolute",
    }
    assert set(t["over_training"]) == {"MSE (GD)", "SGD jitter (GD)"}
    assert rec["claims_verdicts"]
    # each jittered group is judged against the MSE run of its own architecture, never the other one's
    flat = [c for c in rec["claims"]["claims"] if c["name"] == "flatness: Σ tr H_k [id]"]
    assert {(c["group"].split(" (")[0], c["baseline"]) for c in flat} == {
        ("sgd-jitter", "mse [gd]"),
        ("curvature-penalty", "mse [gd]"),
        ("spgd-jitter", "mse [prox]"),
    }
    md = (out / "results.md").read_text()
    for title in (
        "Noise level",
        "Regularizer activation",
        "Mechanism ablations",
        "Curvature over training",
        "Claims",
    ):
        assert title in md
    # snapshots are checkpoints: analyze labels them by run and epoch and plots curvature against epoch;
    # claims refuses two epochs of one run as if they were two seeds
    from landscape.claims import check_claims
    from landscape.survey import analyze_checkpoints
    from landscape.viz.report import _curvatures, over_training_series

    snaps = sorted((out / "runs" / "gd-mse-s0" / "snapshots").glob("epoch-*.pt"))
    assert len(snaps) == 2
    from landscape.curvature import CurvatureSettings
    from landscape.presets import experiment_preset

    budget = experiment_preset("tiny", "denoise").curvature
    an = analyze_checkpoints(
        snaps,
        tmp_path / "an",
        samples=2,
        progress=False,
        param_slice_n=0,
        eps=(),
        slice_n=5,
        curvature=CurvatureSettings(**budget),
    )
    assert [e["epoch"] for e in an["checkpoints"]] == [1, 2]
    assert an["checkpoints"][1]["label"] == "mse (gd-mse-s0) @ epoch 2"
    series = over_training_series(an["checkpoints"], _curvatures(an["checkpoints"]))
    assert [p["epoch"] for p in series["mse"][0]["points"]] == [1, 2]
    pts = {p["epoch"]: p for p in rec["runs"]["gd-mse-s0"]["over_training"]}
    # the experiment's own record of that snapshot: the same samples, settings and seeds give the same numbers
    assert series["mse"][0]["points"][1]["sum_trace"] == pytest.approx(pts[2]["sum_trace"], rel=1e-8)
    assert "Curvature over training" in (tmp_path / "an" / "report.html").read_text()
    # every series ends at the model the run ended with; a run that stopped between snapshots gets its final
    # checkpoint as the last point
    for name, r in rec["runs"].items():
        if r.get("over_training"):
            assert r["over_training"][-1]["epoch"] == r["epochs"], name
    from landscape.experiment.run import _curvature_item

    item = _curvature_item(out / "runs" / "gd-mse-s0", 2, ["snapshots/epoch-0001.pt"], settings=dict(budget))
    assert [p["epoch"] for p in item["over_training"]] == [1, 2]
    assert item["over_training"][1]["sum_trace"] == pytest.approx(item["sum_trace"], rel=1e-12)
    with pytest.raises(ValueError, match="same run"):
        check_claims(snaps, n_eval=4)
    # a run whose config differs from the plan's is never silently reused
    with pytest.raises(ValueError, match="differs from the plan"):
        _with_other_mse(out)


def _config_kw(run_dir):
    c = load_checkpoint(run_dir).saved_config  # the run config as saved
    m = c["model"]
    return dict(
        task=c["task"],
        strategy=c["strategy"]["name"],
        size=c["size"],
        arch=m["arch"],
        n_iter=m["n_iter"],
        epochs=c["epochs"],
        batch_size=c["batch_size"],
        train_size=c["train_size"],
        val_size=c["val_size"],
        patience=c.get("patience"),
        min_delta=c.get("min_delta", 0.0),
        snapshots=c.get("snapshots", 0),
        lr_decays=c.get("lr_decays", 0),
        lr_factor=c.get("lr_factor", 0.3),
        lr=c["lr"],
        seed=c["seed"],
        attack_steps=c["strategy"].get("steps"),
    )


def _with_other_mse(out):
    # the same experiment folder, asked for a plan whose mse run has another config (here: more epochs)
    import dataclasses

    from landscape.presets import EXPERIMENT_PRESETS

    old = EXPERIMENT_PRESETS["tiny"]["denoise"]
    EXPERIMENT_PRESETS["tiny"]["denoise"] = dataclasses.replace(old, epochs=3)
    try:
        run_experiment("denoise", out, preset="tiny", seeds=1, progress=False, claims=False)
    finally:
        EXPERIMENT_PRESETS["tiny"]["denoise"] = old


def test_plan_and_its_errors():
    plan = plan_experiment(
        "denoise", "fast", seeds=2, sigmas=[0.05], ablations=["no-jitter-last"], study_seeds=1
    )
    main = [s for s in plan if s.study == "main"]
    assert [(s.arch, s.strategy) for s in main[:6]] == list(MAIN) and len(main) == 12
    assert [s.name for s in plan[12:]] == ["sigma0.05-s0", "no-jitter-last1-s0", "no-jitter-last2-s0"]
    for bad, match in (
        ({"sigmas": [0]}, "sigmas contains 0"),
        ({"activations": ["swish"]}, "activation 'swish'"),
        ({"ablations": ["nope"]}, "ablation 'nope'"),
        ({"seeds": 0}, "seeds=0"),
    ):
        with pytest.raises(ValueError, match=match):
            plan_experiment("denoise", "fast", **bad)
    with pytest.raises(ValueError, match="preset='huge'"):
        plan_experiment("denoise", "huge")


def test_no_jitter_on_the_last_steps_is_a_per_iteration_sigma(tmp_path):
    from landscape.experiment import train_config

    spec = [
        s
        for s in plan_experiment("denoise", "tiny", seeds=1, ablations=["no-jitter-last"])
        if s.variant == "no-jitter-last1"
    ][0]
    cfg = train_config("denoise", "tiny", spec)
    assert cfg.strategy.to_dict()["sigma"] == [
        0.1,
        0.0,
    ]  # K = 2 in the tiny preset: no noise at the last step


def test_matched_sigma_equals_a_hand_written_paper_rule(tmp_path):
    cfg = make_train_config(
        "denoise", "sgd-jitter", n_iter=3, epochs=1, train_size=32, val_size=16, batch_size=16
    )
    Trainer(cfg, out_dir=tmp_path / "r", progress=False).fit()
    got = matched_absolute_sigma(tmp_path / "r", batches=2)
    ck = load_checkpoint(tmp_path / "r")
    m, A = ck.model, ck.task.physics
    train = ck.task.training_set(32, seed=0, dtype=torch.float32)
    sq = []
    with torch.no_grad():
        for b in range(2):
            y = train.y[b * 16 : (b + 1) * 16]
            x = m.initial(y)
            for k in range(3):
                eta = m.step_size(k)
                g = x - eta * A.adjoint(
                    A.forward(x) - y
                )  # the official code: sigma * torch.max(g), one per batch
                sq.append(float((0.1 * torch.max(g)) ** 2))
                x = m.step(x, y, k)
    assert got["matched_sigma"] == pytest.approx(math.sqrt(sum(sq) / len(sq)), rel=1e-5)


def test_pgd_restarts_keep_the_worst_per_sample():
    torch.manual_seed(0)
    W = torch.randn(6, 6) / 3

    def f(y):
        return torch.tanh(y @ W) * 2

    g = torch.Generator().manual_seed(0)
    y, x = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g)
    cfg = PGDConfig(eps=0.5, steps=3, step_size=0.3)
    one = pgd_restarts(f, y, x, cfg, 1)
    assert torch.equal(one, pgd_attack(f, y, x, cfg))
    worst = pgd_restarts(f, y, x, cfg, 4, generator=torch.Generator().manual_seed(1))

    def loss(d):
        return ((f(y + d) - x) ** 2).sum(1)

    rand = PGDConfig(eps=0.5, steps=3, step_size=0.3, random_start=True)
    gen = torch.Generator().manual_seed(1)
    singles = [pgd_attack(f, y, x, cfg)] + [pgd_attack(f, y, x, rand, generator=gen) for _ in range(3)]
    best = torch.stack([loss(d) for d in singles]).max(0).values
    assert torch.allclose(loss(worst), best)
    assert bool((worst.norm(dim=1) <= 0.5 + 1e-6).all())


def test_early_stopping_and_snapshots(tmp_path):
    # lr so small that validation never gains 5 dB: the run stops after `patience` epochs without a gain
    cfg = make_train_config(
        "denoise",
        "mse",
        n_iter=2,
        epochs=6,
        train_size=32,
        val_size=16,
        batch_size=16,
        lr=1e-7,
        patience=2,
        min_delta=5.0,
    )
    r = Trainer(cfg, out_dir=tmp_path / "p", progress=False).fit()
    assert r.metrics["epochs"] == 2 and r.metrics["stopping"]["reason"] == "plateau"
    assert r.metrics["stopping"]["best_epoch"] == 0
    # resuming a run that stopped on its plateau trains nothing more
    again = Trainer(cfg, out_dir=tmp_path / "p", progress=False).fit(resume=True)
    assert again.metrics["epochs"] == 2
    # without patience the budget is spent and the record says so
    cfg = make_train_config(
        "denoise", "mse", n_iter=2, epochs=4, train_size=32, val_size=16, batch_size=16, snapshots=2
    )
    r = Trainer(cfg, out_dir=tmp_path / "s", progress=False).fit()
    assert r.metrics["stopping"]["reason"] == "budget"
    assert r.metrics["snapshots"] == ["snapshots/epoch-0002.pt", "snapshots/epoch-0004.pt"]
    snap = load_checkpoint(tmp_path / "s" / "snapshots" / "epoch-0002.pt")
    short = make_train_config("denoise", "mse", n_iter=2, epochs=2, train_size=32, val_size=16, batch_size=16)
    ref = Trainer(short, progress=False).fit().model.state_dict()
    for k, v in ref.items():  # the snapshot is the state after epoch 2, as a 2-epoch run ends
        assert torch.equal(v, snap.model.state_dict()[k]), k
    final = load_checkpoint(tmp_path / "s" / "snapshots" / "epoch-0004.pt").model.state_dict()
    for k, v in r.model.state_dict().items():
        assert torch.equal(v, final[k]), k


def test_learning_rate_decays_on_each_plateau_then_stops_and_resumes_on_schedule(tmp_path):
    # min_delta 5 dB is never gained: every `patience` epochs is a plateau, so the schedule is known in advance
    kw = dict(
        n_iter=2,
        train_size=32,
        val_size=16,
        batch_size=16,
        lr=1e-3,
        patience=1,
        min_delta=5.0,
        lr_decays=2,
        lr_factor=0.5,
    )
    r = Trainer(
        make_train_config("denoise", "mse", epochs=6, **kw), out_dir=tmp_path / "a", progress=False
    ).fit()
    st = r.metrics["stopping"]
    assert (st["reason"], r.metrics["epochs"], st["lr_decays"], st["decayed_at"]) == ("plateau", 3, 2, [1, 2])
    assert st["lr"] == pytest.approx(1e-3 * 0.25)
    ck = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    assert [g["lr"] for g in ck["optimizer"]["param_groups"]] == [
        pytest.approx(2.5e-4)
    ]  # epoch 3 ran at lr/4
    # interrupted after epoch 2 (budget 2), then resumed with the full budget: the same schedule and weights
    Trainer(make_train_config("denoise", "mse", epochs=2, **kw), out_dir=tmp_path / "b", progress=False).fit()
    b = Trainer(make_train_config("denoise", "mse", epochs=6, **kw), out_dir=tmp_path / "b", progress=False)
    b = b.fit(resume=True)
    assert b.metrics["stopping"] == st
    for k, v in r.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    # the schedule changed the weights: a run without decays ends elsewhere after the same 3 epochs
    flat = Trainer(
        make_train_config("denoise", "mse", epochs=3, **{**kw, "patience": None, "lr_decays": 0}),
        progress=False,
    ).fit()
    assert any(not torch.equal(v, flat.model.state_dict()[k]) for k, v in r.model.state_dict().items())
    with pytest.raises(ValueError, match="needs a patience"):
        make_train_config("denoise", "mse", lr_decays=1)
    with pytest.raises(ValueError, match=r"lr_factor=1\.5"):
        make_train_config("denoise", "mse", patience=2, lr_decays=1, lr_factor=1.5)


def test_t_interval_matches_scipy():
    from scipy import stats

    v = [1.0, 2.0, 4.0]
    t = t_interval(v)
    lo, hi = stats.t.interval(0.95, 2, loc=sum(v) / 3, scale=stats.sem(v))
    assert t["lo"] == pytest.approx(lo) and t["hi"] == pytest.approx(hi)
    assert math.isnan(t_interval([1.0])["half"])


def test_runs_on_two_worker_processes_give_the_same_tables_as_one_process(tmp_path):
    one = run_experiment("denoise", tmp_path / "one", preset="tiny", seeds=1, claims=False, progress=False)
    two = run_experiment(
        "denoise", tmp_path / "two", preset="tiny", seeds=1, claims=False, progress=False, workers=2
    )
    assert json.dumps(one["tables"], sort_keys=True) == json.dumps(two["tables"], sort_keys=True)


def test_a_run_that_ends_below_its_initial_model_is_marked_diverged(tmp_path):
    """A run whose last validation PSNR is below its initial model's (epoch 0) is ``diverged`` in its record,
    whichever rule stopped it (seismic's proximal MSE run at lr 1e-2 went from 8 to -13 dB and stopped on a
    'plateau'), and the experiment's tables show it; a run that trained is not."""
    from landscape.experiment import stop_reason

    kw = dict(n_iter=2, epochs=4, train_size=32, val_size=16, batch_size=16, patience=2, min_delta=0.0)
    good = Trainer(make_train_config("denoise", "mse", lr=5e-3, **kw), progress=False).fit()
    g = [row["val_psnr"] for row in good.history]
    assert g[-1] > g[0] and good.metrics["stopping"]["diverged"] is False
    assert stop_reason({"stopping": good.metrics["stopping"]}) == good.metrics["stopping"]["reason"]
    bad = Trainer(make_train_config("denoise", "mse", lr=5e-3, **kw), progress=False)
    bad.history = [
        {"epoch": 0, "val_psnr": 8.0},
        {"epoch": 1, "val_psnr": -5.0},
        {"epoch": 2, "val_psnr": -13.0},
    ]
    st = bad.stopping()
    assert (st["reason"], st["best_epoch"], st["diverged"]) == ("plateau", 0, True)
    assert stop_reason({"stopping": st}) == "diverged" and stop_reason({}) == "?"


def test_epoch_passes_make_one_epoch_several_passes_over_the_set():
    """One epoch of 2 passes is the same training as 2 epochs of 1 pass (same shuffles, same noise, same
    weights); only validation and the epoch count differ.  The small-fixed ablation uses it, so its small set
    takes as many steps per epoch as the full one and patience means the same."""
    kw = dict(n_iter=2, train_size=16, val_size=8, batch_size=8)
    two = Trainer(
        make_train_config("denoise", "sgd-jitter", epochs=1, epoch_passes=2, **kw), progress=False
    ).fit()
    one = Trainer(make_train_config("denoise", "sgd-jitter", epochs=2, **kw), progress=False).fit()
    assert [r["steps"] for r in two.history] == [0, 4] and [r["steps"] for r in one.history] == [0, 2, 4]
    for k, v in one.model.state_dict().items():
        assert torch.equal(v, two.model.state_dict()[k]), k
    spec = next(
        s
        for s in plan_experiment("denoise", "fast", seeds=1, ablations=["small-data"])
        if s.name == "small-fixed-mse-s0"
    )
    from landscape.experiment import train_config

    cfg = train_config("denoise", "fast", spec)
    assert (cfg.train_size, cfg.epoch_passes) == (128, 8)  # 1/8 of the 1024 pairs, 8 passes per epoch
    with pytest.raises(ValueError, match="epoch_passes"):
        make_train_config("denoise", "mse", epoch_passes=0)
