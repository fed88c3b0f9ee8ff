"""blackbox_exporter's module format, as probes.yaml's `modules:` section reads it.

The key names, nesting and defaults are blackbox_exporter's own (its CONFIGURATION.md), so a
`modules:` block copied from a blackbox.yml loads unchanged. The generic loader parses these
dataclasses, so every problem is reported at once with FILE:LINE:COL. A key blackbox knows and
probed cannot honour is not silently dropped: it is an error naming the key and why
(`UNSUPPORTED_*`), because a module that quietly probes differently from blackbox would report a
different answer under the same name. `probed.blackbox.translate` turns a module and a target
into one of probed's own probe specs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Annotated, Any, Literal

import yaml

from probed.config.loader import Invalid, NodeConverter
from probed.config.schema import SECRET, ByteSize, ConfigError, ConfigIssue, Duration, FieldError, Regex, clip
from probed.config.source import compose

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}")

IpProtocol = Literal["ip4", "ip6"]
Prober = Literal["http", "tcp", "dns", "icmp", "grpc"]
SUPPORTED_PROBERS = ("http", "tcp", "dns")
UNSUPPORTED_PROBERS = {
    "icmp": "icmp is not supported by probed (it needs raw sockets or CAP_NET_RAW); use a tcp module on a port "
            "the host answers on",
    "grpc": "grpc is not supported by probed; probe the service's HTTP health endpoint with an http module",
}


def _unsupported(obj: object, reasons: Mapping[str, str]) -> None:
    """Raise a FieldError for the first key blackbox knows that is set here and probed cannot honour."""
    for name, why in reasons.items():
        value = getattr(obj, name)
        if value not in (None, False, "", (), {}):
            raise FieldError(name, f"`{name}` is not supported by probed's /probe: {why}")


@dataclass(frozen=True)
class TlsConfig:
    insecure_skip_verify: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    min_version: str | None = None
    max_version: str | None = None

    def __post_init__(self) -> None:
        _unsupported(self, {"min_version": "probed negotiates TLS 1.2 or later", "max_version": "not configurable"})


@dataclass(frozen=True)
class BasicAuth:
    username: Annotated[str, SECRET] = ""
    password: Annotated[str, SECRET] = ""
    password_file: str | None = None

    def __post_init__(self) -> None:
        _unsupported(self, {"password_file": "write `password: ${VAR}` instead"})


@dataclass(frozen=True)
class Authorization:
    type: str = "Bearer"
    credentials: Annotated[str, SECRET] = ""
    credentials_file: str | None = None

    def __post_init__(self) -> None:
        _unsupported(self, {"credentials_file": "write `credentials: ${VAR}` instead"})


@dataclass(frozen=True)
class HeaderMatch:
    header: str
    regexp: Regex
    allow_missing: bool = False


_HTTP_UNSUPPORTED = {
    "proxy_url": "probed connects directly",
    "oauth2": "no OAuth2 client",
    "body_file": "write the body inline under `body:`",
    "compression": "probed inflates gzip/deflate bodies itself but does not require an encoding",
    "fail_if_ssl": "no equivalent check", "fail_if_not_ssl": "no equivalent check",
    "bearer_token_file": "write `authorization: {credentials: ${VAR}}` instead",
    "no_proxy": "probed connects directly", "proxy_from_environment": "probed connects directly",
    "proxy_connect_header": "probed connects directly",
    "skip_resolve_phase_with_proxy": "probed connects directly",
}


@dataclass(frozen=True)
class HttpModule:
    valid_status_codes: tuple[int, ...] = ()
    """Empty: any 2xx, as in blackbox."""
    valid_http_versions: tuple[str, ...] = ()
    method: str = "GET"
    headers: Annotated[Mapping[str, str], SECRET] = field(default_factory=dict)
    body: Annotated[str | None, SECRET] = None
    follow_redirects: bool = True
    fail_if_body_matches_regexp: tuple[Regex, ...] = ()
    fail_if_body_not_matches_regexp: tuple[Regex, ...] = ()
    fail_if_header_matches: tuple[HeaderMatch, ...] = ()
    fail_if_header_not_matches: tuple[HeaderMatch, ...] = ()
    tls_config: TlsConfig = field(default_factory=TlsConfig)
    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    bearer_token: Annotated[str | None, SECRET] = None
    preferred_ip_protocol: IpProtocol = "ip6"
    ip_protocol_fallback: bool = True
    body_size_limit: ByteSize | None = None
    enable_http2: bool = True
    """Accepted and ignored: probed speaks HTTP/1.1 (blackbox negotiates HTTP/2 where offered)."""
    # Known to blackbox, refused here with a reason (see _HTTP_UNSUPPORTED).
    proxy_url: str | None = None
    oauth2: Any = None
    body_file: str | None = None
    compression: str | None = None
    fail_if_ssl: bool = False
    fail_if_not_ssl: bool = False
    bearer_token_file: str | None = None
    no_proxy: str | None = None
    proxy_from_environment: bool = False
    proxy_connect_header: Any = None
    skip_resolve_phase_with_proxy: bool = False

    def __post_init__(self) -> None:
        _unsupported(self, _HTTP_UNSUPPORTED)
        for code in self.valid_status_codes:
            if not 100 <= code <= 599:
                raise FieldError("valid_status_codes", f"invalid status code {code} (100-599)")
        versions = {v.upper() for v in self.valid_http_versions}
        if versions and not versions & {"HTTP/1.1", "HTTP/1.0"}:
            raise FieldError("valid_http_versions", "probed speaks HTTP/1.1 only: list HTTP/1.1 (HTTP/2 is not "
                                                    "supported)")
        if sum(x is not None for x in (self.basic_auth, self.authorization, self.bearer_token)) > 1:
            raise FieldError("basic_auth", "use one of basic_auth, authorization and bearer_token")


@dataclass(frozen=True)
class QueryResponse:
    expect: Regex | None = None
    send: Annotated[str | None, SECRET] = None
    starttls: bool = False

    def __post_init__(self) -> None:
        _unsupported(self, {"starttls": "probed has no STARTTLS; use a tcp module with `tls: true` on the TLS port"})


@dataclass(frozen=True)
class TcpModule:
    query_response: tuple[QueryResponse, ...] = ()
    tls: bool = False
    tls_config: TlsConfig = field(default_factory=TlsConfig)
    preferred_ip_protocol: IpProtocol = "ip6"
    ip_protocol_fallback: bool = True
    source_ip_address: str | None = None

    def __post_init__(self) -> None:
        _unsupported(self, {"source_ip_address": "probed connects from the host's default address"})


@dataclass(frozen=True)
class RRValidator:
    fail_if_matches_regexp: tuple[Regex, ...] = ()
    fail_if_all_match_regexp: tuple[Regex, ...] = ()
    fail_if_not_matches_regexp: tuple[Regex, ...] = ()
    fail_if_none_matches_regexp: tuple[Regex, ...] = ()

    def __post_init__(self) -> None:
        _unsupported(self, {"fail_if_all_match_regexp": "no equivalent check",
                            "fail_if_not_matches_regexp": "no equivalent check (fail_if_none_matches_regexp is)"})


RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET",
          "NOTAUTH", "NOTZONE", "BADVERS")
RecordType = Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA", "PTR", "ANY"]


@dataclass(frozen=True)
class DnsModule:
    query_name: str = ""
    query_type: RecordType = "ANY"
    query_class: str = "IN"
    transport_protocol: Literal["udp", "tcp"] = "udp"
    recursion_desired: bool = True
    valid_rcodes: tuple[str, ...] = ("NOERROR",)
    validate_answer_rrs: RRValidator = field(default_factory=RRValidator)
    validate_authority_rrs: RRValidator = field(default_factory=RRValidator)
    validate_additional_rrs: RRValidator = field(default_factory=RRValidator)
    preferred_ip_protocol: IpProtocol = "ip6"
    ip_protocol_fallback: bool = True
    source_ip_address: str | None = None
    dns_over_tls: bool = False
    tls_config: TlsConfig = field(default_factory=TlsConfig)

    def __post_init__(self) -> None:
        if not self.query_name:
            raise FieldError("query_name", "missing required key 'query_name' (the name to ask the target for)")
        if self.query_type == "ANY":
            raise FieldError("query_type", "query_type ANY (blackbox's default) is not supported by probed: name the "
                                           "record type (A, AAAA, MX ...)")
        for rcode in self.valid_rcodes:
            if rcode not in RCODES:
                raise FieldError("valid_rcodes", f"unknown response code {rcode!r} (one of: {', '.join(RCODES)})")
        if self.query_class.upper() != "IN":
            raise FieldError("query_class", "probed queries class IN only")
        _unsupported(self, {"source_ip_address": "probed queries from the host's default address",
                            "dns_over_tls": "probed queries over UDP or TCP"})
        for name in ("validate_authority_rrs", "validate_additional_rrs"):
            if getattr(self, name) != RRValidator():
                raise FieldError(name, f"`{name}` is not supported by probed's /probe: only answers are checked")


@dataclass(frozen=True)
class BlackboxModule:
    """One module of blackbox.yml's `modules:`: `prober`, `timeout` and the prober's own section."""

    prober: Prober
    timeout: Duration | None = None
    """None: blackbox's default, the scrape's timeout less half a second (at most 120 s)."""
    http: HttpModule | None = None
    tcp: TcpModule | None = None
    dns: DnsModule | None = None
    icmp: Any = None
    grpc: Any = None

    def __post_init__(self) -> None:
        if self.prober in UNSUPPORTED_PROBERS:
            raise FieldError("prober", UNSUPPORTED_PROBERS[self.prober])
        if self.timeout is not None and self.timeout <= 0:
            raise FieldError("timeout", "timeout must be greater than 0")
        for section in ("http", "tcp", "dns", "icmp", "grpc"):
            if section != self.prober and getattr(self, section) is not None:
                raise FieldError(section, f"a `{section}:` section does not belong to a module with prober "
                                          f"{self.prober}")
        if self.prober == "dns" and self.dns is None:
            raise FieldError("dns", "a dns module needs a `dns:` section with query_name")


MODULE_KEYS = tuple(f.name for f in fields(BlackboxModule))


def convert_modules(converter: NodeConverter, node: yaml.Node | None,
                    path: str = "modules") -> dict[str, BlackboxModule]:
    """`modules:` -> name -> module, every problem reported on `converter` (FILE:LINE:COL)."""
    if node is None:
        return {}
    modules: dict[str, BlackboxModule] = {}
    try:
        entries = list(converter.mapping_entries(node, path))
    except Invalid as exc:
        converter.issue(exc.node, exc.path, exc.message)
        return {}
    for name, key_node, value_node in entries:
        if not NAME_RE.fullmatch(name):
            converter.issue(key_node, f"{path}.{name}", f'invalid module name "{clip(name)}" (letters, digits, _.:/@-)')
            continue
        module = converter.convert_or(value_node, BlackboxModule, f"{path}.{name}", None)
        if module is not None:
            modules[name] = module
    return modules


def parse_modules(text: str, filename: str, environ: Mapping[str, str] | None = None) -> dict[str, BlackboxModule]:
    """A blackbox.yml's modules (`probed import-blackbox`), or a ConfigError listing every problem."""
    converter = NodeConverter(filename, {} if environ is None else environ, placeholders=environ is None)
    root = compose(text, filename)
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError([ConfigIssue(filename, 1, 1, "", "expected a mapping with `modules:` at the top")])
    top = converter.mapping_items(root, "", allowed=("modules",))
    if "modules" not in top:
        converter.issue(root, "", "missing required key 'modules'")
    modules = convert_modules(converter, top.get("modules"))
    if converter.issues:
        raise ConfigError(converter.final_issues())
    return modules
