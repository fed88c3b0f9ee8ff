"""The per-probe fragment cache never serves a stale line: a render after changes is exactly a
render from scratch, and exactly what rendering every family over every probe gives."""

from __future__ import annotations

import dataclasses

import pytest

from probed.config.model import MetricsSettings, ProbeSpec, Profile
from probed.output import catalog, exposition, fragments
from probed.output.exposition import ExpositionView, Render, render
from probed.result import ProbeResult, Reason
from probed.runtime import slicing
from probed.runtime.daemon import ReloadStatus
from probed.runtime.scheduler import SchedulerStats
from probed.runtime.state import ProbeState

NOW = 1_800_000_000.0
STATIC = {"location": 'lab "A"\nwest', "site": "zürich"}  # an escape and a non-ASCII label


def state(name: str, type_: str, target: str) -> ProbeState:
    spec = ProbeSpec(name=name, type=type_, target=target, interval=10.0, timeout=2.0, labels={"team": "t"},
                     settings=None)
    return ProbeState.new(spec, secrets=frozenset({"hunter2-secret"}))


def probes() -> list[ProbeState]:
    """A mix: http (aliases, infos, phases), dns, tcp that failed with an error code, one never run."""
    out: list[ProbeState] = []
    for i in range(12):
        s = state(f"web{i}", "http", f"https://app:hunter2-secret@h{i}.example.com/")
        for j in range(5):
            s.record(ProbeResult.ok(duration_s=0.01 * (i + j + 1), phases={"connect": 0.001 * j, "tls": 0.002},
                                    values={"status_code": 200.0, "content_length": float(100 + i)},
                                    info={"probe_tls_version_info": {"version": "TLS 1.3"}}), ts=NOW - 120 + 20 * j)
        out.append(s)
    for i in range(4):
        s = state(f"dns{i}", "dns", "127.0.0.1:53")
        s.record(ProbeResult.ok(duration_s=0.002, values={"answer_rrs": 1.0},
                                info={"probed_dns_rcode_info": {"rcode": "NOERROR"}}), ts=NOW - 30)
        out.append(s)
    for i in range(4):
        s = state(f"db{i}", "tcp", "127.0.0.1:5432")
        s.record(ProbeResult.fail(Reason.CONNECTION_REFUSED, "refused", duration_s=0.001, error_code="E1"), ts=NOW - 5)
        out.append(s)
    out.append(state("new", "tcp", "127.0.0.1:1"))
    return out


def view(states: list[ProbeState], profile: Profile = "full", **switches: bool) -> ExpositionView:
    return ExpositionView(states, STATIC, SchedulerStats(), ReloadStatus(True, NOW),
                          metrics=MetricsSettings(profile=profile, **switches))  # type: ignore[arg-type]


def per_probe(body: bytes) -> bytes:
    """The per-probe families (probed's own figures and process_* change between two renders)."""
    return body[:body.index(f"# HELP {catalog.PROCESS_FAMILIES[0].name} ".encode())]


def every_family_over_every_probe(v: ExpositionView) -> bytes:
    """The render before the cache: each family's writer over all probes, straight to text."""
    pairs = [(s, exposition._probe_text(s, v.static_labels)) for s in v.states]
    ctx = Render(NOW, v.windows, None if v.metrics.wants("percentiles") else catalog.LEAN_QUANTILES)
    fixed = [(f.name, f.type, f.help, w) for f, w in exposition._FAMILIES if f.exported(v.metrics)]
    dynamic, _ = exposition._dynamic_families(pairs, v.metrics)
    out: list[str] = []
    for name, kind, help_text, write in (*fixed, *dynamic):
        lines: list[str] = []
        write(lines, pairs, ctx)
        if lines:
            out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n" + "".join(ln + "\n" for ln in lines))
    return "".join(out).encode()


async def fresh(v: ExpositionView) -> bytes:
    """A render with every fragment dropped."""
    fragments.forget(v.states)
    return per_probe(await render(v, now=NOW))


