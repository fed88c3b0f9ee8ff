"""No module over 450 lines: a file that grows past it has two jobs, and is split by them."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = ("probed", "tests", "bench")
LIMIT = 450


def oversized(root: Path) -> list[str]:
    """Each .py file under root's trees longer than LIMIT lines, as "path: N lines", longest first."""
    sizes = [(len(path.read_text(encoding="utf-8").splitlines()), path.relative_to(root).as_posix())
             for tree in TREES for path in (root / tree).rglob("*.py")]
    return [f"{name}: {lines} lines" for lines, name in sorted(sizes, reverse=True) if lines > LIMIT]


def test_no_module_is_over_the_limit() -> None:
    too_long = oversized(ROOT)
    assert not too_long, f"over {LIMIT} lines (split each by what it does):\n" + "\n".join(too_long)


def test_a_long_file_is_named_with_its_length(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_long.py").write_text("x = 1\n" * (LIMIT + 1))
    (tmp_path / "tests" / "test_short.py").write_text("x = 1\n" * LIMIT)
    assert oversized(tmp_path) == [f"tests/test_long.py: {LIMIT + 1} lines"]
