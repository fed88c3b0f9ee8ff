"""`GET /probe?module=NAME&target=...`: one probe, run now, answered in blackbox's exposition.

Concurrency: `/probe` has its own small cap (`--probe.max-concurrency`, default 32), not a share
of the scheduler's semaphore. The scheduler's cap is sized for the scheduled probes and every
slot a scraper held would be a scheduled run made late (and counted as skipped in the SLOs'
data); a separate cap bounds what scrapers can add on top. A request waits for a slot within its
own timeout; one that gets none answers 503, so Prometheus records a failed scrape (`up` 0),
not a failed target.

Timeout: as blackbox, the module's `timeout` bounded by the scrape's own
(`X-Prometheus-Scrape-Timeout-Seconds` less half a second); without either, 10 s.

Results go to the requester only: they never enter the rings, the probe states or the SLOs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from probed.blackbox import exposition
from probed.blackbox.guard import Denied, TargetGuard
from probed.blackbox.translate import BadTarget, endpoint_of, probe_spec
from probed.config.blackbox import BlackboxModule
from probed.probes import get_kind
from probed.probes.http.session import SessionPool
from probed.runtime.attempt import run_attempt
from probed.runtime.daemon import Daemon
from probed.runtime.probeset import ProbeSet

log = logging.getLogger("probed.blackbox")

DEFAULT_MAX_CONCURRENCY = 32
DEFAULT_TIMEOUT_S = 10.0
SCRAPE_TIMEOUT_OFFSET_S = 0.5
MAX_TIMEOUT_S = 120.0
OUTCOMES = ("success", "failure", "bad_request", "denied", "busy")


@dataclass(frozen=True)
class ProbeEndpointOptions:
    """`probed run`'s --probe.* flags."""

    allow_targets: tuple[str, ...] = ()
    deny_nets: tuple[str, ...] = ()
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY


@dataclass(frozen=True)
class Answer:
    status: int
    text: str
    content_type: str = "text/plain"


class BlackboxEndpoint:
    """Runs `/probe` requests. `modules` and `secrets` are read per request, so a reload applies."""

    def __init__(self, modules: Callable[[], Mapping[str, BlackboxModule]],
                 secrets: Callable[[], frozenset[str]] = frozenset, guard: TargetGuard | None = None,
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY) -> None:
        self._modules = modules
        self._secrets = secrets
        self.guard = guard if guard is not None else TargetGuard.of()
        self._slots = asyncio.Semaphore(max_concurrency)
        # The pool checks every address it connects to: redirects and late DNS answers too.
        self._probes = ProbeSet(shared={"http": SessionPool(address_check=self.guard.check_address)})
        self.outcomes: Counter[str] = Counter({o: 0 for o in OUTCOMES})

    @classmethod
    def serving(cls, daemon: Daemon, guard: TargetGuard | None = None,
                max_concurrency: int = DEFAULT_MAX_CONCURRENCY) -> BlackboxEndpoint:
        """The endpoint for `daemon`'s config: its modules and secrets, as they are after each reload."""
        return cls(lambda: daemon.config.modules if daemon.config is not None else {},
                   lambda: daemon.config.secrets if daemon.config is not None else frozenset(),
                   guard, max_concurrency)

    async def handle(self, query: Mapping[str, str], scrape_timeout: str | None) -> Answer:
        name = query.get("module", "")
        modules = self._modules()
        module = modules.get(name)
        if module is None:
            self.outcomes["bad_request"] += 1
            known = ", ".join(sorted(modules)) or "none: add a `modules:` section to the config"
            return Answer(400, f"Unknown module {name!r} (configured: {known})\n")
        target = query.get("target", "")
        try:
            written, point = endpoint_of(module, target)
        except BadTarget as exc:
            self.outcomes["bad_request"] += 1
            return Answer(400, f"{exc}\n")
        timeout_s = _timeout(module, scrape_timeout)
        try:
            addresses = await asyncio.wait_for(self.guard.check(written, point.host, point.port), timeout_s)
        except Denied as exc:
            self.outcomes["denied"] += 1
            log.info("/probe refused %r (module %s): %s", target, name, exc)
            return Answer(403, f"probed: {exc}\n")
        except TimeoutError:
            addresses = []
        secrets = self._secrets()
        address = addresses[0] if len(addresses) == 1 else None
        spec = probe_spec(name, module, written, timeout_s, address=address, secrets=secrets)
        kind = get_kind(spec.type)
        try:
            async with asyncio.timeout(timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            self.outcomes["busy"] += 1
            return Answer(503, "probed: too many /probe requests in flight (--probe.max-concurrency)\n")
        try:
            probe = self._probes.make(spec, secrets)
            try:
                result = await run_attempt(probe, timeout_s)
            finally:
                await probe.aclose()
        finally:
            self._slots.release()
        self.outcomes["success" if result.success else "failure"] += 1
        body = exposition.render(result, kind, secrets)
        if query.get("debug", "").lower() == "true":
            lines = exposition.module_lines(module, secrets)
            return Answer(200, exposition.debug_text(name, lines, result, body, secrets))
        return Answer(200, body, exposition.CONTENT_TYPE)

    async def aclose(self) -> None:
        await self._probes.aclose()


def _timeout(module: BlackboxModule, scrape_timeout: str | None) -> float:
    limit = None
    if scrape_timeout:
        try:
            limit = float(scrape_timeout) - SCRAPE_TIMEOUT_OFFSET_S
        except ValueError:
            limit = None
    if limit is not None and limit <= 0:
        limit = None
    timeout = module.timeout if module.timeout is not None else (limit or DEFAULT_TIMEOUT_S)
    if limit is not None:
        timeout = min(timeout, limit)
    return min(timeout, MAX_TIMEOUT_S)
