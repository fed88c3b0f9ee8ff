"""The body cap and the body and header checks of the HTTP probe, against a real local peer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from probed.result import Reason
from tests.peers.http import Prober, WebPeer

# --------------------------------------------------------------------------- body cap


async def test_an_endless_body_stops_at_the_cap(prober: Prober, web_peer: WebPeer) -> None:
    cap = 64 * 1024
    result = await prober.once("http", f"{web_peer.url}/huge", {"max_body_bytes": cap})
    assert result.reason is Reason.BODY_TOO_LARGE, result.detail
    # Read at most the cap plus what one read hands over (aiohttp pauses the socket once its
    # buffer passes 128 KiB; a read can bring a few hundred KiB), and the server was stopped far
    # short of its 10 GB.
    assert cap < result.values["uncompressed_body_length"] <= cap + 512 * 1024
    assert result.values["content_length"] == -1  # chunked: no Content-Length header (blackbox's -1)
    await asyncio.sleep(0.05)
    assert web_peer.state["huge_bytes_sent"] < 64 * 1024 * 1024


async def test_a_declared_length_over_the_cap_fails_without_reading(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/huge?declared=1", {"max_body_bytes": "1MiB"})
    assert result.reason is Reason.BODY_TOO_LARGE
    assert result.values["content_length"] == 10 * 1024**3  # the header, as blackbox reports it
    assert result.values["uncompressed_body_length"] == 0  # nothing read


async def test_head_checks_a_large_resource_without_its_body(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/huge?declared=1", {"method": "HEAD", "max_body_bytes": 1024})
    assert result.reason is Reason.OK, result.detail
    assert result.values["content_length"] == 10 * 1024**3  # what the HEAD response declares
    assert result.values["uncompressed_body_length"] == 0 and web_peer.state["huge_bytes_sent"] == 0


async def test_an_endless_drip_ends_at_the_timeout_and_the_connection_closes(
        prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/drip", timeout=0.3)
    assert result.reason is Reason.TIMEOUT
    for _ in range(100):  # the server notices the closed connection on its next write
        if web_peer.state["drips_open"] == 0:
            break
        await asyncio.sleep(0.01)
    assert web_peer.state["drips_open"] == 0


async def test_http_status_wins_over_an_oversized_error_page(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/status/500", {"max_body_bytes": 4})
    assert result.reason is Reason.HTTP_STATUS


# --------------------------------------------------------------------------- body and header checks


@pytest.mark.parametrize(("status", "settings", "reason"), [
    ("ok", {"fail_if_body_not_matches_regexp": [r'"status":\s*"ok"']}, Reason.OK),
    ("degraded", {"fail_if_body_not_matches_regexp": [r'"status":\s*"ok"']}, Reason.BODY_MISMATCH),
    ("degraded", {"fail_if_body_matches_regexp": ["degraded"]}, Reason.BODY_MISMATCH),
    ("ok", {"fail_if_body_matches_regexp": ["degraded"]}, Reason.OK),
    ("ok", {"body_json": [{"path": "status", "equals": "ok"}]}, Reason.OK),
    ("degraded", {"body_json": [{"path": "checks.db.status", "equals": "ok"}]}, Reason.BODY_MISMATCH),
    ("ok", {"body_json": [{"path": "replicas[0].lag", "equals": 3}]}, Reason.OK),
    ("ok", {"body_json": [{"path": "replicas.0.lag", "matches": "^[0-5]$"}]}, Reason.OK),
    ("ok", {"body_json": [{"path": "checks.cache"}]}, Reason.BODY_MISMATCH),
], ids=["must-match-ok", "must-match-degraded", "must-not-match-degraded", "must-not-match-ok",
        "json-equals-ok", "json-nested-degraded", "json-index", "json-dotted-index", "json-missing"])
async def test_body_checks(prober: Prober, web_peer: WebPeer, status: str, settings: dict[str, Any],
                           reason: Reason) -> None:
    result = await prober.once("http", f"{web_peer.url}/json/{status}", settings)
    assert result.reason is reason, result.detail
    assert result.values["status_code"] == 200
    # blackbox's probe_failed_due_to_regex: 1 exactly when a body check failed the attempt
    assert result.values["failed_due_to_regex"] == (reason is Reason.BODY_MISMATCH)


async def test_a_body_that_is_not_json_fails_the_json_check(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/headers", {"body_json": [{"path": "status"}]})
    assert result.reason is Reason.BODY_MISMATCH
    assert result.detail == 'body is not JSON: "headers"'


async def test_json_true_is_not_one(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/json/true", {"body_json": [{"path": "status", "equals": 1}]})
    assert result.reason is Reason.BODY_MISMATCH  # the value is the string "true", and never 1


@pytest.mark.parametrize(("settings", "reason", "detail"), [
    ({"fail_if_header_not_matches": [{"header": "Access-Control-Allow-Origin",
                                      "regexp": "^https://app.example.com$"}]}, Reason.OK, ""),
    ({"fail_if_header_not_matches": [{"header": "access-control-allow-origin", "regexp": "^https://evil"}]},
     Reason.HEADER_MISMATCH,
     'header access-control-allow-origin: "https://app.example.com" does not match /^https://evil/'),
    ({"fail_if_header_not_matches": [{"header": "X-Frame-Options", "regexp": "DENY"}]},
     Reason.HEADER_MISMATCH, "header X-Frame-Options is missing"),
    ({"fail_if_header_not_matches": [{"header": "X-Frame-Options", "regexp": "DENY", "allow_missing": True}]},
     Reason.OK, ""),
    ({"fail_if_header_matches": [{"header": "Set-Cookie", "regexp": "session="}]},
     Reason.HEADER_MISMATCH, 'header Set-Cookie: "session=abc; Path=/" matches /session=/'),
    ({"fail_if_header_matches": [{"header": "Server", "regexp": "^IIS", "allow_missing": True}]}, Reason.OK, ""),
], ids=["cors-ok", "cors-wrong-origin", "missing", "missing-allowed", "forbidden-cookie", "not-iis"])
async def test_header_checks(prober: Prober, web_peer: WebPeer, settings: dict[str, Any], reason: Reason,
                             detail: str) -> None:
    result = await prober.once("http", f"{web_peer.url}/headers", settings)
    assert result.reason is reason, result.detail
    assert result.detail == detail
    assert result.values["failed_due_to_regex"] == (reason is Reason.HEADER_MISMATCH)
