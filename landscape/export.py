r"""Figures to files: HTML always, vector PDF/SVG (and PNG) through kaleido, an optional extra.

* :func:`save` writes one figure, the format from the suffix (``.html``, ``.pdf``, ``.svg``, ``.png``).
* :func:`render` turns several figures into bytes with one browser session; :func:`save_group` writes
  them so that they appear together or not at all (:func:`landscape.io.write_group`).
* :func:`figure_div` is the one way a figure enters an HTML page (the report, ``landscape claims``' page,
  ``.html`` exports): its data go into a ``<script>`` as JSON in which ``<``, ``>``, ``&``, ``/`` and the
  JavaScript line separators are ``\uXXXX`` escapes, so no string from a result file (a label, a claim's
  verdict, ``</script>`` or ``<!--``) can end the script or start markup, whatever plotly version serialises it.
* :func:`check_static_export` says in one line what is missing (the ``kaleido`` package, or the
  Chrome/Chromium it drives) and how to get it; it raises :class:`ExportUnavailable`, which the CLI prints
  as one line with exit code 2.

kaleido (``pip install 'landscape[export]'``, i.e. ``kaleido>=1``) drives a headless Chrome or Chromium.
It finds one on ``PATH`` (``chromium``, ``chromium-browser``, ``google-chrome``, ...), at the path in the
environment variable ``BROWSER_PATH``, or the copy that ``plotly_get_chrome`` (or ``kaleido_get_chrome``)
downloads. On Debian/Ubuntu ``apt install chromium`` is enough.

2-D figures (lines, contours, heatmaps) come out as vector paths; 3-D surfaces are drawn by WebGL and are
embedded as a raster inside the PDF/SVG (no vector form exists for them).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from landscape.errors import MissingDependency, check
from landscape.io import atomic_write, write_group

__all__ = [
    "FORMATS",
    "STATIC_FORMATS",
    "ExportUnavailable",
    "check_static_export",
    "check_formats",
    "static_export_available",
    "find_browser",
    "render",
    "figure_bytes",
    "figure_div",
    "figure_page",
    "script_json",
    "save",
    "save_group",
    "settings_tag",
]

FORMATS = ("html", "pdf", "svg", "png")
STATIC_FORMATS = ("pdf", "svg", "png")
#: Size of a static figure when its layout sets none: a two-column-wide figure of a paper, 7 × 4.25 in at
#: 96 px/in (672 × 408 px, i.e. 504 × 306 pt in a PDF or SVG, which scale without loss).  A figure that sets
#: its own ``layout.width``/``height`` keeps them; ``width=``/``height=`` of :func:`save`/:func:`render` win.
DEFAULT_SIZE = (672, 408)

KALEIDO_HINT = "pip install 'landscape[export]' (or pip install 'kaleido>=1')"
BROWSER_HINT = (
    "install Chrome or Chromium (e.g. apt install chromium), set BROWSER_PATH to its executable, "
    "or run plotly_get_chrome to download one"
)


class ExportUnavailable(MissingDependency):
    """Static export cannot run here: kaleido or its browser is missing (the message says which and how)."""


def _kaleido_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("kaleido")
    except metadata.PackageNotFoundError:
        return None


def find_browser() -> str | None:
    """The Chrome/Chromium kaleido would start: ``BROWSER_PATH``, a name on ``PATH`` or choreographer's
    downloaded copy; ``None`` when there is none."""
    env = os.environ.get("BROWSER_PATH", "").strip()
    if env:
        return env if os.path.isfile(env) and os.access(env, os.X_OK) else None
    try:
        from choreographer.browsers.chromium import Chromium

        return Chromium.find_browser(skip_local=False)
    except Exception:  # noqa: BLE001 - an unknown choreographer layout: look on PATH ourselves
        import shutil

        for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
            if shutil.which(name):
                return shutil.which(name)
        return None


def check_static_export(fmt: str = "pdf") -> str:
    """Return the browser path, or raise :class:`ExportUnavailable` naming what is missing and how to get it."""
    try:
        import kaleido  # noqa: F401
    except ImportError as exc:
        if _kaleido_version() is None or isinstance(exc, ModuleNotFoundError):
            raise ExportUnavailable(
                f"{fmt.upper()} export needs the kaleido package, which is not installed: {KALEIDO_HINT}"
            ) from None
        raise ExportUnavailable(
            f"{fmt.upper()} export needs kaleido, which fails to import ({exc}): {KALEIDO_HINT}"
        ) from None
    version = _kaleido_version() or "0"
    if int(re.match(r"\d*", version).group() or 0) < 1:  # type: ignore[union-attr]
        raise ExportUnavailable(
            f"{fmt.upper()} export needs kaleido>=1, found kaleido {version}: {KALEIDO_HINT}"
        )
    browser = find_browser()
    if browser is None:
        where = os.environ.get("BROWSER_PATH", "").strip()
        what = f"BROWSER_PATH={where!r} is not an executable" if where else "no Chrome or Chromium was found"
        raise ExportUnavailable(
            f"{fmt.upper()} export needs a Chrome or Chromium for kaleido and {what}: {BROWSER_HINT}"
        )
    return browser


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """``formats`` without repeats, after checking each is known and, for PDF/SVG/PNG, that kaleido and its
    browser are there (:class:`ExportUnavailable`, one line): a command calls this before any work."""
    formats = tuple(dict.fromkeys(formats))
    bad = [f for f in formats if f not in FORMATS]
    check(not bad, f"export={formats!r}: expected formats among {', '.join(FORMATS)}")
    for fmt in formats:
        if fmt in STATIC_FORMATS:
            check_static_export(fmt)
    return formats


def static_export_available() -> bool:
    """Whether :func:`check_static_export` passes (kaleido>=1 and a browser)."""
    try:
        check_static_export()
    except ExportUnavailable:
        return False
    return True


def _format_of(path: Path) -> str:
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(
            f"{path}: unknown figure format {path.suffix!r}: expected one of "
            f"{', '.join('.' + f for f in FORMATS)}"
        )
    return fmt


def _size(fig: Any, width: int | None, height: int | None) -> tuple[int, int]:
    lay = fig.layout
    return int(width or lay.width or DEFAULT_SIZE[0]), int(height or lay.height or DEFAULT_SIZE[1])


@contextlib.contextmanager
def _session():
    """One browser for a batch of figures: kaleido's sync server, started here unless already running."""
    import kaleido

    server = getattr(kaleido, "_global_server", None)
    started = False
    if server is not None and not server.is_running():
        kaleido.start_sync_server(silence_warnings=True)
        started = True
    try:
        yield kaleido
    finally:
        if started:
            kaleido.stop_sync_server(silence_warnings=True)


