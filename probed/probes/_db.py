"""What the postgres, mysql and redis probes share: target URLs, password sources, TLS modes,
the attempt's own deadline and phases, background cleanup, and the checks that turn server state
into values and reasons.

Credentials never leave this module in text: `DbUrl.display()` drops the password, and every
result goes through `Attempt.fail()` / `Attempt.finish()`, which redact the detail and the text
facts with the config's secrets plus the password the attempt actually used (read from a file or
the environment, so the config loader never saw it).
"""

from __future__ import annotations

import asyncio
import contextlib
import decimal
import os
import ssl
import time
from collections.abc import Callable, Collection, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from probed.config.schema import SECRET, Duration, FieldError
from probed.probes import MetricAlias, ProbeKind
from probed.probes._net import tls_context
from probed.probes.errors import classify
from probed.redact import redact
from probed.result import ProbeResult, Reason

if TYPE_CHECKING:
    from probed.config.model import ProbeSpec
    from probed.probes import Probe, ProbeContext

SslMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]
SSL_MODES: tuple[str, ...] = ("disable", "prefer", "require", "verify-ca", "verify-full")
TLS_PARAMS = ("sslmode", "sslrootcert")

SQL_ALIASES: Mapping[str, MetricAlias] = {
    "connections_used_ratio": MetricAlias(
        "probed_db_connections_used_ratio",
        "Connections in use over the connections the server allows applications (from the last attempt)."),
    "long_running_queries": MetricAlias(
        "probed_db_long_running_queries",
        "Queries running for longer than the probe's long_running_after (from the last attempt)."),
}
SERVER_INFO = "probed_db_server_info"
"""Info metric for SQL servers: labels version and flavor (postgresql, mariadb, mysql)."""
FLAVOR_NAMES: Mapping[str, str] = {"postgresql": "PostgreSQL", "mariadb": "MariaDB", "mysql": "MySQL"}

# --------------------------------------------------------------------------- target URLs


@dataclass(frozen=True)
class DbUrl:
    scheme: str
    host: str
    port: int
    user: str | None
    password: str | None
    database: str | None
    params: Mapping[str, str]

    def display(self) -> str:
        """The URL as a person should see it: never the password."""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}/{self.database or ''}"


def parse_db_url(target: str, schemes: Collection[str], default_port: int,
                 params: Collection[str] = TLS_PARAMS) -> DbUrl:
    """`scheme://[user[:password]@]host[:port][/database][?param=value]`; raises ValueError."""
    try:
        parts = urlsplit(target)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid URL: {exc}") from None
    if parts.scheme not in schemes:
        raise ValueError(f"expected a {' or '.join(f'{s}://' for s in schemes)} URL, got {target.split('://')[0]!r}"
                         if "://" in target else f"expected a URL like {sorted(schemes)[0]}://user@host:port/database")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if parts.fragment:
        raise ValueError("the URL must not have a #fragment")
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in params:
            allowed = ", ".join(params) or "none"
            raise ValueError(f"unknown URL parameter {key!r} (allowed: {allowed})")
        query[key] = value
    if "sslmode" in query and query["sslmode"] not in SSL_MODES:
        raise ValueError(f"invalid sslmode {query['sslmode']!r} (one of: {', '.join(SSL_MODES)})")
    database = unquote(parts.path.lstrip("/")) or None
    return DbUrl(scheme=parts.scheme, host=parts.hostname, port=port or default_port,
                 user=unquote(parts.username) if parts.username else None,
                 password=unquote(parts.password) if parts.password is not None else None,
                 database=database, params=query)


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class PasswordOptions:
    """Where the password comes from: at most one of these, or the target URL (discouraged)."""

    password: Annotated[str | None, SECRET] = field(default=None, repr=False)
    """Usually `${DB_PASSWORD}`: interpolated at load time and redacted everywhere. Kept out of
    repr() (which the reload fingerprint and any debug log use); a changed secret still restarts
    the probe, because the daemon compares the config's secrets."""
    password_env: str | None = None
    """Name of an environment variable, read on every attempt (unset: the attempt fails auth_failed)."""
    password_file: str | None = None
    """Read on every attempt, so a rotated secret (a mounted Secrets Manager file) needs no reload."""

    def __post_init__(self) -> None:
        given = [n for n in ("password", "password_env", "password_file") if getattr(self, n) is not None]
        if len(given) > 1:
            raise FieldError(given[1], f"set only one of password, password_env, password_file (also got {given[0]})")


