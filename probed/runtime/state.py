"""Per-probe state the daemon keeps between attempts: the ring, the last result, counters.

`ProbeState.record()` is the end of the hot path: it writes the ring (O(1)), keeps the last
result for the blackbox-style gauges, counts failures by reason and logs state *changes* only
(ok -> failing, failing -> ok, a different failure reason), never every attempt.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from probed.config.model import ProbeSpec
from probed.redact import redact
from probed.result import REASON_CODES, ProbeResult, Reason
from probed.runtime.ring import ProbeRing, raw_capacity_for
from probed.runtime.windows import Window

log = logging.getLogger("probed.probe")

SKIP_CAUSES = ("overrun", "concurrency_limit")


@dataclass
class PercentileCache:
    written: int = -1
    computed_at: float = 0.0
    values: dict[float, list[float] | None] = field(default_factory=dict)


@dataclass
class ProbeState:
    spec: ProbeSpec
    ring: ProbeRing
    secrets: frozenset[str] = frozenset()
    last: ProbeResult | None = None
    last_ts: float = 0.0
    """Wall time (unix seconds) the last attempt finished."""
    last_failure: ProbeResult | None = None
    """The most recent failed attempt, kept when successes follow (what went wrong, for triage)."""
    last_failure_ts: float = 0.0
    failures_by_reason: dict[Reason, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_CAUSES, 0))
    percentiles: PercentileCache = field(default_factory=PercentileCache)
    error_codes: dict[str, int] = field(default_factory=dict)
    """Failed attempts by the peer's error code (`ProbeResult.error_code`: a bounded set)."""
    exposition_cache: object = None
    """The exposition's rendered label set for this spec; it checks the spec it was made for."""

    @classmethod
    def new(cls, spec: ProbeSpec, secrets: frozenset[str] = frozenset()) -> ProbeState:
        threshold = spec.latency_threshold if spec.latency_threshold is not None else spec.timeout
        return cls(spec, ProbeRing(raw_capacity_for(spec.interval), threshold, interval_s=spec.interval), secrets)

    def adopt(self, spec: ProbeSpec, secrets: frozenset[str]) -> ProbeState:
        """The same probe after a reload: keep history and counters, take the new spec."""
        self.spec, self.secrets = spec, secrets
        if spec.latency_threshold is not None:
            self.ring.latency_threshold_s = spec.latency_threshold
        else:
            self.ring.latency_threshold_s = spec.timeout
        return self

    def record(self, result: ProbeResult, ts: float | None = None) -> None:
        ts = time.time() if ts is None else ts
        previous = self.last
        self.ring.record(ts, result.duration_s, REASON_CODES[result.reason])
        self.last, self.last_ts = result, ts
        if not result.success:
            self.last_failure, self.last_failure_ts = result, ts
            self.failures_by_reason[result.reason] = self.failures_by_reason.get(result.reason, 0) + 1
            if result.error_code:
                self.error_codes[result.error_code] = self.error_codes.get(result.error_code, 0) + 1
        if previous is None or previous.reason is not result.reason:
            self._log_change(previous, result)

    def refresh_percentiles(self, windows: tuple[Window, ...], now: float) -> None:
        cache = self.percentiles
        cache.values = self.ring.percentiles(now, [seconds for _, seconds in windows])
        cache.written, cache.computed_at = self.ring.written, now

    def _log_change(self, previous: ProbeResult | None, result: ProbeResult) -> None:
        if previous is None and result.success:
            log.info("probe %s: ok", self.spec.name, extra={"probe": self.spec.name, "state": "ok"})
            return
        before = "starting" if previous is None else ("ok" if previous.success else "failing")
        after = "ok" if result.success else "failing"
        extra = {"probe": self.spec.name, "state": after, "reason": result.reason.value}
        if result.success:
            log.info("probe %s: %s -> ok", self.spec.name, before, extra=extra)
        else:
            detail = redact(result.detail, self.secrets)
            extra["detail"] = detail
            level = logging.WARNING
            log.log(level, "probe %s: %s -> failing (%s): %s", self.spec.name, before,
                    result.reason.value, detail, extra=extra)
