"""The layout's rules (docs/ARCHITECTURE.md), read from the source: one folder per feature, data flowing one
way (core -> result -> view), no import cycles, no private names borrowed across features, no module that
grew past one idea."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nbdebug"
VIEW_SUFFIXES = ("plot", "panel", "magic")  # gan_plot, filters_plot, ... are views too
MAX_LINES = 500


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_view(module: str) -> bool:
    return module.rsplit(".", 1)[-1].endswith(VIEW_SUFFIXES)


def feature(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else ""


def _resolve(module: str, level: int, target: str | None, is_package: bool) -> str:
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports(module: str) -> list[tuple[str, list[str], bool]]:
    """(imported module, names, deferred) for every import in `module`; `deferred`: inside a function or
    under `if TYPE_CHECKING:` (not executed at import time)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    out: list[tuple[str, list[str], bool]] = []

    def visit(node: ast.AST, deferred: bool) -> None:
        for child in ast.iter_child_nodes(node):
            d = deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                d = True
            if isinstance(child, ast.Import):
                out.extend((a.name, [], d) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(module, child.level, child.module, path.name == "__init__.py")
                names = [a.name for a in child.names]
                # `from . import sub` imports the submodule `sub`
                subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
                if subs:
                    out.extend((s, [], d) for s in subs)
                else:
                    out.append((target, names, d))
            visit(child, d)

    visit(tree, False)
    return out


def internal(name: str) -> str | None:
    """The nbdebug module an import refers to (a package resolves to its __init__)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name if name.startswith("nbdebug") else None


def test_modules_are_found():
    assert {"nbdebug._core.result", "nbdebug.shapes.trace", "nbdebug.monitor.watch"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not is_view(m)))
def test_core_never_imports_ipython_or_ipywidgets(module):
    bad = [m for m, _, _ in imports(module) if m.split(".")[0] in ("IPython", "ipywidgets")]
    assert not bad, f"{module} (core) imports {bad}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not is_view(m)))
def test_core_imports_views_only_for_its_own_lazy_rendering(module):
    for name, _, deferred in imports(module):
        target = internal(name)
        if target is None or not is_view(target):
            continue
        assert deferred, f"{module} imports the view {target} at import time"
        assert feature(target) in (feature(module), "_core"), (
            f"{module} renders with another feature's {target}"
        )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_features_do_not_borrow_private_names(module):
    for name, names, _ in imports(module):
        target = internal(name)
        if target is None or feature(target) in ("", "_core", feature(module)):
            continue
        private = [n for n in names if n.startswith("_")]
        assert not private, (
            f"{module} takes private {private} from {target}: move it to _core or make it public"
        )
        assert not target.rsplit(".", 1)[-1].startswith("_"), f"{module} imports private module {target}"


def test_no_import_cycles():
    graph = {
        m: {t for name, _, deferred in imports(m) if not deferred and (t := internal(name)) and t != m}
        for m in MODULES
    }
    # a package's __init__ runs before its submodules: an edge to "nbdebug" itself is the package, not a cycle
    for deps in graph.values():
        deps.discard("nbdebug")
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycle = stack[stack.index(t) :] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_500_lines(module):
    n = len(MODULES[module].read_text().splitlines())
    assert n <= MAX_LINES, f"{module} has {n} lines: split it by idea"


def test_every_feature_has_core_and_views_in_one_folder():
    for name in ("shapes", "memory", "sanity", "monitor", "predictions", "search"):
        folder = PACKAGE / name
        stems = {p.stem for p in folder.glob("*.py")}
        assert "magic" in stems and any(s.endswith("panel") for s in stems), name
        assert any(s.endswith("plot") for s in stems), name
