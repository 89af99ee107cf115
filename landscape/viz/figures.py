"""Plotly figures of the analysis, as pure builders: each takes plain dicts (as saved in JSON) and
returns a ``plotly.graph_objects.Figure``, never a model and never ``show()``.

Inputs are the records of ``analysis.json`` (see :mod:`landscape.viz.report`):

* a slice record: ``Slice.to_dict()`` (:mod:`landscape.curvature.slices`);
* an *entry* per checkpoint: ``{"label": str, "curvature": {...}, "robustness": {...},
  "reconstruction": {...}, "slices": {...}}`` where

  - ``curvature = {"iterates": [k...], "lambda_max": {"mean": [...], "stderr": [...]},
    "trace": {"mean": [...], "stderr": [...]}, "eigenvalues": [[λ_1 ≥ λ_2 ≥ ...] per k],
    "density": {"k": int, "grid": [...], "density": [...]}}``,
  - ``robustness = {"eps": [...], "psnr": {"mean": [...], "stderr": [...]}}``,
  - ``reconstruction = {"display": "signal" | "image", "x_true": [...], "x_hat": [...],
    "x_init": [...] (optional), "psnr": float}`` (one sample; images 2-D, signals 1-D).

Plotly is imported inside the builders, so importing this module is cheap.  :func:`save` writes any figure
to ``.html`` (always) or ``.pdf``/``.svg``/``.png`` (through kaleido, the ``export`` extra; see
:mod:`landscape.export`).
"""

from __future__ import annotations

import functools
import math
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from landscape.curvature.broadening import broaden
from landscape.export import DEFAULT_SIZE, save  # save re-exported: figures.save(fig, "fig.pdf")
from landscape.io import from_json_array, from_json_float

__all__ = [
    "PALETTE",
    "STRATEGY_COLORS",
    "strategy_color",
    "finish",
    "slice_contour_figure",
    "slice_surface_figure",
    "slices_side_by_side_figure",
    "curvature_figure",
    "density_figure",
    "eigenvalue_ladder_figure",
    "curvature_map_figure",
    "default_map_iterates",
    "paired_ratio_figure",
    "quadratic_model_figure",
    "penalty_figure",
    "expansion_check_figure",
    "robustness_figure",
    "reconstruction_figure",
    "sweep_figure",
    "over_training_figure",
    "save",
]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_TEMPLATE = "plotly_white"

#: One colour per training strategy, in every figure of every page (report.html, claims.html, the experiment's
#: report and its exports): a series is coloured by the strategy its label names (:func:`strategy_color`).
STRATEGY_COLORS = {
    "mse": "#1f77b4",
    "sgd-jitter": "#d62728",
    "input-jitter": "#2ca02c",
    "spgd-jitter": "#9467bd",
    "adversarial": "#ff7f0e",
    "curvature-penalty": "#000000",
}
#: Colours of series that name no strategy (never one of :data:`STRATEGY_COLORS`).
OTHER_COLORS = ("#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")
#: The strategies' names and display names (``landscape.experiment``'s row labels, "SGD jitter") -> strategy.
_STRATEGY_ALIASES = {alias: n for n in STRATEGY_COLORS for alias in (n, n.replace("-", " "))}


def strategy_color(label: str, i: int = 0) -> str:
    """The colour of a series labelled ``label``: the strategy's own colour when the label is, or starts with, a
    strategy name (``"mse"``, ``"mse-s0"``, ``"sgd-jitter (paper, σ=0.1)"``, ``"SGD jitter (GD)"``), else the i-th of
    :data:`OTHER_COLORS`."""
    low = str(label).strip().lower()
    for name in sorted(_STRATEGY_ALIASES, key=len, reverse=True):
        if low == name or (low.startswith(name) and not low[len(name)].isalnum()):
            return STRATEGY_COLORS[_STRATEGY_ALIASES[name]]
    return OTHER_COLORS[i % len(OTHER_COLORS)]


#: Title font size (px) and the width of one character of it, generously (plotly's default font).
TITLE_SIZE = 16
_CHAR_PX = 0.6 * TITLE_SIZE
#: Top margin: a base plus one line height per title line (subplot titles sit below it, inside the plot area).
_MARGIN_BASE, _LINE_PX = 36, 24