def _browser_error(exc: BaseException) -> ExportUnavailable | None:
    names = {c.__name__ for c in type(exc).__mro__}
    if names & {"ChromeNotFoundError"}:
        return ExportUnavailable(f"kaleido found no Chrome or Chromium: {BROWSER_HINT}")
    if names & {"BrowserFailedError", "BrowserDepsError", "BrowserClosedError", "ChannelClosedError"}:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        return ExportUnavailable(
            f"the browser kaleido started ({find_browser()}) failed: {first[:160]}; {BROWSER_HINT}"
        )
    return None


_SCRIPT_UNSAFE = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "/": "\\u002f",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_SCRIPT_UNSAFE_RE = re.compile("[<>&/\u2028\u2029]")


def script_json(text: str) -> str:
    r"""JSON text made safe inside an HTML ``<script>``: ``<``, ``>``, ``&``, ``/``, U+2028 and U+2029 become
    ``\uXXXX`` escapes.  Outside strings JSON holds none of these characters, so the value is unchanged;
    inside strings the browser reads the same characters, but ``</script>`` and ``<!--`` can no longer appear.

    >>> script_json('{"name": "</script><!--"}')
    '{"name": "\\u003c\\u002fscript\\u003e\\u003c!--"}'
    """
    return _SCRIPT_UNSAFE_RE.sub(lambda m: _SCRIPT_UNSAFE[m.group(0)], text)


