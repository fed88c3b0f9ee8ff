"""Reading probes.yaml in one pass (config/source.py, config/sections.py): each probe converted as
soon as its YAML ends and its nodes let go, with the same Config and the same errors, in the same
order, as composing the whole file first."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
import yaml

from probed.config.schema import ConfigError
from probed.config.source import MAX_FILE_BYTES, Document, compose, resolve_plain
from probed.runtime.probeset import parse_config

PROBES = ('probes:\n'
          '  - {name: a, type: tcp, target: "x:1"}\n'
          '  - {name: b, type: http, target: "http://x/", timeout: 1s, labels: {team: t}}\n')
SECTIONS = ('labels: {region: eu}\n'
            'defaults: {interval: 5s, http: {method: HEAD}}\n'
            'scheduler: {max_concurrency: 7}\n'
            'metrics: {profile: full}\n')
SLOS = 'slos:\n  - {name: s, probes: [a], objective: 0.99}\n'


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "probes.yaml", {})
    return [str(i) for i in info.value.issues]


def test_sections_after_the_probes_mean_what_they_mean_before_them() -> None:
    before = parse_config(SECTIONS + PROBES + SLOS, "probes.yaml", {})
    after = parse_config(PROBES + SLOS + SECTIONS, "probes.yaml", {})
    assert after == before
    a, b = after.probes
    assert (a.interval, a.timeout, b.interval, b.timeout) == (5.0, 5.0, 5.0, 1.0)  # defaults: read before the probes
    assert b.settings.method == "HEAD" and after.labels == {"region": "eu"} and after.scheduler.max_concurrency == 7


def test_a_global_label_after_the_probes_still_clashes() -> None:
    assert errors(PROBES + "labels: {team: x}\n") == [
        "probes.yaml:3:69: probes[1].labels: label 'team' is already a global label"]


def test_an_error_in_the_50000th_probe_names_its_line_and_column() -> None:
    lines = [f'  - {{name: p{i}, type: tcp, target: "x:{i % 60000 + 1}"}}' for i in range(50_000)]
    lines[49_999] = '  - {name: p49999, type: tcp, target: "x:1", interval: 5 s}'
    assert errors("probes:\n" + "\n".join(lines) + "\n") == [
        'probes.yaml:50001:56: probes[49999].interval: invalid duration "5 s" (use a unit: "500ms", "10s", "1m30s", '
        '"1h", "1d")']


def test_150000_probes_fit_the_limits() -> None:
    # As bench.scale writes them: one line, six keys and a label each (MAX_NODES is checked as they are read).
    text = "probes:\n" + "".join(f"  - {{name: http-{i}, type: http, target: 'http://127.0.0.1:9/health?n={i}', "
                                 "interval: 1500s, timeout: 2s, labels: {team: bench}}\n" for i in range(150_000))
    assert len(text.encode()) < MAX_FILE_BYTES // 2
    document = Document(text, "probes.yaml")
    root = document.root()
    assert root is not None
    count = 0
    for _key, value in root.entries():
        for _probe in value.items():  # counted and composed, not converted: the limits are what is tested
            count += 1
    document.finish()  # the node count (about 15 a probe) is checked as they are read
    assert count == 150_000


def test_a_probes_nodes_are_let_go_once_it_is_converted() -> None:
    probes = 3_000
    text = "probes:\n" + "".join(f"  - {{name: p{i}, type: http, target: 'http://x/{i}', interval: 5s, "
                                 "labels: {team: a}, http: {max_redirects: 3, valid_status_codes: [200, 204]}}\n"
                                 for i in range(probes))
    gc.collect()
    tracemalloc.start()
    try:
        config = parse_config(text, "probes.yaml", {})
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(config.probes) == probes
    # A probe is 26 nodes with two marks each, ~8 KB: what is freed by the end is the bookkeeping of
    # names and label values (~500 bytes a probe), not nodes kept until the end.
    assert (peak - kept) / probes < 1_000, (peak, kept)


def test_a_bad_default_is_reported_in_every_probe_alike() -> None:
    # PyYAML's constructor, reused, called the node it had failed on "recursive" in the next probe.
    text = 'defaults: {http: {max_redirects: !!int many}}\nprobes:\n' + \
        '  - {name: a, type: http, target: "http://x/"}\n  - {name: b, type: http, target: "http://x/"}\n'
    assert errors(text) == ['probes.yaml:1:34: probes[0].http.max_redirects: invalid integer "many"',
                            'probes.yaml:1:34: probes[1].http.max_redirects: invalid integer "many"']


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param('probes:\n  - {name: a, type: tcp, target: "x:1", interval: 5 s}\n  - {name: b, type: tcp, '
                 'target: *nope}\n  - {name: c, type: tcp, target: [}\n',
                 ["probes.yaml:4:35: YAML syntax: did not find expected node content"],
                 id="a-syntax-error-after-an-undefined-alias"),
    pytest.param('probes:\n  - {name: a, type: tcp, target: "x:1", interval: 5 s}\n  - {name: b, type: tcp, '
                 'target: *nope}\n',
                 ["probes.yaml:3:34: YAML syntax: found undefined alias"], id="an-undefined-alias-after-a-bad-probe"),
    pytest.param('probes:\n  - {name: &x a, type: tcp, target: &x "x:1"}\n---\nprobes: []\n',
                 ["probes.yaml:2:37: YAML syntax: second occurrence"], id="a-duplicate-anchor-before-a-document"),
    pytest.param('probes:\n  - {name: a, type: tcp, target: "x:1"}\n---\nprobes: []\n',
                 ["probes.yaml:3:1: YAML syntax: but found another document"], id="a-second-document"),
    pytest.param('probes:\n  - {name: a, type: tcp, target: "x:1", labels: &l {Bad-Name: x}}\nmetrics: *l\n',
                 ["probes.yaml:2:53: metrics.Bad-Name: unknown key 'Bad-Name' (expected one of: profile, histogram, "
                  "percentiles, phases, values, skips)",
                  "probes.yaml:2:53: probes[0].labels.Bad-Name: invalid label name 'Bad-Name' (must match "
                  "[a-zA-Z_][a-zA-Z0-9_]*)"], id="one-place-two-sections-in-the-usual-order"),
])
def test_errors_are_ranked_as_when_the_whole_file_was_read_first(text: str, expected: list[str]) -> None:
    # A syntax error anywhere wins over the composer's errors, which win over the probes' own.
    assert errors(text) == expected


RICH = """\
%TAG !e! tag:yaml.org,2002:
---
plain: [yes, on, No, ~, null, "", 0x1f, 0o17, 017, 1_000, 1:30, .5, -.inf, .NaN,
        2001-12-14, 2001-12-14t21:59:43.10-05:00]
