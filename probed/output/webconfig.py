"""`--web.config.file`: the web configuration file every Prometheus exporter reads (exporter-toolkit).

The same YAML as node_exporter's and blackbox_exporter's, so one file (and one Helm value) serves
them all:

    tls_server_config: {cert_file, key_file, client_auth_type, client_ca_file, min_version, max_version}
    http_server_config: {http2, headers}
    basic_auth_users: {name: <bcrypt hash>}

Relative file names are relative to the web config file's directory, as in exporter-toolkit.
Unknown keys are errors (exporter-toolkit reads strictly too), and so are the keys probed does not
implement (cipher_suites, client_allowed_sans, rate_limit ...): silently serving with a weaker
setting than the file asks for would be worse than refusing to start. Messages never quote a
password hash or an inline key.

The file is read once, at start. Passwords are checked with the `bcrypt` package in a worker thread
(a cost-10 check takes tens of milliseconds), one at a time, and a successful check is remembered
(by a digest, not the password) so Prometheus's scrapes do not pay it every time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import difflib
import hashlib
import os
import re
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from probed.config.schema import read_small_file

MAX_FILE_BYTES = 1 << 20

_TOP = ("tls_server_config", "http_server_config", "basic_auth_users")
_TLS = ("cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
        "max_version", "prefer_server_cipher_suites")
_TLS_UNSUPPORTED = ("cipher_suites", "curve_preferences", "client_allowed_sans")
_HTTP = ("http2", "headers")
_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "X-XSS-Protection",
            "Strict-Transport-Security")
_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
             "TLS13": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
_CLIENT_AUTH_UNSUPPORTED = ("RequestClientCert", "RequireAnyClientCert")
_BCRYPT = re.compile(rb"^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$")
_CACHE_SIZE = 64


class WebConfigError(Exception):
    """The web config file is unusable; the message names the file and the key."""


@dataclass(frozen=True)
class WebConfig:
    path: str
    ssl_context: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)
    """User name -> bcrypt hash. Empty: no authentication."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """http_server_config.headers: set on every response (over probed's own defaults)."""

    def auth(self) -> BasicAuth | None:
        return BasicAuth(self.users) if self.users else None


def load_web_config(path: str) -> WebConfig:
    try:
        doc = yaml.safe_load(_read(path, path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise WebConfigError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if doc is None:
        return WebConfig(path)
    _mapping(path, "", doc)
    _known(path, "", doc, _TOP, ("rate_limit",))
    base = Path(path).resolve().parent
    tls = doc.get("tls_server_config")
    http = doc.get("http_server_config")
    users = doc.get("basic_auth_users")
    return WebConfig(path, _ssl_context(path, base, tls) if tls is not None else None,
                     _users(path, users) if users is not None else {},
                     _headers(path, http) if http is not None else {})


# --------------------------------------------------------------------------- checking basic auth


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes, off the event loop, one check at a time."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._ok: dict[bytes, None] = {}
        self._one_at_a_time = asyncio.Semaphore(1)
        # An unknown user is checked against a hash of the same cost, so the answer takes as long
        # as for a known user with a wrong password: response times do not tell which names exist.
        cost = max((int(h[4:6]) for h in self._users.values()), default=10)
        self._dummy = bcrypt.hashpw(b"probed: no such user", bcrypt.gensalt(cost))

    async def check(self, header: str | None) -> bool:
        credentials = _basic_credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._users.get(user)
        key = hashlib.sha256(b"\0".join((user.encode(), password, hashed or b""))).digest()
        if hashed is not None and key in self._ok:
            return True
        async with self._one_at_a_time:
            good = await asyncio.to_thread(_checkpw, password, hashed or self._dummy)
        if good and hashed is not None:
            if len(self._ok) >= _CACHE_SIZE:
                self._ok.pop(next(iter(self._ok)))
            self._ok[key] = None
            return True
        return False


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # bcrypt >= 5 refuses passwords over 72 bytes; no stored hash can match one
        return False


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode(), password
    except UnicodeDecodeError:
        return None


# --------------------------------------------------------------------------- the file's sections


def _ssl_context(path: str, base: Path, tls: Any) -> ssl.SSLContext:
    where = "tls_server_config"
    _mapping(path, where, tls)
    _known(path, where, tls, _TLS, _TLS_UNSUPPORTED)
    for key in _TLS:
        if key in tls and key != "prefer_server_cipher_suites" and not isinstance(tls[key], str):
            raise WebConfigError(f"{path}: {where}.{key}: must be a string")
    if "prefer_server_cipher_suites" in tls and not isinstance(tls["prefer_server_cipher_suites"], bool):
        raise WebConfigError(f"{path}: {where}.prefer_server_cipher_suites: must be true or false")
    for inline, file_key in (("cert", "cert_file"), ("key", "key_file"), ("client_ca", "client_ca_file")):
        if tls.get(inline) and tls.get(file_key):
            raise WebConfigError(f"{path}: {where}: give {inline} or {file_key}, not both")
    if not (tls.get("cert") or tls.get("cert_file")):
        raise WebConfigError(f"{path}: {where}: cert_file (or cert) is required")
    if not (tls.get("key") or tls.get("key_file")):
        raise WebConfigError(f"{path}: {where}: key_file (or key) is required")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _version(path, tls, "min_version", "TLS12")
    ctx.maximum_version = _version(path, tls, "max_version", "TLS13")
    if ctx.minimum_version > ctx.maximum_version:
        raise WebConfigError(f"{path}: {where}: min_version is above max_version")
    cert = tls.get("cert") or _read(path, _under(base, tls["cert_file"]), f"{where}.cert_file").decode("latin-1")
    key = tls.get("key") or _read(path, _under(base, tls["key_file"]), f"{where}.key_file").decode("latin-1")
    _load_chain(path, ctx, cert, key)

    auth_type = tls.get("client_auth_type", "NoClientCert")
    if auth_type in _CLIENT_AUTH_UNSUPPORTED:
        raise WebConfigError(f"{path}: {where}.client_auth_type: {auth_type} is not supported by probed (it accepts "
                             "certificates nobody verified); use RequireAndVerifyClientCert with client_ca_file")
    if auth_type not in _CLIENT_AUTH:
        raise WebConfigError(f"{path}: {where}.client_auth_type: unknown value {auth_type!r}"
                             f"{_hint(auth_type, (*_CLIENT_AUTH, *_CLIENT_AUTH_UNSUPPORTED))}")
    ca = tls.get("client_ca") or (
        _read(path, _under(base, tls["client_ca_file"]), f"{where}.client_ca_file").decode("latin-1")
        if tls.get("client_ca_file") else "")
    if _CLIENT_AUTH[auth_type] != ssl.CERT_NONE:
        if not ca:
            raise WebConfigError(f"{path}: {where}: client_auth_type {auth_type} needs client_ca_file (or client_ca)")
        try:
            ctx.load_verify_locations(cadata=ca)
        except (ssl.SSLError, ValueError) as exc:
            raise WebConfigError(f"{path}: {where}: no usable CA certificate in the client CA: {exc}") from None
        ctx.verify_mode = _CLIENT_AUTH[auth_type]
    elif ca:
        raise WebConfigError(f"{path}: {where}: a client CA is given but client_auth_type is NoClientCert "
                             "(set RequireAndVerifyClientCert to check client certificates)")
    return ctx


def _load_chain(path: str, ctx: ssl.SSLContext, cert: str, key: str) -> None:
    # load_cert_chain reads only files: the PEM text goes through a private temporary directory.
    with tempfile.TemporaryDirectory(prefix="probed-tls-") as tmp:
        files = []
        for name, text in (("cert.pem", cert), ("key.pem", key)):
            file = os.path.join(tmp, name)
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="latin-1") as f:
                f.write(text)
            files.append(file)
        try:
            ctx.load_cert_chain(files[0], files[1])
        except ssl.SSLError as exc:
            reason = exc.reason or str(exc)
            raise WebConfigError(f"{path}: tls_server_config: the certificate and key do not load ({reason}): "
                                 "are both PEM, and is the key the certificate's?") from None


def _version(path: str, tls: Mapping[str, Any], key: str, default: str) -> ssl.TLSVersion:
    value = tls.get(key, default)
    if value not in _VERSIONS:
        raise WebConfigError(f"{path}: tls_server_config.{key}: unknown version {value!r}{_hint(value, _VERSIONS)}")
    return _VERSIONS[value]


def _users(path: str, users: Any) -> dict[str, bytes]:
    _mapping(path, "basic_auth_users", users)
    out: dict[str, bytes] = {}
    for name, hashed in users.items():
        if not isinstance(name, str) or not name or ":" in name:
            raise WebConfigError(f"{path}: basic_auth_users: user names are non-empty strings without ':'")
        # The value is never quoted: it may be a plaintext password put there by mistake.
        if not isinstance(hashed, str) or not _BCRYPT.match(hashed.encode()):
            raise WebConfigError(f"{path}: basic_auth_users.{name}: not a bcrypt hash (make one with "
                                 "`htpasswd -nBC 10 \"\" | tr -d ':\\n'`)")
        out[name] = hashed.encode()
    return out


def _headers(path: str, http: Any) -> dict[str, str]:
    where = "http_server_config"
    _mapping(path, where, http)
    _known(path, where, http, _HTTP, ())
    if "http2" in http and not isinstance(http["http2"], bool):
        raise WebConfigError(f"{path}: {where}.http2: must be true or false")
    headers = http.get("headers") or {}
    _mapping(path, f"{where}.headers", headers)
    out: dict[str, str] = {}
    for name, value in headers.items():
        canonical = {h.lower(): h for h in _HEADERS}.get(str(name).lower())
        if canonical is None:
            raise WebConfigError(f"{path}: {where}.headers: {name!r} cannot be set{_hint(str(name), _HEADERS)}")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise WebConfigError(f"{path}: {where}.headers.{canonical}: must be a one-line string")
        if value:  # blank: unset, as in exporter-toolkit
            out[canonical] = value
    return out


# --------------------------------------------------------------------------- helpers


def _mapping(path: str, where: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise WebConfigError(f"{path}: {where or 'the file'}: must be a mapping")


def _known(path: str, where: str, section: Mapping[Any, Any], allowed: tuple[str, ...],
           unsupported: tuple[str, ...]) -> None:
    prefix = f"{where}." if where else ""
    for key in section:
        if key in unsupported:
            raise WebConfigError(f"{path}: {prefix}{key}: not supported by probed")
        if key not in allowed:
            raise WebConfigError(f"{path}: {prefix}{key}: unknown key{_hint(str(key), allowed)}")


def _hint(value: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (expected one of: {', '.join(choices)})"


def _under(base: Path, name: str) -> str:
    return str(base / name)


def _read(config_path: str, path: str, what: str = "") -> bytes:
    """A file the web config names, or the web config itself: never a FIFO's hang or /dev/zero's end."""
    try:
        return read_small_file(path, MAX_FILE_BYTES)
    except ValueError as exc:
        raise WebConfigError(f"{config_path}: {what}: {exc}" if what else str(exc)) from None
