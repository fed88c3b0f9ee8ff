"""Certificate inspection shared by `type: tls` and the https targets of `type: http`.

One finished (or failed) TLS handshake in, facts out: the chain the server presented, the chain
OpenSSL verified, the verdict (expired, expiring, untrusted, wrong host), and the values, info
labels and JSON facts both probe types export. Keeping it in one place is what makes an https
probe and a tls probe agree on every number and reason for the same server.

Reading the presented chain. Python 3.13 has `SSLObject.get_unverified_chain()`; 3.10 to 3.12
have the same method on the private `_ssl._SSLSocket` behind the SSLObject (`._sslobj`). Both
return what the server sent *even after verification failed*: OpenSSL stores the peer chain in
the session before it verifies it, so an untrusted or wrong-host certificate still yields its
expiry from the same single handshake (no second, unverified handshake). Where neither exists,
only the leaf is read (`getpeercert(binary_form=True)`, after a successful handshake).

Parsing is `cryptography`'s, cached by the DER bytes: a server presents the same certificates on
every handshake, so a probe parses each certificate once, not once per attempt.
"""

from __future__ import annotations

import _ssl
import functools
import hashlib
import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509

from probed.probes import MetricAlias
from probed.probes.common.errors import classify_cert_error, verify_message
from probed.probes.common.tls import tls_version_name
from probed.result import Reason

DAY_S = 86400.0
DEFAULT_MIN_DAYS_REMAINING = 14.0

CERT_ALIASES: Mapping[str, MetricAlias] = {
    "cert_expiry_timestamp_seconds": MetricAlias(
        "probe_ssl_earliest_cert_expiry",
        "Unix time the earliest-expiring certificate the server presented expires."),
    "last_chain_expiry_timestamp_seconds": MetricAlias(
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        "Unix time the earliest-expiring certificate of the verified chain (trust anchor included) expires."),
    "cert_days_remaining": MetricAlias(
        "probed_tls_cert_expiry_days",
        "Days until the earliest-expiring presented certificate expires (negative: expired)."),
}
"""Value name -> dedicated metric; both the tls and the http kind export these."""

CERT_VALUES = ("cert_chain_length",)
"""Certificate values exported only as probed_probe_value (no dedicated metric)."""

TLS_INFO = "probed_tls_cert_info"
CHAIN_INFO = "probe_ssl_last_chain_info"
VERSION_INFO = "probe_tls_version_info"
CIPHER_INFO = "probe_tls_cipher_info"
TLS_INFOS: Mapping[str, str] = {
    TLS_INFO: "The leaf certificate the server presented: issuer, subject, SHA-256 fingerprint (value 1).",
    CHAIN_INFO: "Contains SSL leaf certificate information: fingerprint, subject, issuer, DNS names (value 1).",
    VERSION_INFO: "The TLS version negotiated (value 1).",
    CIPHER_INFO: "The cipher suite negotiated (value 1).",
}
"""Info metrics of a handshake -> their help text (tls and https probes)."""


# --------------------------------------------------------------------------- one certificate


@dataclass(frozen=True, slots=True)
class Certificate:
    """What an operator needs from one certificate; times are unix seconds."""

    subject: str
    issuer: str
    serial: str
    """Hexadecimal, as `openssl x509 -serial` prints it."""
    not_before: float
    not_after: float
    sans: tuple[str, ...]
    fingerprint_sha256: str
    """Lowercase hex of the SHA-256 of the DER encoding (`openssl x509 -fingerprint -sha256`)."""
    dns_names: tuple[str, ...] = ()
    """The DNS names among the SANs, in order (blackbox's `subjectalternative` label joins them)."""

    def fact(self, now: float) -> dict[str, object]:
        """JSON-able form for `probed once --json` and the API."""
        days = round((self.not_after - now) / DAY_S, 2) if math.isfinite(self.not_after) else None
        return {**_static_fact(self), "days_remaining": days}


@functools.lru_cache(maxsize=4096)
def _static_fact(cert: Certificate) -> dict[str, object]:
    # Formatting dates costs more than the rest of the facts together; they never change.
    return {
        "subject": cert.subject,
        "issuer": cert.issuer,
        "serial": cert.serial,
        "not_before": _iso(cert.not_before),
        "not_after": _iso(cert.not_after),
        "sans": cert.sans,  # a tuple: this dict is shared by every result that copies it
        "fingerprint_sha256": cert.fingerprint_sha256,
    }


