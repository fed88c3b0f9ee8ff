"""The package's shape: every module imports on its own, and layers point one way.

config <- probes <- runtime <- output <- run <- cli. Probes never reach the runtime or the
output; nothing imports the CLI; the demo starts the daemon through `run`, not the CLI. An
import inside a function is allowed only where it defers something optional or heavy, and it
says so in a comment on its line.
"""

from __future__ import annotations

import ast
import subprocess
import sys
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
    "probed.output": {"probed.config", "probed.probes", "probed.runtime", "probed.slo", "probed.blackbox"},
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
