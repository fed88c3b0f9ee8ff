"""The one place where text leaving probed loses its secrets.

Everything that renders a target, a detail or an error for a person or a scraper (metrics,
logs, the API, `probed once`) passes through `redact()`. It removes:

- passwords in URL userinfo (`postgres://app:s3cret@db/x` -> `postgres://app:***@db/x`);
- values of query-string parameters whose names look like credentials (`?token=`, `&X-Amz-Signature=`);
- any literal secret the config knows about: values interpolated from `${VAR}`, header values,
  passwords read from files or the environment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return `text` with credentials in URLs and every known secret replaced by `***`."""
    if not text:
        return text
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    out = _SENSITIVE_PARAM.sub(lambda m: f"{m['key']}={MASK}", out)
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= MIN_SECRET_LENGTH and secret in out:
            out = out.replace(secret, MASK)
    return out