def title_chars(width: int) -> int:
    """How many characters of a title fit on one line of a figure ``width`` pixels wide."""
    return max(20, int((width - 40) // _CHAR_PX))


def _axis_values(fig: Any, axis: str) -> np.ndarray:
    """The finite values drawn on layout axis ``axis`` (``'xaxis'``, ``'yaxis2'``...) by the figure's traces."""
    letter, suffix = axis[0], axis[5:]
    out = []
    for tr in fig.data:
        if not hasattr(tr, f"{letter}axis") or (getattr(tr, f"{letter}axis") or letter) != letter + suffix:
            continue
        v = getattr(tr, letter, None)
        if v is not None:
            out.append(from_json_array(list(np.ravel(np.asarray(v, dtype=object)))).ravel())
    a = np.concatenate(out) if out else np.zeros(0)
    return a[np.isfinite(a)]


def finish(fig: Any) -> Any:
    """The layout rules every figure follows, applied once (every builder here returns through it):

    * the title is wrapped (``<br>``) to the figure's width (its own ``layout.width``, else the export's
      :data:`landscape.export.DEFAULT_SIZE`), :func:`title_chars` characters a line, and the top margin
      holds every line (``margin.t >= 36 + 24 × lines``), so no title is clipped;
    * a logarithmic axis labels decades only (``dtick=1``, labels ``10^k``) when its data span two decades
      or more, else 1, 2 and 5 of each decade (``dtick='D2'``): never every minor tick.
    """
    lay = fig.layout
    text = lay.title.text if lay.title is not None else None
    if text:
        width = int(lay.width or DEFAULT_SIZE[0])
        lines = [
            ln
            for part in str(text).split("<br>")
            for ln in (textwrap.wrap(part, title_chars(width), break_long_words=False) or [""])
        ]
        top = max(int(lay.margin.t or 0), _MARGIN_BASE + _LINE_PX * len(lines))
        fig.update_layout(title={"text": "<br>".join(lines), "font": {"size": TITLE_SIZE}}, margin={"t": top})
    for name in [k for k in fig.to_plotly_json()["layout"] if k[:5] in ("xaxis", "yaxis")]:
        ax = lay[name]
        if ax.type != "log" or ax.dtick is not None:
            continue
        v = _axis_values(fig, name)
        v = v[v > 0]
        decades = math.log10(float(v.max()) / float(v.min())) if v.size else 0.0
        ax.update(
            dtick=1 if decades >= 2 else "D2",
            exponentformat=ax.exponentformat or "power",
            minor={"ticks": "inside", "showgrid": False},
        )
    return fig


def _finished(builder: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(builder)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return finish(builder(*args, **kwargs))

    return wrapped


def _go():
    import plotly.graph_objects as go

    return go


def _subplots(**kwargs: Any):
    from plotly.subplots import make_subplots

    return make_subplots(**kwargs)


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _dir_label(d: dict[str, Any], axis: str) -> str:
    kind = d.get("kind", "?")
    norm = d.get("norm")
    extra = f", ‖d‖={norm:.3g}" if isinstance(norm, (int, float)) else ""
    return f"{axis} ({kind}{extra})"


def _slice_title(s: dict[str, Any]) -> str:
    if s.get("space") == "parameter":
        return "training loss around θ"
    k = s.get("k")
    return f"L_k around x_k, k = {k}" + (f", sample {s['sample']}" if s.get("sample") is not None else "")


def _check_slice(s: dict[str, Any]) -> None:
    if not isinstance(s, dict) or "values" not in s or "coords" not in s:
        raise ValueError("expected a slice record (Slice.to_dict()) with 'coords' and 'values'")


# -------------------------------------------------------------------------------------------------
# slices
# -------------------------------------------------------------------------------------------------
@_finished
def slice_contour_figure(s: dict[str, Any], *, title: str | None = None, log: bool = False):
    """A 2-D slice as a filled contour (a 1-D slice as a line), centre marked."""
    _check_slice(s)
    go = _go()
    coords = [from_json_array(c) for c in s["coords"]]
    vals = from_json_array(s["values"])
    dirs = s.get("directions", [{}] * len(coords))
    fig = go.Figure()
    z = np.log10(np.maximum(vals, 1e-300)) if log else vals
    zlabel = "log10 loss" if log else "loss"
    if len(coords) == 1:
        fig.add_trace(go.Scatter(x=coords[0], y=z, mode="lines", name=zlabel))
        fig.add_trace(
            go.Scatter(
                x=[0.0],
                y=[np.log10(s["center_value"]) if log else s["center_value"]],
                mode="markers",
                name="centre",
                marker={"size": 9, "color": "black"},
            )
        )
        fig.update_xaxes(title=_dir_label(dirs[0], "α"))
        fig.update_yaxes(title=zlabel)
    else:
        fig.add_trace(
            go.Contour(
                x=coords[0],
                y=coords[1],
                z=z.T,
                colorscale="Viridis",
                ncontours=30,
                colorbar={"title": {"text": zlabel}},
                name=zlabel,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[0.0],
                y=[0.0],
                mode="markers",
                name="centre",
                marker={"symbol": "x", "size": 10, "color": "white"},
                showlegend=False,
            )
        )
        fig.update_xaxes(title=_dir_label(dirs[0], "α"), constrain="domain")
        fig.update_yaxes(title=_dir_label(dirs[1], "β"), scaleanchor="x", scaleratio=1, constrain="domain")
        fig.update_layout(width=680, height=600)  # a square plot: no empty two-thirds beside it
    fig.update_layout(title=title or _slice_title(s), template=_TEMPLATE)
    return fig


@_finished
def slice_surface_figure(s: dict[str, Any], *, title: str | None = None, log: bool = False):
    """A 2-D slice as a 3-D surface."""
    _check_slice(s)
    if len(s["coords"]) != 2:
        raise ValueError(f"a surface needs a 2-D slice; this one has {len(s['coords'])} direction(s)")
    go = _go()
    a, b = (from_json_array(c) for c in s["coords"])
    vals = from_json_array(s["values"])
    z = np.log10(np.maximum(vals, 1e-300)) if log else vals
    dirs = s.get("directions", [{}, {}])
    fig = go.Figure(
        go.Surface(
            x=a,
            y=b,
            z=z.T,
            colorscale="Viridis",
            colorbar={"title": {"text": "log10 loss" if log else "loss"}},
        )
    )
    fig.update_layout(
        title=title or _slice_title(s),
        template=_TEMPLATE,
        width=760,
        height=620,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        scene={  # short axis titles (the directions are in the contour's axes and the caption): nothing clipped
            "xaxis_title": "α (" + str(dirs[0].get("kind", "d1")) + ")",
            "yaxis_title": "β (" + str(dirs[1].get("kind", "d2")) + ")",
            "zaxis_title": "log10 loss" if log else "loss",
            "aspectmode": "cube",
            "camera": {"eye": {"x": 1.7, "y": 1.7, "z": 1.1}},
        },
    )
    return fig


@_finished
def slices_side_by_side_figure(
    slices: Sequence[dict[str, Any]],
    titles: Sequence[str] | None = None,
    *,
    log: bool = False,
    title: str | None = None,
):
    """Several slices (one per checkpoint) side by side on one colour scale (1-D: overlaid lines)."""
    if not slices:
        raise ValueError("no slices to show")
    for s in slices:
        _check_slice(s)
    go = _go()
    titles = list(titles) if titles is not None else [f"#{i}" for i in range(len(slices))]
    nd = {len(s["coords"]) for s in slices}
    if len(nd) != 1:
        raise ValueError("slices side by side must all be 1-D or all 2-D")
    tf = (lambda v: np.log10(np.maximum(v, 1e-300))) if log else (lambda v: v)
    if nd == {1}:
        fig = go.Figure()
        for i, (s, t) in enumerate(zip(slices, titles, strict=False)):
            fig.add_trace(
                go.Scatter(
                    x=from_json_array(s["coords"][0]),
                    y=tf(from_json_array(s["values"])),
                    mode="lines",
                    name=t,
                    line={"color": strategy_color(t, i)},
                )
            )
        fig.update_xaxes(title=_dir_label(slices[0].get("directions", [{}])[0], "α"))
        fig.update_yaxes(title="log10 loss" if log else "loss")
        fig.update_layout(title=title or _slice_title(slices[0]), template=_TEMPLATE)
        return fig
    zs = [tf(from_json_array(s["values"])) for s in slices]
    finite = np.concatenate([z[np.isfinite(z)].ravel() for z in zs] + [np.zeros(0)])
    zmin = float(finite.min()) if finite.size else 0.0
    zmax = float(finite.max()) if finite.size else 1.0
    n = len(slices)
    fig = _subplots(rows=1, cols=n, subplot_titles=titles, horizontal_spacing=0.06)
    for i, (s, z) in enumerate(zip(slices, zs, strict=False)):
        a, b = (from_json_array(c) for c in s["coords"])
        fig.add_trace(
            go.Contour(x=a, y=b, z=z.T, coloraxis="coloraxis", ncontours=30, name=titles[i]), row=1, col=i + 1
        )
        fig.add_trace(
            go.Scatter(
                x=[0.0],
                y=[0.0],
                mode="markers",
                showlegend=False,
                marker={"symbol": "x", "size": 9, "color": "white"},
            ),
            row=1,
            col=i + 1,
        )
        dirs = s.get("directions", [{}, {}])
        fig.update_xaxes(title_text=_dir_label(dirs[0], "α"), row=1, col=i + 1)
        fig.update_yaxes(title_text=_dir_label(dirs[1], "β") if i == 0 else None, row=1, col=i + 1)
    fig.update_layout(
        title=title or _slice_title(slices[0]),
        template=_TEMPLATE,
        coloraxis={
            "colorscale": "Viridis",
            "cmin": zmin,
            "cmax": zmax,
            "colorbar": {"title": {"text": "log10 loss" if log else "loss"}},
        },
        height=420,
        width=max(480, 380 * n),
    )
    return fig


# -------------------------------------------------------------------------------------------------
# curvature along the path
# -------------------------------------------------------------------------------------------------
def _labels(entries: Sequence[dict[str, Any]]) -> list[str]:
    return [str(e.get("label", f"#{i}")) for i, e in enumerate(entries)]


Labelled = Sequence[tuple[str, Any]]  # (label, IterateCurvature) pairs

_QUANTITIES = {
    "lambda_max": "λ_max(H_k)",
    "lambda_min": "λ_min(H_k)",
    "trace": "tr(H_k)",
    "abs_trace": "Σ|λ|(H_k)",
    "trace_sq": "‖H_k‖_F²",
    "n_eff": "n_eff(H_k) = (Σ|λ|)²/tr(H_k²)",
}


@_finished
def curvature_figure(results: Labelled, quantity: str = "lambda_max", *, log: bool = False):
    """λ_max, λ_min or tr of H_k against the iterate k, one line per result.

    ``results`` are ``(label, IterateCurvature)`` pairs (``IterateCurvature.from_dict`` rebuilds one
    from any saved JSON).  Error bars are the spread over samples (s/√n); where an estimate has its own
    Monte-Carlo error it is added in quadrature (the total uncertainty of the mean).
    """
    if quantity not in _QUANTITIES:
        raise ValueError(f"quantity={quantity!r}: expected one of {sorted(_QUANTITIES)}")
    go = _go()
    fig = go.Figure()
    for i, (lab, res) in enumerate(results):
        ks, mean, se = res.series(quantity)
        if not len(ks):
            continue
        _, _, mc = res.series(quantity, error="mc_stderr")
        err = np.sqrt(np.nan_to_num(se) ** 2 + np.nan_to_num(mc) ** 2)
        fig.add_trace(
            go.Scatter(
                x=ks,
                y=mean,
                mode="lines+markers",
                name=lab,
                line={"color": strategy_color(lab, i)},
                error_y={"type": "data", "array": err, "visible": True},
            )
        )
    fig.update_xaxes(title="iterate k", dtick=1)
    fig.update_yaxes(title=_QUANTITIES[quantity], type="log" if log else "linear")
    fig.update_layout(
        title=f"{_QUANTITIES[quantity]} along the unrolled path (mean ± s.e. over samples)",
        template=_TEMPLATE,
    )
    return fig


def pooled_density(res: Any, k: int, *, points: int = 400) -> dict[str, Any] | None:
    """The spectral density of H_k pooled over the samples of one result (``None`` if not computed).

    Each sample's quadrature nodes and weights (exact eigenvalues with weight 1/n when dense, SLQ Ritz
    values otherwise) are broadened together; ``negative_mass`` is the weight on negative eigenvalues.
    """
    dens = [s.density for s in res.at(k) if s.density is not None]
    if not dens:
        return None
    width = max(np.atleast_2d(d.nodes).shape[1] for d in dens)

    def pad(a: np.ndarray, fill: float) -> np.ndarray:
        a = np.atleast_2d(np.asarray(a, dtype=np.float64))
        return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=fill)

    nodes = np.concatenate([pad(d.nodes, np.nan) for d in dens])
    weights = np.concatenate([pad(d.weights, 0.0) for d in dens])
    grid, dens_v, sigma = broaden(nodes, weights, grid_points=points)
    neg = float(np.nansum(np.where(nodes < 0, weights, 0.0)) / len(nodes))
    return {
        "k": int(k),
        "grid": grid,
        "density": dens_v,
        "sigma": sigma,
        "negative_mass": neg,
        "method": dens[0].method,
        "n_samples": len(dens),
    }


@_finished
def density_figure(results: Sequence[tuple[str, Any, int]], *, floor: float = 1e-6):
    """Spectral densities of H_k on a log density axis, one line per ``(label, IterateCurvature, k)``.

    Values below ``floor`` × the peak are not drawn (gaps, not a flat floor), ticks are plain numbers,
    and the share of negative eigenvalues is given in the legend.
    """
    go = _go()
    fig = go.Figure()
    ks = set()
    for i, (lab, res, k) in enumerate(results):
        d = pooled_density(res, k)
        if d is None:
            continue
        dens = np.asarray(d["density"], dtype=np.float64)
        shown = np.where(dens >= floor * max(float(dens.max()), 1e-300), dens, np.nan)
        ks.add(k)
        fig.add_trace(
            go.Scatter(
                x=d["grid"],
                y=shown,
                mode="lines",
                connectgaps=False,
                line={"color": strategy_color(lab, i)},
                name=f"{lab} (k = {k}; {100 * d['negative_mass']:.1f}% of eigenvalues < 0)",
            )
        )
    fig.add_vline(x=0.0, line={"color": "#888", "dash": "dot"})
    fig.update_xaxes(title="eigenvalue of H_k", exponentformat="none")
    fig.update_yaxes(title="density", type="log", exponentformat="power")
    kk = ", ".join(str(k) for k in sorted(ks))
    fig.update_layout(
        title=f"Spectral density of H_k (k = {kk}); left of the dotted line: negative curvature",
        template=_TEMPLATE,
    )
    return fig


@_finished
def eigenvalue_ladder_figure(results: Labelled):
    """The top eigenvalues and λ_min of H_k as rungs at each iterate k, one colour per result."""
    go = _go()
    fig = go.Figure()
    n = max(len(results), 1)
    width = 0.7 / n
    for i, (lab, res) in enumerate(results):
        xs: list[float | None] = []
        ys: list[float | None] = []
        off = (i - (n - 1) / 2) * width
        for k in res.iterates:
            summ = res.summary(k)
            for name, sm in summ.items():
                if (
                    name == "lambda_max"
                    or name == "lambda_min"
                    or (name.startswith("lambda_") and name[7:].isdigit())
                ):
                    if math.isfinite(sm.mean):
                        xs += [k + off - 0.4 * width, k + off + 0.4 * width, None]
                        ys += [sm.mean, sm.mean, None]
        fig.add_trace(
            go.Scatter(x=xs, y=ys, mode="lines", name=lab, line={"color": strategy_color(lab, i), "width": 2})
        )
    fig.add_hline(y=0.0, line={"color": "#888", "dash": "dot"})
    fig.update_xaxes(title="iterate k", dtick=1)
    fig.update_yaxes(title="eigenvalue of H_k (mean over samples)")
    fig.update_layout(
        title="Eigenvalue ladders: the top eigenvalues and λ_min of H_k at each iterate", template=_TEMPLATE
    )
    return fig


# -------------------------------------------------------------------------------------------------
# curvature maps: diag(H_k) per coordinate
# -------------------------------------------------------------------------------------------------
def default_map_iterates(available: Sequence[int], n_iter: int) -> list[int]:
    """The iterates a curvature map shows by default: k = 1, ⌊K/2⌋ and K − 1, each replaced by the nearest of
    ``available`` (the iterates analysed with diagonals), without repeats, in order."""
    avail = sorted({int(k) for k in available})
    out: list[int] = []
    for t in (1, n_iter // 2, n_iter - 1):
        if avail:
            k = min(avail, key=lambda a: (abs(a - t), a))
            out += [k] if k not in out else []
    return sorted(out)


def _map_display(values: np.ndarray) -> tuple[np.ndarray, int]:
    """A diagonal shaped like the state -> what a map draws: the channel axis summed (the trace of each
    position's channel block, e.g. real + imaginary of an MRI pixel), leaving 1-D (a trace) or 2-D (an image);
    also the number of channels summed."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim >= 2:
        v, c = v.sum(0), v.shape[0]
    else:
        c = 1
    if v.ndim > 2:
        raise ValueError(
            f"a diagonal of shape {np.shape(values)}: expected a signal (C, n) or an image (C, H, W)"
        )
    return v, c


@_finished
def curvature_map_figure(results: Labelled, ks: Sequence[int] | None = None, *, sample: int | None = None):
    r"""Where in the signal the curvature sits: :math:`\operatorname{diag}(H_k)` per coordinate, one panel per
    iterate k for 1-D signals (a line per result, in its strategy's colour, so MSE and jittered overlay), one
    row per k and one heatmap per result side by side for 2-D signals (MRI images, seismic sections).

    ``results`` are ``(label, IterateCurvature)`` pairs analysed with ``diagonal=True``; ``ks`` the iterates
    (default :func:`default_map_iterates`); ``sample`` one sample's id, else the mean over the samples.  A
    multi-channel state shows the sum over its channels at each position (the trace of that position's
    channel block).  Lines carry a band of ± the total standard error (spread over samples and Monte-Carlo
    error in quadrature) where it is known; each row of images has one colour scale, centred on 0 (red up,
    blue down) when the row holds negative curvature.
    """
    results = [(lab, r) for lab, r in results if r.has_diagonal]
    if not results:
        raise ValueError("no diagonals to draw: analyse with diagonal=True (landscape analyze --diagonal)")
    ks = _map_iterates(results, ks)
    maps = {(i, k): r.diagonal_map(k, sample) for i, (_, r) in enumerate(results) for k in ks}
    shown = {key: _map_display(m["values"]) for key, m in maps.items()}
    nd = {v.ndim for v, _ in shown.values()}
    if len(nd) != 1:
        raise ValueError("curvature maps side by side must all be signals or all images")
    m0 = maps[(0, ks[0])]
    who = f"sample {sample}" if sample is not None else f"mean over {m0['n']} sample(s)"
    channels = shown[(0, ks[0])][1]
    summed = f", sum over the {channels} channels" if channels > 1 else ""
    if nd == {1}:
        fig = _signal_maps(_go(), results, ks, maps, shown)
        fig.update_layout(
            title=f"Curvature maps: diag(H_k) along the signal ({who}{summed})",
            template=_TEMPLATE,
            width=max(DEFAULT_SIZE[0], 340 * len(ks)),
            height=420,
        )
        return fig
    fig = _image_maps(_go(), results, ks, shown)
    fig.update_layout(
        title=f"Curvature maps: diag(H_k) per pixel ({who}{summed})",
        template=_TEMPLATE,
        width=max(480, 300 * len(results) + 140),
        height=280 * len(ks) + 100,
    )
    return fig


def _map_iterates(results: Labelled, ks: Sequence[int] | None) -> list[int]:
    """The iterates a curvature map draws: ``ks`` sorted without repeats, by default
    :func:`default_map_iterates` of those every result has a diagonal for (else the first result's)."""
    if ks is None:
        avail = set.intersection(*({s.k for s in r.samples if s.diagonal is not None} for _, r in results))
        ks = default_map_iterates(
            avail or {s.k for s in results[0][1].samples if s.diagonal is not None}, results[0][1].n_iter
        )
    ks = sorted({int(k) for k in ks})
    if not ks:
        raise ValueError("no iterates to draw: expected at least one k")
    return ks


def _signal_maps(go: Any, results: Labelled, ks: list[int], maps: dict, shown: dict):
    """Signals: one panel per iterate, a line per result (with its ± total standard error band)."""
    fig = _subplots(rows=1, cols=len(ks), subplot_titles=[f"k = {k}" for k in ks], horizontal_spacing=0.06)
    for i, (lab, _) in enumerate(results):
        col = strategy_color(lab, i)
        for j, k in enumerate(ks):
            v, c = shown[(i, k)]
            pos = np.arange(v.size)
            m = maps[(i, k)]
            err = np.sqrt(
                np.nan_to_num(np.asarray(m["stderr"])) ** 2 + np.asarray(m["mc_stderr"]) ** 2
            ).ravel()
            if c == 1 and np.isfinite(err).all() and float(err.max(initial=0.0)) > 0:
                fig.add_trace(
                    go.Scatter(
                        x=np.concatenate([pos, pos[::-1]]),
                        y=np.concatenate([v + err, (v - err)[::-1]]),
                        fill="toself",
                        fillcolor=col,
                        opacity=0.2,
                        line={"width": 0},
                        hoverinfo="skip",
                        showlegend=False,
                        legendgroup=lab,
                    ),
                    row=1,
                    col=j + 1,
                )
            fig.add_trace(
                go.Scatter(
                    x=pos,
                    y=v,
                    name=lab,
                    legendgroup=lab,
                    mode="lines",
                    showlegend=j == 0,
                    line={"color": col},
                ),
                row=1,
                col=j + 1,
            )
            fig.update_xaxes(title_text="position in the signal", row=1, col=j + 1)
    fig.update_yaxes(title_text="diag(H_k)", row=1, col=1)
    return fig


def _image_maps(go: Any, results: Labelled, ks: list[int], shown: dict):
    """Images: one row per iterate, one heatmap per result, one colour scale per row (centred on 0, red up
    and blue down, when the row holds negative curvature)."""
    rows, cols = len(ks), len(results)
    titles = [f"{lab}, k = {k}" for k in ks for lab, _ in results]
    fig = _subplots(
        rows=rows,
        cols=cols,
        subplot_titles=titles,
        horizontal_spacing=0.03,
        vertical_spacing=min(0.08, 0.3 / rows),
    )
    for j, k in enumerate(ks):
        vals = np.concatenate(
            [shown[(i, k)][0][np.isfinite(shown[(i, k)][0])].ravel() for i in range(cols)] + [np.zeros(0)]
        )
        lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
        axis = "coloraxis" if j == 0 else f"coloraxis{j + 1}"
        bar = {
            "title": {"text": f"k = {k}"},
            "len": 0.9 / rows,
            "y": 1 - (j + 0.5) / rows,
            "yanchor": "middle",
        }
        if lo < 0 < hi:
            m = max(-lo, hi)
            fig.update_layout({axis: {"colorscale": "RdBu_r", "cmin": -m, "cmax": m, "colorbar": bar}})
        else:
            fig.update_layout({axis: {"colorscale": "Viridis", "cmin": lo, "cmax": hi, "colorbar": bar}})
        for i, (lab, _) in enumerate(results):
            fig.add_trace(
                go.Heatmap(z=shown[(i, k)][0], coloraxis=axis, name=f"{lab}, k = {k}"), row=j + 1, col=i + 1
            )
            n = j * cols + i + 1
            fig.update_yaxes(
                autorange="reversed",
                scaleanchor=f"x{n if n > 1 else ''}",
                showticklabels=False,
                row=j + 1,
                col=i + 1,
            )
            fig.update_xaxes(showticklabels=False, row=j + 1, col=i + 1)
    return fig


@_finished
def quadratic_model_figure(lines: Sequence[tuple[str, dict[str, Any]]]):
    r"""1-D slices along the top Hessian eigenvector v with the local quadratic model drawn over them.

    Each ``(label, line)`` is a 1-D slice record with ``quadratic = {"value", "slope", "curvature"}``:
    :math:`q(\alpha) = L + \alpha\,\nabla L\cdot v + \tfrac12\alpha^2\lambda_{max}` (solid: measured,
    dashed: model).  Where the two part, the Hessian no longer describes the loss.
    """
    go = _go()
    fig = go.Figure()
    for i, (lab, line) in enumerate(lines):
        _check_slice(line)
        a = from_json_array(line["coords"][0])
        fig.add_trace(
            go.Scatter(
                x=a,
                y=from_json_array(line["values"]),
                mode="lines",
                name=f"{lab}: L_k(x_k + α v)",
                line={"color": strategy_color(lab, i)},
            )
        )
        q = line.get("quadratic")
        if q:
            model = q["value"] + a * q["slope"] + 0.5 * a**2 * q["curvature"]
            fig.add_trace(
                go.Scatter(
                    x=a,
                    y=model,
                    mode="lines",
                    name=f"{lab}: quadratic model",
                    line={"color": strategy_color(lab, i), "dash": "dash"},
                )
            )
    fig.update_xaxes(title="α (unit top eigenvector v of H_k)")
    fig.update_yaxes(title="loss L_k")
    fig.update_layout(
        title="Along the top eigenvector: measured loss and its quadratic model", template=_TEMPLATE
    )
    return fig


@_finished
def penalty_figure(entries: Sequence[dict[str, Any]]):
    """The expansion's penalty ½ η_k² s_k² tr H_{k+1} along k, one line per checkpoint (mean ± s.e. over samples)."""
    go = _go()
    fig = go.Figure()
    rule = None
    for i, (e, lab) in enumerate(zip(entries, _labels(entries), strict=False)):
        p = e.get("penalty")
        if not p:
            continue
        rule = p.get("rule")
        fig.add_trace(
            go.Scatter(
                x=p["k"],
                y=p["mean"],
                mode="lines+markers",
                line={"color": strategy_color(lab, i)},
                name=f"{lab} (sum {p['total']:.3g})",
                error_y={
                    "type": "data",
                    "array": np.nan_to_num(from_json_array(p["stderr"])),
                    "visible": True,
                },
            )
        )
    fig.update_xaxes(title="step k (noise injected into x_{k+1})", dtick=1)
    fig.update_yaxes(title="½ η_k² s_k² tr H_{k+1}", type="log", exponentformat="power")
    r = f" under {rule.get('mode')} noise, σ = {rule.get('sigma')}" if rule else ""
    fig.update_layout(
        title=f"The penalty the small-noise expansion predicts, per step{r}", template=_TEMPLATE
    )
    return fig


@_finished
def expansion_check_figure(rows: Sequence[dict[str, Any]]):
    """Monte-Carlo excess ÷ the expansion's prediction against σ, one line per noise rule.

    ``rows`` are :func:`landscape.claims.penalty_check` rows (``mode``, ``sigma``, ``ratio`` =
    ``{"estimate", "low", "high"}``); the second-order expansion predicts a ratio that tends to 1 as σ → 0,
    exactly 1 for an affine network.
    """
    go = _go()
    fig = go.Figure()
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    for i, mode in enumerate(modes):
        rs = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["sigma"])
        est = np.array([r["ratio"]["estimate"] for r in rs], dtype=float)
        lo = np.array([r["ratio"]["low"] for r in rs], dtype=float)
        hi = np.array([r["ratio"]["high"] for r in rs], dtype=float)
        fig.add_trace(
            go.Scatter(
                x=[r["sigma"] for r in rs],
                y=est,
                mode="lines+markers",
                name=mode,
                line={"color": _color(i)},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": np.nan_to_num(hi - est),
                    "arrayminus": np.nan_to_num(est - lo),
                    "visible": True,
                },
            )
        )
    fig.add_hline(y=1.0, line={"color": "black", "width": 1, "dash": "dot"})
    fig.update_xaxes(title="σ (in each rule's own units)", type="log")
    fig.update_yaxes(title="MC excess ÷ ½ Σ η_k² s_k² tr H_{k+1}")
    fig.update_layout(
        title="The small-noise expansion against Monte Carlo (interval: MC and trace error)",
        template=_TEMPLATE,
    )
    return fig


@_finished
def paired_ratio_figure(comparisons: Sequence[tuple[str, str, Sequence[Any]]]):
    """Paired ratios b/a along the path with their intervals, one line per ``(label, quantity, [PairedComparison])``.

    Error bars are the paired Fieller interval over the test samples.  The y axis is logarithmic (centred
    on 1, no change) only when every drawn interval lies above 0; an interval that reaches 0 or is unbounded
    (the reference mean may be 0) makes it linear, and an unbounded one is drawn without a bar and named in
    the hover text.
    """
    go = _go()
    fig = go.Figure()
    log = True
    for i, (lab, name, comps) in enumerate(comparisons):
        comps = [c for c in comps if math.isfinite(c.ratio)]
        if not comps:
            continue
        ks = [c.k for c in comps]
        r = np.asarray([c.ratio for c in comps])
        rlo = np.asarray([c.ratio_lo for c in comps], dtype=float)
        rhi = np.asarray([c.ratio_hi for c in comps], dtype=float)
        ok = np.isfinite(rlo) & np.isfinite(rhi)
        log = log and bool(np.all(ok & (rlo > 0))) and bool(np.all(r > 0))
        hi = np.where(ok, rhi - r, 0.0)
        lo = np.where(ok, r - rlo, 0.0)
        fig.add_trace(
            go.Scatter(
                x=ks,
                y=r,
                mode="lines+markers",
                name=f"{lab}: {_QUANTITIES.get(name, name)}",
                line={"color": strategy_color(lab, i // 2), "dash": "solid" if name == "trace" else "dash"},
                error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo},
                hovertext=[
                    f"[{a:.3g}, {b:.3g}]" if o else "interval unbounded" for a, b, o in zip(rlo, rhi, ok)
                ],
            )
        )
    fig.add_hline(y=1.0, line={"color": "#888", "dash": "dot"})
    fig.update_xaxes(title="iterate k", dtick=1)
    fig.update_yaxes(
        title="ratio to the reference checkpoint (paired)",
        type="log" if log else "linear",
        exponentformat="none",
    )
    fig.update_layout(
        title="Curvature relative to the first checkpoint, per iterate (95% paired interval over samples)",
        template=_TEMPLATE,
    )
    return fig


# -------------------------------------------------------------------------------------------------
# experiments (landscape.experiment): sweeps and curvature over training
# -------------------------------------------------------------------------------------------------
def _half(t: dict[str, Any] | None) -> float:
    h = from_json_float((t or {}).get("half", math.nan))
    return h if math.isfinite(h) else 0.0


@_finished
def sweep_figure(rows: Sequence[dict[str, Any]], *, x: str = "sigma", x_title: str = "σ"):
    """ID, OOD and attacked PSNR (left) and Σ tr H_k (right) against a swept setting, from the rows of
    :func:`landscape.experiment.build_tables` (each ``{x, id, ood, pgd, sum_trace}`` with seed-level
    t-intervals): the accuracy / robustness / flatness trade-off along the sweep."""
    go = _go()
    fig = _subplots(rows=1, cols=2, subplot_titles=("PSNR (dB)", "Σ_{k=1}^{K−1} tr H_k"))
    xs = [float(r[x]) for r in rows]
    for i, (key, name) in enumerate((("id", "ID"), ("ood", "OOD (mean over shifts)"), ("pgd", "PGD"))):
        ts = [r.get(key) for r in rows]
        if not any(ts):
            continue
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[(t or {}).get("mean") for t in ts],
                mode="lines+markers",
                name=name,
                line={"color": _color(i)},
                error_y={"type": "data", "array": [_half(t) for t in ts], "visible": True},
            ),
            row=1,
            col=1,
        )
    ts = [r.get("sum_trace") for r in rows]
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=[(t or {}).get("mean") for t in ts],
            mode="lines+markers",
            name="Σ tr H_k",
            line={"color": _color(3)},
            error_y={"type": "data", "array": [_half(t) for t in ts], "visible": True},
        ),
        row=1,
        col=2,
    )
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(type="log", exponentformat="power", row=1, col=2)
    fig.update_layout(
        title=f"Accuracy, robustness and flatness against {x_title} "
        "(mean over seeds ± 95 % t-interval over seeds)",
        template=_TEMPLATE,
    )
    return fig


