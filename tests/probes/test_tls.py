"""`type: tls` against real local TLS servers with certificates minted in the test."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import ssl
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client.parser import text_string_to_metric_families

from probed.config.model import ProbeSpec
from probed.config.schema import ConfigError
from probed.output.exposition import ExpositionView, ReloadStatus, render
from probed.probes import ProbeContext, get_kind
from probed.probes.common.net import IP_ADDR_HASH_VALUE, IP_PROTOCOL_VALUE, LOOKUP_VALUE
from probed.probes.tls import TlsProbe
from probed.result import ProbeResult, Reason
from probed.runtime.attempt import run_attempt
from probed.runtime.probeset import parse_config
from probed.runtime.scheduler import SchedulerStats
from probed.runtime.state import ProbeState
from tests.peers.net import closed_port
from tests.peers.tls import (
    DAY,
    HOST,
    Pki,
    ServerCert,
    banner_server,
    dripping_server,
    hanging_up_server,
    self_signed,
    silent_server,
    tls_server,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def good(pki: Pki) -> ServerCert:
    return pki.leaf_expiring_in(90 * DAY, "localhost")


NET_VALUES = {LOOKUP_VALUE, IP_PROTOCOL_VALUE, IP_ADDR_HASH_VALUE}
"""What every attempt carries, certificate or not: the lookup time, and the IP version once connected."""


def tls_spec(port: int, timeout: str = "2s", **options: object) -> ProbeSpec:
    lines = "".join(f"\n      {k}: {v}" for k, v in options.items())
    text = f"""
probes:
  - name: cert
    type: tls
    target: "{HOST}:{port}"
    timeout: {timeout}
    tls:{lines or " {}"}
"""
    return parse_config(text, "probes.yaml", {}).probes[0]


def make_probe(pki: Pki, port: int, timeout: str = "2s", **options: object) -> tuple[TlsProbe, float]:
    options = {"server_name": "localhost", "ca_file": str(pki.ca_file), **options}
    spec = tls_spec(port, timeout, **options)
    probe = get_kind("tls").factory(spec, ProbeContext())
    assert isinstance(probe, TlsProbe)
    return probe, spec.timeout


async def attempt(pki: Pki, port: int, timeout: str = "2s", **options: object) -> ProbeResult:
    probe, timeout_s = make_probe(pki, port, timeout, **options)
    try:
        return await run_attempt(probe, timeout_s)
    finally:
        await probe.aclose()


def assert_expiry(result: ProbeResult, cert: ServerCert) -> None:
    """The exported expiry is the minted certificate's (to the second), and so are the days."""
    expiry = result.values["cert_expiry_timestamp_seconds"]
    assert abs(expiry - cert.earliest_not_after()) < 1
    now = dt.datetime.now(dt.UTC).timestamp()
    assert abs(result.values["cert_days_remaining"] - (expiry - now) / 86400) < 0.01


# --------------------------------------------------------------------------- healthy


async def test_valid_chain_under_the_test_ca_passes_and_exports_the_chain(pki: Pki, good: ServerCert) -> None:
    async with tls_server(good) as server:
        result = await attempt(pki, server.port)

    assert result.reason is Reason.OK, result.detail
    assert_expiry(result, good)
    assert result.values["cert_chain_length"] == 2  # leaf + intermediate
    # The verified path ends at the root from ca_file; trustme's root outlives the leaf.
    assert result.values["last_chain_expiry_timestamp_seconds"] == result.values["cert_expiry_timestamp_seconds"]
    assert set(result.phases) == {"connect", "tls"}
    assert result.info["probe_tls_version_info"] == {"version": "TLS 1.3"}
    leaf = good.leaf
    assert result.info["probed_tls_cert_info"] == {
        "issuer": leaf.issuer.rfc4514_string(),
        "subject": leaf.subject.rfc4514_string(),
        "fingerprint_sha256": hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest(),
    }
    chain = result.facts["tls"]["chain"]  # type: ignore[index]
    assert list(chain[0]["sans"]) == ["localhost"]
    assert chain[0]["serial"] == format(leaf.serial_number, "X")
    assert len(result.facts["tls"]["verified_chain"]) == 3  # type: ignore[index]


async def test_server_name_is_what_the_certificate_must_match(pki: Pki) -> None:
    cert = pki.leaf_expiring_in(90 * DAY, "api.internal")
    async with tls_server(cert) as server:
        assert (await attempt(pki, server.port, server_name="api.internal")).reason is Reason.OK
        assert (await attempt(pki, server.port, server_name="localhost")).reason is Reason.CERT_HOSTNAME_MISMATCH


async def test_tls12_server_passes_with_the_default_minimum(pki: Pki, good: ServerCert) -> None:
    async with tls_server(good, max_version=ssl.TLSVersion.TLSv1_2) as server:
        result = await attempt(pki, server.port)
    assert result.reason is Reason.OK, result.detail
    assert result.info["probe_tls_version_info"] == {"version": "TLS 1.2"}


