"""The package's shape (../shared/DESIGN.md section 2): stage packages whose imports point one way, no import
cycle, imports at the top of each module (inside a function only for heavy dependencies), modules a reader can
hold in mind."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "awdvd"

# third-party packages that take a noticeable time to import, or pull a GUI or a GPU runtime: imported inside
# the functions that need them so that `import awdvd` and `awdvd --help` stay light
HEAVY = {"torch", "matplotlib", "dask", "distributed", "napari", "magicgui", "qtpy", "zarr", "ome_zarr",
         "bioimageio", "bioio", "skimage", "scipy", "psfmodels", "pylibCZIrw", "nd2", "readlif", "liffile", "xarray",
         "pandas"}
# awdvd's own modules that import torch at their top (the bioimage.io architecture file ships standalone)
HEAVY_OWN = {"awdvd.learn.bioimageio_network"}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(name: str, path: Path):
    """(imported module or None, top-level package of a third-party import, inside a function?, line) per import."""
    is_package = path.name == "__init__.py"
    rows = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target == "awdvd" or target.startswith("awdvd."):
                    for alias in child.names:
                        full = f"{target}.{alias.name}"
                        rows.append((full if full in MODULES else target, None, in_function, child.lineno))
                else:
                    rows.append((None, target.split(".")[0], in_function, child.lineno))
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    own = alias.name if alias.name in MODULES else None
                    rows.append((own, None if own else alias.name.split(".")[0], in_function, child.lineno))
            visit(child, inside)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return rows


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    edges = {m: {t for t, _, _, _ in rows if t is not None and t != m} for m, rows in GRAPH.items()}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def connect(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            connect(v)
    return found


def test_no_import_cycle():
    """Module-level and function-level imports alike: an import that would close a cycle means code sits in the
    wrong module."""
    assert _cycles() == []


def test_the_cycle_finder_finds_a_cycle():
    """The check above can fail: two modules importing each other form one component."""
    GRAPH["awdvd.physics.optics"].append(("awdvd.restore.pipeline", None, True, 0))
    try:
        assert any("awdvd.physics.optics" in c and "awdvd.restore.pipeline" in c for c in _cycles())
    finally:
        GRAPH["awdvd.physics.optics"].pop()


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_inside_functions_are_only_heavy_dependencies(name):
    local = [(own or third, line) for own, third, inside, line in GRAPH[name] if inside
             and not (own in HEAVY_OWN or (own is None and third in HEAVY))]
    assert local == [], f"{name}: move these imports to the top of the module (or the code to another module)"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by concept"


def test_stages_import_downwards():
    """physics <- data <- learn <- restore <- batch <- validate: a stage never imports a later one (io and the
    shared modules sit below every stage; the applications above them all)."""
    order = ["physics", "data", "learn", "restore", "batch", "validate"]
    wrong = []
    for name, rows in GRAPH.items():
        stage = name.split(".")[1] if name.count(".") >= 1 else None
        if stage not in order:
            continue
        for own, _, _, line in rows:
            target = own.split(".")[1] if own and own.count(".") >= 1 else None
            if target in order and order.index(target) > order.index(stage):
                wrong.append(f"{name}:{line} imports {own}")
    assert wrong == []
