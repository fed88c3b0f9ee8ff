"""Results, probes and SLOs as JSON: the one shape the API, `probed once --json` and the pages share.

Every text that could carry a secret (targets, details, facts) goes through `redact` here.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from probed.config.model import Config
from probed.config.slo import SloSpec
from probed.redact import redact
from probed.result import REASONS_BY_CODE, ProbeResult
from probed.runtime.state import ProbeState
from probed.runtime.windows import PERCENTILE_WINDOWS, SUCCESS_WINDOWS
from probed.slo import math as slo_math
from probed.slo.engine import SloEngine, SloReport


def result_json(result: ProbeResult, secrets: frozenset[str]) -> dict[str, Any]:
    """One attempt's outcome."""
    return {
        "success": result.success,
        "reason": result.reason.value,
        "warning": None if result.warning is None else result.warning.value,
        "duration_seconds": result.duration_s,
        "phases": dict(result.phases),
        "values": dict(result.values),
        "detail": redact(result.detail, secrets),
    }


def probe_json(state: ProbeState, now: float) -> dict[str, Any]:
    spec, ring, last = state.spec, state.ring, state.last
    if not state.percentiles_fresh(PERCENTILE_WINDOWS, now):
        state.refresh_percentiles(PERCENTILE_WINDOWS, now)
    percentiles = {
        label: (None if (qs := state.percentiles.values.get(secs)) is None
                else {"p50": qs[0], "p90": qs[1], "p95": qs[2], "p99": qs[3]})
        for label, secs in PERCENTILE_WINDOWS
    }
    windows = {}
    for label, secs in SUCCESS_WINDOWS:
        c = ring.window_counts(now, secs)
        windows[label] = {"attempts": c.attempts, "failures": c.failures, "fast": c.fast,
                          "success_ratio": (c.successes / c.attempts) if c.attempts else None,
                          "covered_seconds": ring.covered_s(now, secs)}
    return {
        "name": spec.name,
        "type": spec.type,
        "target": redact(spec.target, state.secrets),
        "interval_seconds": spec.interval,
        "timeout_seconds": spec.timeout,
        "labels": dict(spec.labels),
        "last": None if last is None else {**result_json(last, state.secrets), "timestamp": state.last_ts},
        "failing_since": state.failing_since,
        "last_failure": None if state.last_failure is None else {
            **result_json(state.last_failure, state.secrets), "timestamp": state.last_failure_ts},
        "counts": {
            "success": ring.successes_total,
            "failure": ring.failures_total,
            "by_reason": {r.value: n for r, n in state.failures_by_reason.items()},
            "skipped": dict(state.skipped),
        },
        "percentiles": percentiles,
        "windows": windows,
    }


def once_json(config: Config, name: str, result: ProbeResult) -> dict[str, Any]:
    """A `probed once --json` line: the probe and its one result."""
    spec = config.probe(name)
    secrets = config.secrets
    return {
        "name": name,
        "type": spec.type,
        "target": redact(spec.target, secrets),
        **result_json(result, secrets),
        "facts": json.loads(redact(json.dumps(result.facts, default=str), secrets)),
        "timestamp": time.time(),
    }


# --------------------------------------------------------------------------- SLOs

DIAGNOSIS_WINDOW_S = 3600.0
"""The worst probe and its dominant failure reason are read over the last hour."""
SLOW = "slow_success"
"""The dominant "reason" of a latency SLO whose bad events are successes over the threshold."""


