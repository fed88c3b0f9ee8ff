"""What one probe attempt produced, and the single vocabulary of reasons it can fail for.

The reason words are a contract: metrics, logs, the JSON API, `probed once` and the README's
table all use exactly these strings. Add a member here (with its description) rather than
inventing a string at a call site.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class Reason(enum.Enum):
    """Why an attempt failed (or `ok`). The value is the word used everywhere."""

    OK = "ok"
    # -- transport (every probe type)
    TIMEOUT = "timeout"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_RESET = "connection_reset"
    NETWORK_ERROR = "network_error"
    DNS_ERROR = "dns_error"
    PROTOCOL_ERROR = "protocol_error"
    # -- TLS
    TLS_HANDSHAKE = "tls_handshake"
    TLS_VERSION = "tls_version"
    CERT_EXPIRED = "cert_expired"
    CERT_EXPIRING = "cert_expiring"
    CERT_UNTRUSTED = "cert_untrusted"
    CERT_HOSTNAME_MISMATCH = "cert_hostname_mismatch"
    # -- HTTP
    HTTP_STATUS = "http_status"
    BODY_MISMATCH = "body_mismatch"
    BODY_TOO_LARGE = "body_too_large"
    HEADER_MISMATCH = "header_mismatch"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    SLOW = "slow"
    # -- TCP query/response
    EXPECT_MISMATCH = "expect_mismatch"
    # -- DNS
    DNS_NXDOMAIN = "dns_nxdomain"
    DNS_SERVFAIL = "dns_servfail"
    DNS_REFUSED = "dns_refused"
    DNS_NO_ANSWER = "dns_no_answer"
    DNS_ANSWER_MISMATCH = "dns_answer_mismatch"
    DNS_RCODE = "dns_rcode"
    # -- databases
    AUTH_FAILED = "auth_failed"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    QUERY_ERROR = "query_error"
    UNEXPECTED_RESULT = "unexpected_result"
    WRONG_ROLE = "wrong_role"
    DATABASE_NOT_FOUND = "database_not_found"
    LONG_RUNNING_QUERIES = "long_running_queries"
    MEMORY_HIGH = "memory_high"
    # -- AWS
    AWS_CHECK_FAILED = "aws_check_failed"
    AWS_ERROR = "aws_error"
    AWS_AUTH = "aws_auth"
    AWS_THROTTLED = "aws_throttled"
    # -- probed itself
    INTERNAL_ERROR = "internal_error"

    @property
    def description(self) -> str:
        return REASON_DESCRIPTIONS[self]

    @property
    def can_warn(self) -> bool:
        return self in WARNING_REASONS


REASON_DESCRIPTIONS: Mapping[Reason, str] = MappingProxyType(
    {
        Reason.OK: "the attempt succeeded",
        Reason.TIMEOUT: "no complete answer before the probe's timeout (connect, handshake, response or query)",
        Reason.CONNECTION_REFUSED: "the port is closed: nothing listens, or a firewall rejects",
        Reason.CONNECTION_RESET: "the peer reset or closed the connection mid-exchange",
        Reason.NETWORK_ERROR: "another socket-level error (host or network unreachable, address not available)",
        Reason.DNS_ERROR: "the target's host name could not be resolved",
        Reason.PROTOCOL_ERROR: "the peer answered with bytes that are not the expected protocol",
        Reason.TLS_HANDSHAKE: "the TLS handshake failed for a reason other than trust, name or version",
        Reason.TLS_VERSION: "the negotiated or offered TLS version is below the configured minimum",
        Reason.CERT_EXPIRED: "a certificate in the presented chain has expired (or is not yet valid)",
        Reason.CERT_EXPIRING: "the chain expires within `min_days_remaining`",
        Reason.CERT_UNTRUSTED: "the chain does not verify against the trust store (self-signed, missing intermediate)",
        Reason.CERT_HOSTNAME_MISMATCH: "the certificate is not valid for the host name probed",
        Reason.HTTP_STATUS: "the HTTP status code is not in `valid_status_codes`",
        Reason.BODY_MISMATCH: "the body matched a `fail_if_body_matches_regexp` or missed a required regexp",
        Reason.BODY_TOO_LARGE: "the body exceeded `max_body_bytes` (reading stopped there)",
        Reason.HEADER_MISMATCH: "a response header is missing or does not match its regexp",
        Reason.TOO_MANY_REDIRECTS: "the redirect chain was longer than allowed (or looped)",
        Reason.SLOW: "the attempt worked but took longer than `fail_if_slower_than`",
        Reason.EXPECT_MISMATCH: "the TCP answer did not match `expect`",
        Reason.DNS_NXDOMAIN: "the name does not exist (NXDOMAIN)",
        Reason.DNS_SERVFAIL: "the server failed to answer (SERVFAIL)",
        Reason.DNS_REFUSED: "the server refused the query (REFUSED)",
        Reason.DNS_NO_ANSWER: "NOERROR but fewer answers than `min_answers`",
        Reason.DNS_ANSWER_MISMATCH: "answers lack an `expect` entry or match `fail_if_answer_matches`",
        Reason.DNS_RCODE: "another response code not in `valid_rcodes`",
        Reason.AUTH_FAILED: "the server rejected the credentials",
        Reason.TOO_MANY_CONNECTIONS: "the server is at (or over the configured ratio of) its connection limit",
        Reason.QUERY_ERROR: "the query failed on the server",
        Reason.UNEXPECTED_RESULT: "the query worked but returned other rows or values than expected",
        Reason.WRONG_ROLE: "the server is not in the expected role (primary or replica)",
        Reason.DATABASE_NOT_FOUND: "the database named in the target does not exist",
        Reason.LONG_RUNNING_QUERIES: "more long-running queries than `max_long_running_queries`",
        Reason.MEMORY_HIGH: "memory use is above the configured ratio of the limit",
        Reason.AWS_CHECK_FAILED: "the AWS call worked and reported a bad state (detail says which)",
        Reason.AWS_ERROR: "the AWS call failed (the AWS error code is counted on probed_probe_error_codes_total)",
        Reason.AWS_AUTH: "no, invalid or expired AWS credentials",
        Reason.AWS_THROTTLED: "the AWS API throttled the call (not an outage of the resource)",
        Reason.INTERNAL_ERROR: "a bug in probed; the detail and the log say where",
    }
)

WARNING_REASONS: frozenset[Reason] = frozenset({Reason.CERT_EXPIRING})
"""Reasons a probe reports as a *warning* by default: the attempt is a success (`probe_success`
1, good for SLOs) that carries the reason on `ProbeResult.warning`, because the service still
works. A config switch (`fail_if_expiring`) can make one a failure again."""

REASON_CODES: Mapping[Reason, int] = MappingProxyType({r: i for i, r in enumerate(Reason)})
"""A small integer per reason, for the ring buffer's uint8 column."""
REASONS_BY_CODE: tuple[Reason, ...] = tuple(Reason)

