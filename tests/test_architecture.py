"""The package's dependency graph, read from the source (ast), in the layers docs/CONTRACTS.md lists.

* the package's own imports sit at the top of each module: no function may import a ``landscape`` module
  (only heavy third-party libraries load lazily; ruff's TID253 lists them);
* no import cycle among modules (importing ``a.b.c`` imports the packages ``a.b`` and ``a`` too);
* every module belongs to one layer of :data:`LAYERS` and imports only from its own layer or lower ones;
* no function is over :data:`MAX_FUNCTION_LINES` lines unless a ``# long: <reason>`` comment stands on the line
  directly above it.

The graph is built from the files, not from ``sys.modules``, so a lazy import or an import hidden in a
function cannot escape it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "landscape"

#: Lowest first. A module's layer is that of the longest prefix listed (``landscape.data`` covers its
#: submodules).  Layers name what their modules are about; docs/CONTRACTS.md ("Layers") describes each.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "landscape",
            "landscape.errors",
            "landscape.io",
            "landscape.defaults",
            "landscape.progress",
            "landscape.executor",
            "landscape.stats",
            "landscape.export",
            "landscape.solver",
            "landscape.curvature",
            "landscape.curvature.results",
            "landscape.seeding",
            "landscape.curvature.settings",
            "landscape.curvature.broadening",
            "landscape.examples",
            "landscape.presets",
        ),
    ),
    (
        "physics and data",
        (
            "landscape.physics",
            "landscape.jitter",
            "landscape.metrics",
            "landscape.attacks",
            "landscape.baselines",
            "landscape.data",
        ),
    ),
    (
        "models and curvature",
        (
            "landscape.taylor",
            "landscape.models",
            "landscape.penalty",
            "landscape.strategies",
            "landscape.curvature.backends",
            "landscape.curvature.operators",
            "landscape.curvature.eigen",
            "landscape.curvature.trace",
            "landscape.curvature.diagonal",
            "landscape.curvature.density",
            "landscape.curvature.chain",
            "landscape.curvature.analysis",
            "landscape.curvature.slices",
            "landscape.adapters",
        ),
    ),
    (
        "runs",
        (
            "landscape.config",
            "landscape.checkpoint",
            "landscape.train",
            "landscape.distributed",
            "landscape.evaluate",
            "landscape.examples.regenerate",
        ),
    ),
    ("studies", ("landscape.claims", "landscape.compare", "landscape.records")),
    (
        "pages",
        (
            "landscape.viz",
            "landscape.viz.figures",
            "landscape.viz.page",
            "landscape.viz.notebook",
            "landscape.viz.claims_report",
            "landscape.viz.report",
        ),
    ),
    ("pipelines", ("landscape.survey", "landscape.experiment")),
    ("command line", ("landscape.commands", "landscape.cli", "landscape.__main__")),
]


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(ROOT.rglob("*.py")):
        parts = f.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


MODULES = _modules()


def _targets(node: ast.AST) -> list[str]:
    """The ``landscape`` modules an import statement names (``from a import b``: ``a`` and ``a.b``)."""
    if (
        isinstance(node, ast.ImportFrom)
        and node.module
        and node.level == 0
        and node.module.split(".")[0] == "landscape"
    ):
        return [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "landscape"]
    return []


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _module_level_imports(tree: ast.Module):
    """Import statements run when the module is imported (top level, and inside top-level if/try)."""
    for node in tree.body:
        if _is_type_checking(node):
            continue
        if isinstance(node, (ast.If, ast.Try)):
            for block in (
                node.body,
                getattr(node, "orelse", []),
                *(h.body for h in getattr(node, "handlers", [])),
            ):
                yield from (n for n in block if isinstance(n, (ast.Import, ast.ImportFrom)))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for m, f in MODULES.items():
        for node in _module_level_imports(ast.parse(f.read_text())):
            for t in _targets(node):
                parts = t.split(".")
                for u in (".".join(parts[:i]) for i in range(len(parts), 0, -1)):  # a.b.c imports a.b and a
                    if u in MODULES and u != m and not m.startswith(u + "."):
                        edges[m].add(u)
    return edges


def _layer(module: str) -> int:
    best, depth = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and p.count(".") > depth:
                best, depth = i, p.count(".")
    assert best is not None, f"{module} is in no layer of LAYERS: add it"
    return best


def _local_imports(tree: ast.Module) -> list[ast.AST]:
    """Imports of the package's own code (absolute or relative) inside any function."""
    return sorted(
        {
            node
            for fn in ast.walk(tree)
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            for node in ast.walk(fn)
            if isinstance(node, ast.ImportFrom) and node.level > 0 or _targets(node)
        },
        key=lambda n: n.lineno,
    )


