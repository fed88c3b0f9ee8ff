"""How an HTTP attempt fails, against real local peers: status codes, refused, reset, garbage, an
unresolvable name, a silent server, a slow response; each one reported as its reason."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from probed.result import Reason
from tests.peers.http import HOST, Prober, RawPeer, WebPeer
from tests.peers.results import assert_phases

# --------------------------------------------------------------------------- status codes


@pytest.mark.parametrize(("code", "valid", "reason"), [
    (503, None, Reason.HTTP_STATUS),
    (403, None, Reason.HTTP_STATUS),
    (401, None, Reason.HTTP_STATUS),
    (403, [403], Reason.OK),
    (204, ["2xx"], Reason.OK),
    (302, [200, "300-399"], Reason.OK),
    (404, ["200-299", 301], Reason.HTTP_STATUS),
], ids=["503-default", "403-default", "401-default", "403-allowed", "204-class", "302-range", "404-list"])
async def test_status_codes_are_checked_against_valid_status_codes(
        prober: Prober, web_peer: WebPeer, code: int, valid: list[Any] | None, reason: Reason) -> None:
    settings = {"valid_status_codes": valid, "follow_redirects": False} if valid else {}
    result = await prober.once("http", f"{web_peer.url}/status/{code}", settings)
    assert result.reason is reason, result.detail
    assert result.values["status_code"] == code
    if reason is Reason.HTTP_STATUS:
        assert result.detail.startswith(f"HTTP {code} ")


# --------------------------------------------------------------------------- transport failures


async def test_a_closed_port_is_connection_refused(prober: Prober, closed_port: int) -> None:
    result = await prober.once("http", f"http://{HOST}:{closed_port}/health")
    assert result.reason is Reason.CONNECTION_REFUSED, result.detail
    assert result.values["status_code"] == 0
    assert_phases(result.phases)
    assert result.phases["connect"] > 0  # the time spent failing to connect is still shown


async def test_a_reset_is_connection_reset_after_exactly_one_connection(prober: Prober, reset_peer: RawPeer) -> None:
    result = await prober.once("http", f"http://{reset_peer.address}/health")
    assert result.reason is Reason.CONNECTION_RESET, result.detail
    await asyncio.sleep(0.05)
    assert reset_peer.accepted == 1  # aiohttp's silent retry is off: one attempt, one request


async def test_garbage_instead_of_http_is_a_protocol_error(prober: Prober, garbage_peer: RawPeer) -> None:
    result = await prober.once("http", f"http://{garbage_peer.address}/health")
    assert result.reason is Reason.PROTOCOL_ERROR, result.detail


async def test_an_unresolvable_host_is_a_dns_error(prober: Prober) -> None:
    # glibc refuses a name with "!" before sending any query: a real resolver failure, offline.
    result = await prober.once("http", "http://nohost!.test/health")
    assert result.reason is Reason.DNS_ERROR, result.detail


async def test_a_body_cut_short_is_connection_reset(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/truncated")
    assert result.reason is Reason.CONNECTION_RESET
    assert result.detail == "connection closed in the middle of the body"


async def test_a_silent_server_times_out_and_the_connection_is_closed(prober: Prober, silent_peer: RawPeer) -> None:
    result = await prober.once("http", f"http://{silent_peer.address}/health", timeout=0.3)
    assert result.reason is Reason.TIMEOUT
    for _ in range(100):
        if silent_peer.closed_by_client:
            break
        await asyncio.sleep(0.01)
    assert silent_peer.accepted == 1 and silent_peer.closed_by_client == 1


# --------------------------------------------------------------------------- slow


async def test_a_response_slower_than_the_threshold_is_slow(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/slow?ms=300", {"fail_if_slower_than": "100ms"})
    assert result.reason is Reason.SLOW and not result.success
    assert result.values["status_code"] == 200  # everything else was fine
    fast = await prober.once("http", f"{web_peer.url}/slow?ms=0", {"fail_if_slower_than": "5s"})
    assert fast.reason is Reason.OK
