"""Database target URLs: `scheme://[user[:password]@]host[:port][/database][?param=value]`."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

SslMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]
SSL_MODES: tuple[str, ...] = ("disable", "prefer", "require", "verify-ca", "verify-full")
TLS_PARAMS = ("sslmode", "sslrootcert")



@dataclass(frozen=True)
class DbUrl:
    scheme: str
    host: str
    port: int
    user: str | None
    password: str | None
    database: str | None
    params: Mapping[str, str]

    def display(self) -> str:
        """The URL as a person should see it: never the password."""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}/{self.database or ''}"


def parse_db_url(target: str, schemes: Collection[str], default_port: int,
                 params: Collection[str] = TLS_PARAMS) -> DbUrl:
    """`scheme://[user[:password]@]host[:port][/database][?param=value]`; raises ValueError."""
    try:
        parts = urlsplit(target)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid URL: {exc}") from None
    if parts.scheme not in schemes:
        raise ValueError(f"expected a {' or '.join(f'{s}://' for s in schemes)} URL, got {target.split('://')[0]!r}"
                         if "://" in target else f"expected a URL like {sorted(schemes)[0]}://user@host:port/database")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if parts.fragment:
        raise ValueError("the URL must not have a #fragment")
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in params:
            allowed = ", ".join(params) or "none"
            raise ValueError(f"unknown URL parameter {key!r} (allowed: {allowed})")
        query[key] = value
    if "sslmode" in query and query["sslmode"] not in SSL_MODES:
        raise ValueError(f"invalid sslmode {query['sslmode']!r} (one of: {', '.join(SSL_MODES)})")
    database = unquote(parts.path.lstrip("/")) or None
    return DbUrl(scheme=parts.scheme, host=parts.hostname, port=port or default_port,
                 user=unquote(parts.username) if parts.username else None,
                 password=unquote(parts.password) if parts.password is not None else None,
                 database=database, params=query)
