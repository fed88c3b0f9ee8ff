"""`probed once` lines the connection-oriented probe types share: phases and TLS.

Printing lives here, apart from the network and certificate code, so that neither has to reach
for the other; every probe kind's `describe` hook builds on these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from probed.result import ProbeResult


def describe_connection(result: ProbeResult) -> list[str]:
    """The phases, like `curl -w`, then TLS: for https, the certificate chain as `type: tls`
    prints it; otherwise just the version."""
    lines = []
    if result.phases:
        shown = (f"{name} {seconds * 1000:.2f} ms" for name, seconds in result.phases.items())
        lines.append("phases: " + ", ".join(shown))
    if "tls" in result.facts:
        lines.extend(describe_tls(result))
        return lines
    tls = result.info.get("probe_tls_version_info")
    if tls:
        lines.append(f"tls: {tls.get('version', '?')}")
    return lines


def describe_tls(result: ProbeResult) -> list[str]:
    """`probed once` lines: the presented chain with expiry dates and days left."""
    facts = result.facts.get("tls")
    if not isinstance(facts, Mapping):
        return []
    parts = [str(x) for x in (facts.get("version"), facts.get("cipher")) if x]
    if facts.get("last_known_at"):
        parts = [f"chain as last seen at {facts['last_known_at']} (this attempt read none)"]
    elif facts.get("verified"):
        parts.append("chain verified")
    elif facts.get("chain"):
        parts.append("chain NOT verified")
    lines = [", ".join(parts)] if parts else []
    chain = facts.get("chain")
    for i, cert in enumerate(chain if isinstance(chain, Sequence) else ()):
        if not isinstance(cert, Mapping):
            continue
        days = cert.get("days_remaining")
        left = f"{days:.1f} days left" if isinstance(days, (int, float)) and days >= 0 else \
            f"EXPIRED {-days:.1f} days ago" if isinstance(days, (int, float)) else "expiry unknown"
        lines.append(f"[{i}] {cert.get('subject')}  expires {cert.get('not_after')}  ({left})")
        lines.append(f"    issuer {cert.get('issuer')}")
        if i == 0:
            sans = cert.get("sans")
            if sans:
                lines.append(f"    names {', '.join(map(str, sans))}")
            lines.append(f"    serial {cert.get('serial')}  sha256 {cert.get('fingerprint_sha256')}")
    return lines
