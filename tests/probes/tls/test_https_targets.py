"""An https target of a `type: http` probe reports its certificate as the TLS probe does."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator

from aiohttp import web

from probed.probes import ProbeContext, get_kind
from probed.result import ProbeResult, Reason
from probed.runtime.attempt import run_attempt
from probed.runtime.probeset import parse_config
from tests.peers.tls import DAY, HOST, Pki, ServerCert, self_signed
from tests.peers.tls_attempt import assert_expiry, attempt

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