def check_password_sources(url: DbUrl, opts: PasswordOptions | None) -> None:
    if url.password is not None and opts is not None and any(
            getattr(opts, n) is not None for n in ("password", "password_env", "password_file")):
        raise ValueError("the URL has a password and the section sets one too: keep one (preferably not the URL)")


class CredentialError(Exception):
    """The password could not be read (unset variable, unreadable file): the attempt fails auth."""


def resolve_password(opts: PasswordOptions, url: DbUrl) -> str | None:
    if opts.password is not None:
        return opts.password
    if opts.password_env is not None:
        value = os.environ.get(opts.password_env)
        if value is None:
            raise CredentialError(f"password_env: environment variable {opts.password_env} is not set")
        return value
    if opts.password_file is not None:
        try:
            with open(opts.password_file, encoding="utf-8") as f:
                # Files written by `echo` or editors end in a newline that is not part of the secret.
                return f.read().rstrip("\r\n")
        except OSError as exc:
            raise CredentialError(f"password_file {opts.password_file}: {exc.strerror or exc}") from None
    return url.password


# --------------------------------------------------------------------------- TLS


def tls_mode(url: DbUrl, configured: str | None, default: str, rootcert: str | None) -> str:
    """The effective sslmode: the section's, else the URL's, else the engine's default.

    `require` with a CA bundle given verifies the chain, as libpq (and the MySQL client with
    `--ssl-ca`) do: whoever names a CA bundle wants it used.
    """
    mode = configured or url.params.get("sslmode") or default
    return "verify-ca" if mode == "require" and rootcert else mode


def check_tls_sources(url: DbUrl, sslmode: str | None, sslrootcert: str | None) -> None:
    for name, value in (("sslmode", sslmode), ("sslrootcert", sslrootcert)):
        if value is not None and name in url.params:
            raise ValueError(f"{name} is set both in the URL and in the section: keep one")


def rootcert_problem(mode: str, rootcert: str | None) -> str | None:
    """Why the CA bundle a verifying mode needs cannot be read (mounted late, wrong path), if so.

    Checked before connecting, so the attempt says `sslrootcert /path: No such file or directory`
    instead of a driver's generic connection error.
    """
    if rootcert is None or not mode.startswith("verify"):
        return None
    try:
        with open(rootcert, "rb"):
            return None
    except OSError as exc:
        return f"sslrootcert {rootcert}: {exc.strerror or exc}"


def client_tls_context(mode: str, rootcert: str | None) -> ssl.SSLContext | None:
    """libpq's sslmode semantics as an SSLContext (None for disable).

    prefer and require encrypt without verifying (as libpq does when no root certificate is
    configured); verify-ca checks the chain against `rootcert` (or the system store); verify-full
    also checks that the certificate names the host.
    """
    if mode == "disable":
        return None
    # The shared cache of _net.tls_context: 10,000 database probes hold one context, not 10,000
    # copies of the trust store, and a rotated root certificate is re-read on the next reload.
    if mode in ("prefer", "require"):
        return tls_context(None, None, None, insecure=True)
    return tls_context(rootcert, None, None, insecure=False, verify_hostname=mode == "verify-full")


# --------------------------------------------------------------------------- config shared by SQL probes

Role = Literal["primary", "replica"]


