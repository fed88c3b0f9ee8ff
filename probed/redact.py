"""The one place where text leaving probed loses its secrets.

Everything that renders a target, a detail or an error for a person or a scraper (metrics,
logs, the API, `probed once`) passes through `redact()`. It removes:

- passwords in URL userinfo (`postgres://app:s3cret@db/x` -> `postgres://app:***@db/x`);
- values of query-string parameters whose names look like credentials (`?token=`, `&X-Amz-Signature=`);
- any literal secret the config knows about: values interpolated from `${VAR}`, header values,
  passwords read from files or the environment, the Basic header made from URL credentials;
- the process's own AWS credentials from the environment (`AWS_SECRET_ACCESS_KEY`,
  `AWS_SESSION_TOKEN`): a server that echoes request headers echoes `X-Amz-Security-Token`;
- every secret `remember()`ed by the process (what the log handler masks in third-party records).

A secret is masked in the forms text takes on its way out, not only raw: as `repr()` escapes it
(`p\\xc3\\xa4ss` in a TCP detail), as JSON escapes it (`p\\u00e4ss` in the API's facts) and
percent-encoded (in a URL). Clip only after redacting (`limit=`): a secret cut at the limit no
longer matches, and its prefix would be shown.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
from collections.abc import Iterable
from urllib.parse import quote

MASK = "***"

# scheme://user:password@  -> keep the user (useful to an operator), hide the password.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]*)@")
_SENSITIVE_PARAM = re.compile(
    r"(?P<key>[?&;](?:[^=&#\s]*(?:token|key|secret|password|passwd|pwd|auth|signature|sig|credential|session)"
    r"[^=&#\s]*))=(?P<value>[^&#\s]*)",
    re.IGNORECASE,
)
# Secrets shorter than this are not replaced as substrings: masking every "a" or "1" in a text
# would destroy it and reveal the secret's length and position anyway.
MIN_SECRET_LENGTH = 4

ENVIRONMENT_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                       "AWS_CONTAINER_AUTHORIZATION_TOKEN")
"""Environment variables whose values are credentials of the process itself (botocore reads them)."""

_REMEMBERED_MAX = 4096
_remembered: dict[str, None] = {}
_last_remembered: object = None
_version = 0
"""Bumped whenever `_remembered` changes: part of the key of the cached matchers."""


def remember(secrets: Iterable[str]) -> None:
    """Adds secrets to the process-wide set every `redact()` masks (and so the log handler).

    The set only grows, up to a bound (the oldest are dropped first): a secret that a reload
    removed from the config may still be in a line some task is about to log. Calling it again
    with the same object is free, so every probe built from one config may call it."""
    global _last_remembered, _version
    if secrets is _last_remembered:
        return
    new = [s for s in secrets if len(s) >= MIN_SECRET_LENGTH and s not in _remembered]
    if new:
        _remembered.update(dict.fromkeys(new))
        while len(_remembered) > _REMEMBERED_MAX:
            del _remembered[next(iter(_remembered))]
        _version += 1
    _last_remembered = secrets if isinstance(secrets, frozenset) else None


def forget_all() -> None:
    """Empties the process-wide set (tests start clean)."""
    global _last_remembered, _version
    _remembered.clear()
    _last_remembered = None
    _version += 1


ENVIRONMENT_MIN_LENGTH = 16
"""Real AWS secret keys are 40 characters and tokens hundreds; a placeholder such as `testing`
(what emulators and CI set) is not a secret, and masking it everywhere would mangle text."""


def _environment() -> tuple[str, ...]:
    return tuple(v for v in map(os.environ.get, ENVIRONMENT_SECRETS) if v and len(v) >= ENVIRONMENT_MIN_LENGTH)


def known_secrets() -> set[str]:
    """The process-wide secrets: remembered ones and the environment's credentials."""
    return set(_remembered) | set(_environment())


@functools.lru_cache(maxsize=4096)
def _forms(secret: str) -> tuple[str, ...]:
    """The secret as it may appear in text: raw, repr()/ascii()-escaped (str and UTF-8 bytes),
    JSON-escaped, percent-encoded."""
    forms = {secret, repr(secret)[1:-1], ascii(secret)[1:-1], json.dumps(secret)[1:-1], quote(secret, safe="")}
    with contextlib.suppress(UnicodeEncodeError):  # a lone surrogate (an undecodable byte from the environment)
        forms.add(repr(secret.encode("utf-8"))[2:-1])
    return tuple(f for f in forms if len(f) >= MIN_SECRET_LENGTH)


@functools.lru_cache(maxsize=64)
def _all_forms(secrets: frozenset[str], version: int, environment: tuple[str, ...]) -> tuple[str, ...]:
    """Every form of every secret, longest first (so a secret that contains
    another is masked whole). Cached: callers pass the same frozenset of a probe or config."""
    del version  # only part of the cache key
    every = set(secrets) | set(_remembered) | set(environment)
    return tuple(sorted({form for secret in every if len(secret) >= MIN_SECRET_LENGTH for form in _forms(secret)},
                        key=len, reverse=True))


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters plus "..." (call it on redacted text only)."""
    return text if len(text) <= limit else text[:limit] + "..."


def excerpt(text: str, secrets: Iterable[str] = (), limit: int = 80) -> str:
    """The start of a possibly huge `text`, redacted, then clipped to `limit` characters.

    Only a prefix is redacted (a 1 GB body costs nothing more): one long enough that a secret
    starting before `limit` lies whole inside it, so no cut ever shows part of one."""
    frozen = secrets if isinstance(secrets, frozenset) else frozenset(secrets)
    forms = _all_forms(frozen, _version, _environment())
    reach = limit + (len(forms[0]) if forms else 0) + 256  # +256: room for URL passwords and query tokens
    return redact(text[:reach], frozen, limit)


def redact(text: str, secrets: Iterable[str] = (), limit: int | None = None) -> str:
    """Return `text` with credentials in URLs and every known secret replaced by `***`,
    then clipped to `limit` characters if one is given."""
    if not text:
        return text
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    out = _SENSITIVE_PARAM.sub(lambda m: f"{m['key']}={MASK}", out)
    # A substring test per form is cheaper than one big alternation (measured with 500 secrets).
    for form in _all_forms(secrets if isinstance(secrets, frozenset) else frozenset(secrets), _version,
                           _environment()):
        if form in out:
            out = out.replace(form, MASK)
    return out if limit is None else clip(out, limit)
