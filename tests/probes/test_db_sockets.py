"""A database attempt over TLS closes its socket however it ends, even when the server never
answers close_notify (issue 12, item 3).

A TLS close only starts the TLS shutdown: the socket stays open until the server answers
close_notify, which the servers here never do, so only an abort closes it. Each server completes
the handshake (after PostgreSQL's SSLRequest or MySQL's greeting) and then holds the connection
without answering anything. The attempt either runs out its own timeout or is cancelled first
(as the scheduler does on its hard deadline, on shutdown and on reload). Afterwards no socket of
this process may still be connected to the server's port.
"""

from __future__ import annotations

from typing import Any

import pytest

from probed.probes.mysql import MysqlProbeConfig
from probed.probes.postgres import PostgresProbeConfig
from probed.probes.redis import RedisProbeConfig
from probed.result import Reason
from tests.peers.db import attempt, build_probe, eventually
from tests.peers.hostile import TLS_BEHAVIOURS, tls_hostile_server
from tests.peers.sockets import client_sockets_to


def tls_probe(type_name: str, port: int, timeout: float) -> Any:
    target, settings = {
        "redis": (f"rediss://127.0.0.1:{port}/0", RedisProbeConfig(password="x", sslmode="require")),
        "postgres": (f"postgres://probe@127.0.0.1:{port}/db", PostgresProbeConfig(password="x", sslmode="require")),
        "mysql": (f"mysql://probe@127.0.0.1:{port}/db", MysqlProbeConfig(password="x", sslmode="require")),
    }[type_name]
    return build_probe(type_name, target, settings, timeout)


async def no_socket_left(port: int) -> bool:
    async def gone() -> bool:
        return not client_sockets_to(port)

    # The abort closes the socket on the loop's next turns; the leak it guards against lasts 30 s.
    return await eventually(gone, within_s=2.0)


ENGINES = pytest.mark.parametrize("type_name", ["redis", "postgres", "mysql"])
SILENT_AFTER_HANDSHAKE = pytest.mark.parametrize("behaviour", ["tls_silent", "tls_no_close_notify"])


@ENGINES
@SILENT_AFTER_HANDSHAKE
async def test_an_attempt_that_times_out_closes_its_tls_socket(type_name: str, behaviour: str) -> None:
    assert behaviour in TLS_BEHAVIOURS
    async with tls_hostile_server(behaviour) as server:
        result = await attempt(tls_probe(type_name, server.port, timeout=0.5))
        assert result.reason is Reason.TIMEOUT, result
        assert await no_socket_left(server.port), f"still connected: {client_sockets_to(server.port)}"


@ENGINES
@SILENT_AFTER_HANDSHAKE
async def test_a_cancelled_attempt_closes_its_tls_socket(type_name: str, behaviour: str) -> None:
    async with tls_hostile_server(behaviour) as server:
        # The scheduler's own deadline (0.5 s) comes before the probe's (5 s): the attempt is cancelled.
        result = await attempt(tls_probe(type_name, server.port, timeout=5.0), timeout=0.5)
        assert result.reason is Reason.TIMEOUT, result
        assert await no_socket_left(server.port), f"still connected: {client_sockets_to(server.port)}"