@dataclass(frozen=True)
class SqlProbeConfig(PasswordOptions):
    """Options shared by `postgres:` and `mysql:` sections."""

    sslmode: SslMode | None = None
    """Default prefer (TLS when the server offers it, unverified), as libpq and the MySQL client do.
    require with sslrootcert verifies the chain (verify-ca), as they do too."""
    sslrootcert: str | None = None
    query: str = "SELECT 1"
    expect_rows: int | None = None
    """Exact number of rows the query must return."""
    expect_value: str | None = None
    """Text the first column of the first row must equal (true/false for booleans, null for NULL)."""
    check_connections: bool = False
    max_connections_ratio: float = 0.9
    max_long_running_queries: int | None = None
    long_running_after: Duration = 30.0
    expect_role: Role | None = None
    server_side_timeout: bool = True
    """Make the server cancel a query the probe gave up on (statement timeout set at connect)."""

    def __post_init__(self) -> None:
        PasswordOptions.__post_init__(self)
        if not self.query.strip():
            raise FieldError("query", "must not be empty")
        if self.expect_rows is not None and self.expect_rows < 0:
            raise FieldError("expect_rows", "must be >= 0")
        if not 0 < self.max_connections_ratio <= 1:
            raise FieldError("max_connections_ratio", "must be in (0, 1]")
        if self.max_long_running_queries is not None and self.max_long_running_queries < 0:
            raise FieldError("max_long_running_queries", "must be >= 0")
        if self.long_running_after <= 0:
            raise FieldError("long_running_after", "must be greater than 0")

    @property
    def wants_server_state(self) -> bool:
        return self.check_connections or self.max_long_running_queries is not None or self.expect_role is not None


# --------------------------------------------------------------------------- one attempt


class Budget:
    """The attempt's own deadline, a little before the scheduler's hard one.

    Drivers get the remaining budget as their timeout, so their error (with what it was waiting
    for) surfaces as a result before the scheduler cancels the attempt with a bare "timeout".
    """

    def __init__(self, timeout_s: float) -> None:
        margin = min(0.5, timeout_s * 0.1)
        self.total_s = timeout_s - margin
        self.deadline = time.monotonic() + self.total_s

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 0.001)


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


def timed_out(stage: str, budget: Budget) -> tuple[Reason, str]:
    return Reason.TIMEOUT, f"{stage}: no answer within {budget.total_s:.3g}s"


def transport_failure(exc: BaseException, stage: str) -> tuple[Reason, str]:
    """The shared transport reasons (refused, reset, TLS, DNS ...), prefixed with the stage."""
    reason, detail = classify(exc)
    return reason, f"{stage}: {detail}"


# --------------------------------------------------------------------------- the probes' common frame


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

    def begin(self) -> tuple[Attempt, Budget, str | None, ProbeResult | None]:
        """A new attempt and its budget, the password, and the result if it fails before connecting."""
        attempt, budget = Attempt(self.secrets), Budget(self.timeout_s)
        try:
            password = resolve_password(self.cfg, self.url)
        except CredentialError as exc:
            return attempt, budget, None, attempt.fail(Reason.AUTH_FAILED, str(exc))
        attempt.add_secret(password)
        if self.uses_tls and (problem := rootcert_problem(self.sslmode, self.sslrootcert)) is not None:
            return attempt, budget, password, attempt.fail(Reason.TLS_HANDSHAKE, problem)
        return attempt, budget, password, None

    def in_background(self, cleanup: Coroutine[Any, Any, None]) -> None:
        """Run cleanup the attempt must not wait for; `aclose()` does."""
        task = asyncio.get_running_loop().create_task(cleanup)
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    async def aclose(self) -> None:
        """Wait for background cleanup; attempts keep no other resources."""
        if self._cleanup:
            await asyncio.gather(*self._cleanup, return_exceptions=True)


def sql_kind(name: str, config_cls: type[SqlProbeConfig], factory: Callable[[ProbeSpec, ProbeContext], Probe],
             schemes: tuple[str, ...], default_port: int) -> ProbeKind:
    """The registry entry of a SQL probe type: the target checks, metric names and `probed once` lines."""

    def validate_target(target: str, settings: SqlProbeConfig | None) -> None:
        url = parse_db_url(target, schemes, default_port)
        if not url.user:
            raise ValueError(f"the URL names no user ({schemes[0]}://user@host:{default_port}/database)")
        if settings is not None:
            check_password_sources(url, settings)
            check_tls_sources(url, settings.sslmode, settings.sslrootcert)

    return ProbeKind(name=name, config_cls=config_cls, factory=factory, validate_target=validate_target,
                     aliases=SQL_ALIASES, describe=describe_sql)


