"""The database peers as pytest fixtures, and what the database probe tests share.

The servers themselves (throwaway PostgreSQL, MariaDB and Redis on free loopback ports) are in
bench/servers.py, so the leak bench can start them without pytest. The fixtures here share one
server per engine per session (MariaDB takes seconds to initialise) and skip with a clear message
when the binaries are missing, or fail under CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

import pytest

from bench.servers import (
    ADMIN_PASSWORD,
    MAX_CONNECTIONS,
    MY_DB,
    MY_PASSWORD,
    MY_USER,
    PG_DB,
    PG_PASSWORD,
    PG_USER,
    REDIS_ACL_PASSWORD,
    REDIS_ACL_USER,
    REDIS_PASSWORD,
    MariaDbServer,
    PostgresServer,
    RedisServer,
    Server,
    ServerUnavailable,
)
from tests.peers.net import free_port

_S = TypeVar("_S", bound=Server)

__all__ = [
    "ADMIN_PASSWORD", "MAX_CONNECTIONS", "MY_DB", "MY_PASSWORD", "MY_USER", "PG_DB", "PG_PASSWORD", "PG_USER",
    "REDIS_ACL_PASSWORD", "REDIS_ACL_USER", "REDIS_PASSWORD", "MariaDbServer", "PostgresServer", "RedisServer",
    "ServerUnavailable", "free_port",
]

# --------------------------------------------------------------------------- async helpers


class SilentListener:
    """Accepts TCP connections and never says a word: a hung server, or not a database at all."""

    def __init__(self) -> None:
        self.closed_by_client: list[asyncio.Event] = []
        self.port = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        closed = asyncio.Event()
        self.closed_by_client.append(closed)
        # Swallow whatever the client sends until it gives up and closes (EOF or reset).
        with contextlib.suppress(OSError):
            await reader.read()
        closed.set()
        writer.close()

    @property
    def accepted(self) -> int:
        return len(self.closed_by_client)

    async def all_closed_by_client(self, within_s: float = 10.0) -> bool:
        """True once every accepted connection has been closed by the prober."""
        try:
            async with asyncio.timeout(within_s):
                await asyncio.gather(*(event.wait() for event in self.closed_by_client))
        except TimeoutError:
            return False
        return True


@contextlib.asynccontextmanager
async def silent_listener() -> AsyncIterator[SilentListener]:
    listener = SilentListener()
    server = await asyncio.start_server(listener._accept, "127.0.0.1", 0)
    listener.port = server.sockets[0].getsockname()[1]
    try:
        yield listener
    finally:
        server.close()
        await server.wait_closed()


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> bool:
    """Poll until `check()` holds. For server-side effects that follow a client action by a few
    milliseconds (a backend exiting after its client left); `within_s` is a liveness bound only."""
    deadline = time.monotonic() + within_s
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- pytest glue


def unavailable(exc: ServerUnavailable) -> None:
    """Missing binaries: skip with the reason locally, fail under CI where they must be installed."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but {exc}", pytrace=False)
    pytest.skip(str(exc))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost (files readable by any user)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    other_host = ca.issue_cert("db.example.internal")  # trusted, but not for the address probed
    other_ca = trustme.CA()
    d = tmp_path_factory.mktemp("tls")
    d.chmod(0o755)
    paths = {"ca": str(d / "ca.pem"), "other_ca": str(d / "other-ca.pem"),
             "cert": str(d / "server.crt"), "key": str(d / "server.key"),
             "other_host_cert": str(d / "other-host.crt"), "other_host_key": str(d / "other-host.key")}
    ca.cert_pem.write_to_path(paths["ca"])
    other_ca.cert_pem.write_to_path(paths["other_ca"])
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["key"])
    other_host.cert_chain_pems[0].write_to_path(paths["other_host_cert"])
    other_host.private_key_pem.write_to_path(paths["other_host_key"])
    for p in paths.values():
        os.chmod(p, 0o644)
    yield paths


def started(make: Callable[[], _S]) -> Iterator[_S]:
    """Make, start and set up a server for a fixture; stop and remove it afterwards.

    Missing binaries skip the test with the reason, or fail it under CI (see `unavailable`).
    """
    try:
        server = make()
    except ServerUnavailable as exc:
        unavailable(exc)
    with server:
        server.start()
        server.setup_users()
        yield server


@pytest.fixture(scope="session")
def pg_server(tls_files: dict[str, str]) -> Iterator[PostgresServer]:
    yield from started(lambda: PostgresServer(tls_files=(tls_files["cert"], tls_files["key"])))


@pytest.fixture(scope="session")
def mariadb_server(tls_files: dict[str, str]) -> Iterator[MariaDbServer]:
    yield from started(lambda: MariaDbServer(tls_files=(tls_files["cert"], tls_files["key"])))


@pytest.fixture(scope="session")
def redis_server(tls_files: dict[str, str]) -> Iterator[RedisServer]:
    yield from started(lambda: RedisServer(tls_files=(tls_files["cert"], tls_files["key"])))


