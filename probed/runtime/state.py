"""Per-probe state the daemon keeps between attempts: the ring, the last result, counters.

`ProbeState.record()` is the end of the hot path: it writes the ring (O(1)), keeps the last
result for the blackbox-style gauges, counts failures by reason and logs state *changes* only
(ok -> failing, failing -> ok, a different failure reason), never every attempt.

State-change lines are rate-limited per probe (`ChangeLog`): a target that flaps, or a garbage
server that alternates between two reasons, would otherwise write a line per attempt.
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
CERT_EXPIRY_VALUES = ("cert_expiry_timestamp_seconds", "acm_cert_expiry_timestamp_seconds")
"""`ProbeResult.values` that carry a certificate's expiry (TLS and HTTPS chains, ACM)."""

LOG_BURST = 5
"""State-change lines a probe may log back to back (an outage and its recovery are 2)."""
LOG_REFILL_S = 60.0
"""After the burst, one more line per this many seconds; changes in between are counted."""


class ChangeLog:
    """A token bucket for one probe's state-change lines, with a count of what it held back.

    Every kind of change is bounded the same way (ok -> failing, failing -> ok and a new
    failure reason alike): a flapping probe flips between ok and failing as fast as a garbage
    server flips between reasons. Nothing is lost silently: the next line logged says how
    many changes were not, and once changes stop, the next attempt that finds a token logs
    the state the probe settled in, so the last line of a probe is never a stale state.
    """

    __slots__ = ("at", "reasons", "since", "suppressed", "tokens")

    def __init__(self) -> None:
        self.tokens = float(LOG_BURST)
        self.at = 0.0
        self.suppressed = 0
        self.since = 0.0
        self.reasons: dict[str, int] = {}

    def allow(self, ts: float) -> bool:
        """Takes a token if there is one (refilled for the time since the last call)."""
        if self.at:
            self.tokens = min(float(LOG_BURST), self.tokens + max(ts - self.at, 0.0) / LOG_REFILL_S)
        self.at = ts
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def hold(self, result: ProbeResult, ts: float) -> None:
        if not self.suppressed:
            self.since = ts
        self.suppressed += 1
        word = (result.warning or result.reason).value
        self.reasons[word] = self.reasons.get(word, 0) + 1

    def summary(self, ts: float) -> str:
        """' [N changes not logged in the last Ns: reason xN, ...]', and forgets them; '' if none."""
        if not self.suppressed:
            return ""
        counts = ", ".join(f"{reason} x{n}" for reason, n in sorted(self.reasons.items(), key=lambda kv: -kv[1]))
        text = (f" [{self.suppressed} more change{'s' if self.suppressed > 1 else ''} not logged in the last "
                f"{max(ts - self.since, 0.0):.0f}s: {counts}]")
        self.suppressed, self.reasons = 0, {}
        return text


