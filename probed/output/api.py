"""Results and probes as JSON: the one shape the API, `probed once --json` and the pages share.

Every text that could carry a secret (targets, details, facts) goes through `redact` here.
"""

from __future__ import annotations

import json
import time
from typing import Any

from probed.config.model import Config
from probed.redact import redact
from probed.result import ProbeResult
from probed.runtime.state import ProbeState
from probed.runtime.windows import PERCENTILE_WINDOWS, SUCCESS_WINDOWS


def result_json(result: ProbeResult, secrets: frozenset[str]) -> dict[str, Any]:
    """One attempt's outcome."""
    return {
        "success": result.success,
        "reason": result.reason.value,
        "duration_seconds": result.duration_s,
        "phases": dict(result.phases),
        "values": dict(result.values),
        "detail": redact(result.detail, secrets),
    }


def probe_json(state: ProbeState, now: float) -> dict[str, Any]:
    spec, ring, last = state.spec, state.ring, state.last
    if state.percentiles.written != ring.written:
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
                          "success_ratio": (c.successes / c.attempts) if c.attempts else None}
    return {
        "name": spec.name,
        "type": spec.type,
        "target": redact(spec.target, state.secrets),
        "interval_seconds": spec.interval,
        "timeout_seconds": spec.timeout,
        "labels": dict(spec.labels),
        "last": None if last is None else {**result_json(last, state.secrets), "timestamp": state.last_ts},
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