# --------------------------------------------------------------------------- certificate problems


async def test_expired_certificate_is_cert_expired_and_exports_its_expiry(pki: Pki) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    expired = pki.leaf("localhost", not_before=now - 60 * DAY, not_after=now - 2 * DAY)
    async with tls_server(expired) as server:
        result = await attempt(pki, server.port)

    assert result.reason is Reason.CERT_EXPIRED
    assert "expired 2.0 days ago" in result.detail
    assert_expiry(result, expired)
    assert result.values["cert_days_remaining"] < -1.99


async def test_certificate_expiring_in_3_days_is_a_cert_expiring_warning(pki: Pki) -> None:
    expiring = pki.leaf_expiring_in(3 * DAY, "localhost")
    async with tls_server(expiring) as server:
        result = await attempt(pki, server.port)
        relaxed = await attempt(pki, server.port, min_days_remaining=2)
        strict = await attempt(pki, server.port, fail_if_expiring="true")

    assert result.success and result.reason is Reason.OK and result.warning is Reason.CERT_EXPIRING
    assert "expires in 3.0 days" in result.detail and "min_days_remaining 14" in result.detail
    assert_expiry(result, expiring)
    assert 2.99 < result.values["cert_days_remaining"] <= 3
    assert relaxed.reason is Reason.OK and relaxed.warning is None
    assert not strict.success and strict.reason is Reason.CERT_EXPIRING and strict.warning is None
    assert strict.detail == result.detail


async def test_wrong_host_name_is_a_mismatch_and_still_exports_the_expiry(pki: Pki) -> None:
    other = pki.leaf_expiring_in(40 * DAY, "www.example.org")
    async with tls_server(other) as server:
        result = await attempt(pki, server.port)

    assert result.reason is Reason.CERT_HOSTNAME_MISMATCH
    assert "www.example.org" in result.detail
    assert_expiry(result, other)
    assert "last_chain_expiry_timestamp_seconds" not in result.values  # nothing was verified


async def test_self_signed_certificate_is_untrusted_and_still_exports_the_expiry(pki: Pki) -> None:
    cert = self_signed("localhost", valid_for=20 * DAY)
    async with tls_server(cert) as server:
        result = await attempt(pki, server.port)

    assert result.reason is Reason.CERT_UNTRUSTED
    assert "self-signed" in result.detail
    assert_expiry(result, cert)
    assert result.info["probed_tls_cert_info"]["subject"] == "CN=localhost"


async def test_leaf_without_its_intermediate_is_untrusted(pki: Pki, good: ServerCert) -> None:
    async with tls_server(good.without_intermediates()) as server:
        result = await attempt(pki, server.port)

    assert result.reason is Reason.CERT_UNTRUSTED
    assert "sent no intermediate" in result.detail
    assert result.values["cert_chain_length"] == 1
    assert_expiry(result, good.without_intermediates())


async def test_expiry_outranks_trust_when_both_are_wrong(pki: Pki) -> None:
    cert = self_signed("localhost", valid_for=-DAY)  # not after: yesterday
    async with tls_server(cert) as server:
        result = await attempt(pki, server.port)
    assert result.reason is Reason.CERT_EXPIRED


async def test_insecure_skip_verify_accepts_untrusted_but_still_checks_expiry(pki: Pki) -> None:
    async with tls_server(self_signed("elsewhere.example", valid_for=20 * DAY)) as server:
        ok = await attempt(pki, server.port, insecure_skip_verify="true")
    async with tls_server(self_signed("elsewhere.example", valid_for=5 * DAY)) as server:
        expiring = await attempt(pki, server.port, insecure_skip_verify="true")

    assert ok.reason is Reason.OK, ok.detail
    assert ok.facts["tls"]["verified"] is False  # type: ignore[index]
    assert expiring.success and expiring.warning is Reason.CERT_EXPIRING


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


# --------------------------------------------------------------------------- presentation and config


async def test_describe_prints_the_chain_with_expiry_and_days_left(pki: Pki) -> None:
    cert = pki.leaf_expiring_in(3 * DAY, "localhost")
    async with tls_server(cert) as server:
        result = await attempt(pki, server.port)
    lines = get_kind("tls").describe(result)  # type: ignore[misc]
    assert lines[0] == "TLS 1.3, TLS_AES_256_GCM_SHA384, chain verified"
    assert lines[1].startswith("[0] ") and "(3.0 days left)" in lines[1]
    assert any(line.strip() == "names localhost" for line in lines)
    assert any(line.startswith("[1] ") and "Testing CA" in line for line in lines)


