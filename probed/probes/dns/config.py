"""The `dns:` section (`DnsProbeConfig`), the server it names and the name a target asks for."""

from __future__ import annotations

import functools
import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any, Literal

import dns.exception
import dns.name
import dns.resolver
import dns.reversename

from probed.config.regex import Regexp, RegexpError, RegexpTooLarge
from probed.config.schema import FieldError, Regex

RecordType = Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA", "PTR"]
Rcode = Literal["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
                "NXRRSET", "NOTAUTH", "NOTZONE", "BADVERS"]

EDNS_PAYLOAD = 1232
RESOLV_CONF = "/etc/resolv.conf"


def parse_server(text: str) -> tuple[str, int]:
    """'10.0.0.2', '10.0.0.2:5353', 'fd00::2' or '[fd00::2]:53' -> (ip, port). Raises ValueError."""
    host, port = text.strip(), 53
    if host.startswith("["):
        host, sep, rest = host[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f'invalid server "{text}" (expected ip or ip:port, IPv6 as [fd00::2]:53)')
        port_text = rest[1:] if rest else "53"
    elif host.count(":") == 1:
        host, _, port_text = host.partition(":")
    else:
        port_text = "53"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f'invalid port in server "{text}" (expected 1-65535)')
    port = int(port_text)
    try:
        ipaddress.ip_address(host.split("%", 1)[0])  # fe80::1%eth0: a scoped address
    except ValueError:
        raise ValueError(f'server must be an IP address (ip or ip:port), got "{text}": resolving the '
                         "resolver would need a resolver") from None
    return host, port


@dataclass(frozen=True)
class DnsProbeConfig:
    server: str | None = None
    """`ip[:port]`; default: the first nameserver in /etc/resolv.conf."""
    type: RecordType = "A"
    transport: Literal["udp", "tcp"] = "udp"
    recursion_desired: bool = True
    valid_rcodes: tuple[Rcode, ...] = ("NOERROR",)
    expect: tuple[str, ...] = ()
    """Answers that must all be present, each written exactly or as a regexp (full match)."""
    fail_if_answer_matches: tuple[Regex, ...] = ()
    """Regexps searched in every answer; any match fails the attempt."""
    min_answers: int = 1
    """Records of the queried type the answer must hold."""
    expected: tuple[Expected, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.server is not None:
            try:
                parse_server(self.server)
            except ValueError as exc:
                raise FieldError("server", str(exc)) from None
        if not self.valid_rcodes:
            raise FieldError("valid_rcodes", "must list at least one response code")
        if self.min_answers < 0:
            raise FieldError("min_answers", f"must be at least 0, got {self.min_answers}")
        for entry in self.expect:
            if not entry.strip():
                raise FieldError("expect", "entries must not be empty")
        try:
            expected = tuple(Expected.of(e) for e in self.expect)
        except RegexpTooLarge as exc:
            raise FieldError("expect", f"a regexp {exc}") from None
        object.__setattr__(self, "expected", expected)


@dataclass(frozen=True)
class Expected:
    """An `expect` entry: matches an answer written exactly (case and a final dot aside), or, when
    the entry is a valid regexp, an answer it fully matches."""

    text: str
    exact: str
    pattern: Regexp | None

    @classmethod
    def of(cls, text: str) -> Expected:
        try:
            pattern: Regexp | None = Regexp(text, ignore_case=True)  # RE2: an answer is server-supplied text
        except RegexpTooLarge:
            raise  # a regexp, but one too costly to run: a config error, not exact text
        except RegexpError:
            pattern = None
        return cls(text, normal_text(text), pattern)

    def matches(self, answer: str) -> bool:
        return answer == self.exact or (self.pattern is not None and self.pattern.fullmatch(answer) is not None)


def normal_text(text: str) -> str:
    text = text.strip().lower()
    return text[:-1] if text.endswith(".") else text


def validate_target(target: str, settings: Any) -> None:
    query_name(target, getattr(settings, "type", "A"))


def query_name(target: str, rdtype: str) -> dns.name.Name:
    if rdtype == "PTR":
        try:
            return dns.reversename.from_address(target)  # `target: 10.0.0.5` for a PTR probe
        except (ValueError, dns.exception.SyntaxError):
            pass
    if not target or any(c.isspace() or c in ":/@" for c in target):
        raise ValueError(f'invalid name "{target}" (the target of a dns probe is the name to resolve; '
                         "the server goes in dns.server)")
    try:
        return dns.name.from_text(target)
    except dns.exception.DNSException as exc:
        raise ValueError(f'invalid name "{target}": {exc}') from None


@functools.lru_cache(maxsize=4)
def _system_server(path: str, _mtime_ns: int) -> tuple[str, int]:
    """The first nameserver of resolv.conf, like the libc stub resolver; localhost without one."""
    resolver = dns.resolver.Resolver(configure=False)
    try:
        resolver.read_resolv_conf(path)
    except (OSError, dns.exception.DNSException):
        return "127.0.0.1", 53
    first = next(iter(resolver.nameservers), None)
    return (str(first), 53) if first is not None else ("127.0.0.1", 53)


def system_server() -> tuple[str, int]:
    """Read when a probe is built (so a reload picks up a changed resolv.conf), parsed once."""
    try:
        mtime = os.stat(RESOLV_CONF).st_mtime_ns
    except OSError:
        mtime = -1
    return _system_server(RESOLV_CONF, mtime)
