"""HTTPS through the HTTP probe: a private CA, keepalive, untrusted, mismatched and expired certificates."""

from __future__ import annotations

from probed.result import Reason
from tests.peers.http import HOST, Pki, Prober, RawPeer, WebPeer, serve_web
from tests.peers.results import assert_phases

# --------------------------------------------------------------------------- TLS


async def test_https_with_a_private_ca_succeeds_and_times_the_handshake(
        prober: Prober, tls_peer: WebPeer, pki: Pki) -> None:
    result = await prober.once("http", f"https://localhost:{tls_peer.port}/health", {"tls": {"ca_file": pki.ca_file}})
    assert result.reason is Reason.OK, result.detail
    assert_phases(result.phases)
    assert result.phases["tls"] > 0 and result.phases["connect"] > 0
    assert result.values["ssl"] == 1
    assert result.info["probe_tls_version_info"]["version"] in ("TLS 1.2", "TLS 1.3")


async def test_https_keepalive_still_reports_tls_facts(prober: Prober, tls_peer: WebPeer, pki: Pki) -> None:
    probe = prober.make("http", f"{tls_peer.url}/health", {"keepalive": True, "tls": {"ca_file": pki.ca_file}})
    first, second = await probe.probe(), await probe.probe()
    assert first.reason is second.reason is Reason.OK
    assert first.phases["tls"] > 0 and second.phases["tls"] == 0  # the second reused the connection
    assert second.info["probe_tls_version_info"] == first.info["probe_tls_version_info"]


async def test_an_unknown_ca_is_cert_untrusted(prober: Prober, tls_peer: WebPeer) -> None:
    result = await prober.once("http", f"{tls_peer.url}/health")
    assert result.reason is Reason.CERT_UNTRUSTED, result.detail
    assert result.phases["connect"] > 0 and result.phases["tls"] > 0  # it failed in the handshake


async def test_insecure_skip_verify_accepts_an_unknown_ca(prober: Prober, tls_peer: WebPeer) -> None:
    result = await prober.once("http", f"{tls_peer.url}/health", {"tls": {"insecure_skip_verify": True}})
    assert result.reason is Reason.OK, result.detail
    assert result.values["ssl"] == 1


async def test_a_certificate_for_another_host_is_a_hostname_mismatch(prober: Prober, pki: Pki) -> None:
    async with serve_web(pki.server_context(pki.other_host)) as peer:
        result = await prober.once("http", f"https://localhost:{peer.port}/health", {"tls": {"ca_file": pki.ca_file}})
        assert result.reason is Reason.CERT_HOSTNAME_MISMATCH, result.detail
        # ... and server_name says which name the certificate must carry.
        named = {"tls": {"ca_file": pki.ca_file, "server_name": "other.example"}}
        result = await prober.once("http", f"https://{HOST}:{peer.port}/health", named)
        assert result.reason is Reason.OK, result.detail


async def test_an_expired_certificate_is_cert_expired(prober: Prober, pki: Pki) -> None:
    async with serve_web(pki.server_context(pki.expired)) as peer:
        result = await prober.once("http", f"{peer.url}/health", {"tls": {"ca_file": pki.ca_file}})
        assert result.reason is Reason.CERT_EXPIRED, result.detail


async def test_a_peer_that_does_not_speak_tls_fails_the_handshake(prober: Prober, garbage_peer: RawPeer) -> None:
    result = await prober.once("http", f"https://{garbage_peer.address}/health")
    assert result.reason is Reason.TLS_HANDSHAKE, result.detail