@functools.lru_cache(maxsize=4096)
def _brief_fact(cert: Certificate) -> dict[str, object]:
    return {"subject": cert.subject, "not_after": _iso(cert.not_after)}


@functools.lru_cache(maxsize=4096)
def parse_certificate(der: bytes) -> Certificate:
    """DER -> Certificate. A certificate OpenSSL accepted but cryptography cannot parse is kept
    (fingerprint only, times unknown) rather than failing the probe on our parser's limits."""
    fingerprint = hashlib.sha256(der).hexdigest()
    try:
        cert = x509.load_der_x509_certificate(der)
        subject, issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
        not_before = cert.not_valid_before_utc.timestamp()
        not_after = cert.not_valid_after_utc.timestamp()
        serial = format(cert.serial_number, "X")
    except ValueError as exc:
        return Certificate(f"<unparseable: {exc}>", "", "", -math.inf, math.inf, (), fingerprint)
    dns_names, ips = _sans(cert)
    return Certificate(subject, issuer, serial, not_before, not_after, dns_names + ips, fingerprint, dns_names)


def _sans(cert: x509.Certificate) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(DNS names, IP addresses) of the subject alternative names."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return (), ()
    return (tuple(ext.get_values_for_type(x509.DNSName)),
            tuple(str(ip) for ip in ext.get_values_for_type(x509.IPAddress)))


# --------------------------------------------------------------------------- one handshake


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What one handshake showed about the server's certificates."""

    presented: tuple[Certificate, ...]
    """As the server sent it, leaf first. May lack intermediates, may carry extra certificates."""
    verified: tuple[Certificate, ...]
    """The path OpenSSL built to a trust anchor, leaf first; empty unless verification succeeded."""
    version: str
    """"TLS 1.3", or "" when the handshake did not finish."""
    cipher: str

    @property
    def leaf(self) -> Certificate | None:
        return self.presented[0] if self.presented else None

    @property
    def earliest_expiry(self) -> float | None:
        """Not-after of the earliest-expiring presented certificate (blackbox's definition)."""
        times = [c.not_after for c in self.presented if math.isfinite(c.not_after)]
        return min(times) if times else None

    @property
    def last_chain_expiry(self) -> float | None:
        times = [c.not_after for c in self.verified if math.isfinite(c.not_after)]
        return min(times) if times else None


def read_chain(ssl_object: ssl.SSLObject, verified: bool) -> ChainReport:
    """Inspect a handshake's certificates. Works after a certificate verification failure too.

    `verified` says whether OpenSSL verified the chain on this connection (verification on and
    the handshake finished); only then is the verified path read.
    """
    presented = tuple(parse_certificate(der) for der in _presented_der(ssl_object))
    chain = tuple(parse_certificate(der) for der in _verified_der(ssl_object)) if verified else ()
    finished = _handshake_done(ssl_object)
    cipher = ssl_object.cipher() if finished else None
    return ChainReport(presented, chain, tls_version_name(ssl_object) if finished else "",
                       cipher[0] if cipher else "")


def _presented_der(ssl_object: ssl.SSLObject) -> list[bytes]:
    public = getattr(ssl_object, "get_unverified_chain", None)  # Python 3.13+: DER bytes
    if public is not None:
        return list(public() or ())
    private = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if private is not None:
        return [c.public_bytes(_ssl.ENCODING_DER) for c in private() or ()]
    try:
        leaf = ssl_object.getpeercert(binary_form=True)
    except ValueError:  # handshake not finished: nothing readable without the chain API
        return []
    return [leaf] if leaf else []


def _verified_der(ssl_object: ssl.SSLObject) -> list[bytes]:
    public = getattr(ssl_object, "get_verified_chain", None)
    if public is not None:
        return list(public() or ())
    private = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    if private is not None:
        return [c.public_bytes(_ssl.ENCODING_DER) for c in private() or ()]
    return []


def _handshake_done(ssl_object: ssl.SSLObject) -> bool:
    try:
        ssl_object.getpeercert(binary_form=True)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- the verdict


