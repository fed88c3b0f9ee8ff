"""A guard on the bytes a PostgreSQL server sends, checked before asyncpg parses them.

Why: asyncpg's read buffer uses message type 0 to mean "no message yet". A server (or anything
listening on a PostgreSQL port) that answers a message whose type byte is 0x00 makes a message
that can never be finished: `ReadBuffer.finish_message()` returns early for type 0, so
`take_message()` keeps reporting the same message ready, and `CoreProtocol._read_server_messages`
loops forever without awaiting. The whole event loop freezes: no timeout, no scrape, no SIGTERM.
(The five bytes `\\x00\\xff\\xff\\xff\\xff` after the startup packet are enough.) A negative or
huge length is accepted too, the latter by buffering up to 2 GiB.

So every chunk goes through `Frames` first, which follows the message framing (one type byte,
a 4-byte length) and stops at the first message that is not a backend message type or whose
length is impossible or larger than a probe ever needs. The connection is then aborted, and the
attempt reports `protocol_error` with what was wrong, instead of asyncpg seeing the bytes.

asyncpg builds its protocol as `connect_utils.protocol.Protocol(...)`; `install()` points that
name at the guarded subclass. The regression tests in tests/probes/test_hostile.py run the
payload in a child process, so a broken guard fails them instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import types
from contextvars import ContextVar
from typing import Any

import asyncpg.connect_utils
import asyncpg.protocol

BACKEND_TYPES = frozenset(b"RKSZENAV v123CDIGHWTtnscd".replace(b" ", b""))
"""Message types a PostgreSQL backend sends (protocol 3.0, `v`: NegotiateProtocolVersion)."""
MAX_MESSAGE_BYTES = 64 * 2**20
"""Larger messages are refused: a probe's query has no business returning a 64 MiB row, and a
hostile server must not make the probe buffer gigabytes."""


class Frames:
    """Follows the backend message framing across chunks; says what is wrong, once."""

    __slots__ = ("_header", "_skip")

    def __init__(self) -> None:
        self._header = bytearray()
        self._skip = 0

    def feed(self, data: bytes) -> str | None:
        """None while the stream is well framed, else what is wrong with it."""
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                taken = min(self._skip, n - i)
                self._skip -= taken
                i += taken
                continue
            taken = min(5 - len(self._header), n - i)
            self._header += data[i:i + taken]
            i += taken
            if len(self._header) < 5:
                break
            mtype, length = self._header[0], int.from_bytes(self._header[1:5], "big", signed=True)
            self._header.clear()
            if mtype not in BACKEND_TYPES:
                return f"not a PostgreSQL server: message type {bytes([mtype])!r} is not a backend message"
            if not 4 <= length <= MAX_MESSAGE_BYTES:
                return (f"not a PostgreSQL server: message {chr(mtype)!r} declares {length} bytes "
                        f"(4 to {MAX_MESSAGE_BYTES} expected)")
            self._skip = length - 4
        return None


class WireWatch:
    """What an attempt registers in `WIRE_WATCH` to learn why its connection was cut, and the
    transport asyncpg made, so the attempt can make sure its socket is closed."""

    __slots__ = ("problem", "transports")

    def __init__(self) -> None:
        self.problem: str | None = None
        self.transports: list[asyncio.BaseTransport] = []

    def abort(self) -> None:
        """Close the sockets now. asyncpg's close of a TLS connection (also after a failed
        connect) only starts the TLS shutdown, and the socket stays open until the server
        answers close_notify: a leak when it never does, or the loop stops first."""
        for transport in self.transports:
            transport.abort()  # type: ignore[attr-defined]
        self.transports.clear()


WIRE_WATCH: ContextVar[WireWatch | None] = ContextVar("probed_pg_wire_watch", default=None)
"""The attempt connecting in this task: asyncpg creates the protocol inside `connect()`."""


class GuardedProtocol(asyncpg.protocol.Protocol):  # type: ignore[misc]
    """asyncpg's protocol, fed only well-framed bytes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._frames = Frames()
        self._watch = WIRE_WATCH.get()
        self._cut: asyncio.BaseTransport | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._cut = transport
        if self._watch is not None:
            self._watch.transports.append(transport)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        problem = self._frames.feed(data)
        if problem is None:
            super().data_received(data)
            return
        self._refused = True
        if self._watch is not None:
            self._watch.problem = problem
        if self._cut is not None:
            self._cut.abort()  # type: ignore[attr-defined]


def install() -> None:
    """Make asyncpg build its connections with the guarded protocol (idempotent)."""
    if asyncpg.connect_utils.protocol.Protocol is not GuardedProtocol:
        asyncpg.connect_utils.protocol = types.SimpleNamespace(Protocol=GuardedProtocol)