@dataclass
class PercentileCache:
    written: int = -1
    """The ring's `written` when computed: a new record makes the values stale."""
    valid_until: float = 0.0
    """Wall time the oldest sample of a window leaves it: the values are stale from then on."""
    values: dict[float, list[float] | None] = field(default_factory=dict)
    """Window (seconds) -> quantiles (None: no successful attempt in it)."""


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
    failing_since: float | None = None
    """When the current run of failures began (None while the probe succeeds)."""
    cert_expiry: float | None = None
    """The latest certificate expiry (unix seconds) an attempt reported: kept while later attempts
    fail before they see a certificate (a timeout, a refused connection), and across restarts."""
    failures_by_reason: dict[Reason, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_CAUSES, 0))
    percentiles: PercentileCache = field(default_factory=PercentileCache)
    error_codes: dict[str, int] = field(default_factory=dict)
    """Failed attempts by the peer's error code (`ProbeResult.error_code`: a bounded set)."""
    exposition_cache: object = None
    """The exposition's rendered label set for this spec; it checks the spec it was made for."""
    change_log: ChangeLog = field(default_factory=ChangeLog, repr=False, compare=False)
    """Rate limit of this probe's state-change lines (see ChangeLog)."""

    @classmethod
    def new(cls, spec: ProbeSpec, secrets: frozenset[str] = frozenset()) -> ProbeState:
        threshold = spec.latency_threshold if spec.latency_threshold is not None else spec.timeout
        ring = ProbeRing(raw_capacity_for(spec.interval), threshold, interval_s=spec.interval,
                         fast_row=spec.latency_threshold is not None)
        return cls(spec, ring, secrets)

    def adopt(self, spec: ProbeSpec, secrets: frozenset[str]) -> ProbeState:
        """The same probe after a reload: keep history and counters, take the new spec."""
        self.spec, self.secrets = spec, secrets
        if spec.latency_threshold is not None:
            self.ring.latency_threshold_s = spec.latency_threshold
            self.ring.minutes.keep_fast_row()
            self.ring.hours.keep_fast_row()
        else:
            self.ring.latency_threshold_s = spec.timeout
        return self

    def record(self, result: ProbeResult, ts: float | None = None) -> None:
        ts = time.time() if ts is None else ts
        previous = self.last
        self.ring.record(ts, result.duration_s, REASON_CODES[result.reason])
        self.last, self.last_ts = result, ts
        if result.values:
            for name in CERT_EXPIRY_VALUES:
                if name in result.values:
                    self.cert_expiry = result.values[name]
        if result.success:
            self.failing_since = None
        else:
            if self.failing_since is None:
                self.failing_since = ts
            self.last_failure, self.last_failure_ts = result, ts
            self.failures_by_reason[result.reason] = self.failures_by_reason.get(result.reason, 0) + 1
            if result.error_code:
                self.error_codes[result.error_code] = self.error_codes.get(result.error_code, 0) + 1
        if previous is None or previous.reason is not result.reason or previous.warning is not result.warning:
            self._log_change(previous, result, ts)
        elif self.change_log.suppressed:
            self._log_settled(result, ts)

    def percentiles_fresh(self, windows: tuple[Window, ...], now: float) -> bool:
        """Whether the cached quantiles of `windows` are exactly what a computation now would give."""
        cache = self.percentiles
        return (cache.written == self.ring.written and now < cache.valid_until
                and all(seconds in cache.values for _, seconds in windows))

    def refresh_percentiles(self, windows: tuple[Window, ...], now: float) -> None:
        cache = self.percentiles
        cache.values, cache.valid_until = self.ring.percentiles_until(now, [seconds for _, seconds in windows])
        cache.written = self.ring.written

    def _log_change(self, previous: ProbeResult | None, result: ProbeResult, ts: float) -> None:
        limiter = self.change_log
        if not limiter.allow(ts):
            limiter.hold(result, ts)
            return
        held = limiter.summary(ts)
        if previous is None and result.success and result.warning is None:
            log.info("probe %s: ok%s", self.spec.name, held, extra={"probe": self.spec.name, "state": "ok"})
            return
        before = "starting" if previous is None else _state_word(previous)
        self._emit(f"{before} -> ", result, held)

    def _log_settled(self, result: ProbeResult, ts: float) -> None:
        """Changes were held back and have stopped: say where the probe settled, once a token allows."""
        limiter = self.change_log
        if limiter.allow(ts):
            self._emit("still ", result, limiter.summary(ts))

    def _emit(self, prefix: str, result: ProbeResult, held: str) -> None:
        after = _state_word(result)
        extra: dict[str, object] = {"probe": self.spec.name, "state": after,
                                    "reason": (result.warning or result.reason).value}
        if result.warning is not None:
            detail = redact(result.detail, self.secrets)
            extra["detail"] = detail
            log.warning("probe %s: %swarning (%s): %s%s", self.spec.name, prefix, result.warning.value, detail, held,
                        extra=extra)
        elif result.success:
            log.info("probe %s: %sok%s", self.spec.name, prefix, held, extra=extra)
        else:
            detail = redact(result.detail, self.secrets)
            extra["detail"] = detail
            log.warning("probe %s: %sfailing (%s): %s%s", self.spec.name, prefix, result.reason.value, detail, held,
                        extra=extra)


def _state_word(result: ProbeResult) -> str:
    """ok, warning (a success carrying a warning reason) or failing: the words of the state log."""
    if result.warning is not None:
        return "warning"
    return "ok" if result.success else "failing"
