"""libpq's sslmode semantics, shared by the postgres, mysql and redis probes."""

from __future__ import annotations

import ssl

from probed.probes.common.tls import tls_context
from probed.probes.sql.url import DbUrl


def tls_mode(url: DbUrl, configured: str | None, default: str, rootcert: str | None) -> str:
    """The effective sslmode: the section's, else the URL's, else the engine's default.

    `require` with a CA bundle given verifies the chain, as libpq (and the MySQL client with
    `--ssl-ca`) do: whoever names a CA bundle wants it used.
    """
    mode = configured or url.params.get("sslmode") or default
    return "verify-ca" if mode == "require" and rootcert else mode


def check_tls_sources(url: DbUrl, sslmode: str | None, sslrootcert: str | None) -> None:
    for name, value in (("sslmode", sslmode), ("sslrootcert", sslrootcert)):
        if value is not None and name in url.params:
            raise ValueError(f"{name} is set both in the URL and in the section: keep one")


def rootcert_problem(mode: str, rootcert: str | None) -> str | None:
    """Why the CA bundle a verifying mode needs cannot be read (mounted late, wrong path), if so.

    Checked before connecting, so the attempt says `sslrootcert /path: No such file or directory`
    instead of a driver's generic connection error.
    """
    if rootcert is None or not mode.startswith("verify"):
        return None
    try:
        with open(rootcert, "rb"):
            return None
    except OSError as exc:
        return f"sslrootcert {rootcert}: {exc.strerror or exc}"


def client_tls_context(mode: str, rootcert: str | None) -> ssl.SSLContext | None:
    """libpq's sslmode semantics as an SSLContext (None for disable).

    prefer and require encrypt without verifying (as libpq does when no root certificate is
    configured); verify-ca checks the chain against `rootcert` (or the system store); verify-full
    also checks that the certificate names the host.
    """
    if mode == "disable":
        return None
    # The shared cache of common.tls.tls_context: 10,000 database probes hold one context, not 10,000
    # copies of the trust store, and a rotated root certificate is re-read on the next reload.
    if mode in ("prefer", "require"):
        return tls_context(None, None, None, insecure=True)
    return tls_context(rootcert, None, None, insecure=False, verify_hostname=mode == "verify-full")
