"""The soak's local peers and its config: a healthy web server and DNS server, and hostile peers
for every probe type the soak runs.

Hostile TCP peers read what the client sends first (a request, a startup packet, a ClientHello),
briefly, then do their one bad thing: answer garbage and hang up, reset, stay silent, drip a
byte a second, or send a frame whose length field lies in the probe's own protocol (PostgreSQL's
`\\x00\\xff\\xff\\xff\\xff` that once froze asyncpg, a MySQL greeting packet cut short, a Redis
reply longer than it says, a DNS-over-TCP length with nothing behind it). Hostile DNS peers over
UDP answer garbage with the query's ID, a header whose counts promise records that are not
there, or nothing. The zoo in tests/peers/hostile.py is the tests' own; bench never imports
tests, so what the soak needs is here.

Only loopback addresses are ever served or targeted; every handler is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import dns.message
import dns.rrset
from aiohttp import web

from bench.servers import free_port

HOST = "127.0.0.1"
DNS_NAME = "soak.test"
DB_PASSWORD = "soak-Secret-1"
LINGER_RESET = struct.pack("ii", 1, 0)
HOLD_S = 120.0
"""The longest a hostile peer keeps a connection: well past any probe timeout."""

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _first_words(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(0.2):
            await reader.read(4096)


async def _hold(reader: asyncio.StreamReader) -> None:
    """Keep the connection until the client closes it (or HOLD_S passes)."""
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(HOLD_S):
            while await reader.read(65536):
                pass


def answer(payload: bytes, hold: bool) -> Handler:
    """Read the client's first words, send `payload`, then hold the connection or hang up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _first_words(reader)
        writer.write(payload)
        with contextlib.suppress(OSError):
            await writer.drain()
        if hold:
            await _hold(reader)
        writer.transport.abort()

    return handle


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await answer(os.urandom(512) + b"\r\n", hold=False)(reader, writer)


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _first_words(reader)
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):  # the client may have gone already
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    writer.transport.abort()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _hold(reader)
    writer.transport.abort()


async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        for _ in range(int(HOLD_S)):
            writer.write(b"H")
            await writer.drain()
            await asyncio.sleep(1)
    writer.transport.abort()


BAD_FRAMES: dict[str, bytes] = {
    # Message type 0, length -1.
    "pg_bad_length": b"\x00\xff\xff\xff\xff",
    # A greeting packet that says 1 byte (protocol version 10) and ends there; then a packet that
    # says 16 MB and sends 3 bytes.
    "my_bad_length": b"\x01\x00\x00\x00\x0a" + b"\xff\xff\xff\x01abc",
    # A bulk string longer than it says, then an array of 10^11 elements that never comes.
    "redis_bad_length": b"$2\r\nabcdef\r\n*99999999999\r\n",
    # DNS over TCP: a 65,535-byte message of which 3 bytes arrive.
    "dns_bad_length": b"\xff\xff\x00\x01\x02",
}

TCP_PEERS: dict[str, Handler] = {
    "garbage": garbage, "reset": reset, "silent": silent, "drip": drip,
    **{name: answer(frame, hold=True) for name, frame in BAD_FRAMES.items()},
}


def _guarded(handler: Handler) -> Handler:
    """`handler`, quiet when the soak ends under it (cancelled) or the client vanishes."""

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await handler(reader, writer)
        writer.transport.abort()

    return guarded


