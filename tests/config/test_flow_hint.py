"""The hint for a `${VAR}` that a flow mapping or list cut short: it quotes the variable as written
on that line, and appears only where YAML's flow syntax is what broke."""

from __future__ import annotations

import pytest

from probed.config.schema import ConfigError
from probed.runtime.probeset import parse_config

ENV = {"API_TOKEN": "tok-Secret-1", "DB_PASSWORD": "db-Secret-2", "A": "a", "B": "b"}


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "probes.yaml", ENV)
    return [str(i) for i in info.value.issues]


def hint(variable: str) -> str:
    return (f"(in a flow mapping or list, `{{` ends a plain value, so `{variable}` reads as `$` and a nested "
            f'mapping; quote it: `"{variable}"`)')


@pytest.mark.parametrize(("text", "place", "variable"), [
    pytest.param('probes:\n  - {name: a, type: tcp, target: "x:1", interval: ${API_TOKEN}}\n',
                 "probes.yaml:2:52", "${API_TOKEN}", id="a-value-in-a-flow-mapping"),
    pytest.param('probes:\n  - {name: a, type: http, target: "http://x/", http: {headers: {X: [${API_TOKEN}]}}}\n',
                 "probes.yaml:2:70", "${API_TOKEN}", id="an-item-of-a-flow-list"),
    pytest.param('probes:\n  - name: a\n    type: postgres\n    target: "postgres://u@h/d"\n'
                 '    postgres: {password: ${DB_PASSWORD}}\n',
                 "probes.yaml:5:27", "${DB_PASSWORD}", id="a-flow-mapping-in-a-block"),
    pytest.param('probes:\n  - {name: a, type: tcp, target: "x:1", labels: {a: "${A}", b: ${B}}}\n',
                 "probes.yaml:2:65", "${B}", id="the-unquoted-one-of-two"),
])
def test_the_hint_quotes_the_variable_that_broke_the_line(text: str, place: str, variable: str) -> None:
    [error] = errors(text)
    assert error.startswith(f"{place}: YAML syntax: did not find expected ',' or ")
    assert error.endswith(hint(variable))


def test_a_variable_in_block_style_is_no_yaml_error_and_gets_no_hint() -> None:
    # A plain `${VAR}` is a valid block scalar: what is wrong with it, if anything, is its value.
    [error] = errors('probes:\n  - name: a\n    type: tcp\n    target: "x:1"\n    interval: ${API_TOKEN}\n')
    assert error.startswith("probes.yaml:5:15: probes[0].interval: ")
    assert "YAML syntax" not in error and "flow mapping" not in error


def test_a_flow_error_without_a_variable_gets_no_hint() -> None:
    assert errors('probes:\n  - {name: a, type: tcp, target: [}\n') == [
        "probes.yaml:2:35: YAML syntax: did not find expected node content"]
    [error] = errors('probes:\n  - {name: a, type: tcp, target: "${A}" x}\n')
    assert "flow mapping" not in error
