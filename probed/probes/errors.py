"""Library and OS exceptions -> reasons, translated once at the boundary.

Probe modules catch the exceptions their library raises, try their own specific mapping first
(HTTP status, database error codes, AWS error codes), and fall back to `classify()` for the
transport-level ones every probe type shares.
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


def classify(exc: BaseException) -> tuple[Reason, str]:
    """Map a transport-level exception to (reason, detail). Unknown ones are internal errors."""
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return Reason.TIMEOUT, "timed out"
    if isinstance(exc, socket.gaierror):
        return Reason.DNS_ERROR, f"cannot resolve host: {exc.strerror or exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return classify_cert_error(exc), exc.verify_message or str(exc)
    if isinstance(exc, ssl.SSLError):
        if "VERSION" in (exc.reason or "") or "PROTOCOL" in (exc.reason or ""):
            return Reason.TLS_VERSION, f"TLS: {exc.reason}"
        return Reason.TLS_HANDSHAKE, f"TLS: {exc.reason or exc}"
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
