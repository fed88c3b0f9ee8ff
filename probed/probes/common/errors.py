"""Library and OS exceptions -> reasons, translated once at the boundary.

Probe modules catch the exceptions their library raises, try their own specific mapping first
(HTTP status, database error codes, AWS error codes), and fall back to `classify()` for the
transport-level ones every probe type shares: sockets, name resolution and TLS.

TLS errors are told apart by OpenSSL's exact reason codes, never by substrings: a plain HTTP
server on a TLS port yields WRONG_VERSION_NUMBER, which is a peer that does not speak TLS, not
an old protocol version, though its name contains "VERSION".
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

from probed.result import Reason

_ERRNO_REASONS = {
    errno.ECONNREFUSED: Reason.CONNECTION_REFUSED,
    errno.ECONNRESET: Reason.CONNECTION_RESET,
    errno.EPIPE: Reason.CONNECTION_RESET,
    errno.ECONNABORTED: Reason.CONNECTION_RESET,
    errno.ETIMEDOUT: Reason.TIMEOUT,
}

_VERSION_CODES = frozenset({
    "UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE", "VERSION_TOO_LOW",
    "VERSION_TOO_HIGH", "WRONG_SSL_VERSION", "UNSUPPORTED_SSL_VERSION", "TLSV1_ALERT_INAPPROPRIATE_FALLBACK",
    "NO_SUITABLE_SIGNATURE_ALGORITHM",
})
"""No protocol version (or signature scheme of one) both sides accept: `tls_version`."""
_NOT_TLS_CODES = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                            "HTTP_REQUEST", "UNKNOWN_PROTOCOL"})
"""The first record is not TLS at all: plain HTTP, an SSH banner, garbage."""
_CLIENT_CERT_ALERTS = frozenset({
    "TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLV3_ALERT_BAD_CERTIFICATE", "TLSV1_ALERT_UNKNOWN_CA",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN", "SSLV3_ALERT_CERTIFICATE_EXPIRED", "TLSV1_ALERT_ACCESS_DENIED",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_REVOKED", "TLSV1_ALERT_DECRYPT_ERROR",
})
"""Alerts a server sends about the client's certificate (mutual TLS)."""


def classify(exc: BaseException) -> tuple[Reason, str]:
    """Map a transport-level exception to (reason, detail). Unknown ones are internal errors."""
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return Reason.TIMEOUT, "timed out"
    if isinstance(exc, socket.gaierror):
        return Reason.DNS_ERROR, f"cannot resolve host: {exc.strerror or exc}"
    if isinstance(exc, ssl.SSLError):
        return classify_tls_error(exc)
    if isinstance(exc, ConnectionRefusedError):
        return Reason.CONNECTION_REFUSED, "connection refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return Reason.CONNECTION_RESET, "connection reset by peer"
    if isinstance(exc, OSError):
        # Multi-address connects (happy eyeballs) wrap the per-address errors in a plain OSError.
        sub = getattr(exc, "exceptions", None) or [getattr(exc, "__cause__", None)]
        for inner in sub:
            if isinstance(inner, OSError) and inner is not exc:
                return classify(inner)
        if exc.errno in _ERRNO_REASONS:
            return _ERRNO_REASONS[exc.errno], exc.strerror or str(exc)
        if "Connect call failed" in str(exc) or "connection refused" in str(exc).lower():
            return Reason.CONNECTION_REFUSED, "connection refused"
        return Reason.NETWORK_ERROR, exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, EOFError):
        return Reason.CONNECTION_RESET, "connection closed by peer"
    return Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"


def classify_tls_error(exc: ssl.SSLError) -> tuple[Reason, str]:
    """A failed handshake -> (reason, detail), by OpenSSL's exact reason code."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return classify_cert_error(exc), f"certificate verify failed: {verify_message(exc)}"
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return Reason.TLS_HANDSHAKE, "TLS: the server closed the connection during the handshake"
    code = exc.reason or ""
    if code in _VERSION_CODES:
        return Reason.TLS_VERSION, f"TLS: no protocol version both sides accept ({code})"
    if code in _NOT_TLS_CODES:
        return Reason.TLS_HANDSHAKE, f"TLS: the peer does not speak TLS ({code})"
    if code in _CLIENT_CERT_ALERTS:
        return Reason.TLS_HANDSHAKE, f"TLS: the server rejected the handshake or client certificate ({code})"
    return Reason.TLS_HANDSHAKE, f"TLS: {code or exc}"


def classify_cert_error(exc: ssl.SSLCertVerificationError) -> Reason:
    """OpenSSL verify codes -> the certificate reasons (X509_V_ERR_* numbers)."""
    code = exc.verify_code
    if code in (9, 10):  # CERT_NOT_YET_VALID, CERT_HAS_EXPIRED
        return Reason.CERT_EXPIRED
    if code == 62:  # HOSTNAME_MISMATCH
        return Reason.CERT_HOSTNAME_MISMATCH
    msg = (exc.verify_message or "").lower()
    if "expired" in msg:
        return Reason.CERT_EXPIRED
    if "hostname" in msg or "ip address mismatch" in msg:
        return Reason.CERT_HOSTNAME_MISMATCH
    return Reason.CERT_UNTRUSTED


def verify_message(exc: ssl.SSLCertVerificationError) -> str:
    # OpenSSL's host name message ends with a full stop; the detail may go on after it.
    return str(exc.verify_message or exc.reason or exc).rstrip(".")
