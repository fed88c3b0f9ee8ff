"""What the HTTP probe sends and measures against a healthy local peer: phases, values, connections,
headers, credentials, and the secrets it never shows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

import pytest

from probed.result import Reason
from tests.peers.http import HOST, Prober, WebPeer
from tests.peers.results import assert_phases

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
