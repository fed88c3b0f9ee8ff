"""The `http:` section of a probe (`HttpSettings`): its schema, defaults and validation, checked at load time."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from yarl import URL

from probed.config.schema import SECRET, ByteSize, Converter, Duration, FieldError, Regex
from probed.probes.common.certs import DEFAULT_MIN_DAYS_REMAINING
from probed.probes.common.net import IpProtocol
from probed.probes.common.tls import TlsOptions
from probed.redact import redact

_STATUS_RANGE = re.compile(r"([1-5]\d\d)\s*-\s*([1-5]\d\d)")
_STATUS_CLASS = re.compile(r"([1-5])xx", re.IGNORECASE)


def parse_status_codes(value: Any) -> tuple[int, int]:
    """200, "200", "200-299" or "2xx" -> an inclusive (low, high) range."""
    text = str(value).strip()
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"invalid status code {value!r} (e.g. 200, \"200-299\", \"2xx\")")
    if text.isdigit() and 100 <= int(text) <= 599:
        return int(text), int(text)
    if m := _STATUS_CLASS.fullmatch(text):
        low = int(m.group(1)) * 100
        return low, low + 99
    if (m := _STATUS_RANGE.fullmatch(text)) and int(m.group(1)) <= int(m.group(2)):
        return int(m.group(1)), int(m.group(2))
    raise ValueError(f'invalid status code or range "{text}" (e.g. 200, "200-299", "2xx"; codes 100-599)')


StatusCodes = Annotated[tuple[int, int], Converter(parse_status_codes)]


@dataclass(frozen=True)
class HeaderMatch:
    header: str
    regexp: Regex
    allow_missing: bool = False
    """A missing header passes instead of failing the check."""


UNSET: Any = type("_Unset", (), {"__repr__": lambda self: "<unset>"})()
_JSON_PATH_PART = re.compile(r"[^.\[\]]+|\[(\d+)\]")


def parse_json_path(path: str) -> tuple[str | int, ...]:
    """'checks.db.status', 'items[0].name' or 'items.0.name' -> ('items', 0, 'name')."""
    parts: list[str | int] = []
    pos = 0
    for m in _JSON_PATH_PART.finditer(path):
        gap = path[pos:m.start()]
        if gap not in ("", ".") or (gap == "." and pos == 0):
            raise ValueError(f'invalid JSON path "{path}" (e.g. status, checks.db.status, items[0].name)')
        parts.append(int(m.group(1)) if m.group(1) is not None else m.group(0))
        pos = m.end()
    if not parts or pos != len(path):
        raise ValueError(f'invalid JSON path "{path}" (e.g. status, checks.db.status, items[0].name)')
    return tuple(parts)


@dataclass(frozen=True)
class JsonCheck:
    """One field of a JSON body: present, and equal to `equals` and/or matching `matches`."""

    path: str
    equals: Any = UNSET
    matches: Regex | None = None
    keys: tuple[str | int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "keys", parse_json_path(self.path))
        except ValueError as exc:
            raise FieldError("path", str(exc)) from None


@dataclass(frozen=True)
class HttpTlsOptions(TlsOptions):
    """`http.tls`: the TLS client settings plus the certificate-expiry verdict of an https probe."""

    min_days_remaining: float = DEFAULT_MIN_DAYS_REMAINING
    """cert_expiring when the earliest presented certificate expires sooner: a warning (the
    attempt succeeds, as in blackbox_exporter) unless `fail_if_expiring`."""
    fail_if_expiring: bool = False
    """Make cert_expiring a failure (probe_success 0, bad for SLOs) instead of a warning."""

    def __post_init__(self) -> None:
        if self.min_days_remaining < 0:
            raise FieldError("min_days_remaining", f"must be at least 0, got {self.min_days_remaining:g}")
        super().__post_init__()


@dataclass(frozen=True)
class HttpSettings:
    method: str = "GET"
    headers: Annotated[Mapping[str, str], SECRET] = field(default_factory=dict)
    """Header values are secrets: never shown in details, logs or metrics."""
    body: Annotated[str | None, SECRET] = None
    valid_status_codes: tuple[StatusCodes, ...] = ((200, 299),)
    follow_redirects: bool = True
    max_redirects: int = 10
    fail_if_body_matches_regexp: tuple[Regex, ...] = ()
    fail_if_body_not_matches_regexp: tuple[Regex, ...] = ()
    fail_if_header_matches: tuple[HeaderMatch, ...] = ()
    fail_if_header_not_matches: tuple[HeaderMatch, ...] = ()
    body_json: tuple[JsonCheck, ...] = ()
    fail_if_slower_than: Duration | None = None
    max_body_bytes: ByteSize = 1024 * 1024
    keepalive: bool = False
    ip_protocol: IpProtocol = "auto"
    tls: HttpTlsOptions = field(default_factory=HttpTlsOptions)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z]+", self.method):
            raise FieldError("method", f'invalid HTTP method "{self.method}"')
        if not self.valid_status_codes:
            raise FieldError("valid_status_codes", "needs at least one status code or range")
        if self.max_redirects < 0:
            raise FieldError("max_redirects", "must be 0 or more")
        if self.max_body_bytes < 1:
            raise FieldError("max_body_bytes", "must be at least 1 byte")
        if self.fail_if_slower_than is not None and self.fail_if_slower_than <= 0:
            raise FieldError("fail_if_slower_than", "must be greater than 0")
        for name, value in self.headers.items():
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise FieldError("headers", f'invalid header name "{name}"')
            if any(c in value for c in "\r\n\0"):
                # The value is a secret: say where the problem is, never what the value is.
                raise FieldError("headers", f'the value of header "{name}" contains a line break or NUL '
                                 "(CR, LF and NUL cannot be sent in a header; check the variable it comes from)")


def validate_target(target: str, _settings: Any) -> None:
    shown = redact(target)
    try:
        url = URL(target)
    except ValueError as exc:
        raise ValueError(f'invalid URL "{shown}": {exc}') from None
    if url.scheme not in ("http", "https"):
        raise ValueError(f'target must be an http:// or https:// URL, got "{shown}"')
    if not url.raw_host:
        raise ValueError(f'URL "{shown}" has no host')
