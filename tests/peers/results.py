"""What several probe tests assert about any result."""

from __future__ import annotations

from typing import Any

from probed.result import PHASES


def assert_phases(phases: Any) -> None:
    """Every phase, in the order PHASES declares them, and none negative."""
    assert list(phases) == list(PHASES)
    assert all(v >= 0 for v in phases.values()), phases