@_finished
def over_training_figure(series: dict[str, Sequence[dict[str, Any]]]):
    """Σ tr H_k (left) and λ_max(H_1) (right) of the snapshots against epoch, one line per strategy and seed
    (``{label: [{"seed", "points": [{"epoch", "sum_trace", "lambda_max_1"}]}]}``)."""
    go = _go()
    fig = _subplots(rows=1, cols=2, subplot_titles=("Σ_{k=1}^{K−1} tr H_k", "λ_max(H_1)"))
    for i, (label, runs) in enumerate(series.items()):
        for j, run in enumerate(runs):
            pts = sorted(run["points"], key=lambda p: p["epoch"])
            ep = [p["epoch"] for p in pts]
            for col, key in ((1, "sum_trace"), (2, "lambda_max_1")):
                fig.add_trace(
                    go.Scatter(
                        x=ep,
                        y=[p.get(key) for p in pts],
                        mode="lines+markers",
                        name=f"{label}, {run.get('name') or 'seed ' + str(run['seed'])}",
                        legendgroup=label,
                        showlegend=(col == 1),
                        line={"color": strategy_color(label, i), "dash": ("solid", "dash", "dot")[j % 3]},
                    ),
                    row=1,
                    col=col,
                )
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_layout(
        title="Curvature over training (snapshots; exact dense Hessians, mean over test samples)",
        template=_TEMPLATE,
    )
    return fig


