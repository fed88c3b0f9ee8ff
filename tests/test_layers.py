"""The package's shape: every module imports on its own, and layers point one way.

config <- probes <- runtime <- output <- run <- cli. Probes never reach the runtime or the
output; the web layer serves /probe without importing blackbox (run hands the endpoint in);
nothing imports the CLI; the demo starts the daemon through `run`, not the CLI. No two modules
import each other, however long the way round. An import inside a function is allowed only where
it defers something optional or heavy, and it says so in a comment on its line.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "probed"
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py") if p.name != "__main__.py"
)

# What each layer may import from probed (besides itself). Shared leaves first.
LEAVES = {"probed", "probed.result", "probed.redact", "probed.logs"}
ALLOWED: dict[str, set[str]] = {
    "probed.config": set(),
    "probed.probes": {"probed.config"},
    "probed.runtime": {"probed.config", "probed.probes"},
    "probed.slo": {"probed.config", "probed.runtime"},
    "probed.blackbox": {"probed.config", "probed.probes", "probed.runtime", "probed.output.exposition"},
    "probed.output": {"probed.config", "probed.probes", "probed.runtime", "probed.slo"},
    "probed.run": {"probed.config", "probed.probes", "probed.runtime", "probed.slo", "probed.output",
                   "probed.blackbox"},
    "probed.demo": {"probed.run"},
    "probed.generate": {"probed.config", "probed.probes", "probed.runtime", "probed.output"},
    "probed.cli": {"probed.config", "probed.runtime", "probed.slo", "probed.output", "probed.run", "probed.demo",
                   "probed.generate", "probed.blackbox"},
}


def layer_of(module: str) -> str:
    if module in LEAVES:
        return module
    parts = module.split(".")
    return ".".join(parts[:2])


def imports_of(path: Path) -> list[tuple[ast.stmt, str, bool]]:
    """(node, imported probed module, inside a function) for every import of probed."""
    tree = ast.parse(path.read_text())
    found: list[tuple[ast.stmt, str, bool]] = []

    def walk(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            guarded = type_checking or (isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING")
            if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("probed"):
                if not guarded:
                    found.extend((child, f"{child.module}.{a.name}", in_function) for a in child.names)
            elif isinstance(child, ast.Import):
                found.extend((child, a.name, in_function) for a in child.names if a.name.startswith("probed"))
            walk(child, nested, guarded)

    walk(tree, False, False)
    return found


def resolve(name: str) -> str:
    """`probed.config.model.ProbeSpec` -> `probed.config.model`: the longest module prefix."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    raise AssertionError(f"{name} is not a probed module")


@pytest.mark.parametrize("module", MODULES)
def test_layers_point_one_way(module: str) -> None:
    base = PACKAGE.parent / module.replace(".", "/")
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    mine = layer_of(module)
    for _, name, _ in imports_of(path):
        target = layer_of(resolve(name))
        if target == mine or target in LEAVES or resolve(name) in ALLOWED.get(mine, set()):
            continue  # a layer may name one module of another (blackbox: output's text helpers)
        assert target in ALLOWED.get(mine, set()), f"{module} imports {name}: {mine} may not depend on {target}"


def test_imports_inside_functions_say_why() -> None:
    unexplained = []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Import | ast.ImportFrom) and "#" not in lines[node.lineno - 1]:
                    unexplained.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not unexplained, f"imports inside functions without a reason: {unexplained}"


def test_every_module_imports_on_its_own_in_any_order() -> None:
    # One interpreter, each module imported alone after forgetting every probed module: a cycle
    # that only works in one import order fails here, whichever module starts it.
    script = f"""
import importlib, sys
failed = []
for order in ({MODULES!r}, {list(reversed(MODULES))!r}):
    for name in order:
        for loaded in [m for m in sys.modules if m == "probed" or m.startswith("probed.")]:
            del sys.modules[loaded]
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{{name}}: {{type(exc).__name__}}: {{exc}}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------- import cycles


def modules_under(root: Path) -> dict[str, Path]:
    """Dotted name -> file for every module of the package at `root` (a package is its __init__)."""
    found = {}
    for path in root.rglob("*.py"):
        if path.name != "__main__.py":
            parts = path.relative_to(root.parent).with_suffix("").parts
            found[".".join(parts).removesuffix(".__init__")] = path
    return found


def _run_time_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: not in functions, not under TYPE_CHECKING."""
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                pending.extend(child.orelse)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            pending.append(child)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at import time. `from pkg import name` points at
    the submodule `pkg.name` when there is one, else at `pkg`; relative imports are resolved. A
    package's __init__ importing its own submodules is no edge: it runs after them by design."""
    files = modules_under(root)

    def owner(name: str) -> str | None:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in files:
                return ".".join(parts[:end])
        return None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in _run_time_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(owner(alias.name) for alias in node.names)
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else owner(base))
        is_package = path.name == "__init__.py"
        graph[module] = {t for t in targets if t is not None and t != module
                         and not (is_package and t.startswith(module + "."))}
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle (a -> b -> ... -> a) through each strongly connected set of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm: the package is small enough to recurse
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_a_cycle(graph, c) for c in components if len(c) > 1]


def _a_cycle(graph: Mapping[str, set[str]], component: set[str]) -> list[str]:
    """The shortest way from the component's first module back to itself, inside the component."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    for node in queue:
        for nxt in sorted(graph[node] & component):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def test_no_module_imports_itself_by_a_way_round() -> None:
    found = cycles(import_graph(PACKAGE))
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_cycle_check_finds_a_cycle_through_relative_and_submodule_imports(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "from pkg import a\nfrom .b import B\n",  # its own submodules: no cycle
        "pkg/a.py": "from . import b\n",
        "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import c\nB = 1\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "from ..a import x\n\ndef later():\n    import pkg.sub.d  # deferred: no edge\n",
        "pkg/sub/d.py": "import pkg.sub.c\nfrom pkg.sub import e\n",
        "pkg/sub/e.py": "from .. import sub\nfrom pkg.sub.d import thing\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    graph = import_graph(tmp_path / "pkg")

    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": set(), "pkg.sub": set(),
                     "pkg.sub.c": {"pkg.a"}, "pkg.sub.d": {"pkg.sub.c", "pkg.sub.e"},
                     "pkg.sub.e": {"pkg.sub", "pkg.sub.d"}}
    assert cycles(graph) == [["pkg.sub.d", "pkg.sub.e", "pkg.sub.d"]]
