"""One result in blackbox_exporter's exposition: what `/probe?module=&target=` answers.

No `probe`/`type` labels: the scraper's relabelling puts the target into `instance`, exactly as for
blackbox. Only blackbox-named families (`probe_*`) are written; they come from the probe type's
own declarations (`ProbeKind.aliases` and `.infos`), so a value added there for the scheduled
probes shows here too. Families are sorted by name, as blackbox's Go client writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass

from probed.output.exposition import escape, num
from probed.probes import ProbeKind
from probed.redact import redact
from probed.result import ProbeResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_HELP = {
    "probe_success": "Displays whether or not the probe was a success",
    "probe_duration_seconds": "Returns how long the probe took to complete in seconds",
    "probe_dns_lookup_time_seconds": "Returns the time taken for probe dns lookup in seconds",
    "probe_http_duration_seconds": "Duration of http request by phase, summed over all redirects",
}


def families(result: ProbeResult, kind: ProbeKind,
             secrets: frozenset[str] = frozenset()) -> dict[str, tuple[str, str, list[str]]]:
    """metric -> (type, help, sample lines) for one result."""
    out: dict[str, tuple[str, str, list[str]]] = {}

    def add(metric: str, help_text: str, line: str, metric_type: str = "gauge") -> None:
        out.setdefault(metric, (metric_type, help_text, []))[2].append(line)

    add("probe_success", _HELP["probe_success"], f"probe_success {1 if result.success else 0}")
    add("probe_duration_seconds", _HELP["probe_duration_seconds"],
        f"probe_duration_seconds {num(result.duration_s)}")
    for name, value in result.values.items():
        alias = kind.aliases.get(name)
        if alias is not None and alias.metric.startswith("probe_"):
            add(alias.metric, alias.help, f"{alias.metric} {num(value)}", alias.kind)
    if "probe_dns_lookup_time_seconds" not in out and "resolve" in result.phases:
        add("probe_dns_lookup_time_seconds", _HELP["probe_dns_lookup_time_seconds"],
            f"probe_dns_lookup_time_seconds {num(result.phases['resolve'])}")
    if kind.name == "http":
        for phase, seconds in result.phases.items():
            add("probe_http_duration_seconds", _HELP["probe_http_duration_seconds"],
                f'probe_http_duration_seconds{{phase="{escape(phase)}"}} {num(seconds)}')
    for metric, labels in result.info.items():
        if metric.startswith("probe_"):
            pairs = ",".join(f'{k}="{escape(redact(v, secrets))}"' for k, v in labels.items())
            add(metric, kind.infos.get(metric, "Information about the last attempt (value 1)."),
                f"{metric}{{{pairs}}} 1")
    return out


def render(result: ProbeResult, kind: ProbeKind, secrets: frozenset[str] = frozenset()) -> str:
    lines: list[str] = []
    for metric, (metric_type, help_text, samples) in sorted(families(result, kind, secrets).items()):
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {metric_type}", *samples]
    return "\n".join(lines) + "\n"


def debug_text(module_name: str, module_lines: list[str], result: ProbeResult, body: str,
               secrets: frozenset[str]) -> str:
    """`debug=true`: blackbox's three parts, the probe's log, the metrics, the module."""
    log = [f"Beginning probe (module {module_name})",
           f"Probe {'succeeded' if result.success else 'failed'}: reason={result.reason.value} "
           f"duration_seconds={result.duration_s:.6f}"]
    if result.detail:
        log.append(f"detail: {redact(result.detail, secrets)}")
    return ("Logs for the probe:\n" + "\n".join(log) + "\n\n\n"
            "Metrics that would have been returned:\n" + body + "\n\n"
            "Module configuration:\n" + "\n".join(module_lines) + "\n")


def module_lines(module: object, secrets: frozenset[str]) -> list[str]:
    """The module as a short YAML-ish listing for debug output, secrets masked."""
    def walk(obj: object, indent: str) -> list[str]:
        rows: list[str] = []
        for f in fields(obj):  # type: ignore[arg-type]
            value = getattr(obj, f.name)
            if value in (None, (), {}, "") and f.name not in ("prober",):
                continue
            if is_dataclass(value):
                inner = walk(value, indent + "  ")
                if inner:
                    rows += [f"{indent}{f.name}:", *inner]
            elif isinstance(value, Mapping):
                rows.append(f"{indent}{f.name}: {{{', '.join(f'{k}: <secret>' for k in value)}}}")
            else:
                shown = getattr(value, "pattern", value)
                rows.append(f"{indent}{f.name}: {redact(str(shown), secrets)}")
        return rows

    return walk(module, "")
