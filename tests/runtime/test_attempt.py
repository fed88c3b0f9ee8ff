"""The one boundary every attempt crosses: a deadline, and exceptions turned into reasons."""

from __future__ import annotations

import asyncio
import errno
import time

import pytest

from probed.probes.common.errors import classify
from probed.result import ProbeResult, Reason
from probed.runtime.attempt import run_attempt


class BuggyProbe:
    async def probe(self) -> ProbeResult:
        raise KeyError("a bug in a probe module")

    async def aclose(self) -> None:
        pass


class HangingProbe:
    def __init__(self) -> None:
        self.cancelled = False

    async def probe(self) -> ProbeResult:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        pass


async def test_a_bug_in_a_probe_is_an_internal_error_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    result = await run_attempt(BuggyProbe(), 1.0)
    assert (result.success, result.reason) == (False, Reason.INTERNAL_ERROR)
    assert "KeyError" in result.detail
    assert "probe raised instead of returning a result" in caplog.text


async def test_the_deadline_cancels_the_probe_and_reports_timeout() -> None:
    probe = HangingProbe()
    result = await run_attempt(probe, 0.05)
    assert result.reason is Reason.TIMEOUT
    assert probe.cancelled
    assert result.duration_s >= 0.05


async def test_cancelling_an_attempt_propagates_and_is_never_swallowed() -> None:
    probe = HangingProbe()
    task = asyncio.create_task(run_attempt(probe, 10.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert probe.cancelled


# No loopback peer can make the kernel answer "host unreachable", so these errnos are fed directly.
@pytest.mark.parametrize(("error", "reason"), [
    (OSError(errno.EHOSTUNREACH, "No route to host"), Reason.NETWORK_ERROR),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), Reason.NETWORK_ERROR),
    (OSError(errno.ECONNREFUSED, "Connection refused"), Reason.CONNECTION_REFUSED),
    (OSError(errno.ETIMEDOUT, "Connection timed out"), Reason.TIMEOUT),
    (OSError("Multiple exceptions: [Errno 111] Connect call failed"), Reason.CONNECTION_REFUSED),
], ids=["host-unreachable", "network-unreachable", "refused", "timed-out", "happy-eyeballs-refused"])
def test_socket_errors_map_to_their_reason(error: OSError, reason: Reason) -> None:
    assert classify(error)[0] is reason


async def test_a_success_that_comes_past_the_timeout_is_a_timeout() -> None:
    class Hog:
        """Work that never yields to the loop: asyncio.timeout cannot cancel it in time."""

        async def probe(self) -> ProbeResult:
            time.sleep(0.05)  # noqa: ASYNC251  (the point: a probe that blocks the loop)
            return ProbeResult.ok(values={"status_code": 200})

        async def aclose(self) -> None:
            pass

    result = await run_attempt(Hog(), 0.01)
    assert result.reason is Reason.TIMEOUT and not result.success
    assert "longer than the 0.01s timeout" in result.detail
    assert result.values == {"status_code": 200}  # what it found is kept for the record