def _css_size(value: Any, default: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return f"{float(value):g}px"
    return default


def figure_div(fig: Any, div_id: str, *, config: Mapping[str, Any] | None = None) -> str:
    """``fig`` as an HTML fragment: a ``plotly-graph-div`` and the ``<script>`` that draws it with
    ``Plotly.newPlot`` (plotly.js itself is not included: the page embeds it once).

    The figure's data and layout are serialised by plotly's own encoder, then passed through
    :func:`script_json`, so strings from result files cannot break out of the script.  ``div_id`` must be
    a plain identifier (letters, digits, ``-``, ``_``).
    """
    import json

    from plotly.io.json import to_json_plotly

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", str(div_id)):
        raise ValueError(f"div_id {div_id!r}: expected letters, digits, '-' or '_', starting with a letter")
    d = fig.to_dict()
    layout = d.get("layout", {})
    tlayout = (layout.get("template") or {}).get("layout", {})
    height = _css_size(layout.get("height", tlayout.get("height")), "100%")
    width = _css_size(layout.get("width", tlayout.get("width")), "100%")
    data = script_json(to_json_plotly(d.get("data", [])))
    lay = script_json(to_json_plotly(layout))
    conf = script_json(
        json.dumps(dict(config if config is not None else {"displaylogo": False, "responsive": True}))
    )
    return (
        f'<div><div id="{div_id}" class="plotly-graph-div" style="height:{height}; width:{width};"></div>'
        f'<script type="text/javascript">window.PLOTLYENV=window.PLOTLYENV || {{}};'
        f'if (document.getElementById("{div_id}")) {{Plotly.newPlot("{div_id}", {data}, {lay}, {conf})}};'
        "</script></div>"
    )


def figure_page(fig: Any, *, title: str = "landscape figure") -> str:
    """A self-contained HTML page of one figure: plotly.js embedded, the figure through :func:`figure_div`."""
    import html

    import plotly.offline

    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>\n</head>\n<body>\n'
        f"{figure_div(fig, 'figure')}\n</body>\n</html>\n"
    )


def render(
    figs: Sequence[Any], fmt: str, *, width: int | None = None, height: int | None = None, scale: float = 1.0
) -> list[bytes]:
    """The figures as ``fmt`` bytes (``html``, ``pdf``, ``svg``, ``png``), static ones with one browser session.

    Raises :class:`ExportUnavailable` (one line) when a static format cannot be made here.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "html":
        return [figure_page(f).encode("utf-8") for f in figs]
    check_static_export(fmt)
    out = []
    try:
        with _session() as kaleido:
            for f in figs:
                w, h = _size(f, width, height)
                out.append(
                    kaleido.calc_fig_sync(f, opts={"format": fmt, "width": w, "height": h, "scale": scale})
                )
    except Exception as exc:
        err = _browser_error(exc)
        if err is None:
            raise
        raise err from None
    return [bytes(b) for b in out]


def figure_bytes(fig: Any, fmt: str, **kw: Any) -> bytes:
    """One figure as ``fmt`` bytes (see :func:`render`)."""
    return render([fig], fmt, **kw)[0]


def save(
    fig: Any,
    path: str | os.PathLike,
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float = 1.0,
) -> Path:
    """Write ``fig`` to ``path``, the format from its suffix: ``.html`` (self-contained, offline) always,
    ``.pdf``/``.svg``/``.png`` through kaleido.  Written atomically: a failure leaves no file behind.

    Example:
        >>> import plotly.graph_objects as go, tempfile, pathlib
        >>> p = save(go.Figure(go.Scatter(y=[1, 3, 2])), pathlib.Path(tempfile.mkdtemp()) / "line.html")
        >>> p.read_text().count("<script") > 0
        True
    """
    p = Path(path)
    data = figure_bytes(fig, _format_of(p), width=width, height=height, scale=scale)
    return atomic_write(p, lambda fh: fh.write(data))


def save_group(
    figs: Mapping[str, Any],
    folder: str | os.PathLike,
    formats: Sequence[str],
    *,
    extra: Mapping[str | os.PathLike, bytes | str] | None = None,
    scale: float = 1.0,
) -> list[Path]:
    """Write every figure in every format to ``folder/NAME.FMT``, together with ``extra`` files, so that all
    of them appear together or none does (everything is rendered before the first file is written)."""
    folder = Path(folder)
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
        if fmt in STATIC_FORMATS:
            check_static_export(fmt)
    names = list(figs)
    files: dict[Any, bytes | str] = dict(extra or {})
    for fmt in formats:
        for name, data in zip(names, render([figs[n] for n in names], fmt, scale=scale)):
            files[folder / f"{name}.{fmt}"] = data
    folder.mkdir(parents=True, exist_ok=True)
    return write_group(files)


def _slug(v: Any) -> str:
    s = re.sub(r"[^A-Za-z0-9.+-]+", "-", str(v)).strip("-")
    return s or "none"


def settings_tag(settings: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> str:
    """A file-name fragment carrying settings, in the given order, ``None`` values left out:
    ``[("", "denoise"), ("n", 16), ("k", "0-10")]`` (or a dict) -> ``denoise_n16_k0-10``.

    Example:
        >>> settings_tag({"n": 16, "k": "0-10", "span": 0.5, "skip": None})
        'n16_k0-10_span0.5'
    """
    items = settings.items() if isinstance(settings, Mapping) else settings
    return "_".join(f"{k}{_slug(v)}" for k, v in items if v is not None)
