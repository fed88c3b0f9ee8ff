"""TLS client settings and the one cached client SSL context every probe type shares.

The TLS handshake happens inside the event loop's SSL protocol, where no library hook reports
when it starts. `TimedSSLContext.wrap_bio()` is called by asyncio and uvloop alike right after
the TCP connection is up and right before the first handshake byte is sent, so it splits
"connect" from "tls" exactly, and hands over the SSLObject (peer certificates, TLS version)
without any private API of aiohttp.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from probed.config.schema import FieldError, read_small_file

TLS_FILE_LIMIT = 4 << 20
"""A CA bundle or a key is kilobytes; a system bundle a few hundred."""


@dataclass(frozen=True)
class TlsOptions:
    """TLS client settings shared by `http.tls` and `tcp.tls_config`."""

    ca_file: str | None = None
    """PEM bundle to trust instead of the system store (private CAs)."""
    insecure_skip_verify: bool = False
    """Accept any certificate. The connection is still encrypted; nothing is verified."""
    server_name: str | None = None
    """SNI and the name the certificate must match, when it differs from the target's host."""
    cert_file: str | None = None
    """Client certificate (PEM) for mutual TLS."""
    key_file: str | None = None
    """Its private key, when not in `cert_file`."""

    def __post_init__(self) -> None:
        check_tls_files(self, ca="ca_file", cert="cert_file", key="key_file",
                        build=lambda: client_context(self))


def check_tls_files(config: object, *, ca: str, cert: str, key: str, build: Callable[[], object]) -> None:
    """Config-time checks of a TLS section's files, under the section's own field names.

    The context is built now (and cached for the factory): an unreadable or malformed file, or a
    key that wants a passphrase, is a config error with a line number, not a probe that fails
    at 3 am.
    """
    if getattr(config, key) is not None and getattr(config, cert) is None:
        raise FieldError(key, f"{key} needs {cert}")
    for name in (ca, cert, key):
        path = getattr(config, name)
        if path is not None:
            try:  # a FIFO or /dev/zero here would hang the loader at the TLS library's open
                read_small_file(path, TLS_FILE_LIMIT)
            except ValueError as exc:
                raise FieldError(name, str(exc)) from None
    try:
        build()
    except EncryptedKeyError as exc:
        raise FieldError(key if getattr(config, key) else cert, str(exc)) from None
    except (ssl.SSLError, OSError) as exc:
        raise FieldError(ca if getattr(config, ca) else cert, f"unusable TLS file: {exc}") from None


class EncryptedKeyError(ValueError):
    """A client key protected by a passphrase, which probed has no way to ask for."""


def refuse_passphrase() -> bytes:
    """The `password` callback of every `load_cert_chain()`.

    Without a callback, OpenSSL asks for the passphrase of an encrypted key on the terminal
    (`Enter PEM pass phrase:`), which blocks `probed run` started from a shell, and fails with
    a bare "[Errno 22] Invalid argument" without one. Like blackbox_exporter, probed takes
    unencrypted keys only: a passphrase in probes.yaml would guard the key no better than the
    file's permissions do.
    """
    raise EncryptedKeyError("the private key is encrypted (passphrase-protected); probed needs an unencrypted "
                            "key file (e.g. `openssl pkey -in key.pem -out plain.pem`), readable only by probed")


class TlsWatcher(Protocol):
    """What an attempt registers in `TLS_WATCHER` to learn about its TLS handshakes."""

    def tls_started(self, ssl_object: ssl.SSLObject) -> None: ...


TLS_WATCHER: ContextVar[TlsWatcher | None] = ContextVar("probed_tls_watcher", default=None)
"""The attempt running in the current task. A context variable rather than a connector hook:
the connection is made deep inside aiohttp, but always in the task that awaits the request."""


class TimedSSLContext(ssl.SSLContext):
    """An SSLContext that tells the current attempt when its handshake starts."""

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        ssl_object = super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)
        watcher = TLS_WATCHER.get()
        if watcher is not None:
            watcher.tls_started(ssl_object)
        return ssl_object


def client_context(options: TlsOptions) -> TimedSSLContext:
    """The (cached) client context for `http.tls` / `tcp.tls_config`."""
    return tls_context(options.ca_file, options.cert_file, options.key_file, options.insecure_skip_verify)


def tls_context(ca_file: str | None, cert_file: str | None, key_file: str | None, insecure: bool,
                min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
                verify_hostname: bool = True) -> TimedSSLContext:
    """One client context per distinct setting, shared by every probe type that speaks TLS.

    Cached, because each context holds its own copy of the trust store (hundreds of kB), which
    10,000 https probes must not multiply; the files' mtimes are in the key, so a rotated CA
    bundle or client certificate is picked up by the next reload.
    """
    return _cached_context(ca_file, cert_file, key_file, insecure, min_version, verify_hostname,
                           _mtimes(ca_file, cert_file, key_file))


def _mtimes(*paths: str | None) -> tuple[int, ...]:
    out = []
    for path in paths:
        try:
            out.append(os.stat(path).st_mtime_ns if path else 0)
        except OSError:
            out.append(-1)
    return tuple(out)


@functools.lru_cache(maxsize=64)
def _cached_context(ca_file: str | None, cert_file: str | None, key_file: str | None, insecure: bool,
                    min_version: ssl.TLSVersion, verify_hostname: bool, _mtimes: tuple[int, ...]) -> TimedSSLContext:
    ctx = TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname check and CERT_REQUIRED on
    ctx.minimum_version = min_version
    ctx.check_hostname = verify_hostname
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file, password=refuse_passphrase)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


_TLS_VERSION_NAMES = {"TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1", "TLSv1.2": "TLS 1.2", "TLSv1.3": "TLS 1.3"}


def tls_version_name(ssl_object: ssl.SSLObject) -> str:
    """"TLS 1.3", as blackbox_exporter's `probe_tls_version_info{version}` spells it."""
    version = ssl_object.version() or "unknown"
    return _TLS_VERSION_NAMES.get(version, version)
