"""A real daemon behind its web port, for the tests of what that port serves.

`serving` starts a daemon behind the web server `probed run` builds (a plain context manager: tests
pass it limits, TLS or a web config). `slo_client` is a fixture: a daemon probing one open and one
closed loopback port, its SLO engine evaluated once, and a client of its app.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from probed.output.connections import GuardedSite, WebLimits
from probed.output.web import make_app
from probed.output.webconfig import WebConfig
from probed.output.webstats import WebStats
from probed.run import start_web
from probed.runtime.daemon import Daemon
from probed.slo.engine import SloEngine
from tests.peers.net import HOST, closed_port

CONFIG = """\
probes:
  - {name: p, type: tcp, target: "127.0.0.1:1", interval: 1s}
"""


@dataclass
class Served:
    url: str
    port: int
    site: GuardedSite
    runner: web.AppRunner
    daemon: Daemon
    config_path: Path

    @property
    def stats(self) -> WebStats:
        return self.site.stats


@asynccontextmanager
async def serving(tmp_path: Path, *, config: str = CONFIG, web_config: WebConfig | None = None,
                  limits: WebLimits | None = None, cap: int = 64, host: str = HOST) -> AsyncIterator[Served]:
    """A started daemon behind the web server `probed run` builds (run.start_web), on a free port."""
    path = tmp_path / "probes.yaml"
    path.write_text(config)
    daemon = Daemon(str(path))
    await daemon.start()
    runner = None
    try:
        runner, site = await start_web(daemon, None, host, 0, web_config, limits or WebLimits(), cap)
        yield Served(site.name, site.port, site, runner, daemon, path)
    finally:
        if runner is not None:
            await runner.cleanup()
        await daemon.shutdown()


UP_AND_DOWN = """\
probes:
  - {{name: up, type: tcp, target: "127.0.0.1:{open}", interval: 100ms, timeout: 90ms}}
  - {{name: down, type: tcp, target: "127.0.0.1:{closed}", interval: 100ms, timeout: 90ms}}
slos:
  - {{name: healthy, service: "<svc>", probes: [up], objective: 99}}
  - {{name: burning, probes: [down], objective: 99.9, labels: {{tier: "1"}}}}
  - {{name: both, probes: [up, down], objective: 50, window: 7d}}
"""


@pytest.fixture
async def slo_client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """The app of a daemon running UP_AND_DOWN for a second: `up` always succeeds, `down` never does."""
    server = await asyncio.start_server(lambda r, w: w.close(), HOST, 0)
    port = server.sockets[0].getsockname()[1]
    path = tmp_path / "probes.yaml"
    path.write_text(UP_AND_DOWN.format(open=port, closed=closed_port()))
    daemon = Daemon(str(path))
    await daemon.start()
    try:
        await asyncio.sleep(1.0)
        engine = SloEngine()
        assert daemon.config is not None
        engine.configure(daemon.config.slos)
        await engine.run(engine.specs, daemon.states)
        async with TestClient(TestServer(make_app(daemon, engine))) as c:
            yield c
    finally:
        await daemon.shutdown()
        server.close()
        await server.wait_closed()
