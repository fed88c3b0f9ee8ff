"""Running probed: the event loop, the daemon behind its web server, and `once`.

The CLI and the demo both start the daemon through `serve()`; neither imports the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

from probed.blackbox.endpoint import BlackboxEndpoint, ProbeEndpointOptions
from probed.blackbox.guard import TargetGuard
from probed.config.model import Config
from probed.config.schema import ConfigError
from probed.output.connections import GuardedSite, WebLimits, connection_cap, raise_fd_limit
from probed.output.web import make_app
from probed.output.webconfig import WebConfig, WebConfigError, load_web_config
from probed.output.webstats import WebStats
from probed.result import ProbeResult
from probed.runtime.attempt import run_attempt
from probed.runtime.daemon import Daemon
from probed.runtime.probeset import ProbeSet
from probed.runtime.shard import Shard
from probed.slo import checkpoint
from probed.slo.engine import SloEngine

DEFAULT_LISTEN = "127.0.0.1:9470"
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
log = logging.getLogger("probed")
T = TypeVar("T")


def run_async(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run on uvloop when it is installed (its loop costs less CPU per probe than asyncio's own)."""
    try:
        import uvloop  # optional: absent on some platforms, and only `run` needs it

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but not on every platform
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro_fn())


def print_config_error(exc: ConfigError) -> None:
    for issue in exc.issues:
        print(issue, file=sys.stderr)
    print(f"{exc.total} error(s)", file=sys.stderr)


def split_listen(listen: str) -> tuple[str, int]:
    """'127.0.0.1:9470' or '[::1]:9470' -> (host, port); anything else exits 2 with a message.

    The port is checked here: 99999 was cut to 16 bits below us, another port was bound, and the
    log named one nobody listened on. Port 0 (any free port) is allowed.
    """
    host, _, port = listen.rpartition(":")
    if not host or not re.fullmatch(r"[0-9]{1,5}", port) or int(port) > 65535:
        print(f"probed: --listen must be HOST:PORT with a port from 0 to 65535, got {listen!r}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    return host.strip("[]"), int(port)


async def serve(config_path: str, listen: str, ready: Callable[[str], None] | None = None,
                stop_after: float = 0, state_dir: str | None = None,
                checkpoint_interval_s: float = checkpoint.DEFAULT_INTERVAL_S, shard: Shard | None = None,
                web_config_file: str | None = None, limits: WebLimits | None = None,
                probe_endpoint: ProbeEndpointOptions | None = None) -> int:
    """Run the daemon behind its web server until SIGTERM/SIGINT (or `stop_after` seconds).

    With `state_dir`, probe history and SLO state are restored from its checkpoint at start and
    written back every `checkpoint_interval_s` and at shutdown. `web_config_file`: exporter-toolkit's
    web config (TLS, basic auth); `limits`: the web port's connection cap and timeouts;
    `probe_endpoint`: which targets /probe may reach and how many at once.
    """
    host, port = split_listen(listen)
    probe_endpoint = probe_endpoint or ProbeEndpointOptions()
    try:
        guard = TargetGuard.of(probe_endpoint.allow_targets, probe_endpoint.deny_nets)
    except ValueError as exc:
        print(f"probed: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    limits = limits or WebLimits()
    try:
        web_config = load_web_config(web_config_file) if web_config_file else None
    except WebConfigError as exc:
        print(f"probed: --web.config.file: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    fd_limit = raise_fd_limit()  # before probes or clients take any: every probe needs descriptors
    store = await checkpoint.Store.open(state_dir, config_path, checkpoint_interval_s) if state_dir else None
    try:
        return await _serve(config_path, host, port, ready, stop_after, store, shard, web_config,
                            limits, connection_cap(limits, fd_limit), (guard, probe_endpoint.max_concurrency))
    finally:
        if store is not None:
            store.close()


async def _serve(config_path: str, host: str, port: int, ready: Callable[[str], None] | None,
                 stop_after: float, store: checkpoint.Store | None, shard: Shard | None,
                 web_config: WebConfig | None, limits: WebLimits, cap: int,
                 probe_endpoint: tuple[TargetGuard, int]) -> int:
    restorer = store.restorer if store is not None else None
    daemon = Daemon(config_path, on_new_state=restorer.restore_probe if restorer else None, shard=shard)
    try:
        await daemon.start()
    except ConfigError as exc:
        print_config_error(exc)
        return EXIT_CONFIG
    slos = SloEngine()
    if restorer is not None:
        restorer.restore_slos(slos)
        log.info("restored the history of %d probes from %s", restorer.restored, store.path if store else "")
    tasks = [asyncio.create_task(slos.loop(lambda: (daemon.config.slos if daemon.config else (), daemon.states)),
                                 name="slo-engine")]
    if store is not None and store.checkpointer is not None:
        tasks.append(asyncio.create_task(store.checkpointer.loop(daemon.states, slos), name="checkpoint"))
    loop = asyncio.get_running_loop()
    runner: web.AppRunner | None = None
    try:
        try:
            endpoint = BlackboxEndpoint.serving(daemon, *probe_endpoint)
            runner, site = await start_web(daemon, slos, host, port, web_config, limits, cap, endpoint)
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
            return EXIT_FAILED
        log.info("serving on %s/ (metrics at /metrics; at most %d connections)", site.name, cap)
        if ready is not None:
            ready(site.name)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(daemon.reload()))
        if stop_after > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), stop_after)
        else:
            await stop.wait()
        log.info("shutting down")
        return EXIT_OK
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        if runner is not None:
            await runner.cleanup()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await daemon.shutdown()
        if store is not None and store.checkpointer is not None:
            await store.checkpointer.save(daemon.states, slos)


async def start_web(daemon: Daemon, slos: SloEngine | None, host: str, port: int, web_config: WebConfig | None,
                    limits: WebLimits, cap: int,
                    blackbox: BlackboxEndpoint | None = None) -> tuple[web.AppRunner, GuardedSite]:
    """The web server in front of a started daemon: routes, request guard, connection guard, and
    `/probe` (by default: the config's modules behind the default target guard). The caller cleans
    the runner up."""
    stats = WebStats()
    blackbox = blackbox if blackbox is not None else BlackboxEndpoint.serving(daemon)
    app = make_app(daemon, slos, web_config=web_config, listen_host=host, stats=stats, blackbox=blackbox)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=limits.idle_timeout_s)
    await runner.setup()
    site = GuardedSite(runner, host, port, limits=limits, cap=cap, stats=stats,
                       ssl_context=web_config.ssl_context if web_config else None)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site


async def run_once(config: Config, names: list[str]) -> list[tuple[str, ProbeResult]]:
    """Run the named probes once, concurrently, each through the attempt boundary."""
    async with ProbeSet.of(config, names) as probes:
        specs = [config.probe(n) for n in names]
        results = await asyncio.gather(*(run_attempt(probes[s.name], s.timeout) for s in specs))
    return list(zip(names, results, strict=True))
