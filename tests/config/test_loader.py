"""Config loading: every error at once, each naming file, line, column and field (golden messages)."""

from __future__ import annotations

import textwrap

import pytest

from probed.config.schema import ConfigError
from probed.runtime.probeset import parse_config


def errors(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), "probes.yaml", env or {})
    return [str(i) for i in info.value.issues]


def load(text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return parse_config(textwrap.dedent(text), "probes.yaml", env or {})


GOLDEN = [
    pytest.param(
        """\
        probes:
          - name: a
            type: tcp
            target: 127.0.0.1:1
            interval: 5 s
        """,
        ['probes.yaml:5:15: probes[0].interval: invalid duration "5 s" (use a unit: "500ms", "10s", "1m30s", "1h", '
         '"1d")'],
        id="bad-duration",
    ),
    pytest.param(
        """\
        probes:
          - name: a
            type: tcp
            target: 127.0.0.1:1
            interval: 10
        """,
        ['probes.yaml:5:15: probes[0].interval: invalid duration 10 (use a unit: "500ms", "10s", "1m", "1h", "1d")'],
        id="duration-without-unit",
    ),
    pytest.param(
        """\
        probes:
          - name: a
            type: tcp
            target: 127.0.0.1:1
            interval: 1s
            timeout: 2s
        """,
        ["probes.yaml:6:14: probes[0].timeout: timeout 2s exceeds interval 1s"],
        id="timeout-over-interval",
    ),
    pytest.param(
        """\
        probes:
          - name: a
            type: tcp
            target: 127.0.0.1:1
            interval: 50ms
        """,
        ["probes.yaml:5:15: probes[0].interval: interval 50ms is below the minimum of 100ms"],
        id="interval-too-short",
    ),
    pytest.param(
        """\
        probes:
          - {name: a, type: tcp, target: "127.0.0.1:1"}
          - {name: a, type: tcp, target: "127.0.0.1:2"}
        """,
        ['probes.yaml:3:12: probes[1].name: duplicate probe name "a" (first at line 2)'],
        id="duplicate-name",
    ),
    pytest.param(
        """\
        probes:
          - name: a
            type: http
            target: http://127.0.0.1/
            http:
              headers: {Authorization: "Bearer ${API_TOKEN}"}
        """,
        ["probes.yaml:6:32: probes[0].http.headers.Authorization: environment variable API_TOKEN is not set"],
        id="missing-env-var",
    ),
    pytest.param(
        """\
        probes:
          - name: a
            type: http
            target: http://127.0.0.1/
            http:
              valid_status_codes: [200, "200-2x9"]
              follow_redirect: true
        """,
        ['probes.yaml:6:33: probes[0].http.valid_status_codes[1]: invalid status code or range "200-2x9" '
         '(e.g. 200, "200-299", "2xx"; codes 100-599)',
         "probes.yaml:7:7: probes[0].http.follow_redirect: unknown key 'follow_redirect' "
         "(did you mean 'follow_redirects'?)"],
        id="http-section-errors-all-at-once",
    ),
    pytest.param(
        """\
        probes:
          - name: a
            type: http
            target: http://127.0.0.1/
            http: {fail_if_body_not_matches_regexp: ["(unclosed"]}
        """,
        ['probes.yaml:5:46: probes[0].http.fail_if_body_not_matches_regexp[0]: invalid regexp "(unclosed": '
         "missing ): `(unclosed`"],
        id="bad-regexp",
    ),
    pytest.param(
        """\
        probes:
          - name: a
            type: tcp
            target: 127.0.0.1:1
            http: {method: GET}
        """,
        ["probes.yaml:5:11: probes[0].http: a `http:` section does not belong to a probe of type tcp"],
        id="section-of-another-type",
    ),
    pytest.param(
        """\
        labels: {location: x}
        probes:
          - name: a
            type: tcp
            target: 127.0.0.1:1
            labels: {location: y, "bad-name": z, probe: q}
        """,
        ["probes.yaml:6:13: probes[0].labels: label 'location' is already a global label",
         "probes.yaml:6:27: probes[0].labels.bad-name: invalid label name 'bad-name' (must match "
         "[a-zA-Z_][a-zA-Z0-9_]*)",
         "probes.yaml:6:42: probes[0].labels.probe: label name 'probe' is reserved by probed"],
        id="labels",
    ),
    pytest.param(
        """\
        defaults: {interval: 5 s}
        probes:
          - {name: a, type: tcp, target: "127.0.0.1:1"}
        """,
        ['probes.yaml:1:22: probes[0].interval: invalid duration "5 s" (use a unit: "500ms", "10s", "1m30s", '
         '"1h", "1d")'],
        id="error-in-defaults-points-at-defaults",
    ),
    pytest.param(
        """\
        probes:
          - name: a
            type: tcp
          target: oops
        """,
        ["probes.yaml:4:3: YAML syntax: did not find expected '-' indicator"],
        id="yaml-syntax",
    ),
    pytest.param(
        "probes: {}\n",
        ["probes.yaml:1:9: probes: expected a list of probes, got a mapping"],
        id="probes-not-a-list",
    ),
]


@pytest.mark.parametrize(("text", "expected"), GOLDEN)
def test_invalid_configs_report_exact_errors(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


def test_defaults_apply_and_the_probe_wins() -> None:
    config = load("""\
        defaults: {interval: 10s, timeout: 3s, http: {follow_redirects: false, max_redirects: 3}}
        labels: {location: eu-west-1a}
        probes:
          - name: a
            type: http
            target: http://127.0.0.1/
            timeout: 1s
            http: {max_redirects: 5}
          - {name: b, type: tcp, target: "127.0.0.1:1"}
        """)
    a, b = config.probes
    assert (a.interval, a.timeout) == (10.0, 1.0)
    assert a.settings.follow_redirects is False and a.settings.max_redirects == 5
    assert (b.interval, b.timeout) == (10.0, 3.0)
    assert config.labels == {"location": "eu-west-1a"}


def test_the_default_timeout_is_capped_at_a_short_interval() -> None:
    (probe,) = load('probes: [{name: a, type: tcp, target: "127.0.0.1:1", interval: 500ms}]\n').probes
    assert probe.timeout == 0.5


def test_interpolated_values_are_recorded_as_secrets() -> None:
    config = load("""\
        probes:
          - name: a
            type: http
            target: "http://127.0.0.1/?token=${TOKEN}"
            http: {headers: {X-Api-Key: literal-key-123}}
        """, env={"TOKEN": "t0k3n-value"})
    assert config.probes[0].target == "http://127.0.0.1/?token=t0k3n-value"
    assert {"t0k3n-value", "literal-key-123"} <= config.secrets


def test_a_dollar_can_be_escaped() -> None:
    config = load('probes: [{name: a, type: http, target: "http://127.0.0.1/$${x}"}]\n')
    assert config.probes[0].target == "http://127.0.0.1/${x}"
