"""Figures in notebooks: interactive in JupyterLab, and a static copy in the saved output.

``setup()`` (the first cell of every notebook) registers a plotly renderer whose output carries the
interactive figure (``application/vnd.plotly.v1+json``, which JupyterLab, VS Code and nteract draw) and a
static PNG made by kaleido (``image/png``, which an HTML export, nbviewer and a code host's notebook view
show, since they do not run plotly's JavaScript).  Without kaleido or its browser the output keeps the
interactive figure and says, in its text, that no static copy was embedded and why; ``setup()`` says so
once.  ``show(fig, name)`` also saves the figure as a self-contained HTML file in the notebook's output
folder.

Environment: ``FAST=1`` asks every notebook for its small settings (:func:`fast`);
``LANDSCAPE_STATIC=0`` leaves the static copy out (``1`` requires it, ``auto``, the default, uses it when
kaleido and a browser are there).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landscape.export import ExportUnavailable, check_static_export, figure_bytes, save

__all__ = ["fast", "setup", "show", "NotebookSetup", "RENDERER"]

RENDERER = "landscape"

_STATE: dict[str, Any] = {"setup": None}


def fast() -> bool:
    """Whether the environment asks for small, seconds-long settings (``FAST=1``, as the tests run)."""
    return os.environ.get("FAST", "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class NotebookSetup:
    """What :func:`setup` decided: where figures are saved and whether a static copy is embedded."""

    out_dir: Path
    static: bool
    reason: str
    fast: bool


def _title(fig_dict: dict[str, Any]) -> str:
    t = (fig_dict.get("layout") or {}).get("title")
    if isinstance(t, dict):
        t = t.get("text")
    return str(t) if t else "figure"


def _make_renderer(static: bool, reason: str):
    from plotly.io._base_renderers import MimetypeRenderer, PlotlyRenderer

    class _Renderer(MimetypeRenderer):
        """plotly JSON + a PNG made by kaleido (or a note saying why there is none)."""

        def to_mimebundle(self, fig_dict: dict[str, Any]) -> dict[str, Any]:
            import plotly.graph_objects as go

            bundle = PlotlyRenderer(config={"displaylogo": False}).to_mimebundle(dict(fig_dict))
            title = _title(fig_dict)
            if static:
                png = figure_bytes(go.Figure(fig_dict), "png")
                bundle["image/png"] = base64.b64encode(png).decode("ascii")
                bundle["text/plain"] = f"<plotly figure: {title}; static PNG copy embedded>"
            else:
                bundle["text/plain"] = f"<interactive plotly figure: {title}; no static copy ({reason})>"
                bundle["text/html"] = (
                    f"<p><em>Interactive figure “{title}”: open the notebook in JupyterLab to "
                    f"see it; no static copy was embedded ({reason}).</em></p>"
                )
            return bundle

    return _Renderer()


def setup(
    name: str | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    static: str | bool | None = None,
    quiet: bool = False,
) -> NotebookSetup:
    """Make plotly figures display with a static fallback and choose the folder figures are saved to.

    Args:
        name: the notebook's name (figures go to ``runs/notebooks/NAME/`` below the working folder).
        out_dir: the folder instead (created when the first figure is saved).
        static: ``True`` (a static copy is required: fail if kaleido or its browser is missing), ``False``,
            or ``"auto"`` (default; the environment variable ``LANDSCAPE_STATIC`` overrides it).
        quiet: print nothing (otherwise one line says what was decided).
    """
    import plotly.io as pio

    mode = static if static is not None else os.environ.get("LANDSCAPE_STATIC", "auto").strip().lower()
    mode = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}.get(mode, mode)
    if mode not in (True, False, "auto"):
        raise ValueError(f"static={static!r} (LANDSCAPE_STATIC): expected 1, 0 or auto")
    use, reason = False, "LANDSCAPE_STATIC=0"
    if mode is not False:
        try:
            check_static_export("png")
            use, reason = True, "kaleido"
        except ExportUnavailable as exc:
            if mode is True:
                raise
            reason = str(exc)
    if use:
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)  # one browser for the whole notebook
    pio.renderers[RENDERER] = _make_renderer(use, reason)
    pio.renderers.default = RENDERER
    folder = Path(out_dir) if out_dir is not None else Path("runs") / "notebooks" / (name or "notebook")
    st = NotebookSetup(out_dir=folder, static=use, reason=reason, fast=fast())
    _STATE["setup"] = st
    if not quiet:
        how = "with a static PNG copy (kaleido)" if use else f"interactive only, no static copy: {reason}"
        print(f"figures: {how}; saved as HTML to {folder}/; FAST={'1' if st.fast else '0'}")
    return st


def show(fig: Any, name: str | None = None) -> Any:
    """Save ``fig`` as ``OUT/NAME.html`` (when ``name`` is given) and return it, so the cell displays it."""
    st = _STATE["setup"]
    if name is not None:
        folder = st.out_dir if st is not None else Path("runs") / "notebooks" / "notebook"
        save(fig, folder / f"{name}.html")
    return fig
