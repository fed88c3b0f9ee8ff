"""Which targets `/probe` may reach: an allowlist of regexps or networks, a denylist of networks.

`/probe` makes probed fetch a URL a scraper names, which is a server-side request forgery (SSRF)
tool unless it is fenced. The cloud metadata services (169.254.169.254, fd00:ec2::254) and the
rest of link-local are denied by default, whatever else is allowed. Every address a target
resolves to is checked, and for HTTP the connector checks the address of every connection it
actually opens (`check_address`), so a redirect or a DNS answer that changes between the check
and the connect cannot reach a denied network either.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from probed.config.regex import Regexp, RegexpError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_DENY_NETS: tuple[str, ...] = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")
"""Link-local (IPv4 and IPv6, which hold the cloud metadata address 169.254.169.254) and AWS's
IPv6 metadata address. Always denied; `--probe.deny-nets` adds to them."""


class Denied(Exception):
    """The target (or an address it resolves to) is not allowed. The message says which rule."""


def _network(text: str) -> Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def parse_rules(values: Sequence[str]) -> tuple[tuple[Regexp, ...], tuple[Network, ...]]:
    """`--probe.allow-targets` values: each a CIDR (`10.0.0.0/8`, `192.0.2.7`) or a regexp fully
    matched against the target as written (`https://[a-z0-9.-]+\\.example\\.com(/.*)?`).

    The regexps are RE2 (config/regex.py): they run on targets any client names, so their cost
    must not depend on what the client sends."""
    patterns: list[Regexp] = []
    nets: list[Network] = []
    for value in values:
        net = _network(value)
        if net is not None:
            nets.append(net)
        else:
            try:
                patterns.append(Regexp(value))
            except RegexpError as exc:
                raise ValueError(f"--probe.allow-targets {value!r} is neither a network nor a regexp: {exc}") from None
    return tuple(patterns), tuple(nets)


def parse_nets(values: Sequence[str]) -> tuple[Network, ...]:
    nets = []
    for value in values:
        net = _network(value)
        if net is None:
            raise ValueError(f"--probe.deny-nets {value!r} is not a network (e.g. 10.0.0.0/8, fd00::/8)")
        nets.append(net)
    return tuple(nets)


def _plain(address: Address) -> Address:
    """::ffff:169.254.169.254 is 169.254.169.254."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class TargetGuard:
    allow_patterns: tuple[Regexp, ...] = ()
    allow_nets: tuple[Network, ...] = ()
    deny_nets: tuple[Network, ...] = field(default_factory=lambda: parse_nets(DEFAULT_DENY_NETS))

    @classmethod
    def of(cls, allow: Sequence[str] = (), deny: Sequence[str] = ()) -> TargetGuard:
        patterns, nets = parse_rules(allow)
        return cls(patterns, nets, parse_nets([*DEFAULT_DENY_NETS, *deny]))

    @property
    def restricted(self) -> bool:
        return bool(self.allow_patterns or self.allow_nets)

    def check_address(self, host: str) -> None:
        """Raise Denied when a literal address is in a denied network (or outside the allowed
        networks, when only networks are allowed). Names are not resolved here."""
        try:
            address = _plain(ipaddress.ip_address(host.split("%", 1)[0]))
        except ValueError:
            return
        for net in self.deny_nets:
            if address.version == net.version and address in net:
                raise Denied(f"address {address} is in a denied network ({net}; --probe.deny-nets)")

    def _in_allowed(self, host: str) -> bool:
        address = _plain(ipaddress.ip_address(host.split("%", 1)[0]))
        return any(address.version == net.version and address in net for net in self.allow_nets)

    async def check(self, target: str, host: str, port: int) -> list[str]:
        """Check a target before probing it: the target text against the allow rules, and every
        address `host` resolves to against the deny (and allowed) networks. Returns the addresses."""
        addresses = await _resolve(host, port)
        for address in addresses:
            self.check_address(address)
        if not self.restricted:
            return addresses
        if any(p.fullmatch(target) for p in self.allow_patterns):
            return addresses
        if self.allow_nets and addresses and all(self._in_allowed(a) for a in addresses):
            return addresses
        raise Denied(f"target {target!r} is not allowed by --probe.allow-targets")


async def _resolve(host: str, port: int) -> list[str]:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return [host]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []  # unresolvable: the probe itself reports dns_error
    return sorted({str(info[4][0]) for info in infos})


def denied_error(message: str) -> OSError:
    """What the HTTP connector raises for a denied address: a failure of that attempt."""
    return OSError(errno.EACCES, message)
