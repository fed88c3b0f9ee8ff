"""Where a database probe's password comes from: the section, an environment variable, a file, or the URL."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Annotated

from probed.config.schema import SECRET, FieldError
from probed.probes.sql.url import DbUrl


@dataclass(frozen=True)
class PasswordOptions:
    """Where the password comes from: at most one of these, or the target URL (discouraged)."""

    password: Annotated[str | None, SECRET] = field(default=None, repr=False)
    """Usually `${DB_PASSWORD}`: interpolated at load time and redacted everywhere. Kept out of
    repr() (which the reload fingerprint and any debug log use); a changed secret still restarts
    the probe, because the daemon compares the config's secrets."""
    password_env: str | None = None
    """Name of an environment variable, read on every attempt (unset: the attempt fails auth_failed)."""
    password_file: str | None = None
    """Read on every attempt, so a rotated secret (a mounted Secrets Manager file) needs no reload."""

    def __post_init__(self) -> None:
        given = [n for n in ("password", "password_env", "password_file") if getattr(self, n) is not None]
        if len(given) > 1:
            raise FieldError(given[1], f"set only one of password, password_env, password_file (also got {given[0]})")


def check_password_sources(url: DbUrl, opts: PasswordOptions | None) -> None:
    if url.password is not None and opts is not None and any(
            getattr(opts, n) is not None for n in ("password", "password_env", "password_file")):
        raise ValueError("the URL has a password and the section sets one too: keep one (preferably not the URL)")


class CredentialError(Exception):
    """The password could not be read (unset variable, unreadable file): the attempt fails auth."""


def resolve_password(opts: PasswordOptions, url: DbUrl) -> str | None:
    if opts.password is not None:
        return opts.password
    if opts.password_env is not None:
        value = os.environ.get(opts.password_env)
        if value is None:
            raise CredentialError(f"password_env: environment variable {opts.password_env} is not set")
        return value
    if opts.password_file is not None:
        try:
            with open(opts.password_file, encoding="utf-8") as f:
                # Files written by `echo` or editors end in a newline that is not part of the secret.
                return f.read().rstrip("\r\n")
        except OSError as exc:
            raise CredentialError(f"password_file {opts.password_file}: {exc.strerror or exc}") from None
    return url.password