# -------------------------------------------------------------------------------------------------
# evaluation
# -------------------------------------------------------------------------------------------------
@_finished
def robustness_figure(entries: Sequence[dict[str, Any]]):
    """PSNR against the attack radius ε (ℓ2 PGD on the measurement), mean ± s.e. over samples."""
    go = _go()
    fig = go.Figure()
    for i, (e, lab) in enumerate(zip(entries, _labels(entries), strict=False)):
        r = e.get("robustness")
        if not r:
            continue
        eps = from_json_array(r["eps"])
        p = r["psnr"]
        mean = from_json_array(p["mean"] if isinstance(p, dict) else p)
        err = (
            from_json_array(p.get("stderr", [0.0] * len(mean)))
            if isinstance(p, dict)
            else np.zeros_like(mean)
        )
        fig.add_trace(
            go.Scatter(
                x=eps,
                y=mean,
                mode="lines+markers",
                name=lab,
                line={"color": strategy_color(lab, i)},
                error_y={"type": "data", "array": np.nan_to_num(err), "visible": True},
            )
        )
    fig.update_xaxes(title="attack radius ε, relative to ‖y‖ (ℓ2 PGD on the measurement)")
    fig.update_yaxes(title="PSNR (dB)")
    fig.update_layout(title="Robustness: PSNR under ℓ2 PGD attack", template=_TEMPLATE)
    return fig


