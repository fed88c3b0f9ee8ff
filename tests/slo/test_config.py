"""`slos:` config errors: golden messages, each naming file, line, column and field."""

from __future__ import annotations

import pytest

from probed.config.schema import ConfigError
from probed.runtime.probeset import parse_config

PROBES = """\
probes:
  - {name: api-health, type: tcp, target: "127.0.0.1:1", labels: {team: payments}}
  - {name: api-checkout, type: tcp, target: "127.0.0.1:2"}
slos:
"""


def errors(slos: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(PROBES + slos, "probes.yaml", {})
    return [str(i) for i in info.value.issues]


GOLDEN = [
    pytest.param("  - {name: s, probes: [api-chekout]}\n",
                 ["probes.yaml:5:23: slos[0].probes: no probe named 'api-chekout' (did you mean 'api-checkout'?)"],
                 id="unknown-probe-did-you-mean"),
    pytest.param("  - {name: s, match: {labels: {team: search}}}\n",
                 ["probes.yaml:5:22: slos[0].match: matches no probe"], id="match-matches-none"),
    pytest.param("  - {name: s}\n",
                 ["probes.yaml:5:5: slos[0].probes: an SLO needs `probes: [names]` or `match: {labels: {...}}`"],
                 id="no-probes"),
    pytest.param("  - {name: s, probes: [api-health], objective: 100}\n",
                 ["probes.yaml:5:48: slos[0].objective: objective is a percentage between 0 and 100 (exclusive), "
                  "got 100"], id="objective-100"),
    pytest.param("  - {name: s, probes: [api-health], objective: 0}\n",
                 ["probes.yaml:5:48: slos[0].objective: objective is a percentage between 0 and 100 (exclusive), "
                  "got 0"], id="objective-0"),
    pytest.param("  - {name: s, probes: [api-health], window: 35d}\n",
                 ["probes.yaml:5:45: slos[0].window: window 35d is longer than the 31 days of history the ring keeps"],
                 id="window-over-31d"),
    pytest.param("  - {name: s, probes: [api-health], window: 7d, calendar: month}\n",
                 ["probes.yaml:5:59: slos[0].calendar: give either a rolling `window` or a `calendar` one, not both"],
                 id="window-and-calendar"),
    pytest.param("  - {name: s, probes: [api-health], timeslice: {good_ratio: 0.9}}\n",
                 ["probes.yaml:5:48: slos[0].timeslice: `timeslice` only applies with `budgeting: timeslices`"],
                 id="timeslice-without-timeslices"),
    pytest.param("  - {name: s, probes: [api-health]}\n  - {name: s, probes: [api-checkout]}\n",
                 ['probes.yaml:6:12: slos[1].name: duplicate SLO name "s" (first at line 5)'], id="duplicate-name"),
    pytest.param("  - {name: s, probes: [api-health], labels: {service: x}}\n",
                 ["probes.yaml:5:46: slos[0].labels.service: label name 'service' is reserved by probed"],
                 id="reserved-label-service"),
    pytest.param("  - {name: s, probes: [api-health], labels: {slo: x}}\n",
                 ["probes.yaml:5:46: slos[0].labels.slo: label name 'slo' is reserved by probed"],
                 id="reserved-label-slo"),
    pytest.param("  - {name: s, probes: [api-health], window: month}\n",
                 ['probes.yaml:5:45: slos[0].window: window "month" is not a duration: for the calendar month use '
                  "`calendar: month` (a rolling window is a duration such as 30d)"], id="window-month-hints-calendar"),
    pytest.param("  - {name: s, probes: [api-health], window: week}\n",
                 ['probes.yaml:5:45: slos[0].window: window "week" is not a duration: for the calendar week use '
                  "`calendar: week` (a rolling window is a duration such as 30d)"], id="window-week-hints-calendar"),
    pytest.param("  - {name: s, probes: [api-health], budgeting: timeslices, "
                 "timeslice: {length: 5m, good_ratio: 1.5}}\n",
                 ["probes.yaml:5:80: slos[0].timeslice.length: timeslices are one minute long (the ring's minute "
                  "buckets): use 1m",
                  "probes.yaml:5:96: slos[0].timeslice.good_ratio: good_ratio must be in (0, 1], got 1.5"],
                 id="timeslice-every-error"),
    pytest.param("  - {name: s, probes: [api-health], objectve: 99}\n",
                 ["probes.yaml:5:37: slos[0].objectve: unknown key 'objectve' (did you mean 'objective'?)"],
                 id="unknown-key"),
]


@pytest.mark.parametrize(("slos", "expected"), GOLDEN)
def test_golden_errors(slos: str, expected: list[str]) -> None:
    assert errors(slos) == expected


def test_an_slo_label_that_is_also_a_global_label_is_an_error() -> None:
    """Every SLO series carries the global labels too: `location` twice makes Prometheus reject the scrape."""
    with pytest.raises(ConfigError) as info:
        parse_config("labels: {location: eu}\n" + PROBES +
                     "  - {name: s, probes: [api-health], labels: {location: us}}\n", "probes.yaml", {})
    assert [str(i) for i in info.value.issues] == [
        "probes.yaml:6:45: slos[0].labels: label 'location' is already a global label"]


def test_every_error_at_once() -> None:
    found = errors("  - {name: s, probes: [nope], objective: 101, window: 40d}\n"
                   "  - {name: t, match: {labels: {team: x}}, labels: {slo: y}}\n")
    assert sorted(e.split(": ")[1] for e in found) == [
        "slos[0].objective", "slos[0].probes", "slos[0].window", "slos[1].labels.slo", "slos[1].match"], found


def test_match_resolves_probes_and_defaults() -> None:
    config = parse_config(PROBES + "  - {name: s, match: {labels: {team: payments}}}\n", "probes.yaml", {})
    (spec,) = config.slos
    assert spec.probes == ("api-health",)
    assert (spec.service, spec.objective, spec.window_label, spec.window_s, spec.budgeting) == (
        "s", 0.999, "30d", 30 * 86400.0, "occurrences")
