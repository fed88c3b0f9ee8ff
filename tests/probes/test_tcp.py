"""The TCP probe against real local peers: connect, TLS, send/expect, and how it closes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from probed.config.schema import ConfigError
from probed.probes.common.net import split_host_port
from probed.result import Reason
from probed.runtime.probeset import parse_config
from tests.peers.http import HOST, Pki, Prober, RawPeer, WebPeer, open_fds, raw_peer


async def eventually(condition: Callable[[], bool]) -> None:
    """Waits for a peer to observe something (at most 2 s; not a timing assertion)."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    assert condition()


# --------------------------------------------------------------------------- connect


async def test_a_listening_port_succeeds_with_connect_timed(prober: Prober, silent_peer: RawPeer) -> None:
    result = await prober.once("tcp", silent_peer.address)
    assert result.success and result.reason is Reason.OK, result.detail
    assert set(result.phases) == {"resolve", "connect"}
    assert result.phases["resolve"] == 0 and result.phases["connect"] > 0
    await eventually(lambda: silent_peer.accepted == 1)


async def test_a_host_name_is_resolved_and_timed(prober: Prober, silent_peer: RawPeer) -> None:
    result = await prober.once("tcp", f"localhost:{silent_peer.port}", {"ip_protocol": "ip4"})
    assert result.reason is Reason.OK, result.detail
    assert result.phases["resolve"] > 0


async def test_a_closed_port_is_connection_refused(prober: Prober, closed_port: int) -> None:
    result = await prober.once("tcp", f"{HOST}:{closed_port}")
    assert result.reason is Reason.CONNECTION_REFUSED, result.detail
    assert result.detail == "connection refused"


async def test_a_connect_that_hangs_times_out_without_leaking_the_socket(
        prober: Prober, full_backlog_port: int) -> None:
    before = open_fds()
    result = await prober.once("tcp", f"{HOST}:{full_backlog_port}", timeout=0.3)
    assert result.reason is Reason.TIMEOUT
    assert open_fds() == before


async def test_an_unresolvable_host_is_a_dns_error(prober: Prober) -> None:
    # glibc refuses a name with "!" before sending any query: a real resolver failure, offline.
    result = await prober.once("tcp", "nohost!.test:5432")
    assert result.reason is Reason.DNS_ERROR, result.detail


async def test_a_plain_connect_closes_with_a_reset_and_a_talking_probe_gracefully(prober: Prober) -> None:
    # Reset: no TIME_WAIT left on the prober for the most frequent probe of all.
    async with raw_peer("silent") as plain:
        assert (await prober.once("tcp", plain.address)).reason is Reason.OK
        await eventually(lambda: plain.closed_by_client == 1)
        assert plain.resets_seen == 1
    async with raw_peer("silent") as graceful:
        assert (await prober.once("tcp", graceful.address, {"close": "graceful"})).reason is Reason.OK
        await eventually(lambda: graceful.closed_by_client == 1)
        assert graceful.resets_seen == 0
    async with raw_peer("silent") as talking:
        assert (await prober.once("tcp", talking.address, {"send": "hello\r\n"})).reason is Reason.OK
        await eventually(lambda: talking.closed_by_client == 1)
        assert talking.resets_seen == 0 and bytes(talking.received) == b"hello\r\n"


# --------------------------------------------------------------------------- send / expect


async def test_send_then_expect_succeeds_on_the_right_answer(prober: Prober, pingpong_peer: RawPeer) -> None:
    result = await prober.once("tcp", pingpong_peer.address, {"send": "PING\r\n", "expect": r"^\+PONG"})
    assert result.reason is Reason.OK, result.detail
    assert bytes(pingpong_peer.received) == b"PING\r\n"
    assert result.values["failed_due_to_regex"] == 0  # blackbox's probe_failed_due_to_regex


async def test_a_wrong_answer_on_an_open_connection_is_an_expect_mismatch(
        prober: Prober, pingpong_peer: RawPeer) -> None:
    # The server answers, then keeps the connection open waiting for more (like Redis): the
    # probe reports what it got instead of a bare timeout.
    result = await prober.once("tcp", pingpong_peer.address, {"send": "HELLO\r\n", "expect": r"^\+PONG"},
                               timeout=0.5)
    assert result.reason is Reason.EXPECT_MISMATCH
    assert result.detail == r"no match for /^\+PONG/ before the timeout; received b'-ERR unknown command\r\n'"
    assert result.values["failed_due_to_regex"] == 1