class DnsPeer(asyncio.DatagramProtocol):
    """A DNS server over UDP that answers `soak.test A` (ok), or misbehaves."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.DatagramTransport", transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        if self.transport is None or self.behaviour == "silent" or len(data) < 12:
            return
        if self.behaviour == "garbage":  # the query's ID, so the prober takes it as the answer
            reply = data[:2] + os.urandom(60)
        elif self.behaviour == "bad_counts":  # a response header promising 65,535 of each section
            reply = data[:2] + b"\x81\x80" + b"\xff\xff" * 4
        else:
            try:
                query = dns.message.from_wire(data)
            except Exception:  # a peer answers what it can parse, like a real server
                return
            response = dns.message.make_response(query)
            response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", HOST))
            reply = response.to_wire()
        self.transport.sendto(reply, addr)


def _bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return packer.compress(bytes(64 << 20)) + packer.flush()


@contextlib.asynccontextmanager
async def peers() -> AsyncIterator[dict[str, int]]:
    """Local peers by name -> port (UDP ones are named dns_*_udp)."""
    bomb = _bomb()

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def bombed(_: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/bomb", bombed)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, 0).start()
    servers = {name: await asyncio.start_server(_guarded(handler), HOST, 0) for name, handler in TCP_PEERS.items()}
    ports = {name: s.sockets[0].getsockname()[1] for name, s in servers.items()}
    loop = asyncio.get_running_loop()
    udp: list[asyncio.DatagramTransport] = []
    for behaviour in ("ok", "garbage", "bad_counts", "silent"):
        transport, _ = await loop.create_datagram_endpoint(functools.partial(DnsPeer, behaviour), local_addr=(HOST, 0))
        udp.append(transport)
        ports[f"dns_{behaviour}_udp"] = transport.get_extra_info("sockname")[1]
    ports["web"] = runner.addresses[0][1]
    ports["closed"] = free_port()
    try:
        yield ports
    finally:
        for transport in udp:
            transport.close()
        for s in servers.values():
            s.close()
        await runner.cleanup()


def kinds(ports: dict[str, int]) -> list[tuple[str, str, str]]:
    """(type, target, extra keys) the probes cycle through: about two thirds http, tcp and tls."""
    web_url, out = f"http://{HOST}:{ports['web']}", []
    for peer in ("garbage", "reset", "silent", "drip", "closed"):
        out += [("http", f"http://{HOST}:{ports[peer]}/", ""), ("tcp", f"{HOST}:{ports[peer]}", ""),
                ("tls", f"{HOST}:{ports[peer]}", "")]
    out += [("http", f"{web_url}/health", "")] * 15  # p15..p29: the healthy ones the SLO covers
    out += [("http", f"{web_url}/bomb", ""), ("tcp", f"{HOST}:{ports['web']}", "")]
    for peer, transport in (("dns_ok_udp", "udp"), ("dns_garbage_udp", "udp"), ("dns_bad_counts_udp", "udp"),
                            ("dns_silent_udp", "udp"), ("garbage", "tcp"), ("reset", "tcp"), ("dns_bad_length", "tcp")):
        out.append(("dns", DNS_NAME, f'dns: {{server: "{HOST}:{ports[peer]}", transport: {transport}}}'))
    for kind, bad, path in (("postgres", "pg_bad_length", "/soak?sslmode=disable"), ("mysql", "my_bad_length", "/soak"),
                            ("redis", "redis_bad_length", "/0")):
        for peer in ("garbage", bad, "silent", "reset"):
            out.append((kind, f"{kind}://probe@{HOST}:{ports[peer]}{path}", f"{kind}: {{password: {DB_PASSWORD}}}"))
    return out


def config(ports: dict[str, int], probes: int, flip: int) -> str:
    """`probes` probes cycling through `kinds`; one header value changes with `flip` (a reload)."""
    cycle = kinds(ports)
    lines = ["defaults: {interval: 5s, timeout: 2s}", "probes:"]
    for i in range(probes):
        kind, target, extra = cycle[i % len(cycle)]
        if i == 0:
            extra = f'http: {{headers: {{X-Soak: "{flip}"}}}}'
        lines.append(f'  - {{name: p{i}, type: {kind}, target: "{target}"' + (f", {extra}" if extra else "") + "}")
    lines += ["slos:", "  - {name: healthy, probes: [p15, p16, p17], objective: 99}"]
    return "\n".join(lines) + "\n"
