"""Run one attempt exactly as the scheduler does: timed, bounded by the timeout, never raising.

The scheduler, `probed once` and the tests all go through `run_attempt`, so the timeout and the
exception boundary behave identically everywhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from probed.probes import Probe
from probed.probes.common.errors import classify
from probed.result import ProbeResult, Reason

log = logging.getLogger("probed.attempt")


async def run_attempt(probe: Probe, timeout_s: float) -> ProbeResult:
    """One attempt with a hard deadline. The probe is cancelled when the timeout expires."""
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            result = await probe.probe()
    except TimeoutError:
        result = ProbeResult.fail(Reason.TIMEOUT, f"no answer within {timeout_s:g}s")
    except (OSError, EOFError) as exc:
        # Transport errors a probe did not translate itself still get their proper reason.
        reason, detail = classify(exc)
        result = ProbeResult.fail(reason, detail)
    except Exception as exc:  # a bug in a probe must not kill its schedule
        log.exception("probe raised instead of returning a result")
        result = ProbeResult.fail(Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
    duration = time.perf_counter() - start
    if result.success and duration > timeout_s:
        # CPU work that never yielded to the loop can finish past the deadline the timeout could
        # not enforce: whatever the probe found, the answer came too late.
        result = ProbeResult.fail(Reason.TIMEOUT, f"took {duration:.3g}s, longer than the {timeout_s:g}s timeout",
                                  phases=result.phases, values=result.values, info=result.info)
    return dataclasses.replace(result, duration_s=duration)