async def test_a_server_that_hangs_up_before_the_match_is_an_expect_mismatch(prober: Prober) -> None:
    async with raw_peer("hangup", banner=b"421 too busy\r\n") as peer:
        result = await prober.once("tcp", peer.address, {"expect": "^220 "})
    assert result.reason is Reason.EXPECT_MISMATCH
    assert result.detail == "connection closed before /^220 / matched; received 14 bytes: b'421 too busy\\r\\n'"


async def test_reading_stops_at_max_read_bytes(prober: Prober) -> None:
    async with raw_peer("banner", banner=b"220 " + b"x" * 100) as peer:
        result = await prober.once("tcp", peer.address, {"expect": "^SSH-2.0", "max_read_bytes": 8})
    assert result.reason is Reason.EXPECT_MISMATCH
    assert result.detail == "no match for /^SSH-2.0/ in the first 8 bytes: b'220 xxxx'"


async def test_silence_while_expecting_is_a_timeout(prober: Prober, silent_peer: RawPeer) -> None:
    before = open_fds()
    result = await prober.once("tcp", silent_peer.address, {"expect": "^SSH-"}, timeout=0.3)
    assert result.reason is Reason.TIMEOUT
    await eventually(lambda: silent_peer.closed_by_client == 1)
    assert open_fds() == before


async def test_a_reset_while_expecting_is_connection_reset(prober: Prober, reset_peer: RawPeer) -> None:
    result = await prober.once("tcp", reset_peer.address, {"send": "PING\r\n", "expect": "PONG"})
    assert result.reason is Reason.CONNECTION_RESET, result.detail


async def test_query_response_runs_a_scripted_conversation(prober: Prober) -> None:
    async with raw_peer("banner", banner=b"220 smtp.example.com ESMTP\r\n") as peer:
        steps = {"query_response": [{"expect": "^220 "}, {"send": "EHLO probed\r\n"}, {"send": "QUIT\r\n"}]}
        result = await prober.once("tcp", peer.address, steps)
        assert result.reason is Reason.OK, result.detail
        await eventually(lambda: peer.closed_by_client == 1)
        assert bytes(peer.received) == b"EHLO probed\r\nQUIT\r\n"


async def test_bytes_after_a_match_are_kept_for_the_next_step(prober: Prober, pingpong_peer: RawPeer) -> None:
    # Both answers usually arrive in one read: the second expect must find the second PONG.
    steps = {"query_response": [{"send": "PING\r\nPING\r\n"}, {"expect": "PONG"}, {"expect": "PONG"}]}
    result = await prober.once("tcp", pingpong_peer.address, steps, timeout=1.0)
    assert result.reason is Reason.OK, result.detail


# --------------------------------------------------------------------------- TLS


async def test_tls_succeeds_with_a_private_ca_and_times_the_handshake(
        prober: Prober, tls_peer: WebPeer, pki: Pki) -> None:
    settings = {"tls": True, "tls_config": {"ca_file": pki.ca_file}}
    result = await prober.once("tcp", f"localhost:{tls_peer.port}", settings)
    assert result.reason is Reason.OK, result.detail
    assert result.phases["tls"] > 0 and result.phases["connect"] > 0
    assert result.info["probe_tls_version_info"]["version"] in ("TLS 1.2", "TLS 1.3")
    # The certificate, as blackbox's tcp prober exports it with `tls: true` (and https does here).
    leaf = x509.load_pem_x509_certificate(pki.good.cert_chain_pems[0].bytes())
    assert result.values["cert_expiry_timestamp_seconds"] == leaf.not_valid_after_utc.timestamp()
    assert result.values["last_chain_expiry_timestamp_seconds"] <= leaf.not_valid_after_utc.timestamp()
    assert result.info["probe_ssl_last_chain_info"] == {
        "fingerprint_sha256": leaf.fingerprint(hashes.SHA256()).hex(), "subject": leaf.subject.rfc4514_string(),
        "issuer": leaf.issuer.rfc4514_string(), "subjectalternative": "localhost"}
    assert "probe_tls_cipher_info" not in result.info  # blackbox's tcp prober has no cipher series
    assert result.values["failed_due_to_regex"] == 0


async def test_send_and_expect_work_over_tls(prober: Prober, tls_peer: WebPeer, pki: Pki) -> None:
    settings = {"tls": True, "tls_config": {"ca_file": pki.ca_file},
                "send": "GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n", "expect": "^HTTP/1\\.[01] 200 "}
    result = await prober.once("tcp", f"{HOST}:{tls_peer.port}", settings)
    assert result.reason is Reason.OK, result.detail


