"""How a `type: tls` handshake fails or succeeds against real local servers: versions, silence, garbage,
hang-ups, refused ports, cancellation, mutual TLS, and uvloop, the daemon's loop."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from probed.config.schema import ConfigError
from probed.result import Reason
from probed.runtime.attempt import run_attempt
from probed.runtime.probeset import parse_config
from tests.peers.net import closed_port
from tests.peers.tls import (
    DAY,
    Pki,
    ServerCert,
    banner_server,
    dripping_server,
    hanging_up_server,
    self_signed,
    silent_server,
    tls_server,
)
from tests.peers.tls_attempt import NET_VALUES, attempt, make_probe

# --------------------------------------------------------------------------- handshake and transport


async def test_tls12_only_server_fails_min_version_tls13(pki: Pki, good: ServerCert) -> None:
    async with tls_server(good, max_version=ssl.TLSVersion.TLSv1_2) as server:
        result = await attempt(pki, server.port, min_version="TLS1.3")
    assert result.reason is Reason.TLS_VERSION
    assert result.detail == "TLS: no protocol version both sides accept (TLSV1_ALERT_PROTOCOL_VERSION)"
    assert set(result.phases) == {"connect", "tls"}  # the failed handshake's time is in `tls`
    assert set(result.values) <= NET_VALUES and result.info == {}  # no certificate was sent, none known before


async def test_port_that_never_speaks_tls_times_out(pki: Pki) -> None:
    async with silent_server() as server:
        probe, timeout = make_probe(pki, server.port, timeout="500ms")
        result = await run_attempt(probe, timeout)
    assert result.reason is Reason.TIMEOUT
    # The probe's own deadline (a tenth inside the timeout) ends it, so it says where it stopped.
    assert result.detail == ("connected, but no TLS handshake within 0.45s: the server sent nothing "
                             "(not a TLS server, or stalled)")
    assert set(result.phases) == {"connect", "tls"}
    assert set(result.values) <= NET_VALUES and result.info == {}


async def test_a_server_that_drips_a_handshake_never_finishes_ends_at_the_timeout(pki: Pki) -> None:
    # A TLS handshake record header announcing 16 KiB, then one byte every 10 ms.
    async with dripping_server(b"\x16\x03\x03\x40\x00") as server:
        probe, _ = make_probe(pki, server.port, timeout="500ms")
        # probe() itself, not run_attempt: its own deadline must end it, however the bytes trickle.
        result = await asyncio.wait_for(probe.probe(), timeout=10)
    assert result.reason is Reason.TIMEOUT
    assert result.detail.startswith("TLS handshake not done within 0.45s (the server sent ")
    assert result.detail.endswith(" bytes, then stalled)")


@pytest.mark.parametrize("garbage", [
    b"HTTP/1.1 400 Bad Request\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.6\r\n",
    bytes(range(256)) * 4,
], ids=["http", "ssh-banner", "binary"])
async def test_a_peer_that_answers_garbage_is_a_handshake_failure(pki: Pki, garbage: bytes) -> None:
    async with banner_server(garbage) as server:
        result = await attempt(pki, server.port)
    assert result.reason is Reason.TLS_HANDSHAKE
    assert "does not speak TLS" in result.detail
    assert set(result.values) <= NET_VALUES


@pytest.mark.parametrize(("reset", "detail"), [
    (True, "TLS: the server reset the connection during the handshake"),
    (False, "TLS: the server closed the connection during the handshake"),
], ids=["rst", "fin"])
async def test_a_server_that_hangs_up_on_the_client_hello_is_a_handshake_failure(
        pki: Pki, reset: bool, detail: str) -> None:
    async with hanging_up_server(reset) as server:
        result = await attempt(pki, server.port)
    assert result.reason is Reason.TLS_HANDSHAKE
    assert result.detail == detail
    assert set(result.phases) == {"connect", "tls"}


async def test_closed_port_is_connection_refused(pki: Pki) -> None:
    result = await attempt(pki, closed_port())
    assert result.reason is Reason.CONNECTION_REFUSED
    assert set(result.values) <= NET_VALUES  # nothing known yet (but the lookup time)
    assert set(result.phases) == {"connect"}  # the refused connect's time


async def test_network_failure_keeps_the_last_known_expiry(pki: Pki, good: ServerCert) -> None:
    async with tls_server(good) as server:
        probe, timeout = make_probe(pki, server.port)
        first = await run_attempt(probe, timeout)
    second = await run_attempt(probe, timeout)  # the server is gone now

    assert first.reason is Reason.OK
    assert second.reason is Reason.CONNECTION_REFUSED
    assert second.values["cert_expiry_timestamp_seconds"] == first.values["cert_expiry_timestamp_seconds"]
    assert second.values["cert_days_remaining"] <= first.values["cert_days_remaining"]
    assert "probe_tls_version_info" not in second.info  # no handshake this time
    assert second.facts["tls"]["last_known_at"]  # type: ignore[index]


async def test_timeout_keeps_the_last_known_expiry(pki: Pki, good: ServerCert) -> None:
    async with tls_server(good) as server:
        probe, timeout = make_probe(pki, server.port, timeout="500ms")
        first = await run_attempt(probe, timeout)
    async with silent_server() as silent:
        probe._port = silent.port  # the same probe instance, now facing a silent peer
        second = await run_attempt(probe, timeout)
    assert second.reason is Reason.TIMEOUT
    assert second.values["cert_expiry_timestamp_seconds"] == first.values["cert_expiry_timestamp_seconds"]


async def test_cancellation_closes_the_connection(pki: Pki) -> None:
    async with silent_server() as server:
        probe, _ = make_probe(pki, server.port)
        task = asyncio.create_task(probe.probe())
        assert await asyncio.to_thread(server.first_accepted.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(server.all_closed.wait, 5), "the probe left its connection open"


# --------------------------------------------------------------------------- mutual TLS


@pytest.fixture
def client_files(pki: Pki, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    yield pki.leaf_expiring_in(30 * DAY, "probed-client").write(tmp_path, "client")


async def test_mutual_tls_with_an_accepted_client_certificate_passes(
        pki: Pki, good: ServerCert, client_files: tuple[Path, Path]) -> None:
    cert, key = client_files
    async with tls_server(good, client_ca=pki.ca_file) as server:
        result = await attempt(pki, server.port, client_cert=str(cert), client_key=str(key))
    assert result.reason is Reason.OK, result.detail


async def test_mutual_tls13_server_that_never_closes_is_accepted_by_its_session_ticket(
        pki: Pki, good: ServerCert, client_files: tuple[Path, Path]) -> None:
    cert, key = client_files
    async with tls_server(good, client_ca=pki.ca_file, hold_open=True) as server:
        probe, _ = make_probe(pki, server.port, client_cert=str(cert), client_key=str(key))
        result = await asyncio.wait_for(probe.probe(), timeout=10)
    # Without reading the ticket as the verdict, the probe would wait for a close that never comes.
    assert result.reason is Reason.OK, result.detail
    assert result.info["probe_tls_version_info"] == {"version": "TLS 1.3"}


async def test_mutual_tls13_server_that_neither_accepts_nor_rejects_times_out_saying_so(
        pki: Pki, good: ServerCert, client_files: tuple[Path, Path]) -> None:
    cert, key = client_files
    async with tls_server(good, client_ca=pki.ca_file, hold_open=True, session_tickets=False) as server:
        result = await attempt(pki, server.port, timeout="500ms", client_cert=str(cert), client_key=str(key))
    assert result.reason is Reason.TIMEOUT
    assert "neither accepted nor rejected the client certificate" in result.detail


def test_an_encrypted_client_key_is_a_config_error_not_a_passphrase_prompt(tmp_path: Path, pki: Pki) -> None:
    cert, key = pki.leaf_expiring_in(30 * DAY, "probed-client").write(tmp_path, "client", passphrase=b"hunter2")
    for section, field in [(f"tls: {{client_cert: {cert}, client_key: {key}}}", "tls.client_key"),
                           (f"http: {{tls: {{cert_file: {cert}, key_file: {key}}}}}", "http.tls.key_file")]:
        kind, target = ("tls", "example.com:443") if section.startswith("tls") else ("http", "https://example.com/")
        text = f"probes:\n  - name: c\n    type: {kind}\n    target: {target}\n    {section}\n"
        with pytest.raises(ConfigError) as err:
            parse_config(text, "probes.yaml", {})
        assert f"{field}: the private key is encrypted (passphrase-protected)" in str(err.value)
        assert "hunter2" not in str(err.value)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
async def test_mutual_tls_with_a_rejected_client_certificate_is_a_handshake_failure(
        pki: Pki, good: ServerCert, tmp_path: Path, version: ssl.TLSVersion) -> None:
    cert, key = self_signed("intruder").write(tmp_path, "intruder")
    async with tls_server(good, client_ca=pki.ca_file, max_version=version) as server:
        result = await attempt(pki, server.port, client_cert=str(cert), client_key=str(key))
    assert result.reason is Reason.TLS_HANDSHAKE
    assert "rejected" in result.detail


def test_the_daemons_event_loop_uvloop_runs_it_too(pki: Pki, good: ServerCert, tmp_path: Path) -> None:
    """The tests above run on asyncio's loop; the daemon runs on uvloop, whose transports differ."""
    import uvloop

    cert, key = self_signed("intruder").write(tmp_path, "intruder")

    async def scenarios() -> list[Reason]:
        async with tls_server(good, client_ca=pki.ca_file) as mutual, tls_server(good) as plain, \
                hanging_up_server(reset=True) as resetting:
            return [
                (await attempt(pki, plain.port)).reason,
                (await attempt(pki, plain.port, server_name="elsewhere.example")).reason,
                (await attempt(pki, mutual.port, client_cert=str(cert), client_key=str(key))).reason,
                (await attempt(pki, closed_port())).reason,
                (await attempt(pki, resetting.port)).reason,
            ]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        reasons = runner.run(scenarios())
    assert reasons == [Reason.OK, Reason.CERT_HOSTNAME_MISMATCH, Reason.TLS_HANDSHAKE, Reason.CONNECTION_REFUSED,
                       Reason.TLS_HANDSHAKE]
