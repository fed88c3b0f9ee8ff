"""What `probed check` and `probed once` print for a person."""

from __future__ import annotations

import json

from probed.config.model import Config
from probed.output import catalog
from probed.output.api import once_json
from probed.probes import get_kind
from probed.redact import redact
from probed.result import ProbeResult


def check_report(config: Config) -> list[str]:
    rate = sum(1.0 / s.interval for s in config.probes)
    series = catalog.estimate_series(config.probes)
    by_type: dict[str, int] = {}
    for s in config.probes:
        by_type[s.type] = by_type.get(s.type, 0) + 1
    lines = [
        f"{config.path}: OK, {len(config.probes)} probes ({', '.join(f'{n} {t}' for t, n in by_type.items())})",
        f"load: {rate:.1f} probes per second",
        f"prometheus: about {series} series per scrape",
    ]
    for type_name in by_type:
        estimate = get_kind(type_name).estimate
        if estimate is not None:
            lines.extend(estimate([s for s in config.probes if s.type == type_name]))
    return lines


def format_once(config: Config, results: list[tuple[str, ProbeResult]], as_json: bool) -> list[str]:
    secrets = config.secrets
    if as_json:
        return [json.dumps(once_json(config, name, r), default=str) for name, r in results]
    rows = [("PROBE", "TYPE", "RESULT", "TIME", "DETAIL")]
    extra: dict[str, list[str]] = {}
    for name, r in results:
        spec = config.probe(name)
        rows.append((name, spec.type, "ok" if r.success else r.reason.value, f"{r.duration_s * 1000:.1f} ms",
                     redact(r.detail, secrets)))
        describe = get_kind(spec.type).describe
        if describe is not None:
            extra[name] = [redact(line, secrets) for line in describe(r)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
        lines.extend("    " + e for e in extra.get(row[0], []))
    failed = sum(1 for _, r in results if not r.success)
    lines.append(f"{len(results) - failed} ok, {failed} failing")
    return lines