def slo_json(report: SloReport, states: Mapping[str, ProbeState], now: float) -> dict[str, Any]:
    """One SLO's last evaluation. JSON has no Infinity: a budget that is not burning has
    `exhaustion_seconds: null` and `burning: false`; with no data both are null."""
    spec = report.spec
    windows = {
        label: {"good": c.good, "bad": c.bad, "total": c.total, "sli": slo_math.sli(c),
                "burn_rate": slo_math.burn_rate(c, spec.objective)}
        for label, c in report.windows.items()
    }
    exhaustion = report.exhaustion_s
    burning = None if exhaustion is None else math.isfinite(exhaustion)
    worst = worst_probe(spec, states, now)
    return {
        "name": spec.name,
        "spec": {
            "service": spec.service,
            "description": spec.description,
            "sli": spec.sli,
            "objective_ratio": spec.objective,
            "objective_percent": round(spec.objective * 100, 10),
            "window": spec.window_label,
            "window_seconds": SloEngine.window_s(spec, now),
            "calendar": spec.calendar,
            "budgeting": spec.budgeting,
            "good_ratio": spec.good_ratio if spec.budgeting == "timeslices" else None,
            "labels": dict(spec.labels),
            "probes": list(spec.probes),
        },
        "evaluated_at": report.at,
        "windows": windows,
        "budget_remaining_ratio": report.budget_remaining,
        "exhaustion_seconds": exhaustion if burning else None,
        "burning": burning,
        "coverage_ratio": report.coverage,
        "events": {"good": report.events.good, "bad": report.events.bad},
        "worst_probe": worst,
        "diagnosis": diagnosis(report, worst),
    }


def worst_probe(spec: SloSpec, states: Mapping[str, ProbeState], now: float) -> dict[str, Any] | None:
    """The probe with the most bad events over the last hour (from its minute buckets), its
    dominant failure reason (from its raw samples) and its last failure detail, redacted."""
    current = int(now) // 60
    lo = current - int(DIAGNOSIS_WINDOW_S // 60) + 1
    best: tuple[int, int, str] | None = None
    for name in spec.probes:
        state = states.get(name)
        if state is None:
            continue
        rows = state.ring.minutes.rows(lo, current).sum(axis=1, dtype=np.int64)
        attempts = int(rows[0])
        bad = attempts - int(rows[2]) if spec.sli == "latency" else int(rows[1])
        if bad > 0 and (best is None or bad > best[0]):
            best = (bad, attempts, name)
    if best is None:
        return None
    bad, attempts, name = best
    state = states[name]
    reason, count = _dominant_reason(state, spec, now)
    last = state.last_failure
    last_failure = None
    if last is not None:
        last_failure = {"reason": last.reason.value, "detail": redact(last.detail, state.secrets),
                        "status_code": _status_code(last), "timestamp": state.last_failure_ts}
    return {"name": name, "bad_events_1h": bad, "attempts_1h": attempts, "reason": reason,
            "reason_count": count, "last_failure": last_failure}


def diagnosis(report: SloReport, worst: dict[str, Any] | None) -> str | None:
    """"budget burning because api-checkout: http_status 503", or None when the last hour had no
    bad event."""
    if worst is None:
        return None
    cause = f"{worst['name']}: {worst['reason']}"
    last = worst["last_failure"]
    if last is not None and last["reason"] == worst["reason"] and last["status_code"]:
        cause += f" {last['status_code']}"
    burn = report.burn_rate("1h")
    if burn is not None and burn > 1:
        return f"budget burning because {cause}"
    return f"within budget over 1h; most bad events from {cause}"


def _dominant_reason(state: ProbeState, spec: SloSpec, now: float) -> tuple[str, int]:
    s = state.ring.samples()
    recent = s.timestamps > now - DIAGNOSIS_WINDOW_S
    reasons = s.reasons[recent]
    counts = np.bincount(reasons, minlength=len(REASONS_BY_CODE))
    counts[0] = 0  # successes
    code = int(counts.argmax())
    best = (REASONS_BY_CODE[code].value, int(counts[code])) if counts[code] else ("", 0)
    if spec.sli == "latency":
        slow = int(((reasons == 0) & (s.latencies[recent] > state.ring.latency_threshold_s)).sum())
        if slow > best[1]:
            best = (SLOW, slow)
    return best if best[1] else ("unknown", 0)


def _status_code(result: ProbeResult) -> int | None:
    code = result.values.get("status_code")
    return int(code) if code else None