@pytest.mark.parametrize(("tls_config", "reason"), [
    ({}, Reason.CERT_UNTRUSTED),
    ({"ca_file": "CA", "server_name": "wrong.example"}, Reason.CERT_HOSTNAME_MISMATCH),
    ({"insecure_skip_verify": True, "server_name": "wrong.example"}, Reason.OK),
], ids=["unknown-ca", "wrong-name", "insecure"])
async def test_certificate_verification(prober: Prober, tls_peer: WebPeer, pki: Pki, tls_config: dict[str, Any],
                                        reason: Reason) -> None:
    if tls_config.get("ca_file") == "CA":
        tls_config = {**tls_config, "ca_file": pki.ca_file}
    result = await prober.once("tcp", f"{HOST}:{tls_peer.port}", {"tls": True, "tls_config": tls_config})
    assert result.reason is reason, result.detail


async def test_tls_to_a_peer_that_does_not_speak_it_fails_the_handshake(
        prober: Prober, garbage_peer: RawPeer) -> None:
    result = await prober.once("tcp", garbage_peer.address, {"tls": True})
    assert result.reason is Reason.TLS_HANDSHAKE, result.detail


async def test_a_handshake_that_never_completes_times_out_without_leaking(
        prober: Prober, silent_peer: RawPeer) -> None:
    before = open_fds()
    result = await prober.once("tcp", silent_peer.address, {"tls": True}, timeout=0.3)
    assert result.reason is Reason.TIMEOUT
    await eventually(lambda: silent_peer.closed_by_client == 1)
    await eventually(lambda: open_fds() == before)


# --------------------------------------------------------------------------- targets and config


@pytest.mark.parametrize(("target", "parsed"), [
    ("db.internal:5432", ("db.internal", 5432)),
    ("10.0.0.5:6379", ("10.0.0.5", 6379)),
    ("[::1]:5432", ("::1", 5432)),
    ("[2001:db8::7]:443", ("2001:db8::7", 443)),
])
def test_targets_are_host_and_port(target: str, parsed: tuple[str, int]) -> None:
    assert split_host_port(target) == parsed


TCP_PROBE = "probes:\n  - name: db\n    type: tcp\n"


@pytest.mark.parametrize(("section", "message"), [
    ("    target: db.internal\n",
     'probes.yaml:4:13: probes[0].target: invalid target "db.internal" (expected host:port, IPv6 as [::1]:port)'),
    ("    target: db.internal:99999\n",
     'probes.yaml:4:13: probes[0].target: invalid port in target "db.internal:99999" (expected 1-65535)'),
    ('    target: "::1:5432"\n',
     'probes.yaml:4:13: probes[0].target: invalid target "::1:5432" (write IPv6 addresses in brackets: [::1]:port)'),
    ("    target: '[db.internal]:5432'\n",
     'probes.yaml:4:13: probes[0].target: invalid IPv6 address in target "[db.internal]:5432"'),
    ('    target: db.internal:6379\n    tcp:\n      send: "PING\\r\\n"\n      query_response: [{expect: PONG}]\n',
     "probes.yaml:7:23: probes[0].tcp.query_response: use either send/expect or query_response, not both"),
    ('    target: db.internal:6379\n    tcp: {send: "PING\\r\\n", expect: "+PONG"}\n',
     'probes.yaml:5:37: probes[0].tcp.expect: invalid regexp "+PONG": no argument for repetition operator: `+`'),
    ("    target: db.internal:6379\n    tcp: {close: abrupt}\n",
     "probes.yaml:5:18: probes[0].tcp.close: invalid value 'abrupt' (one of: auto, graceful, reset)"),
], ids=["no-port", "port-range", "ipv6-without-brackets", "brackets-not-ipv6", "both-styles", "bad-regexp",
        "bad-close"])
def test_config_errors_point_at_the_line(section: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(TCP_PROBE + section, "probes.yaml", {})
    assert str(caught.value) == message


def test_the_contract_example_parses() -> None:
    config = parse_config(TCP_PROBE + "    target: db.internal:5432\n    tcp: {tls: false, send: null, expect: null}\n",
                          "probes.yaml", {})
    settings = config.probes[0].settings
    assert settings.tls is False and settings.steps == ()
