"""Loopback ports for tests: one free to listen on, one nobody listens on."""

from __future__ import annotations

from bench.servers import free_port

HOST = "127.0.0.1"


def closed_port() -> int:
    """A loopback port nothing listens on (free a moment ago): connecting to it is refused."""
    return free_port()


__all__ = ["HOST", "closed_port", "free_port"]