PHASES = ("resolve", "connect", "tls", "processing", "transfer")
"""blackbox_exporter's HTTP phase names; other probe types add their own (auth, query, ...)."""

_EMPTY: Mapping[str, float] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of one attempt. A failing target is a value, never an exception.

    `values` are numeric facts (status code, cert expiry, running tasks, ratios) exported as
    gauges. `info` holds string facts for info-style metrics, keyed by metric name, e.g.
    `{"probe_tls_version_info": {"version": "TLS 1.3"}}`; label values must be bounded.
    `detail` is human text for logs and the API only: never a label. `duration_s` is set by the
    scheduler, which owns the clock (probes leave it 0).
    """

    success: bool
    reason: Reason
    duration_s: float = 0.0
    phases: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    values: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    info: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    detail: str = ""
    facts: Mapping[str, object] = field(default_factory=dict)
    """JSON-able structured facts for `probed once` and the API (TLS chain, DNS answers ...)."""
    warning: Reason | None = None
    """Set on a success that found something to fix before it becomes an outage (one of
    `WARNING_REASONS`, e.g. cert_expiring): the attempt counts as ok everywhere (metrics, ring,
    SLOs); the status page shows it amber and `probed_probe_warning{reason}` exports it."""
    error_code: str = ""
    """The peer's own error code, when it names one from a bounded set (AWS's "AccessDenied",
    "ThrottlingException" ...): counted per probe on `probed_probe_error_codes_total{code}`."""

    @classmethod
    def ok(cls, **kwargs: object) -> ProbeResult:
        return cls(True, Reason.OK, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def warn(cls, reason: Reason, detail: str = "", **kwargs: object) -> ProbeResult:
        """A success with a warning: `reason` stays ok, `warning` names what to fix."""
        assert reason in WARNING_REASONS, f"{reason.value} cannot be a warning"
        return cls(True, Reason.OK, detail=detail, warning=reason, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def fail(cls, reason: Reason, detail: str = "", **kwargs: object) -> ProbeResult:
        assert reason is not Reason.OK, "a failure needs a reason other than ok"
        return cls(False, reason, detail=detail, **kwargs)  # type: ignore[arg-type]
