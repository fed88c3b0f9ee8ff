"""Targets and sockets every TCP-speaking probe shares: `host:port` parsing, address families,
and a cheap non-blocking connect."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import functools
import ipaddress
import os
import socket
import struct
from typing import Any, Literal

from probed.probes import MetricAlias
from probed.result import ProbeResult

IpProtocol = Literal["auto", "ip4", "ip6"]
FAMILIES: dict[str, socket.AddressFamily] = {
    "auto": socket.AF_UNSPEC,
    "ip4": socket.AF_INET,
    "ip6": socket.AF_INET6,
}

LINGER_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER {on, 0 s}: close() sends RST and leaves no TIME_WAIT socket behind."""


def split_host_port(target: str) -> tuple[str, int]:
    """'db.internal:5432' or '[::1]:5432' -> (host, port). Raises ValueError with a message."""
    if "://" in target:
        raise ValueError(f'invalid target "{target}" (expected host:port, not a URL)')
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
    thread pool, costing more CPU than the connect itself (figures in docs/performance.md). This
    is the wait-until-writable dance asyncio's selector loop does, on the loop's public
    add_writer API.
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


LOOKUP_VALUE = "dns_lookup_time_seconds"
"""The value name of the target's name resolution time: every type that resolves a host name
carries it, from its `resolve` phase (0 for an IP address), as blackbox_exporter does on every
module (its dashboards plot it for http and tcp targets too)."""
IP_PROTOCOL_VALUE = "ip_protocol"
"""4 or 6: the address family of the connection the attempt made (absent when none was made)."""
IP_ADDR_HASH_VALUE = "ip_addr_hash"
"""`ip_hash()` of the address the attempt connected to (absent when none was made): a change of the
value is a change of the address a name resolves to, without the address as a label."""

LOOKUP_ALIAS = {
    LOOKUP_VALUE: MetricAlias("probe_dns_lookup_time_seconds",
                              "Returns the time taken for probe dns lookup in seconds"),
    IP_PROTOCOL_VALUE: MetricAlias("probe_ip_protocol",
                                   "Specifies whether probe ip protocol is IP4 or IP6"),
    IP_ADDR_HASH_VALUE: MetricAlias(
        "probe_ip_addr_hash", "Specifies the hash of IP address. It's useful to detect if the IP address changes."),
}
"""blackbox_exporter's names and help texts for them."""

REGEX_ALIAS = MetricAlias("probe_failed_due_to_regex",
                          "Indicates if probe failed due to regex (http: a body or header check; tcp: an `expect`).")
"""blackbox's series for a failed regexp, on every prober that matches them (value `failed_due_to_regex`)."""

_FNV32_OFFSET, _FNV32_PRIME = 0x811C9DC5, 0x01000193


@functools.lru_cache(maxsize=4096)  # per attempt on the hot path; a probe's address rarely changes
def ip_hash(address: str) -> float:
    """blackbox_exporter's `probe_ip_addr_hash`: FNV-1a (32 bit) of the address's bytes (4 for IPv4,
    16 for IPv6, as Go's net.IP holds them), as a float. 127.0.0.1 is 3668918509."""
    value = _FNV32_OFFSET
    for byte in ipaddress.ip_address(address.split("%", 1)[0]).packed:
        value = ((value ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return float(value)


def where(family: int, address: str) -> dict[str, float]:
    """The values naming the connection's address: its IP version and its hash."""
    return {IP_PROTOCOL_VALUE: 6 if family == socket.AF_INET6 else 4, IP_ADDR_HASH_VALUE: ip_hash(address)}


def with_lookup_time(result: ProbeResult, peer: tuple[int, str] | None = None, **extra: float) -> ProbeResult:
    """`result` with LOOKUP_VALUE set from its `resolve` phase (0 when it has none: an IP target),
    IP_PROTOCOL_VALUE and IP_ADDR_HASH_VALUE from the (family, address) the attempt connected to, if
    it did, and the `extra` values."""
    values = {**result.values, LOOKUP_VALUE: result.phases.get("resolve", 0.0), **extra}
    if peer is not None:
        values.update(where(*peer))
    return dataclasses.replace(result, values=values)
