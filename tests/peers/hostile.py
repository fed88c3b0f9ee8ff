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
import struct
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
