"""Network helpers the HTTP and TCP probes share: TLS client options, timed TLS contexts,
targets, and a cheap non-blocking connect.

The TLS handshake happens inside the event loop's SSL protocol, where no library hook reports
when it starts. `TimedSSLContext.wrap_bio()` is called by asyncio and uvloop alike right after
the TCP connection is up and right before the first handshake byte is sent, so it splits
"connect" from "tls" exactly, and hands over the SSLObject (peer certificates, TLS version)
without any private API of aiohttp.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import os
import socket
import ssl
import struct
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from probed.config.schema import FieldError
from probed.probes.errors import classify
from probed.result import ProbeResult, Reason

IpProtocol = Literal["auto", "ip4", "ip6"]
FAMILIES: dict[str, socket.AddressFamily] = {
    "auto": socket.AF_UNSPEC,
    "ip4": socket.AF_INET,
    "ip6": socket.AF_INET6,
}

LINGER_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER {on, 0 s}: close() sends RST and leaves no TIME_WAIT socket behind."""


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
        if path is not None and not os.access(path, os.R_OK):
            raise FieldError(name, f"cannot read {path}")
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


def tls_or_transport(exc: BaseException) -> tuple[Reason, str]:
    # A peer that does not speak TLS at all (plain HTTP on an https port, garbage) makes OpenSSL
    # complain about the record's "version number": that is a failed handshake, not an old TLS.
    if isinstance(exc, ssl.SSLError) and exc.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE",
                                                        "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"):
        return Reason.TLS_HANDSHAKE, f"TLS: the peer does not speak TLS ({exc.reason})"
    return classify(exc)


def describe_connection(result: ProbeResult) -> list[str]:
    """`probed once` lines shared by http and tcp: the phases, like `curl -w`, and TLS (for
    https, the certificate chain, from certs.py)."""
    lines = []
    if result.phases:
        shown = (f"{name} {seconds * 1000:.2f} ms" for name, seconds in result.phases.items())
        lines.append("phases: " + ", ".join(shown))
    if "tls" in result.facts:
        # An https target: the chain with expiry dates and days left, as for `type: tls`.
        from probed.probes.certs import describe_tls  # certs.py imports this module

        lines.extend(describe_tls(result))
        return lines
    tls = result.info.get("probe_tls_version_info")
    if tls:
        lines.append(f"tls: {tls.get('version', '?')}")
    return lines


DEADLINE_MARGIN_S = 0.5


def own_deadline(timeout_s: float) -> float:
    """The deadline a probe sets itself, a little (a tenth, at most 0.5 s) inside the timeout
    the scheduler enforces: the probe then reports its own timeout, saying where the attempt
    stopped and with what it knows, rather than being cancelled with nothing to say."""
    return timeout_s - min(DEADLINE_MARGIN_S, timeout_s / 10)


def split_host_port(target: str) -> tuple[str, int]:
    """'db.internal:5432' or '[::1]:5432' -> (host, port). Raises ValueError with a message."""
    if target.startswith("["):
        host, sep, rest = target[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f'invalid target "{target}" (expected host:port, IPv6 as [::1]:port)')
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f'invalid IPv6 address in target "{target}"') from None
        port_text = rest[1:]
    else:
        host, sep, port_text = target.rpartition(":")
        if not sep or not host:
            raise ValueError(f'invalid target "{target}" (expected host:port, IPv6 as [::1]:port)')
        if ":" in host:
            raise ValueError(f'invalid target "{target}" (write IPv6 addresses in brackets: [::1]:port)')
        if any(c.isspace() or c in "/@?#" for c in host):
            raise ValueError(f'invalid host in target "{target}"')
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f'invalid port in target "{target}" (expected 1-65535)')
    return host, int(port_text)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# Linux: non-blocking from birth, two fcntl() calls fewer per connect than setblocking(False).
_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)


async def connect(loop: asyncio.AbstractEventLoop, family: socket.AddressFamily, address: tuple[Any, ...],
                  reset_on_close: bool) -> socket.socket:
    """A connected non-blocking TCP socket to a numeric `address`, or OSError.

    Why not `loop.sock_connect`: uvloop's looks the address up again on every call, with
    getaddrinfo and no socket type, which misses uvloop's static fast path and goes through the
    thread pool (42.6 us of CPU per connect, against 2.7 us with the type given); that is more
    than the connect itself. This is the wait-until-writable dance asyncio's selector loop
    does, on the loop's public add_writer API.
    """
    sock = socket.socket(family, socket.SOCK_STREAM | _NONBLOCK)
    try:
        if not _NONBLOCK:
            sock.setblocking(False)
        if reset_on_close:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        err = sock.connect_ex(address)
        if err in (errno.EINPROGRESS, errno.EAGAIN):
            fd = sock.fileno()
            writable = loop.create_future()
            loop.add_writer(fd, _wake, writable)
            try:
                await writable
            finally:
                loop.remove_writer(fd)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
    except BaseException:  # refused, or cancelled at the timeout: never leak the socket
        sock.close()
        raise
    return sock



def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
