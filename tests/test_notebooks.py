"""Every notebook runs top to bottom with FAST=1 and is committed without outputs; 06 also runs on tiny seismic
and MRI checkpoints trained here; no cell floods its output with warnings; figures carry a static copy when
kaleido is there (the HTML export and a code host then show them).

The notebooks run two at a time (one torch thread each) in a pool started by the first test that needs one,
so the whole file takes about a minute on two cores.
"""

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = [p.stem for p in NOTEBOOKS]
EXPECTED = [
    "01_quickstart",
    "02_iterate_spectra",
    "03_loss_slices",
    "04_penalty_theory",
    "05_your_own_model",
    "06_from_checkpoint",
]
STATIC_IN = "02_iterate_spectra"  # the notebook whose figures are checked for a static copy (costs a browser)
PLOTLY = "application/vnd.plotly.v1+json"
WARNING_LINE = re.compile(r"\b\w*Warning\b:")

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def _static_available() -> bool:
    from landscape.export import static_export_available

    return static_export_available()


def _train_tiny(out: Path) -> dict[str, str]:
    """One MSE and one SGD-jittered checkpoint per task (seismic, MRI): one epoch on 8 samples, K = 2."""
    from landscape.train import Trainer, make_train_config

    paths = {}
    for task in ("seismic", "mri"):
        runs = []
        for strategy in ("mse", "sgd-jitter"):
            cfg = make_train_config(
                task, strategy, seed=0, epochs=1, train_size=8, val_size=4, n_iter=2, batch_size=4
            )
            Trainer(cfg, out_dir=out / task / strategy, progress=False).fit()
            runs.append(str(out / task / strategy))
        paths[task] = ":".join(runs)
    return paths


def _execute(path: Path, workdir: Path, env: dict[str, str]):
    """Run a notebook in ``workdir`` with ``env`` added to the kernel's environment; returns (notebook, workdir)."""
    nb = nbformat.read(path, as_version=4)
    workdir.mkdir(parents=True, exist_ok=True)
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute(env={**os.environ, **env})  # passed on to the kernel manager's start_kernel
    return nb, workdir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """name -> Future of the executed notebook; the seismic and MRI runs of 06 are '06-seismic', '06-mri'."""
    root = tmp_path_factory.mktemp("notebooks")
    base = {
        "FAST": "1",
        "OMP_NUM_THREADS": "1",
        "LANDSCAPE_STATIC": "0",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {}
    tiny = pool.submit(_train_tiny, root / "checkpoints")
    for path in NOTEBOOKS:
        env = dict(base)
        if path.stem == STATIC_IN:  # the static copy, or (without kaleido) the reason it is missing
            env["LANDSCAPE_STATIC"] = "1" if _static_available() else "auto"
        futures[path.stem] = pool.submit(_execute, path, root / path.stem, env)
    nb06 = ROOT / "notebooks" / "06_from_checkpoint.ipynb"
    for task in ("seismic", "mri"):

        def job(task=task):
            return _execute(nb06, root / f"06-{task}", {**base, "LANDSCAPE_CHECKPOINTS": tiny.result()[task]})

        futures[f"06-{task}"] = pool.submit(job)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def _outputs(nb):
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            yield i, c, c.get("outputs", [])


def _text(o) -> str:
    if o.get("output_type") == "stream":
        return o.get("text", "")
    if o.get("output_type") == "error":
        return "\n".join(o.get("traceback", []))
    return o.get("data", {}).get("text/plain", "")


def test_the_six_notebooks_are_there():
    assert NAMES == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            assert not c.get("outputs") and c.get("execution_count") is None, (
                f"{path.name}: commit it cleared"
            )
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


@pytest.mark.parametrize("name", NAMES + ["06-seismic", "06-mri"])
def test_notebook_runs_without_errors_or_warning_floods(runs, name):
    nb, _ = runs[name].result()
    errors = [
        (i, o["ename"], o["evalue"])
        for i, _, outs in _outputs(nb)
        for o in outs
        if o.get("output_type") == "error"
    ]
    assert not errors, errors
    for i, _, outs in _outputs(nb):
        n = sum(len(WARNING_LINE.findall(_text(o))) for o in outs)
        assert n <= 2, f"cell {i} of {name} prints {n} warnings"
    assert sum(1 for _, c, outs in _outputs(nb) if outs) >= 3  # it did show something


@pytest.mark.parametrize("task", ["seismic", "mri"])
def test_06_reads_other_tasks(runs, task):
    nb, _ = runs[f"06-{task}"].result()
    text = "\n".join(_text(o) for _, _, outs in _outputs(nb) for o in outs)
    assert f"task {task}, strategy mse" in text and f"task {task}, strategy sgd-jitter" in text
    n = {"seismic": 1024, "mri": 8192}[task]
    assert f"H_K of a state of size {n}: λ_max 2.000000000000" in text
    figs = [o for _, _, outs in _outputs(nb) for o in outs if PLOTLY in o.get("data", {})]
    assert len(figs) >= 5
    assert re.search(r"^(supported|contradicted|inconclusive) +expansion", text, re.M)


def test_figures_are_plotly_with_a_static_copy_or_say_why(runs):
    nb, workdir = runs[STATIC_IN].result()
    figs = [o["data"] for _, _, outs in _outputs(nb) for o in outs if PLOTLY in o.get("data", {})]
    assert len(figs) >= 5
    if _static_available():
        import base64

        for d in figs:
            png = base64.b64decode(d["image/png"])
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000  # a real picture, not a placeholder
            assert "text/html" not in d  # so an HTML export or a code host picks the image
    else:
        for d in figs:
            assert "no static copy" in d["text/plain"] and "kaleido" in d["text/html"]
    saved = sorted((workdir / "runs" / "notebooks" / STATIC_IN).glob("*.html"))
    assert len(saved) == len(figs)  # every figure was saved as HTML too
    assert all("Plotly.newPlot" in p.read_text() for p in saved)


def test_figures_without_static_copy_say_so_once(runs):
    nb, _ = runs["05_your_own_model"].result()  # ran with LANDSCAPE_STATIC=0
    setup_lines = [_text(o) for _, _, outs in _outputs(nb) for o in outs if "figures:" in _text(o)]
    assert len(setup_lines) == 1 and "no static copy" in setup_lines[0]
    figs = [o["data"] for _, _, outs in _outputs(nb) for o in outs if PLOTLY in o.get("data", {})]
    assert figs and all("image/png" not in d and "no static copy" in d["text/plain"] for d in figs)
    json.dumps(figs)  # JSON-clean (what the .ipynb stores)
