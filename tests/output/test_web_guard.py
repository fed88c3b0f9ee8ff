"""Who may use the web port: cross-site reloads, DNS rebinding, basic auth, TLS, security headers, and the
web config file (exporter-toolkit's format) with its errors. Real daemons, real clients, loopback."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import trustme
from aiohttp.test_utils import TestClient, TestServer

from probed.output.web import make_app
from probed.output.webconfig import WebConfigError, load_web_config
from probed.runtime.daemon import Daemon
from tests.peers.web import CONFIG, serving

PASSWORD = "correct horse 7f3a"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()  # cost 4: fast tests, same format


async def request(method: str, url: str, *, headers: dict[str, str] | None = None, data: str | None = None,
                  ssl_context: ssl.SSLContext | bool | None = None) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.request(
            method, url, headers=headers, data=data, ssl=ssl_context if ssl_context is not None else True) as r:
        return r.status, dict(r.headers), await r.text()


# --------------------------------------------------------------------------- cross-site reloads


async def test_reload_from_curl_works_and_a_cross_site_form_post_is_refused(tmp_path: Path) -> None:
    async with serving(tmp_path) as s:
        # curl -X POST: no Origin, no Sec-Fetch-Site. Sidecar reloaders do the same.
        status, _, body = await request("POST", s.url + "/-/reload")
        assert status == 200 and '"ok": true' in body
        # A page on another site submitting a form to the daemon: the browser adds both headers.
        form = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site",
                "Content-Type": "application/x-www-form-urlencoded"}
        status, _, body = await request("POST", s.url + "/-/reload", headers=form, data="x=1")
        assert status == 403 and "cross-site" in body
        # Each header alone is enough: older browsers send only Origin, a sandboxed page "null".
        for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                        {"Origin": f"http://127.0.0.1:{s.port + 1}"}, {"Origin": f"https://127.0.0.1:{s.port}x"},
                        {"Sec-Fetch-Site": "same-site"}, {"Sec-Fetch-Site": "cross-site"}):
            status, _, _ = await request("POST", s.url + "/-/reload", headers=headers)
            assert status == 403, headers
        # The daemon's own origin (a button on its own page, were there one) and a typed-in request are fine.
        for headers in ({"Origin": f"http://127.0.0.1:{s.port}", "Sec-Fetch-Site": "same-origin"},
                        {"Origin": f"http://localhost:{s.port}", "Host": f"localhost:{s.port}"},
                        {"Sec-Fetch-Site": "none"}):
            status, _, _ = await request("POST", s.url + "/-/reload", headers=headers)
            assert status == 200, headers
        # Reading is not changing: a cross-site GET of /metrics is not this check's business.
        status, _, _ = await request("GET", s.url + "/metrics", headers={"Sec-Fetch-Site": "cross-site"})
        assert status == 200
        assert s.stats.requests_refused["cross_site"] == 7
        assert s.daemon.reload_status.successful


# --------------------------------------------------------------------------- DNS rebinding


@pytest.mark.parametrize(("host", "status"), [
    ("evil.example:{port}", 403),
    ("evil.example", 403),
    ("127.0.0.1.nip.io:{port}", 403),
    ("localhost:{port}", 200),
    ("LOCALHOST.", 200),
    ("127.0.0.1:{port}", 200),
    ("127.0.0.1", 200),
    ("[::1]:{port}", 200),
    ("[::1]", 200),
    ("localhost:8080", 200),  # kubectl port-forward 8080:9470 keeps the local port in Host
])
async def test_a_loopback_listener_serves_only_local_host_names(tmp_path: Path, host: str, status: int) -> None:
    async with serving(tmp_path) as s:
        for path in ("/metrics", "/api/v1/probes", "/"):
            got, _, _ = await request("GET", s.url + path, headers={"Host": host.format(port=s.port)})
            assert got == status, (host, path)
        got, _, _ = await request("POST", s.url + "/-/reload", headers={"Host": host.format(port=s.port)})
        assert got == status


async def test_a_wildcard_listener_serves_any_host_name(tmp_path: Path) -> None:
    # Prometheus reaches a pod by its IP or a service name; there is no rebinding to fear there. (The
    # routes are told they listen on 0.0.0.0; the test server itself stays on loopback.)
    path = tmp_path / "probes.yaml"
    path.write_text(CONFIG)
    daemon = Daemon(str(path))
    await daemon.start()
    try:
        async with TestClient(TestServer(make_app(daemon, listen_host="0.0.0.0"))) as client:
            response = await client.get("/metrics", headers={"Host": "probed.monitoring.svc:9470"})
            assert response.status == 200
    finally:
        await daemon.shutdown()


async def test_the_listen_address_itself_is_a_local_name(tmp_path: Path) -> None:
    async with serving(tmp_path, host="127.0.0.2") as s:
        for host, status in (("127.0.0.2:9470", 200), ("localhost", 200), ("evil.example", 403)):
            got, _, _ = await request("GET", s.url + "/-/healthy", headers={"Host": host})
            assert got == status, host


# --------------------------------------------------------------------------- headers


async def test_security_headers(tmp_path: Path) -> None:
    async with serving(tmp_path) as s:
        _, page, _ = await request("GET", s.url + "/")
        assert page["Content-Security-Policy"].startswith("default-src 'none'; style-src 'unsafe-inline'")
        assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
        assert page["X-Frame-Options"] == "DENY"
        assert page["X-Content-Type-Options"] == "nosniff"
        for path in ("/metrics", "/-/healthy", "/api/v1/probes", "/nothing-here"):
            _, headers, _ = await request("GET", s.url + path)
            assert headers["X-Content-Type-Options"] == "nosniff", path
            assert "Content-Security-Policy" not in headers, path


async def test_headers_from_the_web_config_file_are_set(tmp_path: Path) -> None:
    file = tmp_path / "web.yml"
    file.write_text("http_server_config:\n  http2: false\n  headers:\n"
                    "    Strict-Transport-Security: max-age=31536000\n    X-Frame-Options: sameorigin\n"
                    "    X-XSS-Protection: ''\n")
    async with serving(tmp_path, web_config=load_web_config(str(file))) as s:
        _, headers, _ = await request("GET", s.url + "/")
        assert headers["Strict-Transport-Security"] == "max-age=31536000"
        assert headers["X-Frame-Options"] == "sameorigin"
        assert "X-XSS-Protection" not in headers  # blank: unset, as in exporter-toolkit


# --------------------------------------------------------------------------- basic auth


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_basic_auth_with_a_bcrypt_hash(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    file = tmp_path / "web.yml"
    file.write_text(f"basic_auth_users:\n  prometheus: '{HASH}'\n")
    async with serving(tmp_path, web_config=load_web_config(str(file))) as s:
        status, headers, _ = await request("GET", s.url + "/metrics")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
        for creds in (basic("prometheus", "wrong"), basic("nobody", PASSWORD), basic("prometheus", ""),
                      basic("prometheus", PASSWORD * 10),  # over bcrypt's 72 bytes: a 401, not a 500
                      {"Authorization": "Basic !!!"}, {"Authorization": "Bearer " + PASSWORD}):
            status, _, _ = await request("GET", s.url + "/metrics", headers=creds)
            assert status == 401, creds
        for path in ("/metrics", "/-/healthy", "/"):
            status, _, _ = await request("GET", s.url + path, headers=basic("prometheus", PASSWORD))
            assert status == 200, path
        status, _, _ = await request("POST", s.url + "/-/reload", headers=basic("prometheus", PASSWORD))
        assert status == 200
        # Credentials in the URL, as a Prometheus scrape config's basic_auth sends them.
        status, _, _ = await request("GET", s.url.replace("http://", f"http://prometheus:{PASSWORD}@") + "/metrics")
        assert status == 200
        assert s.stats.requests_refused["unauthorized"] == 7
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert PASSWORD not in logged and HASH not in logged and HASH[7:29] not in logged


async def test_concurrent_logins_check_the_hash_off_the_loop(tmp_path: Path) -> None:
    # A real cost-10 hash (tens of ms per check): 20 wrong guesses at once must not stall the loop.
    slow_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    file = tmp_path / "web.yml"
    file.write_text(f"basic_auth_users:\n  prometheus: '{slow_hash}'\n")
    async with serving(tmp_path, web_config=load_web_config(str(file))) as s:
        loop = asyncio.get_running_loop()
        lags: list[float] = []

        async def measure() -> None:
            for _ in range(40):
                t = loop.time()
                await asyncio.sleep(0.01)
                lags.append(loop.time() - t - 0.01)

        guesses = [request("GET", s.url + "/-/healthy", headers=basic("prometheus", f"guess{i}")) for i in range(20)]
        results = await asyncio.gather(measure(), *guesses)
        assert all(r[0] == 401 for r in results[1:])
        assert max(lags) < 0.05


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    directory = tmp_path_factory.mktemp("pki")
    server = ca.issue_cert("localhost", "127.0.0.1")
    server.private_key_pem.write_to_path(str(directory / "server.key"))
    server.cert_chain_pems[0].write_to_path(str(directory / "server.crt"))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(directory / "server.crt"), append=True)
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    return ca, directory


async def test_tls_from_the_web_config_file(tmp_path: Path, pki: tuple[trustme.CA, Path]) -> None:
    ca, directory = pki
    file = directory / "web.yml"  # relative names are relative to the file, as in exporter-toolkit
    file.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS12\n")
    async with serving(tmp_path, web_config=load_web_config(str(file))) as s:
        assert s.url.startswith("https://")
        client = ssl.create_default_context()
        ca.configure_trust(client)
        status, headers, body = await request("GET", s.url + "/metrics", ssl_context=client)
        assert status == 200 and "probed_build_info" in body and headers["X-Content-Type-Options"] == "nosniff"
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await request("GET", s.url + "/metrics")  # not trusted by the default store
        with pytest.raises(aiohttp.ClientError):
            await request("GET", s.url.replace("https", "http") + "/metrics")  # plain HTTP is not spoken


async def test_tls_with_client_certificates(tmp_path: Path, pki: tuple[trustme.CA, Path]) -> None:
    ca, directory = pki
    file = directory / "mtls.yml"
    file.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                    "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n")
    async with serving(tmp_path, web_config=load_web_config(str(file))) as s:
        client = ssl.create_default_context()
        ca.configure_trust(client)
        with pytest.raises(aiohttp.ClientError):
            await request("GET", s.url + "/-/healthy", ssl_context=client)
        ca.issue_cert("prometheus@example").configure_cert(client)
        status, _, _ = await request("GET", s.url + "/-/healthy", ssl_context=client)
        assert status == 200
        stranger = ssl.create_default_context()
        ca.configure_trust(stranger)
        trustme.CA().issue_cert("mallory@example").configure_cert(stranger)
        with pytest.raises(aiohttp.ClientError):
            await request("GET", s.url + "/-/healthy", ssl_context=stranger)


# --------------------------------------------------------------------------- the file's errors


BAD_FILES = [
    ("unknown-key", "tls_config: {}\n", "tls_config: unknown key (did you mean 'tls_server_config'?)"),
    ("not-yaml", "basic_auth_users: [\n", "web.yml:2:1: not valid YAML"),
    ("not-a-mapping", "- a\n", "the file: must be a mapping"),
    ("typo", "tls_server_config: {cert_file: server.crt, key_file: server.key, client_auth: x}\n",
     "tls_server_config.client_auth: unknown key (did you mean 'client_auth_type'?)"),
    ("no-key", "tls_server_config: {cert_file: server.crt}\n", "tls_server_config: key_file (or key) is required"),
    ("missing-cert", "tls_server_config: {cert_file: nope.crt, key_file: server.key}\n",
     "tls_server_config.cert_file: cannot read"),
    ("key-is-cert", "tls_server_config: {cert_file: server.crt, key_file: server.crt}\n",
     "tls_server_config: the certificate and key do not load"),
    ("version", "tls_server_config: {cert_file: server.crt, key_file: server.key, min_version: TLS14}\n",
     "tls_server_config.min_version: unknown version 'TLS14'"),
    ("mtls-no-ca", "tls_server_config: {cert_file: server.crt, key_file: server.key, "
                   "client_auth_type: RequireAndVerifyClientCert}\n",
     "client_auth_type RequireAndVerifyClientCert needs client_ca_file"),
    ("mtls-any", "tls_server_config: {cert_file: server.crt, key_file: server.key, "
                 "client_auth_type: RequireAnyClientCert, client_ca_file: ca.crt}\n",
     "RequireAnyClientCert is not supported by probed"),
    ("ciphers", "tls_server_config: {cert_file: server.crt, key_file: server.key, cipher_suites: [x]}\n",
     "tls_server_config.cipher_suites: not supported by probed"),
    ("rate-limit", "rate_limit: {interval: 1s, burst: 5}\n", "rate_limit: not supported by probed"),
    ("plaintext-password", "basic_auth_users: {prometheus: hunter2-secret}\n",
     "basic_auth_users.prometheus: not a bcrypt hash"),
    ("bad-hash", f"basic_auth_users: {{prometheus: '{HASH.replace('$2b$', '$2x$')}'}}\n",
     "basic_auth_users.prometheus: not a bcrypt hash"),
    ("header", "http_server_config: {headers: {Set-Cookie: a}}\n",
     "http_server_config.headers: 'Set-Cookie' cannot be set"),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_an_invalid_web_config_file_is_a_clear_error(pki: tuple[trustme.CA, Path], name: str, text: str,
                                                     message: str) -> None:
    _, directory = pki
    file = directory / "web.yml"
    file.write_text(text)
    with pytest.raises(WebConfigError) as info:
        load_web_config(str(file))
    assert message in str(info.value)
    assert str(file) in str(info.value)
    assert "hunter2" not in str(info.value) and HASH[7:] not in str(info.value)


def test_probed_run_exits_2_on_an_invalid_web_config_file(tmp_path: Path) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(CONFIG)
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{HASH}'\n  grafana: 'plain-{PASSWORD}'\n")
    done = subprocess.run([sys.executable, "-m", "probed.cli", "run", "--config", str(config), "--listen",
                           "127.0.0.1:0", "--web.config.file", str(web)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"probed: --web.config.file: {web}: basic_auth_users.grafana: not a bcrypt hash "
                                   "(make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)")
    assert PASSWORD not in done.stderr + done.stdout
    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-m", "probed.cli", "run", "--config", str(config), "--listen",
                           "127.0.0.1:0", "--web.config.file", str(fifo)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "is not a regular file" in done.stderr
