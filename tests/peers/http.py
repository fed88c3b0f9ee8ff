"""Real local peers for the HTTP and TCP probe tests, all on 127.0.0.1 and free ports.

- `web_peer`: an aiohttp server with behaviour routes (status codes, slow, dripping and huge
  bodies, redirects and loops, JSON health, CORS headers, an echo of the request);
- TLS variants of it, with certificates minted by a trustme CA: valid for localhost/127.0.0.1,
  for another host only, and expired;
- raw TCP peers that misbehave below HTTP: silent (accepts, never answers), garbage (answers
  bytes that are not HTTP), reset (accepts and resets), a closed port, a full accept queue
  (connects hang), and a line-oriented "PING/PONG" server for send/expect.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import socket
import ssl
import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from aiohttp import web

from probed.config.model import Config
from probed.probes import Probe
from probed.result import ProbeResult
from probed.runtime.attempt import run_attempt
from probed.runtime.probeset import ProbeSet, parse_config
from tests.peers.net import HOST, closed_port

CHUNK = 16 * 1024


def _bomb_block() -> bytes:
    """16 MiB of zeros as 16 KB of raw deflate, ending in a full flush: the compressor starts
    afresh after it, so the same bytes repeated are one valid stream of N x 16 MiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(bytes(16 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)


BOMB_BLOCK = _bomb_block()
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


# --------------------------------------------------------------------------- building probes


def load(type_name: str, target: str, settings: dict[str, Any] | None = None, environ: dict[str, str] | None = None,
         **common: Any) -> Config:
    """A one-probe config through the real YAML loader (so secrets and converters apply)."""
    probe: dict[str, Any] = {"name": "p", "type": type_name, "target": target, **common}
    if settings is not None:
        probe[type_name] = settings
    return parse_config(yaml.safe_dump({"probes": [probe]}), "test.yaml", environ or {})


@dataclass
class Prober:
    """Builds probes through the daemon's ProbeSet (shared kind state, secrets) and closes them."""

    probes: ProbeSet = field(default_factory=ProbeSet)

    def make(self, type_name: str, target: str, settings: dict[str, Any] | None = None,
             environ: dict[str, str] | None = None, **common: Any) -> Probe:
        config = load(type_name, target, settings, environ, **common)
        return self.probes.add(config.probes[0], config.secrets)

    async def once(self, type_name: str, target: str, settings: dict[str, Any] | None = None,
                   timeout: float = 5.0, environ: dict[str, str] | None = None) -> ProbeResult:
        """One attempt exactly as the scheduler runs it, with `timeout` as the probe's timeout."""
        duration = f"{timeout * 1000:g}ms"
        probe = self.make(type_name, target, settings, environ, timeout=duration, interval=duration)
        return await run_attempt(probe, timeout)

    async def aclose(self) -> None:
        await self.probes.aclose()


@pytest.fixture
async def prober() -> AsyncIterator[Prober]:
    p = Prober()
    yield p
    await p.aclose()


# --------------------------------------------------------------------------- the web peer


@dataclass
class WebPeer:
    url: str
    """Base URL without a trailing slash, e.g. http://127.0.0.1:41234"""
    state: dict[str, Any]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def behaviour_app(state: dict[str, Any]) -> web.Application:
    """Routes that behave like healthy, degraded, slow, huge, redirecting services. `state`
    is where the server reports what it saw (open drips, bytes sent, client ports)."""
    app = web.Application()
    state.update({"drips_open": 0, "huge_bytes_sent": 0, "client_ports": []})

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status page")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(int(request.query.get("ms", "0")) / 1000)
        return web.json_response({"status": "ok"})

    async def drip(request: web.Request) -> web.StreamResponse:
        """An endless body, one byte at a time: the response never ends on its own."""
        response = web.StreamResponse()
        await response.prepare(request)
        state["drips_open"] += 1
        try:
            while True:
                await response.write(b".")
                await asyncio.sleep(0.02)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            state["drips_open"] -= 1
        return response

    async def huge(request: web.Request) -> web.StreamResponse:
        """10 GB, streamed as fast as the client reads (chunked, or with its Content-Length)."""
        response = web.StreamResponse()
        total = 10 * 1024**3
        if "declared" in request.query:
            response.content_length = total
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        block = b"x" * CHUNK
        with contextlib.suppress(ConnectionError):
            while state["huge_bytes_sent"] < total:
                await response.write(block)
                state["huge_bytes_sent"] += len(block)
        return response

    async def gzip_bomb(request: web.Request) -> web.StreamResponse:
        """One gzip member of 16 GiB of zeros (16 MB on the wire), as fast as the client reads."""
        response = web.StreamResponse(headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            await response.write(GZIP_HEADER)
            for _ in range(1024):
                await response.write(BOMB_BLOCK)
                state["bomb_blocks_sent"] = state.get("bomb_blocks_sent", 0) + 1
            await response.write(b"\x03\x00" + bytes(8))  # an empty final block, a (wrong) CRC and size
        return response

    async def gzipped(request: web.Request) -> web.Response:
        """A small JSON body, gzip-compressed, as `members` gzip members (RFC 1952 allows several)."""
        members = int(request.query.get("members", "1"))
        text = b'{"status": "ok", "pad": "' + b"x" * 100_000 + b'"}'
        step = -(-len(text) // members)
        body = b"".join(gzip.compress(text[i:i + step]) for i in range(0, len(text), step))
        coding = request.query.get("coding", "gzip")
        if coding == "deflate":
            body = zlib.compress(text)
        elif coding == "raw-deflate":
            compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            body, coding = compressor.compress(text) + compressor.flush(), "deflate"
        elif coding == "broken":
            body, coding = b"\x1f\x8b\x08\x00not gzip at all", "gzip"
        return web.Response(body=body, headers={"Content-Encoding": coding, "Content-Type": "application/json"})

    async def truncated(request: web.Request) -> web.StreamResponse:
        """Promises 1000 bytes, sends 10, hangs up: a backend that died mid-response."""
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"0123456789")
        assert request.transport is not None
        request.transport.close()
        return response

    async def redirect(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n <= 0:
            return web.json_response({"status": "ok"})
        raise web.HTTPFound(f"/redirect/{n - 1}")

    async def redirect_loop(_: web.Request) -> web.Response:
        raise web.HTTPFound("/redirect-loop")

    async def json_status(request: web.Request) -> web.Response:
        value = request.match_info["status"]
        return web.json_response({"status": value, "checks": {"db": {"status": value}}, "replicas": [{"lag": 3}]})

    async def headers(request: web.Request) -> web.Response:
        """CORS for one origin, and every request header echoed back as `X-Echo-<name>`."""
        out = {"Access-Control-Allow-Origin": "https://app.example.com", "Set-Cookie": "session=abc; Path=/"}
        out.update({f"X-Echo-{k}": v for k, v in request.headers.items()})
        return web.Response(text="headers", headers=out)

    async def echo(request: web.Request) -> web.Response:
        """The request as JSON; the client's port is remembered to count connections."""
        peer = request.transport.get_extra_info("peername") if request.transport else None
        state["client_ports"].append(peer[1] if peer else None)
        return web.json_response({"method": request.method, "body": await request.text(),
                                  "headers": dict(request.headers)})

    async def redirect_to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    app.router.add_get("/health", health)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/drip", drip)
    app.router.add_get("/huge", huge)
    app.router.add_get("/truncated", truncated)
    app.router.add_get("/gzip-bomb", gzip_bomb)
    app.router.add_get("/gzipped", gzipped)
    app.router.add_get("/redirect/{n}", redirect)
    app.router.add_get("/redirect-loop", redirect_loop)
    app.router.add_get("/redirect-to", redirect_to)
    app.router.add_get("/json/{status}", json_status)
    app.router.add_get("/headers", headers)
    app.router.add_route("*", "/echo", echo)
    return app


@contextlib.asynccontextmanager
async def serve_web(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[WebPeer]:
    state: dict[str, Any] = {}
    app = behaviour_app(state)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context else "http"
    try:
        yield WebPeer(f"{scheme}://{HOST}:{port}", state)
    finally:
        await runner.cleanup()


@pytest.fixture
async def web_peer() -> AsyncIterator[WebPeer]:
    async with serve_web() as peer:
        yield peer


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    ca_file: str
    good: trustme.LeafCert
    """Valid for localhost and 127.0.0.1."""
    other_host: trustme.LeafCert
    """Valid, but only for other.example."""
    expired: trustme.LeafCert
    """For localhost and 127.0.0.1, expired yesterday."""

    def server_context(self, leaf: trustme.LeafCert) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(ctx)
        return ctx


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("pki") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    now = datetime.datetime.now(datetime.UTC)
    return Pki(
        ca=ca,
        ca_file=str(path),
        good=ca.issue_cert("localhost", HOST),
        other_host=ca.issue_cert("other.example"),
        expired=ca.issue_cert("localhost", HOST, not_before=now - datetime.timedelta(days=30),
                              not_after=now - datetime.timedelta(days=1)),
    )


@pytest.fixture
async def tls_peer(pki: Pki) -> AsyncIterator[WebPeer]:
    async with serve_web(pki.server_context(pki.good)) as peer:
        yield peer


# --------------------------------------------------------------------------- raw TCP peers


@dataclass
class RawPeer:
    port: int
    accepted: int = 0
    closed_by_client: int = 0
    """Connections the client closed (EOF or reset seen by the peer)."""
    resets_seen: int = 0
    received: bytearray = field(default_factory=bytearray)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


@contextlib.asynccontextmanager
async def raw_peer(behaviour: str, banner: bytes = b"") -> AsyncIterator[RawPeer]:
    """behaviour: silent | garbage (answers the first bytes it gets with junk) | reset |
    pingpong | banner (sends `banner` first, then reads) | hangup (sends `banner`, closes)."""
    peer = RawPeer(0)
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer.accepted += 1
        writers.add(writer)
        try:
            if behaviour == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            if behaviour == "garbage":  # answers whatever it is sent (a request, a ClientHello) with junk
                peer.received += await reader.read(4096)
                writer.write(b"\x00\x01\x02 this is not HTTP \xff\xfe\r\n\r\n")
                await writer.drain()
            if behaviour in ("banner", "hangup"):
                writer.write(banner)
                await writer.drain()
            if behaviour == "hangup":
                return
            while True:
                data = await reader.read(4096)
                if not data:
                    peer.closed_by_client += 1
                    break
                peer.received += data
                if behaviour == "pingpong":
                    for line in bytes(data).splitlines():
                        writer.write(b"+PONG\r\n" if line.strip() == b"PING" else b"-ERR unknown command\r\n")
                    await writer.drain()
        except ConnectionResetError:
            peer.closed_by_client += 1
            peer.resets_seen += 1
        finally:
            writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(handle, HOST, 0)
    peer.port = server.sockets[0].getsockname()[1]
    try:
        yield peer
    finally:
        server.close()
        for writer in list(writers):
            writer.transport.abort()
        await server.wait_closed()


@pytest.fixture
async def silent_peer() -> AsyncIterator[RawPeer]:
    async with raw_peer("silent") as peer:
        yield peer


@pytest.fixture
async def garbage_peer() -> AsyncIterator[RawPeer]:
    async with raw_peer("garbage") as peer:
        yield peer


@pytest.fixture
async def reset_peer() -> AsyncIterator[RawPeer]:
    async with raw_peer("reset") as peer:
        yield peer


@pytest.fixture
async def pingpong_peer() -> AsyncIterator[RawPeer]:
    async with raw_peer("pingpong") as peer:
        yield peer


@pytest.fixture(name="closed_port")
def closed_port_fixture() -> int:
    """A loopback port nothing listens on."""
    return closed_port()


@pytest.fixture
def full_backlog_port() -> Iterator[int]:
    """A listener that never accepts, its accept queue already full: Linux drops further SYNs,
    so a connect hangs (the way a firewall that drops packets looks)."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers = []
    for _ in range(3):  # backlog 0 still queues one; fill it, then some
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((HOST, port))
        fillers.append(s)
    try:
        yield port
    finally:
        for s in fillers:
            s.close()
        listener.close()


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))