@pytest.mark.parametrize("profile", ["blackbox", "standard", "full"])
async def test_a_render_after_changes_is_a_render_from_scratch(profile: Profile,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slicing, "SLICE_S", 0.0)  # every slice boundary taken: chunks cut everywhere
    states = probes()
    v = view(states, profile)
    first = per_probe(await render(v, now=NOW))
    assert first == every_family_over_every_probe(v)

    web, dns, db, never = states[0], states[12], states[16], states[-1]
    web.record(ProbeResult.fail(Reason.HTTP_STATUS, "503", duration_s=0.5, phases={"connect": 0.003},
                                values={"status_code": 503.0}), ts=NOW - 1)
    dns.record(ProbeResult.ok(duration_s=0.004, values={"answer_rrs": 2.0},
                              info={"probed_dns_rcode_info": {"rcode": "NOERROR"}}), ts=NOW - 1)
    db.skipped["overrun"] += 1  # a skip: no attempt, no new result
    never.skipped["concurrency_limit"] += 2
    states[1].refresh_percentiles(v.windows, NOW + 45)  # the summarizer: samples left the 1m window
    second = per_probe(await render(v, now=NOW))

    assert second != first
    assert second == await fresh(v)
    assert second == every_family_over_every_probe(v)


async def test_each_change_without_an_attempt_shows_in_the_next_render() -> None:
    states = probes()
    v = view(states, "full")
    await render(v, now=NOW)
    db, never = states[16], states[-1]

    db.skipped["overrun"] += 1
    assert b'probe="db0",type="tcp",location="lab \\"A\\"\\nwest",site="z\xc3\xbcrich",team="t",cause="overrun"} 1' \
        in per_probe(await render(v, now=NOW))

    never.skipped["concurrency_limit"] += 3
    assert b'probe="new",type="tcp",location="lab \\"A\\"\\nwest",site="z\xc3\xbcrich",team="t",' \
           b'cause="concurrency_limit"} 3' in per_probe(await render(v, now=NOW))

    web = states[1]
    before = per_probe(await render(v, now=NOW))
    web.refresh_percentiles(v.windows, NOW + 45)  # no new attempt: the 1m window emptied
    after = per_probe(await render(v, now=NOW))
    assert after != before
    assert after == every_family_over_every_probe(v)


async def test_a_value_name_seen_first_adds_its_family_to_every_probes_lines() -> None:
    states = probes()
    v = view(states, "standard")
    await render(v, now=NOW)
    states[3].record(ProbeResult.ok(duration_s=0.01, values={"status_code": 200.0, "redirects": 2.0}), ts=NOW)
    body = per_probe(await render(v, now=NOW))
    assert b"# TYPE probe_http_redirects gauge" in body
    assert body == every_family_over_every_probe(v) == await fresh(v)


async def test_views_with_other_settings_or_labels_do_not_share_lines() -> None:
    states = probes()
    full, standard = view(states, "full"), view(states, "standard")
    relabelled = dataclasses.replace(full, static_labels={"location": "b"})
    for v in (full, standard, relabelled, standard, full):
        assert per_probe(await render(v, now=NOW)) == every_family_over_every_probe(v)
    lean = view(states, "full", percentiles=False)
    assert per_probe(await render(lean, now=NOW)) == every_family_over_every_probe(lean)


async def test_an_unchanged_probe_is_not_rendered_again() -> None:
    states = probes()
    v = view(states, "standard")
    await render(v, now=NOW)
    kept = [s.exposition_cache for s in states]
    assert all(isinstance(f, fragments.Fragment) for f in kept)
    states[5].record(ProbeResult.ok(duration_s=0.3, values={"status_code": 200.0}), ts=NOW)
    await render(v, now=NOW)
    assert [s.exposition_cache is f for s, f in zip(states, kept, strict=True)] == [i != 5 for i in range(len(states))]


async def test_a_percentile_refresh_renews_the_latency_lines_alone() -> None:
    states = probes()
    v = view(states, "full")
    web = states[2]
    await render(v, now=NOW)
    cached = web.exposition_cache
    assert isinstance(cached, fragments.Fragment)
    web.refresh_percentiles(v.windows, NOW + 45)  # the summarizer, no attempt: the 1m window emptied
    body = per_probe(await render(v, now=NOW))
    spliced = web.exposition_cache
    assert isinstance(spliced, fragments.Fragment) and spliced.layout is cached.layout
    latency = cached.layout.latency
    assert latency is not None
    assert [k for k, (a, b) in enumerate(zip(cached.segments, spliced.segments, strict=True)) if a != b] == [latency]
    assert body == every_family_over_every_probe(v) == await fresh(v)
