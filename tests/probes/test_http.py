"""The HTTP probe against real local peers: every reason it reports, its phases, values, caps."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from probed.config.schema import ConfigError
from probed.probes import get_kind
from probed.result import PHASES, Reason
from probed.runtime.probeset import parse_config
from tests.peers.http import HOST, Pki, Prober, RawPeer, WebPeer, serve_web


def assert_phases(phases: Any) -> None:
    assert list(phases) == list(PHASES)
    assert all(v >= 0 for v in phases.values()), phases


# --------------------------------------------------------------------------- healthy


async def test_a_healthy_endpoint_succeeds_with_all_phases_and_values(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/health")
    assert result.success and result.reason is Reason.OK, result.detail
    assert_phases(result.phases)
    assert result.phases["connect"] > 0 and result.phases["processing"] > 0
    assert result.phases["tls"] == 0 and result.phases["resolve"] == 0  # plain http to an IP literal
    assert result.values == {"status_code": 200, "redirects": 0, "content_length": len('{"status": "ok"}'),
                             "uncompressed_body_length": len('{"status": "ok"}'), "failed_due_to_regex": 0,
                             "ssl": 0, "http_version": 1.1, "dns_lookup_time_seconds": 0, "ip_protocol": 4,
                             "ip_addr_hash": 3668918509}  # blackbox's FNV-1a of 127.0.0.1's 4 bytes


async def test_a_host_name_is_resolved_and_timed(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"http://localhost:{web_peer.port}/health", {"ip_protocol": "ip4"})
    assert result.reason is Reason.OK, result.detail
    assert result.phases["resolve"] > 0


async def test_every_attempt_opens_a_new_connection_unless_keepalive(prober: Prober, web_peer: WebPeer) -> None:
    fresh = prober.make("http", f"{web_peer.url}/echo")
    for _ in range(3):
        assert (await fresh.probe()).reason is Reason.OK
    assert len(set(web_peer.state["client_ports"])) == 3

    web_peer.state["client_ports"].clear()
    reused = prober.make("http", f"{web_peer.url}/echo", {"keepalive": True})
    first, second = await reused.probe(), await reused.probe()
    assert first.reason is second.reason is Reason.OK
    assert len(set(web_peer.state["client_ports"])) == 1
    assert first.phases["connect"] > 0 and second.phases["connect"] == 0  # nothing to connect the second time
    assert second.phases["processing"] > 0

    other = prober.make("http", f"{web_peer.url}/echo", {"keepalive": True})
    assert (await other.probe()).phases["connect"] > 0  # keepalive probes never share connections
    assert len(set(web_peer.state["client_ports"])) == 2


def time_wait_ports(server_port: int) -> set[int]:
    """Local ports of this host's TIME_WAIT connections to 127.0.0.1:server_port (/proc/net/tcp)."""
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if state == "06" and remote == f"0100007F:{server_port:04X}":
            ports.add(int(local.split(":")[1], 16))
    return ports


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
async def test_a_fresh_connection_closes_with_a_reset_and_leaves_no_time_wait(prober: Prober) -> None:
    # A server that answers and then keeps the connection open, as keep-alive servers and ALBs
    # do: the prober closes first, which is what would leave it holding TIME_WAIT.
    client_ports: list[int] = []

    async def answer_and_linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client_ports.append(writer.get_extra_info("peername")[1])
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()  # until the prober closes
        writer.close()

    server = await asyncio.start_server(answer_and_linger, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        fresh = prober.make("http", f"http://127.0.0.1:{port}/")
        for _ in range(5):
            assert (await fresh.probe()).reason is Reason.OK
        assert len(set(client_ports)) == 5
        assert not set(client_ports) & time_wait_ports(port)


async def test_sends_method_headers_body_and_a_probed_user_agent(prober: Prober, web_peer: WebPeer) -> None:
    settings = {
        "method": "POST",
        "headers": {"X-Probe": "from-probed", "Content-Type": "application/json"},
        "body": '{"ping": 1}',
        "body_json": [
            {"path": "method", "equals": "POST"},
            {"path": "body", "equals": '{"ping": 1}'},
            {"path": "headers.X-Probe", "equals": "from-probed"},
            {"path": "headers.User-Agent", "matches": r"^probed/\d"},
        ],
    }
    result = await prober.once("http", f"{web_peer.url}/echo", settings)
    assert result.reason is Reason.OK, result.detail


async def test_credentials_in_the_url_become_basic_auth(prober: Prober, web_peer: WebPeer) -> None:
    target = f"http://app:s3cr3t-pw@{HOST}:{web_peer.port}/echo"
    settings = {"body_json": [{"path": "headers.Authorization", "equals": "Basic YXBwOnMzY3IzdC1wdw=="}]}
    result = await prober.once("http", target, settings)
    assert result.reason is Reason.OK, result.detail


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


# --------------------------------------------------------------------------- slow


async def test_a_response_slower_than_the_threshold_is_slow(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/slow?ms=300", {"fail_if_slower_than": "100ms"})
    assert result.reason is Reason.SLOW and not result.success
    assert result.values["status_code"] == 200  # everything else was fine
    fast = await prober.once("http", f"{web_peer.url}/slow?ms=0", {"fail_if_slower_than": "5s"})
    assert fast.reason is Reason.OK


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


# --------------------------------------------------------------------------- secrets


async def test_secrets_never_reach_the_detail(prober: Prober, web_peer: WebPeer) -> None:
    # The server echoes request headers back; a failing check on the echo would print it.
    settings = {
        "headers": {"Authorization": "Bearer ${API_TOKEN}"},
        "fail_if_header_not_matches": [{"header": "X-Echo-Authorization", "regexp": "^nope$"}],
    }
    result = await prober.once("http", f"{web_peer.url}/headers", settings, environ={"API_TOKEN": "tok-1234567890"})
    assert result.reason is Reason.HEADER_MISMATCH
    assert "tok-1234567890" not in result.detail and "***" in result.detail


async def test_url_passwords_and_tokens_never_reach_the_detail(prober: Prober, web_peer: WebPeer) -> None:
    # The detail of a bad redirect names the location, which here carries credentials.
    location = "ftp://deploy:hunter2-pw@example.com/x?token=abcdef123"
    result = await prober.once("http", f"{web_peer.url}/redirect-to?url={quote(location)}")
    assert result.reason is Reason.PROTOCOL_ERROR
    assert "deploy:***@example.com" in result.detail
    assert "hunter2-pw" not in result.detail and "abcdef123" not in result.detail


# --------------------------------------------------------------------------- config


def config_error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "probes.yaml", {})
    return str(caught.value)


HTTP_PROBE = "probes:\n  - name: api\n    type: http\n"


@pytest.mark.parametrize(("section", "message"), [
    ("    target: http://example.com/\n    http:\n      valid_status_codes: [200, \"299-200\"]\n",
     'probes.yaml:6:33: probes[0].http.valid_status_codes[1]: invalid status code or range "299-200" '
     '(e.g. 200, "200-299", "2xx"; codes 100-599)'),
    ("    target: http://example.com/\n    http: {valid_status_codes: [700]}\n",
     'probes.yaml:5:33: probes[0].http.valid_status_codes[0]: invalid status code or range "700" '
     '(e.g. 200, "200-299", "2xx"; codes 100-599)'),
    ("    target: http://example.com/\n    http:\n      fail_if_body_not_matches_regexp: ['\"status\": (ok']\n",
     'probes.yaml:6:41: probes[0].http.fail_if_body_not_matches_regexp[0]: invalid regexp ""status": (ok": '
     "missing ), unterminated subpattern at position 10"),
    ("    target: http://example.com/\n    http:\n      fail_if_header_not_matches:\n"
     "        - {header: Access-Control-Allow-Origin, regexp: \"https://[app\"}\n",
     'probes.yaml:7:57: probes[0].http.fail_if_header_not_matches[0].regexp: invalid regexp "https://[app": '
     "unterminated character set at position 8"),
    ("    target: http://example.com/\n    http:\n      body_json: [{path: \"checks..db\", equals: ok}]\n",
     'probes.yaml:6:26: probes[0].http.body_json[0].path: invalid JSON path "checks..db" '
     "(e.g. status, checks.db.status, items[0].name)"),
    ("    target: http://example.com/\n    http: {methd: POST}\n",
     "probes.yaml:5:12: probes[0].http.methd: unknown key 'methd' (did you mean 'method'?)"),
    ("    target: ftp://example.com/file\n",
     'probes.yaml:4:13: probes[0].target: target must be an http:// or https:// URL, got "ftp://example.com/file"'),
    ('    target: "http:///health"\n',
     'probes.yaml:4:13: probes[0].target: URL "http:///health" has no host'),
    ("    target: https://app:s3cret@example.com:99999/\n",
     'probes.yaml:4:13: probes[0].target: invalid URL "https://app:***@example.com:99999/": '
     "Port out of range 0-65535"),
], ids=["reversed-range", "code-700", "bad-body-regexp", "bad-header-regexp", "bad-json-path", "typo", "ftp-url",
        "no-host", "bad-port-password-redacted"])
def test_config_errors_point_at_the_line(section: str, message: str) -> None:
    assert config_error(HTTP_PROBE + section) == message


def test_an_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    text = HTTP_PROBE + f"    target: https://example.com/\n    http:\n      tls: {{ca_file: {missing}}}\n"
    assert config_error(text) == (f"probes.yaml:6:22: probes[0].http.tls.ca_file: cannot read {missing}: "
                                  "No such file or directory")


def test_the_contract_example_parses() -> None:
    text = """
probes:
  - name: api-health
    type: http
    target: https://api.example.com/health
    interval: 5s
    timeout: 2s
    http:
      method: GET
      headers: {Authorization: "Bearer ${API_TOKEN}"}
      body: null
      valid_status_codes: [200, "200-299"]
      follow_redirects: true
      fail_if_body_matches_regexp: []
      fail_if_body_not_matches_regexp: ['"status":\\s*"ok"']
      fail_if_header_not_matches: [{header: Access-Control-Allow-Origin, regexp: "https://app.example.com"}]
      fail_if_slower_than: 2s
      max_body_bytes: 1MiB
      keepalive: false
      tls: {ca_file: null, insecure_skip_verify: false, server_name: null}
"""
    config = parse_config(text, "probes.yaml", {"API_TOKEN": "t0ken-value"})
    settings = config.probes[0].settings
    assert settings.max_body_bytes == 1024 * 1024 and settings.fail_if_slower_than == 2.0
    assert settings.valid_status_codes == ((200, 200), (200, 299))
    assert "Bearer t0ken-value" in config.secrets


def test_the_private_aiohttp_hooks_of_the_fast_connect_still_exist() -> None:
    # _http_session._Connector overrides one private aiohttp method and calls another, to skip
    # uvloop's thread-pool lookup on every connect. If an aiohttp upgrade renames them, the
    # probe silently falls back to the slower path: this test says so instead.
    create = inspect.signature(aiohttp.TCPConnector._wrap_create_connection).parameters
    existing = inspect.signature(aiohttp.TCPConnector._wrap_existing_connection).parameters
    assert {"addr_infos", "req", "client_error"} <= set(create) and {"req", "client_error"} <= set(existing)


def test_aliases_use_blackbox_names() -> None:
    aliases = {k: a.metric for k, a in get_kind("http").aliases.items()}
    assert aliases.items() >= {
        "status_code": "probe_http_status_code", "redirects": "probe_http_redirects",
        "content_length": "probe_http_content_length", "ssl": "probe_http_ssl", "http_version": "probe_http_version",
        "uncompressed_body_length": "probe_http_uncompressed_body_length",
        "failed_due_to_regex": "probe_failed_due_to_regex",
    }.items()
