"""The hostile-server zoo: TCP servers that misbehave in every way a target can.

Each one reads what the client sends first (a request, a startup packet, a ClientHello), briefly,
then does its one bad thing. Every probe type is tried against every one of them
(tests/probes/test_hostile.py), so a new probe type meets the whole zoo on its first day.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import socketserver
import ssl
import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from tests.peers.net import HOST

LINGER_RESET = struct.pack("ii", 1, 0)


async def _first_words(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(0.2):
            await reader.read(4096)


async def _hold(reader: asyncio.StreamReader) -> None:
    """Keep the connection until the client closes it."""
    with contextlib.suppress(OSError):
        while await reader.read(65536):
            pass


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _first_words(reader)
    writer.write(random.Random(1).randbytes(300) + b"\r\n")
    await _hold(reader)


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _first_words(reader)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    writer.transport.abort()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _hold(reader)


async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _first_words(reader)
    with contextlib.suppress(OSError):
        while not writer.is_closing():
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)


async def bomb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """As much as the client will take, for as long as it takes it."""
    await _first_words(reader)
    chunk = b"\x7f" * 65536
    with contextlib.suppress(OSError):
        while not writer.is_closing():
            writer.write(chunk)
            await writer.drain()


async def bad_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Message type 0, length -1: the PostgreSQL-looking answer that froze asyncpg's parser."""
    await _first_words(reader)
    writer.write(b"\x00\xff\xff\xff\xff")
    await _hold(reader)


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half an answer, then a clean close."""
    await _first_words(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
    with contextlib.suppress(OSError):
        await writer.drain()
    writer.close()


BEHAVIOURS: dict[str, Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]] = {
    "garbage": garbage, "reset": reset, "silent": silent, "drip": drip, "bomb": bomb,
    "bad_length": bad_length, "hang_up": hang_up,
}


@dataclass
class Hostile:
    behaviour: str
    port: int = 0

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


@contextlib.asynccontextmanager
async def hostile_server(behaviour: str) -> AsyncIterator[Hostile]:
    handler = BEHAVIOURS[behaviour]
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        finally:
            writer.transport.abort()
            tasks.discard(task)

    server = await asyncio.start_server(serve, HOST, 0)
    peer = Hostile(behaviour, server.sockets[0].getsockname()[1])
    try:
        yield peer
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


# --------------------------------------------------------------------------- TLS-speaking hostiles

PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
_MYSQL_CAPABILITIES = 0x1 | 0x8 | 0x200 | 0x800 | 0x8000 | 0x80000
"""LONG_PASSWORD, CONNECT_WITH_DB, PROTOCOL_41, SSL, SECURE_CONNECTION, PLUGIN_AUTH."""


def mysql_greeting(capabilities: int = _MYSQL_CAPABILITIES) -> bytes:
    """A protocol-10 handshake packet (sequence 0) offering `capabilities` (TLS among them)."""
    salt = b"abcdefghijklmnopqrst"
    body = (b"\x0a" + b"8.0.36-hostile\x00" + struct.pack("<I", 7) + salt[:8] + b"\x00"
            + struct.pack("<H", capabilities & 0xFFFF) + b"\x21" + struct.pack("<H", 2)
            + struct.pack("<H", capabilities >> 16) + bytes([len(salt) + 1]) + b"\x00" * 10
            + salt[8:] + b"\x00" + b"mysql_native_password\x00")
    return len(body).to_bytes(3, "little") + b"\x00" + body


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client left")
        data += chunk
    return data


def _tls_after_preamble(conn: socket.socket, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    """Whatever each protocol says before its TLS handshake, then the handshake.

    TLS-first clients (https, rediss, tls, tcp with tls) open with a ClientHello; PostgreSQL asks
    with an SSLRequest and gets `S`; a MySQL client says nothing until greeted, then asks for TLS
    with a 32-byte SSL request packet.
    """
    conn.settimeout(0.3)
    try:
        first = conn.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        first = b""
    conn.settimeout(10)
    if not first:
        conn.sendall(mysql_greeting())
        _recv_exactly(conn, 4 + 32)
    elif first == b"\x00":
        if _recv_exactly(conn, 8) != PG_SSL_REQUEST:
            raise ConnectionError("not a PostgreSQL TLS request")
        conn.sendall(b"S")
    return ctx.wrap_socket(conn, server_side=True)


def _tls_silent(tls: ssl.SSLSocket, released: threading.Event) -> None:
    """Handshake, then nothing: never reads again, so never sees (or answers) close_notify."""
    released.wait(30)


def _tls_garbage(tls: ssl.SSLSocket, released: threading.Event) -> None:
    tls.sendall(random.Random(2).randbytes(300) + b"\r\n")
    released.wait(30)


def _tls_no_close_notify(tls: ssl.SSLSocket, released: threading.Event) -> None:
    """Reads everything the client sends and answers none of it; after the client's close_notify
    it keeps the connection open without answering, as some load balancers do."""
    with contextlib.suppress(OSError):
        while tls.recv(65536):
            pass
    released.wait(30)


TLS_BEHAVIOURS: dict[str, Callable[[ssl.SSLSocket, threading.Event], None]] = {
    "tls_silent": _tls_silent, "tls_garbage": _tls_garbage, "tls_no_close_notify": _tls_no_close_notify,
}


@contextlib.asynccontextmanager
async def tls_hostile_server(behaviour: str) -> AsyncIterator[Hostile]:
    """A server that completes the TLS handshake (certificate minted here, self-signed) and then
    misbehaves. Plain threads and blocking sockets: an asyncio server would answer close_notify."""
    from tests.peers.tls import self_signed

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    self_signed(HOST).load_into(ctx)
    act = TLS_BEHAVIOURS[behaviour]
    released = threading.Event()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with contextlib.suppress(OSError), _tls_after_preamble(self.request, ctx) as tls:
                act(tls, released)

    server = socketserver.ThreadingTCPServer((HOST, 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Hostile(behaviour, server.server_address[1])
    finally:
        released.set()
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join()
