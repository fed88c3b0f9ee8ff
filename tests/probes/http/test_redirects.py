"""Redirects: followed and counted up to the limit, loops, not following, and which hop the values describe."""

from __future__ import annotations

from probed.probes import get_kind
from probed.result import Reason
from tests.peers.http import Pki, Prober, WebPeer

# --------------------------------------------------------------------------- redirects


async def test_redirects_are_followed_and_counted(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/redirect/3")
    assert result.reason is Reason.OK, result.detail
    assert result.values["redirects"] == 3
    assert result.facts["final_url"] == f"{web_peer.url}/redirect/0"
    phases, final = get_kind("http").describe(result)  # type: ignore[misc]
    assert phases.startswith("phases: resolve 0.00 ms, connect ")
    assert final == f"final URL after 3 redirect(s): {web_peer.url}/redirect/0"


async def test_max_redirects_is_the_number_allowed(prober: Prober, web_peer: WebPeer) -> None:
    exactly = await prober.once("http", f"{web_peer.url}/redirect/2", {"max_redirects": 2})
    assert exactly.reason is Reason.OK, exactly.detail
    over = await prober.once("http", f"{web_peer.url}/redirect/3", {"max_redirects": 2})
    assert over.reason is Reason.TOO_MANY_REDIRECTS, over.detail


async def test_a_redirect_loop_is_too_many_redirects(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/redirect-loop")
    assert result.reason is Reason.TOO_MANY_REDIRECTS
    assert result.detail.startswith("more than 10 redirects")
    assert result.values["redirects"] == 11


async def test_without_following_a_redirect_is_just_a_status(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/redirect/1", {"follow_redirects": False})
    assert result.reason is Reason.HTTP_STATUS
    assert result.values["status_code"] == 302 and result.values["redirects"] == 0


async def test_values_describe_the_final_response_of_a_redirect_chain(
        prober: Prober, tls_peer: WebPeer, web_peer: WebPeer, pki: Pki) -> None:
    target = f"https://localhost:{tls_peer.port}/redirect-to?url={web_peer.url}/health"
    result = await prober.once("http", target, {"tls": {"ca_file": pki.ca_file}})
    assert result.reason is Reason.OK, result.detail
    assert result.values["redirects"] == 1
    assert result.values["ssl"] == 0 and "probe_tls_version_info" not in result.info
    assert result.phases["tls"] > 0  # the first hop's handshake still counts


async def test_a_redirect_to_a_non_http_location_is_a_protocol_error(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/redirect-to?url=ftp://example.com/")
    assert result.reason is Reason.PROTOCOL_ERROR, result.detail