@_finished
def reconstruction_figure(entries: Sequence[dict[str, Any]]):
    """Reconstructions of one test sample and their error maps, one row (images) or panel (signals) each."""
    go = _go()
    pairs = zip(entries, _labels(entries), strict=True)
    recs = [(lab, e["reconstruction"]) for e, lab in pairs if e.get("reconstruction")]
    if not recs:
        raise ValueError("no reconstruction records to show")
    if recs[0][1].get("display", "signal") == "signal":
        return _signal_reconstructions(go, recs)
    return _image_reconstructions(go, recs)


def _signal_reconstructions(go: Any, recs: Sequence[tuple[str, dict[str, Any]]]):
    """Signals: the truth (and x_0 when recorded) with every reconstruction on top, their errors below."""
    fig = _subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("signal", "error x̂ − x*"),
    )
    x_true = from_json_array(recs[0][1]["x_true"]).ravel()
    t = np.arange(len(x_true))
    fig.add_trace(
        go.Scatter(x=t, y=x_true, mode="lines", name="truth x*", line={"color": "black", "width": 2}),
        row=1,
        col=1,
    )
    if recs[0][1].get("x_init") is not None:
        fig.add_trace(
            go.Scatter(
                x=t,
                y=from_json_array(recs[0][1]["x_init"]).ravel(),
                mode="lines",
                name="x_0 = Aᵀy",
                line={"color": "grey", "dash": "dot"},
            ),
            row=1,
            col=1,
        )
    for i, (lab, r) in enumerate(recs):
        xh = from_json_array(r["x_hat"]).ravel()
        psnr = r.get("psnr")
        name = f"{lab} ({psnr:.2f} dB)" if isinstance(psnr, (int, float)) else lab
        fig.add_trace(
            go.Scatter(x=t, y=xh, mode="lines", name=name, line={"color": strategy_color(lab, i)}),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=t,
                y=xh - from_json_array(r["x_true"]).ravel(),
                mode="lines",
                showlegend=False,
                line={"color": strategy_color(lab, i)},
            ),
            row=2,
            col=1,
        )
    fig.update_xaxes(title_text="position in the signal", row=2, col=1)
    fig.update_layout(title="Reconstructions of one test sample", template=_TEMPLATE, height=560)
    return fig