@pytest.mark.parametrize(("section", "message"), [
    ("{client_key: /etc/hostname}", "tls.client_key: client_key needs client_cert"),
    ("{ca_file: /nonexistent/ca.pem}", "tls.ca_file: cannot read /nonexistent/ca.pem"),
    ("{min_version: TLS1.1}", "tls.min_version: invalid value 'TLS1.1' (one of: TLS1.2, TLS1.3)"),
    ("{min_days_remaining: -1}", "tls.min_days_remaining: must be at least 0, got -1"),
    ("{ca_file: /etc/hostname}", "tls.ca_file: unusable TLS file"),
], ids=["key-without-cert", "unreadable-ca", "old-min-version", "negative-days", "not-a-pem"])
def test_config_errors_name_the_field(section: str, message: str) -> None:
    text = f"probes:\n  - name: c\n    type: tls\n    target: example.com:443\n    tls: {section}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "probes.yaml", {})
    assert message in str(err.value)


def test_target_must_be_host_and_port() -> None:
    with pytest.raises(ConfigError, match="invalid target"):
        parse_config("probes:\n  - {name: c, type: tls, target: example.com}\n", "probes.yaml", {})


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


# --------------------------------------------------------------------------- https through `type: http`


@contextlib.asynccontextmanager
async def https_server(cert: ServerCert) -> AsyncIterator[int]:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text='{"status":"ok"}')

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.load_into(ctx)
    app = web.Application()
    app.router.add_get("/health", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, ssl_context=ctx)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def http_attempt(pki: Pki, port: int) -> ProbeResult:
    text = f"""
probes:
  - name: site
    type: http
    target: https://{HOST}:{port}/health
    timeout: 2s
    http: {{tls: {{server_name: localhost, ca_file: "{pki.ca_file}"}}}}
"""
    spec = parse_config(text, "probes.yaml", {}).probes[0]
    probe = get_kind("http").factory(spec, ProbeContext())
    try:
        return await run_attempt(probe, spec.timeout)
    finally:
        await probe.aclose()


CERT_VALUES = ("cert_expiry_timestamp_seconds", "last_chain_expiry_timestamp_seconds", "cert_chain_length")


async def test_https_target_of_an_http_probe_warns_cert_expiring_like_the_tls_probe(pki: Pki) -> None:
    expiring = pki.leaf_expiring_in(3 * DAY, "localhost")
    async with https_server(expiring) as port:
        via_http = await http_attempt(pki, port)
        via_tls = await attempt(pki, port)

    assert via_http.success and via_tls.success
    assert via_http.warning is via_tls.warning is Reason.CERT_EXPIRING
    assert via_http.detail == via_tls.detail
    assert via_http.values["status_code"] == 200  # the service works; its certificate is the problem
    assert_expiry(via_http, expiring)
    assert {k: via_http.values[k] for k in CERT_VALUES} == {k: via_tls.values[k] for k in CERT_VALUES}
    assert via_http.info["probed_tls_cert_info"] == via_tls.info["probed_tls_cert_info"]
    assert get_kind("http").aliases["cert_expiry_timestamp_seconds"].metric == "probe_ssl_earliest_cert_expiry"


async def test_https_target_with_an_untrusted_certificate_still_exports_its_expiry(pki: Pki) -> None:
    cert = self_signed("localhost", valid_for=30 * DAY)
    async with https_server(cert) as port:
        result = await http_attempt(pki, port)

    assert result.reason is Reason.CERT_UNTRUSTED
    assert_expiry(result, cert)
    assert "last_chain_expiry_timestamp_seconds" not in result.values


async def test_https_target_with_a_healthy_certificate_passes(pki: Pki, good: ServerCert) -> None:
    async with https_server(good) as port:
        result = await http_attempt(pki, port)
    assert result.reason is Reason.OK, result.detail
    assert_expiry(result, good)
    assert result.info["probe_tls_version_info"] == {"version": "TLS 1.3"}


async def test_https_target_with_the_wrong_host_name_fails_like_the_tls_probe(pki: Pki) -> None:
    wrong = pki.leaf_expiring_in(40 * DAY, "www.example.org")
    async with https_server(wrong) as port:
        via_http = await http_attempt(pki, port)
        via_tls = await attempt(pki, port)
    assert via_http.reason is via_tls.reason is Reason.CERT_HOSTNAME_MISMATCH
    assert_expiry(via_http, wrong)


async def test_https_target_with_an_expired_self_signed_certificate_fails_like_the_tls_probe(pki: Pki) -> None:
    cert = self_signed("localhost", valid_for=-DAY)
    async with https_server(cert) as port:
        via_http = await http_attempt(pki, port)
        via_tls = await attempt(pki, port)
    assert via_tls.reason is Reason.CERT_EXPIRED
    assert via_http.reason is via_tls.reason  # today: cert_untrusted ("self-signed certificate")