# --------------------------------------------------------------------------- building probes


def build_probe(type_name: str, target: str, settings: Any, timeout: float = 2.0,
                secrets: frozenset[str] = frozenset()) -> Any:
    """A probe exactly as the daemon builds it: target validated, then built by a ProbeSet. The
    caller closes it (`attempt` does); the database types share no state a set would have to close."""
    from probed.config.model import ProbeSpec
    from probed.probes import get_kind
    from probed.runtime.probeset import ProbeSet

    kind = get_kind(type_name)
    assert kind.shared is None, f"{type_name} probes share state: build them with a ProbeSet you close"
    if kind.validate_target is not None:
        kind.validate_target(target, settings)
    spec = ProbeSpec(name=f"test-{type_name}", type=type_name, target=target, interval=max(timeout, 10.0),
                     timeout=timeout, labels={}, settings=settings)
    return ProbeSet().make(spec, secrets)


async def attempt(probe: Any, timeout: float | None = None) -> Any:
    """One attempt through the scheduler's own runner, then the probe's cleanup (as on shutdown)."""
    from probed.runtime.attempt import run_attempt

    try:
        return await run_attempt(probe, timeout if timeout is not None else probe.timeout_s)
    finally:
        await probe.aclose()


async def scraped(probe: Any, target: str, result: Any) -> tuple[str, dict[str, list[tuple[dict[str, str], float]]]]:
    """The /metrics text for `probe` (of `target`) after `result`, recorded as the scheduler would,
    and its samples by name."""
    import time

    from prometheus_client.parser import text_string_to_metric_families

    from probed.config.model import MetricsSettings, ProbeSpec
    from probed.output.exposition import ExpositionView, ReloadStatus, render
    from probed.runtime.scheduler import SchedulerStats
    from probed.runtime.state import ProbeState

    spec = ProbeSpec(name="db", type=probe.__module__.rsplit(".", 1)[1], target=target, interval=10.0,
                     timeout=probe.timeout_s, labels={}, settings=probe.cfg)
    state = ProbeState.new(spec, secrets=probe.secrets)
    state.record(result)
    view = ExpositionView([state], {}, SchedulerStats(), ReloadStatus(True, time.time()),
                          metrics=MetricsSettings(profile="full"))  # every family, the dashboards' too
    text = (await render(view)).decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return text, samples


# --------------------------------------------------------------------------- cases every engine shares


SQL_SSLMODES = pytest.mark.parametrize(("sslmode", "rootcert", "reason", "tls"), [
    ("disable", None, "ok", False),
    ("prefer", None, "ok", True),
    ("require", None, "ok", True),  # encrypted, not verified: the test CA is in no trust store
    ("require", "other_ca", "cert_untrusted", None),  # with a CA bundle, require verifies (as libpq, --ssl-ca)
    ("verify-ca", "ca", "ok", True),
    ("verify-ca", "other_ca", "cert_untrusted", None),
    ("verify-full", "ca", "ok", True),
    ("verify-full", None, "cert_untrusted", None),  # the system store does not know the test CA
])
"""The five sslmodes against a TLS server (certificate for 127.0.0.1 from tls_files["ca"]), for
postgres and mysql alike: (sslmode, tls_files key of the CA bundle, expected reason, TLS used)."""


def tls_params(tls_files: dict[str, str], sslmode: str, rootcert: str | None) -> str:
    return f"sslmode={sslmode}" + (f"&sslrootcert={tls_files[rootcert]}" if rootcert else "")



async def stopped_then_restarted(server: Server, make_probe: Callable[[], Any]) -> tuple[Any, Any, Any]:
    """Attempts before, while and after the server is stopped mid-run (restarted whatever happens)."""
    before = await attempt(make_probe())
    server.stop()
    try:
        down = await attempt(make_probe())
    finally:
        server.start()
    return before, down, await attempt(make_probe())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def leave_nothing_behind(sessions: Callable[[], Awaitable[int]], probes: Iterable[Any]) -> None:
    """Run the attempts back to back: the server's sessions for the probe user and this process's
    open file descriptors must both come back to where they were."""
    sessions_before, fds_before = await sessions(), open_fds()
    for probe in probes:
        await attempt(probe)

    async def back() -> bool:
        return await sessions() <= sessions_before and open_fds() <= fds_before

    assert await eventually(back), (f"server sessions {sessions_before} -> {await sessions()}, "
                                    f"open fds {fds_before} -> {open_fds()}")


async def against_silent_listener(make_probe: Callable[[int], Any], scheduler_timeout: float | None) -> Any:
    """One attempt against a listener that accepts and never speaks; its socket must be closed after.

    `scheduler_timeout` None lets the probe reach its own deadline; a number cancels it earlier,
    as the scheduler does on its hard deadline, on shutdown or on reload.
    """
    async with silent_listener() as listener:
        result = await attempt(make_probe(listener.port), scheduler_timeout)
        assert listener.accepted == 1
        assert await listener.all_closed_by_client(), "the probe left its socket open"
    return result