def judge(report: ChainReport, now: float, min_days_remaining: float,
          verify_error: ssl.SSLCertVerificationError | None = None) -> tuple[Reason, str]:
    """(Reason.OK, "") or the certificate problem, in this order of precedence:

    1. `cert_expired`: a presented certificate is past its not-after (or before its not-before).
       Checked on what was presented, not only on the verified path, because older clients
       may build their path through the expired one; and an expired certificate breaks every
       client whatever its trust store, so it outranks the findings below.
    2. OpenSSL's verification error: `cert_untrusted`, `cert_hostname_mismatch` (or
       `cert_expired` for an expired trust anchor).
    3. `cert_expiring`: the earliest presented not-after is within `min_days_remaining`.
    """
    for cert in report.presented:
        if now > cert.not_after:
            return Reason.CERT_EXPIRED, (f"certificate {_name(cert)} expired {_ago(now - cert.not_after)} ago "
                                         f"({_iso(cert.not_after)})")
        if now < cert.not_before:
            return Reason.CERT_EXPIRED, (f"certificate {_name(cert)} is not valid before {_iso(cert.not_before)} "
                                         f"(in {_ago(cert.not_before - now)})")
    if verify_error is not None:
        reason = classify_cert_error(verify_error)
        detail = f"certificate verify failed: {verify_message(verify_error)}"
        if reason is Reason.CERT_UNTRUSTED and len(report.presented) == 1 and report.leaf is not None \
                and report.leaf.subject != report.leaf.issuer:
            detail += " (the server sent no intermediate certificate)"
        elif reason is Reason.CERT_HOSTNAME_MISMATCH and report.leaf is not None:
            detail += f"; the certificate is for {', '.join(report.leaf.sans) or report.leaf.subject}"
        return reason, detail
    earliest = report.earliest_expiry
    if earliest is not None and earliest - now < min_days_remaining * DAY_S:
        cert = min(report.presented, key=lambda c: c.not_after)
        return Reason.CERT_EXPIRING, (f"certificate {_name(cert)} expires in {(earliest - now) / DAY_S:.1f} days "
                                      f"({_iso(earliest)}), inside min_days_remaining {min_days_remaining:g}")
    return Reason.OK, ""


# --------------------------------------------------------------------------- what gets exported


def cert_values(report: ChainReport, now: float) -> dict[str, float]:
    values: dict[str, float] = {}
    earliest = report.earliest_expiry
    if earliest is not None:
        values["cert_expiry_timestamp_seconds"] = earliest
        values["cert_days_remaining"] = (earliest - now) / DAY_S
    last = report.last_chain_expiry
    if last is not None:
        values["last_chain_expiry_timestamp_seconds"] = last
    if report.presented:
        values["cert_chain_length"] = len(report.presented)
    return values


def cert_info(report: ChainReport) -> dict[str, dict[str, str]]:
    """Info labels: bounded per server (one certificate, one version, one cipher)."""
    info: dict[str, dict[str, str]] = {}
    leaf = report.leaf
    if leaf is not None:
        info[TLS_INFO] = {"issuer": leaf.issuer, "subject": leaf.subject,
                          "fingerprint_sha256": leaf.fingerprint_sha256}
        # blackbox_exporter's labels (0.23; later versions add `serialnumber`): the leaf presented,
        # its DNS names (not its IP addresses) joined by commas as Go's x509 lists them.
        info[CHAIN_INFO] = {"fingerprint_sha256": leaf.fingerprint_sha256, "subject": leaf.subject,
                            "issuer": leaf.issuer, "subjectalternative": ",".join(leaf.dns_names)}
    if report.version:
        info[VERSION_INFO] = {"version": report.version}
    if report.cipher:
        info[CIPHER_INFO] = {"cipher": report.cipher}
    return info


def chain_facts(report: ChainReport, now: float) -> dict[str, object]:
    """The `tls` entry of ProbeResult.facts (the same for `type: tls` and https)."""
    return {
        "version": report.version or None,
        "cipher": report.cipher or None,
        "verified": bool(report.verified),
        "chain": [c.fact(now) for c in report.presented],
        # The path to the trust anchor, briefly: the presented certificates are detailed above.
        "verified_chain": [dict(_brief_fact(c)) for c in report.verified],  # copies: results never share
    }


# --------------------------------------------------------------------------- helpers


def _name(cert: Certificate) -> str:
    return cert.subject or cert.fingerprint_sha256[:16]


def _iso(ts: float) -> str:
    if not math.isfinite(ts):
        return "unknown"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(seconds: float) -> str:
    if seconds >= DAY_S:
        return f"{seconds / DAY_S:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{max(seconds, 0):.0f} seconds"


__all__ = [
    "CERT_ALIASES",
    "CERT_VALUES",
    "DAY_S",
    "DEFAULT_MIN_DAYS_REMAINING",
    "TLS_INFOS",
    "Certificate",
    "ChainReport",
    "cert_info",
    "cert_values",
    "chain_facts",
    "judge",
    "parse_certificate",
    "read_chain",
]
