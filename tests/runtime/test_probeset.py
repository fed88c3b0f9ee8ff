"""ProbeSet: the one place probes and their shared clients are built and closed (the daemon,
`probed once`, `/probe` and the test peers all use it). Real HTTP peers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import yaml

from probed.config.model import Config
from probed.probes.http.session import SessionPool
from probed.runtime.attempt import run_attempt
from probed.runtime.probeset import ProbeSet, parse_config
from tests.peers.http import WebPeer


def http_config(url: str, **http: object) -> Config:
    probe = {"name": "p", "type": "http", "target": url, "timeout": "2s", "http": http}
    return parse_config(yaml.safe_dump({"probes": [probe]}), "test.yaml", {})


def refuse(address: str) -> None:
    raise PermissionError(f"{address} is off limits")


async def test_a_pool_the_caller_made_serves_every_probe_even_after_the_set_closes(web_peer: WebPeer) -> None:
    # /probe hands in a pool that checks every address: a probe built after a close must not get
    # the kind's default pool, which checks nothing.
    spec = http_config(f"{web_peer.url}/health").probes[0]
    async with ProbeSet() as plain:
        assert (await run_attempt(plain.build(spec, frozenset()), 2.0)).success

    guarded = ProbeSet(shared={"http": SessionPool(address_check=refuse)})
    first = guarded.make(spec, frozenset())
    before = await run_attempt(first, 2.0)
    await first.aclose()
    await guarded.aclose()
    second = guarded.make(spec, frozenset())
    after = await run_attempt(second, 2.0)
    await second.aclose()
    await guarded.aclose()

    assert not before.success and "off limits" in before.detail
    assert not after.success and "off limits" in after.detail


@dataclass
class Connections:
    open: int = 0
    all_closed: asyncio.Event = field(default_factory=asyncio.Event)


@asynccontextmanager
async def counting_server() -> AsyncIterator[tuple[str, Connections]]:
    """An HTTP/1.1 server that keeps connections open, and how many are open now."""
    connections = Connections()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.open += 1
        try:
            while (await reader.readuntil(b"\r\n\r\n")).startswith(b"GET"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            connections.open -= 1
            if not connections.open:
                connections.all_closed.set()
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/", connections
    finally:
        server.close()


async def test_probes_kept_without_a_name_are_closed_with_the_set() -> None:
    async with counting_server() as (url, connections):
        config = http_config(url, keepalive=True)  # each probe holds a connection of its own
        probes = ProbeSet()
        both = [probes.add(config.probes[0], config.secrets) for _ in range(2)]  # one name, two probes
        results = [await run_attempt(p, 2.0) for p in both]
        assert all(r.success for r in results), [r.detail for r in results]
        assert connections.open == 2

        await probes.aclose()

        await asyncio.wait_for(connections.all_closed.wait(), 5)