async def test_probed_once_on_an_https_target_prints_the_chain(pki: Pki, good: ServerCert) -> None:
    async with https_server(good) as port:
        result = await http_attempt(pki, port)
    lines = get_kind("http").describe(result)  # type: ignore[misc]
    assert lines[0].startswith("phases: resolve ")
    assert lines[1] == "TLS 1.3, TLS_AES_256_GCM_SHA384, chain verified"
    assert lines[2].startswith("[0] ") and "(90.0 days left)" in lines[2]


# --------------------------------------------------------------------------- what leaves the process


def families(text: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text.decode()):
        for sample in fam.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def only(fams: dict[str, list[tuple[dict[str, str], float]]], metric: str) -> tuple[dict[str, str], float]:
    (sample,) = fams[metric]
    return sample


async def test_metrics_under_blackbox_and_probed_names_survive_a_network_failure(
        pki: Pki, good: ServerCert) -> None:
    async with tls_server(good) as server:
        probe, timeout = make_probe(pki, server.port)
        state = ProbeState.new(tls_spec(server.port))
        state.record(await run_attempt(probe, timeout), ts=time.time())
    view = ExpositionView([state], {}, SchedulerStats(), ReloadStatus(True, time.time()))
    fams = families(await render(view))

    labels, expiry = only(fams, "probe_ssl_earliest_cert_expiry")
    assert labels == {"probe": "cert", "type": "tls"}
    assert abs(expiry - good.earliest_not_after()) < 1
    assert only(fams, "probe_ssl_last_chain_expiry_timestamp_seconds")[1] == expiry
    assert 89.99 < only(fams, "probed_tls_cert_expiry_days")[1] <= 90
    assert only(fams, "probe_tls_version_info") == ({"probe": "cert", "type": "tls", "version": "TLS 1.3"}, 1)
    leaf = good.leaf
    assert only(fams, "probed_tls_cert_info") == ({
        "probe": "cert", "type": "tls", "issuer": leaf.issuer.rfc4514_string(),
        "subject": leaf.subject.rfc4514_string(),
        "fingerprint_sha256": hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()}, 1)

    state.record(await run_attempt(probe, timeout), ts=time.time())  # the server is gone: refused
    fams = families(await render(view))
    assert only(fams, "probe_success")[1] == 0
    assert only(fams, "probe_ssl_earliest_cert_expiry")[1] == expiry  # the expiry alert does not flap
    assert "probe_tls_version_info" not in fams  # no handshake this time


async def probed_once(config: Path, *args: str) -> tuple[int, str]:
    """`probed once` in a subprocess, awaited so that this loop's peers keep serving."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "probed.cli", "once", "--config", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).parent.parent)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None and proc.returncode != 2, stderr.decode()
    return proc.returncode, stdout.decode()


async def test_probed_once_shows_the_chain_and_its_expiry_also_when_trust_or_name_fail(
        pki: Pki, good: ServerCert, tmp_path: Path) -> None:
    untrusted = self_signed("localhost", valid_for=20 * DAY)
    wrong = pki.leaf_expiring_in(40 * DAY, "www.example.org")
    async with tls_server(good) as ok, tls_server(untrusted) as bad, tls_server(wrong) as other:
        config = tmp_path / "probes.yaml"
        config.write_text("probes:\n" + "".join(
            f"  - {{name: {name}, type: tls, target: '{HOST}:{port}', timeout: 2s,\n"
            f"     tls: {{server_name: localhost, ca_file: '{pki.ca_file}'}}}}\n"
            for name, port in [("good", ok.port), ("self-signed", bad.port), ("wrong-host", other.port)]))
        code, human = await probed_once(config)
        json_code, text = await probed_once(config, "--json")

    assert code == json_code == 1
    results = {r["name"]: r for r in map(json.loads, text.splitlines())}
    for name, cert, reason in [("good", good, "ok"), ("self-signed", untrusted, "cert_untrusted"),
                               ("wrong-host", wrong, "cert_hostname_mismatch")]:
        values = results[name]["values"]
        assert results[name]["reason"] == reason
        assert abs(values["cert_expiry_timestamp_seconds"] - cert.earliest_not_after()) < 1
        assert abs(values["cert_days_remaining"] - (cert.earliest_not_after() - time.time()) / 86400) < 0.01
        assert results[name]["facts"]["tls"]["chain"][0]["fingerprint_sha256"] == hashlib.sha256(
            cert.leaf.public_bytes(Encoding.DER)).hexdigest()

    lines = human.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("self-signed "))
    assert "cert_untrusted" in lines[row] and "self-signed certificate" in lines[row]
    assert lines[row + 1] == "    chain NOT verified"
    assert lines[row + 2].startswith("    [0] CN=localhost  expires ") and lines[row + 2].endswith("(20.0 days left)")
    assert "the certificate is for www.example.org" in next(line for line in lines if line.startswith("wrong-host "))
