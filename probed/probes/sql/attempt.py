"""One database attempt: its phases, values and facts, its verdict, and the frame every engine's
probe shares (the target, the password and TLS sources, background cleanup).

Credentials never leave here in text: `DbUrl.display()` drops the password, and every result goes
through `Attempt.fail()` / `Attempt.finish()`, which redact the detail and the text facts with the
config's secrets plus the password the attempt actually used (read from a file or the
environment, so the config loader never saw it).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import sys
import time
from collections.abc import Collection, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from probed.probes.common.deadline import Deadline
from probed.probes.common.errors import classify
from probed.probes.sql.credentials import CredentialError, resolve_password
from probed.probes.sql.tls import rootcert_problem, tls_mode
from probed.probes.sql.url import TLS_PARAMS, parse_db_url
from probed.redact import redact
from probed.result import ProbeResult, Reason

if TYPE_CHECKING:
    from probed.config.model import ProbeSpec
    from probed.probes import ProbeContext

# When several checks fail at once: a failover (wrong role) explains saturation and slow queries,
# saturation explains slow queries, and all of them matter more than the query's answer.
_PRECEDENCE = (Reason.WRONG_ROLE, Reason.TOO_MANY_CONNECTIONS, Reason.MEMORY_HIGH, Reason.LONG_RUNNING_QUERIES,
               Reason.UNEXPECTED_RESULT)


@dataclass
class Attempt:
    """Collects one attempt's phases, values and facts; every result, failed or not, carries them."""

    secrets: frozenset[str]
    phases: dict[str, float] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    info: dict[str, dict[str, str]] = field(default_factory=dict)
    facts: dict[str, object] = field(default_factory=dict)
    problems: list[tuple[Reason, str]] = field(default_factory=list)
    _auth_start: float | None = field(default=None, repr=False)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Times a phase; a phase that failed still records how long it took to fail."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = time.perf_counter() - start

    def mark_auth(self) -> None:
        """The driver's hook where the protocol's own session setup begins: `connect` ends, `auth` starts."""
        if self._auth_start is None:
            self._auth_start = time.perf_counter()

    @contextlib.contextmanager
    def connecting(self) -> Iterator[None]:
        """Times `connect` up to `mark_auth()`, then `auth` until the session is ready.

        The mark comes once the server's greeting is in (MySQL) or the TLS-first transport is up
        (Redis). Without a mark, because the transport never came up or the driver offers no such
        hook (asyncpg), the whole time is `connect`.
        """
        start, self._auth_start = time.perf_counter(), None
        try:
            yield
        finally:
            end = time.perf_counter()
            if self._auth_start is not None:
                self.phases["connect"] = self._auth_start - start
                self.phases["auth"] = end - self._auth_start
            else:
                self.phases["connect"] = end - start

    def stage(self, stage: str) -> str:
        """The stage an error happened in, for its detail: `connect` splits at `mark_auth()` too."""
        return "auth" if stage == "connect" and self._auth_start is not None else stage

    def add_secret(self, secret: str | None) -> None:
        if secret:
            self.secrets = self.secrets | {secret}

    def server(self, metric: str, labels: Mapping[str, str], **facts: object) -> None:
        """The server's identity: an info metric (bounded labels) and the same facts for people."""
        self.info[metric] = dict(labels)
        self.facts.update(facts)

    def _facts(self) -> dict[str, object]:
        # Text the server sent back (a query's first value, a status line) may quote a secret.
        return {k: redact(v, self.secrets) if isinstance(v, str) else v for k, v in self.facts.items()}

    def fail(self, reason: Reason, detail: str) -> ProbeResult:
        return ProbeResult.fail(reason, redact(detail, self.secrets), phases=self.phases, values=self.values,
                                info=self.info, facts=self._facts())

    def finish(self) -> ProbeResult:
        """Ok, or the most fundamental problem found; the detail lists them all."""
        if self.problems:
            problems = sorted(self.problems, key=lambda p: _PRECEDENCE.index(p[0]) if p[0] in _PRECEDENCE else 99)
            return self.fail(problems[0][0], "; ".join(text for _, text in problems))
        return ProbeResult.ok(phases=self.phases, values=self.values, info=self.info, facts=self._facts())


