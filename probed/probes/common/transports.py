"""Driver connections whose sockets the attempt closes itself, on every way out."""

from __future__ import annotations

import asyncio


class RemembersTransports:
    """A mixin for a driver's connection class that keeps its StreamWriter in `_writer` (redis-py,
    aiomysql): every transport it is ever given is remembered, so the attempt can abort them all.

    Drivers forget their writer before closing it, when setup fails or a read is cancelled: by
    the time the attempt ends there may be no writer left to find. And what they do close they
    close gracefully: with TLS that waits up to 30 s for a close_notify that a hostile or busy
    server never sends, holding the socket all that time.
    """

    @property
    def _writer(self) -> asyncio.StreamWriter | None:
        writer: asyncio.StreamWriter | None = self.__dict__.get("_probe_writer")
        return writer

    @_writer.setter
    def _writer(self, writer: asyncio.StreamWriter | None) -> None:
        self.__dict__["_probe_writer"] = writer
        if writer is not None:
            self.__dict__.setdefault("_probe_transports", []).append(writer.transport)

    def abort_transports(self) -> None:
        """Close every socket the connection had, now (harmless after a clean close)."""
        for transport in self.__dict__.pop("_probe_transports", ()):
            transport.abort()
