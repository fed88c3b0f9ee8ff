"""The one rule for an attempt's own deadline.

The scheduler cancels an attempt at its timeout, and a cancelled attempt has nothing to say. So
every probe stops itself a little earlier, a tenth of the timeout but at most half a second
before it, and reports its own timeout with what it knows: where it stopped, what the server
said so far, the last certificate it read. Drivers get the time remaining as their own timeout
for the same reason: their error (naming what they were waiting for) then arrives first.
"""

from __future__ import annotations

import time

MARGIN_S = 0.5
MARGIN_FRACTION = 0.1


def budget_s(timeout_s: float) -> float:
    """How long an attempt may take by its own clock: the timeout minus the margin."""
    return timeout_s - min(MARGIN_S, timeout_s * MARGIN_FRACTION)


class Deadline:
    """One attempt's own deadline, started when the attempt starts (monotonic clock)."""

    __slots__ = ("at", "total_s")

    def __init__(self, timeout_s: float) -> None:
        self.total_s = budget_s(timeout_s)
        self.at = time.monotonic() + self.total_s

    def remaining(self) -> float:
        """Seconds left, never zero: drivers treat a zero timeout as "no timeout"."""
        return max(self.at - time.monotonic(), 0.001)

    def expired(self) -> bool:
        return time.monotonic() >= self.at