GARBLED: tuple[type[Exception], ...] = (ValueError, LookupError, struct.error)
"""What drivers raise while parsing bytes that are not their protocol: a `protocol_error`, not a bug."""


def raised_in(exc: BaseException, packages: Collection[str]) -> bool:
    """Whether `exc` comes from one of `packages` (the driver) rather than from probed.

    Decided by the innermost frame outside the standard library: the driver calling `struct` or
    `codecs` still counts as the driver, while one of our callbacks (a phase mark, a TLS check)
    failing inside the driver's connect does not, so a bug of ours stays an `internal_error`.
    """
    modules = []
    tb = exc.__traceback__
    while tb is not None:
        modules.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    for module in reversed(modules):
        top = module.partition(".")[0]
        if top not in sys.stdlib_module_names:
            return top in packages
    return False


def driver_choked(exc: Exception, stage: str, packages: Collection[str]) -> bool:
    """Whether the driver failed on what the server sent while connecting or authenticating.

    Until the session is ready, everything the driver parses is the server's greeting and
    handshake, so any exception other than a transport error that the driver itself raises there
    (PyMySQL's `UnboundLocalError` on a short greeting, asyncpg's `AttributeError` on a
    ReadyForQuery before any parameters) means the peer is not speaking the protocol: a
    `protocol_error`. Later stages, and exceptions raised in probed's own code, are not covered.
    """
    return (stage in ("connect", "auth") and not isinstance(exc, (OSError, EOFError))
            and raised_in(exc, packages))


def timed_out(stage: str, deadline: Deadline) -> tuple[Reason, str]:
    return Reason.TIMEOUT, f"{stage}: no answer within {deadline.total_s:.3g}s"


def transport_failure(exc: BaseException, stage: str) -> tuple[Reason, str]:
    """The shared transport reasons (refused, reset, TLS, DNS ...), prefixed with the stage."""
    reason, detail = classify(exc)
    return reason, f"{stage}: {detail}"


class DbProbe:
    """The part of a database probe that is the same for every engine.

    The target and its sources of password and TLS settings, the start of an attempt (the
    password read, the CA bundle checked, both before any connection), and background cleanup
    that outlives an attempt (a cancel request or KILL QUERY for an abandoned query), which
    `aclose()` waits for.
    """

    schemes: ClassVar[tuple[str, ...]]
    default_port: ClassVar[int]
    url_params: ClassVar[Collection[str]] = TLS_PARAMS
    default_sslmode: ClassVar[str] = "prefer"

    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        self.cfg: Any = spec.settings
        self.url = parse_db_url(spec.target, self.schemes, self.default_port, self.url_params)
        self.timeout_s = spec.timeout
        self.secrets = ctx.secrets
        self.sslrootcert: str | None = self.cfg.sslrootcert or self.url.params.get("sslrootcert")
        self.sslmode = tls_mode(self.url, self.cfg.sslmode, self.default_sslmode, self.sslrootcert)
        self.uses_tls = self.sslmode != "disable"
        self._cleanup: set[asyncio.Task[None]] = set()

    def begin(self) -> tuple[Attempt, Deadline, str | None, ProbeResult | None]:
        """A new attempt and its budget, the password, and the result if it fails before connecting."""
        attempt, deadline = Attempt(self.secrets), Deadline(self.timeout_s)
        try:
            password = resolve_password(self.cfg, self.url)
        except CredentialError as exc:
            return attempt, deadline, None, attempt.fail(Reason.AUTH_FAILED, str(exc))
        attempt.add_secret(password)
        if self.uses_tls and (problem := rootcert_problem(self.sslmode, self.sslrootcert)) is not None:
            return attempt, deadline, password, attempt.fail(Reason.TLS_HANDSHAKE, problem)
        return attempt, deadline, password, None

    def in_background(self, cleanup: Coroutine[Any, Any, None]) -> None:
        """Run cleanup the attempt must not wait for; `aclose()` does."""
        task = asyncio.get_running_loop().create_task(cleanup)
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    async def aclose(self) -> None:
        """Wait for background cleanup; attempts keep no other resources."""
        if self._cleanup:
            await asyncio.gather(*self._cleanup, return_exceptions=True)