def _image_reconstructions(go: Any, recs: Sequence[tuple[str, dict[str, Any]]]):
    """Images: truth | reconstruction | |error| per checkpoint, one shared grey scale and one error scale."""
    n = len(recs)
    titles = []
    for lab, r in recs:
        psnr = r.get("psnr")
        titles += [
            "truth",
            f"{lab}" + (f" ({psnr:.2f} dB)" if isinstance(psnr, (int, float)) else ""),
            f"|error| {lab}",
        ]
    fig = _subplots(rows=n, cols=3, subplot_titles=titles, horizontal_spacing=0.04, vertical_spacing=0.08)
    errs = [np.abs(from_json_array(r["x_hat"]) - from_json_array(r["x_true"])) for _, r in recs]
    emax = float(max(np.nanmax(e) for e in errs)) if errs else 1.0
    lo = min(float(np.nanmin(from_json_array(r["x_true"]))) for _, r in recs)
    hi = max(float(np.nanmax(from_json_array(r["x_true"]))) for _, r in recs)
    for i, ((_, r), err) in enumerate(zip(recs, errs, strict=False)):
        for j, (img, cs, zr) in enumerate(
            (
                (from_json_array(r["x_true"]), "Gray", (lo, hi)),
                (from_json_array(r["x_hat"]), "Gray", (lo, hi)),
                (err, "Inferno", (0.0, emax)),
            )
        ):
            fig.add_trace(
                go.Heatmap(
                    z=img,
                    colorscale=cs,
                    zmin=zr[0],
                    zmax=zr[1],
                    showscale=(i == 0 and j != 0),
                    colorbar={"x": 1.02 if j == 2 else 0.64, "len": 0.4},
                ),
                row=i + 1,
                col=j + 1,
            )
            fig.update_yaxes(
                autorange="reversed",
                scaleanchor=f"x{3 * i + j + 1 if 3 * i + j else ''}",
                showticklabels=False,
                row=i + 1,
                col=j + 1,
            )
            fig.update_xaxes(showticklabels=False, row=i + 1, col=j + 1)
    fig.update_layout(
        title="Reconstructions of one test sample and error maps",
        template=_TEMPLATE,
        height=300 * n + 80,
        width=900,
    )
    return fig
