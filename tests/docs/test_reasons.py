"""docs/reference/reasons.md is the code's reason vocabulary: every reason once, same words."""

from __future__ import annotations

import re

from probed.result import REASON_DESCRIPTIONS, WARNING_REASONS, Reason

from .pages import DOCS

REASONS_PAGE = DOCS / "reference" / "reasons.md"
_ROW = re.compile(r"^\| `([^`]+)` \| (.*) \| (yes|no) \|$", re.MULTILINE)


def documented_rows() -> list[tuple[str, str]]:
    return [(name, meaning) for name, meaning, _ in _ROW.findall(REASONS_PAGE.read_text(encoding="utf-8"))]


def _warning_cell(reason: Reason) -> str:
    return "yes" if reason in WARNING_REASONS else "no"


def expected_table() -> str:
    """The table as it should read, for pasting into the page when the code changes."""
    return "\n".join(f"| `{reason.value}` | {REASON_DESCRIPTIONS[reason]} | {_warning_cell(reason)} |"
                     for reason in Reason)


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


def test_the_warning_column_is_the_codes_warning_reasons() -> None:
    """A reason that can be a warning (a success with a reason, e.g. cert_expiring) says so on the page."""
    cells = {name: cell for name, _, cell in _ROW.findall(REASONS_PAGE.read_text(encoding="utf-8"))}
    wrong = {name: cell for name, cell in cells.items() if cell != _warning_cell(Reason(name))}
    assert not wrong, f"the 'can be a warning' column disagrees with WARNING_REASONS: {wrong}"
    assert {Reason(name) for name, cell in cells.items() if cell == "yes"} == WARNING_REASONS
