"""docs/reference/reasons.md is the code's reason vocabulary: every reason once, same words."""

from __future__ import annotations

import re

from probed.result import REASON_DESCRIPTIONS, Reason

from .pages import DOCS

REASONS_PAGE = DOCS / "reference" / "reasons.md"
_ROW = re.compile(r"^\| `([^`]+)` \| (.*) \|$", re.MULTILINE)


def documented_rows() -> list[tuple[str, str]]:
    return _ROW.findall(REASONS_PAGE.read_text(encoding="utf-8"))


def expected_table() -> str:
    """The table as it should read, for pasting into the page when the code changes."""
    return "\n".join(f"| `{reason.value}` | {REASON_DESCRIPTIONS[reason]} |" for reason in Reason)


def test_every_documented_reason_is_in_the_code_with_its_description() -> None:
    rows = documented_rows()
    assert rows, f"no reasons table found in {REASONS_PAGE}"
    names = [name for name, _ in rows]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f"listed more than once in {REASONS_PAGE.name}: {duplicates}"
    for name, description in rows:
        assert name in Reason._value2member_map_, f"{REASONS_PAGE.name} lists `{name}`, which probed/result.py lacks"
        assert description == REASON_DESCRIPTIONS[Reason(name)], (
            f"`{name}`: the page says {description!r}, the code {REASON_DESCRIPTIONS[Reason(name)]!r}"
        )


def test_every_reason_in_the_code_is_documented_in_order() -> None:
    documented = dict(documented_rows())
    missing = [reason.value for reason in Reason if reason.value not in documented]
    assert not missing, f"add to {REASONS_PAGE.name}:\n{expected_table()}"
    assert [name for name, _ in documented_rows()] == [reason.value for reason in Reason], (
        f"keep the code's order in {REASONS_PAGE.name}:\n{expected_table()}"
    )