def test_no_function_imports_a_landscape_module():
    found = [
        f"{f.relative_to(ROOT.parent)}:{node.lineno} {ast.unparse(node)}"
        for f in MODULES.values()
        for node in _local_imports(ast.parse(f.read_text()))
    ]
    assert not found, "function-local imports of the package's own modules:\n" + "\n".join(sorted(set(found)))


def test_there_is_no_import_cycle():
    edges = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_every_import_points_down_the_layers():
    edges = _graph()
    up = [
        f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
        for m in sorted(edges)
        for t in sorted(edges[m])
        if _layer(t) > _layer(m)
    ]
    assert not up, "imports that run up the layers:\n" + "\n".join(up)


def test_the_layer_list_names_only_modules_that_exist():
    stale = [
        p
        for _, prefixes in LAYERS
        for p in prefixes
        if p != "landscape.__main__" and not any(m == p or m.startswith(p + ".") for m in MODULES)
    ]
    assert not stale, f"LAYERS names modules that do not exist: {stale}"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("def f():\n    from landscape.io import write_json\n", 1),
        ("def f():\n    import landscape.io\n", 1),
        ("def f():\n    from . import io\n", 1),
        ("def f():\n    import scipy.sparse\n", 0),
        ("class C:\n    def m(self):\n        def g():\n            import landscape\n", 1),
        ("from landscape.io import write_json\n", 0),
    ],
)
def test_the_function_import_scan_sees_what_it_should(source, expected):
    """The scan itself, on sources with and without a local import of the package's own code."""
    assert len(_local_imports(ast.parse(source))) == expected


#: A function's length: its ``def`` line to its last line (decorators excluded), docstring included.
MAX_FUNCTION_LINES = 80

_LONG_REASON = re.compile(r"# long:\s*\S")


def _long_functions(source: str) -> list[tuple[str, int, int]]:
    """``(name, def line, length)`` of every function (nested ones and methods too) over
    :data:`MAX_FUNCTION_LINES` lines with no ``# long: <reason>`` comment on the line directly above its
    ``def`` or above its first decorator."""
    lines = source.splitlines()
    found = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = fn.end_lineno - fn.lineno + 1
        top = min([fn.lineno] + [d.lineno for d in fn.decorator_list])
        above = [lines[i - 2].strip() for i in {fn.lineno, top} if i >= 2]
        if length > MAX_FUNCTION_LINES and not any(_LONG_REASON.match(a) for a in above):
            found.append((fn.name, fn.lineno, length))
    return found


def test_no_function_is_over_80_lines_without_a_reason():
    found = [
        f"{rel}:{line} {name}: {length} lines"
        for f in MODULES.values()
        for rel in [f.relative_to(ROOT.parent).as_posix()]
        for name, line, length in _long_functions(f.read_text())
    ]
    assert not found, (
        f"functions over {MAX_FUNCTION_LINES} lines (split them into named helpers, or put a comment "
        "'# long: <reason>' on the line above the def):\n" + "\n".join(sorted(found))
    )


def _body(n: int) -> str:
    return "".join(f"    x{i} = {i}\n" for i in range(n))


@pytest.mark.parametrize(
    "source, expected",
    [
        ("def f():\n" + _body(79), []),
        ("def f():\n" + _body(80), [("f", 1, 81)]),
        ("# long: a flat table of flags\ndef f():\n" + _body(80), []),
        ("# long:\ndef f():\n" + _body(80), [("f", 2, 81)]),
        ("# long: a reason\n\ndef f():\n" + _body(80), [("f", 3, 81)]),
        ("# long: a reason\n@decorator\n@other(1)\ndef f():\n" + _body(80), []),
        ("@decorator\n# long: a reason\ndef f():\n" + _body(80), []),
        ("@decorator\n\ndef f():\n" + _body(80), [("f", 3, 81)]),
        ("@decorator\ndef f():\n" + _body(79), []),
        (
            "class C:\n    def m(self):\n        def g():\n"
            + "".join("            pass\n" for _ in range(80)),
            [("m", 2, 82), ("g", 3, 81)],
        ),
        (
            "class C:\n    # long: one table\n    def m(self):\n"
            + "".join("        pass\n" for _ in range(80)),
            [],
        ),
    ],
)
def test_the_function_length_scan_sees_what_it_should(source, expected):
    """The scan itself: the limit, the comment directly above the def or its first decorator, nested functions."""
    assert sorted(_long_functions(source)) == sorted(expected)