def text_of(value: object) -> str:
    """How expect_value compares a column: SQL-ish text, not Python reprs."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def number_of(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float, decimal.Decimal)):
        return float(value)
    return None


def check_rows(attempt: Attempt, cfg: SqlProbeConfig, rows: Sequence[Sequence[object]]) -> None:
    """Record the query's shape (rows, first value) and compare it with the expectations."""
    attempt.values["query_rows"] = float(len(rows))
    attempt.facts["rows"] = len(rows)
    first = rows[0][0] if rows and len(rows[0]) else None
    if rows and len(rows[0]):
        attempt.facts["first_value"] = text_of(first)[:200]
        number = number_of(first)
        if number is not None:
            attempt.values["query_value"] = number
    if cfg.expect_rows is not None and len(rows) != cfg.expect_rows:
        attempt.problems.append((Reason.UNEXPECTED_RESULT,
                                 f"query returned {len(rows)} row(s), expected {cfg.expect_rows}"))
    if cfg.expect_value is not None:
        if not rows or not len(rows[0]):
            attempt.problems.append((Reason.UNEXPECTED_RESULT,
                                     f"query returned no value, expected {cfg.expect_value!r}"))
        elif text_of(first) != cfg.expect_value:
            got = text_of(first)
            shown = got if len(got) <= 80 else got[:77] + "..."
            attempt.problems.append((Reason.UNEXPECTED_RESULT,
                                     f"first value is {shown!r}, expected {cfg.expect_value!r}"))


def record_sql_server(attempt: Attempt, flavor: str, version: str, tls: bool) -> None:
    attempt.server(SERVER_INFO, {"version": version, "flavor": flavor},
                   server_version=version, flavor=FLAVOR_NAMES[flavor], tls=tls)


@dataclass(frozen=True)
class ServerState:
    """What a SQL server says about itself, read in one round trip after the query."""

    connections_used: int
    connections_max: int
    long_running: int
    is_replica: bool


def check_server_state(attempt: Attempt, cfg: SqlProbeConfig, state: ServerState) -> None:
    used, usable = state.connections_used, state.connections_max
    attempt.values["connections_used"] = float(used)
    attempt.values["connections_max"] = float(usable)
    ratio = used / usable if usable > 0 else 1.0
    attempt.values["connections_used_ratio"] = ratio
    attempt.values["long_running_queries"] = float(state.long_running)
    attempt.values["is_replica"] = 1.0 if state.is_replica else 0.0
    role = "replica" if state.is_replica else "primary"
    attempt.facts.update(role=role, connections={"used": used, "max": usable},
                         long_running_queries=state.long_running)
    if cfg.expect_role is not None and role != cfg.expect_role:
        attempt.problems.append((Reason.WRONG_ROLE, f"server is a {role}, expected a {cfg.expect_role}"))
    if cfg.check_connections and ratio > cfg.max_connections_ratio:
        attempt.problems.append((Reason.TOO_MANY_CONNECTIONS,
                                 f"{used} of {usable} connections in use ({ratio:.0%} > "
                                 f"{cfg.max_connections_ratio:.0%})"))
    if cfg.max_long_running_queries is not None and state.long_running > cfg.max_long_running_queries:
        attempt.problems.append((Reason.LONG_RUNNING_QUERIES,
                                 f"{state.long_running} queries running longer than {cfg.long_running_after:g}s "
                                 f"(max {cfg.max_long_running_queries})"))


def describe_sql(result: ProbeResult) -> list[str]:
    """Extra lines for `probed once` from a SQL probe's facts."""
    f = result.facts
    lines = []
    if "server_version" in f:
        role = f" ({f['role']})" if "role" in f else ""
        lines.append(f"server: {f.get('flavor', '')} {f['server_version']}{role}".replace("  ", " "))
    conns = f.get("connections")
    if isinstance(conns, dict):
        lines.append(f"connections: {conns['used']} of {conns['max']} in use")
    if "long_running_queries" in f:
        lines.append(f"long-running queries: {f['long_running_queries']}")
    if "rows" in f:
        value = f" (first value {f['first_value']!r})" if "first_value" in f else ""
        lines.append(f"query: {f['rows']} row(s){value}")
    return lines