quoted: ['yes', "0x1f", !!str 12, ! 12, !e!int 7, !custom x]
blocks:
  literal: |
    two
    lines
  folded: >-
    one
    line
anchors: {a: &a {k: v}, b: *a, c: &c [1, *a], d: *c}
? [complex, key]
: value
empty:
"""


def test_the_nodes_are_those_libyaml_composes() -> None:
    def shape(node: yaml.Node) -> object:
        marks = (node.start_mark.line, node.start_mark.column, node.end_mark.line, node.end_mark.column)
        if isinstance(node, yaml.ScalarNode):
            return "scalar", node.tag, node.value, node.style, marks
        value = node.value
        items = [(shape(k), shape(v)) for k, v in value] if isinstance(node, yaml.MappingNode) else \
            [shape(v) for v in value]
        return type(node).__name__, node.tag, node.flow_style, marks, items

    ours = compose(RICH, "rich.yaml")
    assert ours is not None
    assert shape(ours) == shape(yaml.compose(RICH, Loader=yaml.CSafeLoader))


@pytest.mark.parametrize("value", ["yes", "Yes", "on", "OFF", "n", "~", "null", "", "0x1f", "0o17", "017", "0b101",
                                   "1_000", "1:30", "-1.5e3", ".inf", "-.Inf", ".nan", "2001-12-14",
                                   "2001-12-14 21:59:43.10 -5", "<<", "=", "http-1", "30s", "tcp"])
def test_plain_scalars_resolve_as_pyyaml_resolves_them(value: str) -> None:
    expected = yaml.SafeLoader("").resolve(yaml.ScalarNode, value, (True, False))
    assert resolve_plain(value) == expected
    assert resolve_plain(value) == expected  # and again, from the cache
