"""`probed once` lines of a DNS result: the status, then the answers with their TTLs, as dig prints them."""

from __future__ import annotations

from probed.result import ProbeResult


def describe(result: ProbeResult) -> list[str]:
    """`probed once` lines: the status, then the answers with their TTLs in columns, as dig
    prints them (at most _MAX_DESCRIBED_RECORDS per section; `--json` has them all)."""
    facts = result.facts
    if "rcode" not in facts:
        return []  # no answer: the detail says from where and over what
    via = str(facts.get("transport"))
    if facts.get("truncated_udp"):
        via = "udp (truncated), then tcp"
    answers = _records_of(facts.get("answers"))
    authority = _records_of(facts.get("authority"))
    status = f"{facts['rcode']} from {facts.get('server')} over {via}: {_count(len(answers), 'answer')}"
    if authority:
        status += f", {_count(len(authority), 'authority record')}"
    lines = [status]
    lines.extend(_columns(answers))
    if authority:
        lines.append("authority:")
        lines.extend("  " + line for line in _columns(authority))
    return lines


_MAX_DESCRIBED_RECORDS = 20


def _records_of(section: object) -> list[dict[str, object]]:
    return [r for r in section if isinstance(r, dict)] if isinstance(section, list) else []


def _count(n: int, noun: str) -> str:
    return f"no {noun}s" if n == 0 else f"1 {noun}" if n == 1 else f"{n} {noun}s"


def _columns(records: list[dict[str, object]]) -> list[str]:
    shown = [(str(r.get("name")), str(r.get("ttl")), str(r.get("type")), str(r.get("data")))
             for r in records[:_MAX_DESCRIBED_RECORDS]]
    if not shown:
        return []
    name_w, ttl_w, type_w = (max(len(row[i]) for row in shown) for i in range(3))
    lines = [f"{name:<{name_w}}  {ttl:>{ttl_w}}  {rtype:<{type_w}}  {data}" for name, ttl, rtype, data in shown]
    if len(records) > len(shown):
        lines.append(f"... and {len(records) - len(shown)} more (all of them with --json)")
    return lines
