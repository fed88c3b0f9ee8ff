"""A blackbox module and a target -> one of probed's probe specs (what `/probe` runs).

The mapping, key by key, is in docs/blackbox.md. Where blackbox and probed differ in a default,
the module keeps blackbox's meaning: any 2xx when `valid_status_codes` is empty, zero answers
are fine for DNS, `send` lines end in a newline, the IP protocol falls back unless told not to.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from typing import TypeVar

from yarl import URL

from probed.config.blackbox import BlackboxModule, DnsModule, HttpModule, IpProtocol, TcpModule, TlsConfig
from probed.config.model import ProbeSpec
from probed.config.regex import Regexp
from probed.probes.common.net import split_host_port
from probed.probes.common.tls import TlsOptions
from probed.probes.dns.config import DnsProbeConfig, parse_server
from probed.probes.http.config import HeaderMatch, HttpSettings, HttpTlsOptions
from probed.probes.tcp import TcpSettings, TcpStep

BODY_LIMIT = 16 * 1024 * 1024
"""blackbox reads bodies without a limit unless `body_size_limit` says one; probed reads at most this."""


class BadTarget(ValueError):
    """The target does not fit the module's prober (a 400, as blackbox answers)."""


@dataclass(frozen=True)
class Endpoint:
    """Where a target points: the host and port the guard checks."""

    host: str
    port: int


_Tls = TypeVar("_Tls", bound=TlsOptions)


def _tls(cfg: TlsConfig, options: type[_Tls]) -> _Tls:
    return options(ca_file=cfg.ca_file, insecure_skip_verify=cfg.insecure_skip_verify,
                      server_name=cfg.server_name, cert_file=cfg.cert_file, key_file=cfg.key_file)


def _ip_protocol(preferred: IpProtocol, fallback: bool) -> str:
    return "auto" if fallback else preferred


def _search(pattern: Regexp) -> str:
    """blackbox searches (Go's MatchString); probed's `expect` matches whole answers. RE2 scopes
    flags to the group, so a leading `(?i)` still applies to the pattern alone."""
    return f".*(?:{pattern.pattern}).*"


def http_settings(m: HttpModule) -> HttpSettings:
    headers = dict(m.headers)
    if m.basic_auth is not None:
        token = base64.b64encode(f"{m.basic_auth.username}:{m.basic_auth.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    elif m.authorization is not None:
        headers["Authorization"] = f"{m.authorization.type} {m.authorization.credentials}"
    elif m.bearer_token is not None:
        headers["Authorization"] = f"Bearer {m.bearer_token}"
    codes = tuple((c, c) for c in m.valid_status_codes) or ((200, 299),)
    return HttpSettings(
        method=m.method, headers=headers, body=m.body, valid_status_codes=codes,
        follow_redirects=m.follow_redirects, max_redirects=10,  # Go's net/http limit, which blackbox keeps
        fail_if_body_matches_regexp=m.fail_if_body_matches_regexp,
        fail_if_body_not_matches_regexp=m.fail_if_body_not_matches_regexp,
        fail_if_header_matches=tuple(HeaderMatch(h.header, h.regexp, h.allow_missing)
                                     for h in m.fail_if_header_matches),
        fail_if_header_not_matches=tuple(HeaderMatch(h.header, h.regexp, h.allow_missing)
                                         for h in m.fail_if_header_not_matches),
        max_body_bytes=m.body_size_limit or BODY_LIMIT,
        ip_protocol=_ip_protocol(m.preferred_ip_protocol, m.ip_protocol_fallback),  # type: ignore[arg-type]
        tls=_tls(m.tls_config, HttpTlsOptions),
    )


def tcp_settings(m: TcpModule) -> TcpSettings:
    steps = tuple(TcpStep(expect=q.expect, send=None if q.send is None else q.send + "\n")  # blackbox adds "\n"
                  for q in m.query_response)
    return TcpSettings(tls=m.tls, tls_config=_tls(m.tls_config, TlsOptions), query_response=steps,
                       ip_protocol=_ip_protocol(m.preferred_ip_protocol, m.ip_protocol_fallback))  # type: ignore[arg-type]


def dns_settings(m: DnsModule, server: str) -> DnsProbeConfig:
    v = m.validate_answer_rrs
    return DnsProbeConfig(
        server=server, type=m.query_type,  # type: ignore[arg-type]
        transport=m.transport_protocol, recursion_desired=m.recursion_desired,
        valid_rcodes=m.valid_rcodes,  # type: ignore[arg-type]
        expect=tuple(_search(p) for p in v.fail_if_none_matches_regexp),
        fail_if_answer_matches=v.fail_if_matches_regexp,
        min_answers=0,  # blackbox: NOERROR with no answer is a success unless a validator says otherwise
    )


def endpoint_of(module: BlackboxModule, target: str) -> tuple[str, Endpoint]:
    """The target as probed's probe type takes it, and the host and port it points at."""
    target = target.strip()
    if not target:
        raise BadTarget("Target parameter is missing")
    if module.prober == "http":
        if "://" not in target:
            target = "http://" + target  # as blackbox does
        try:
            url = URL(target)
        except ValueError as exc:
            raise BadTarget(f"invalid target URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise BadTarget("the target of an http module is an http:// or https:// URL")
        return target, Endpoint(url.raw_host.strip("[]"), url.port or (443 if url.scheme == "https" else 80))
    if module.prober == "tcp":
        try:
            host, port = split_host_port(target)
        except ValueError as exc:
            raise BadTarget(str(exc)) from None
        return target, Endpoint(host.strip("[]"), port)
    try:
        host, port = parse_server(target)
    except ValueError:
        # blackbox takes a name too: `dns.example.com` or `dns.example.com:53`
        host, _, port_text = target.rpartition(":") if target.count(":") == 1 else (target, "", "53")
        if not port_text.isdigit() or not host:
            raise BadTarget(f'invalid DNS server "{target}" (host, host:port or [ipv6]:port)') from None
        port = int(port_text)
    return target, Endpoint(host, port)


def probe_spec(name: str, module: BlackboxModule, target: str, timeout_s: float, address: str | None = None,
               secrets: frozenset[str] = frozenset()) -> ProbeSpec:
    """The spec `/probe` runs. `address`: the checked address to connect to, where the probe type
    takes one without losing the name (tcp, dns), so a second lookup cannot land elsewhere."""
    written, point = endpoint_of(module, target)
    settings: object
    if module.prober == "http":
        settings, probe_type = http_settings(module.http or HttpModule()), "http"
    elif module.prober == "tcp":
        m = module.tcp or TcpModule()
        settings, probe_type = tcp_settings(m), "tcp"
        if address is not None:
            if m.tls and m.tls_config.server_name is None:
                settings = replace(settings, tls_config=replace(settings.tls_config, server_name=point.host))
            written = f"[{address}]:{point.port}" if ":" in address else f"{address}:{point.port}"
    else:
        assert module.dns is not None  # BlackboxModule says a dns module has its section
        server = address or point.host
        server = f"[{server}]:{point.port}" if ":" in server else f"{server}:{point.port}"
        settings, probe_type, written = dns_settings(module.dns, server), "dns", module.dns.query_name
    return ProbeSpec(name=name, type=probe_type, target=written, interval=max(timeout_s, 1.0), timeout=timeout_s,
                     labels={}, settings=settings, secrets=secrets)
