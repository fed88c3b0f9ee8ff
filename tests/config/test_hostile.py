"""Hostile and broken configs: every one is an error with FILE:LINE:COL, never a traceback, a hang
or a bill. Golden messages, as in test_loader.py; `API_TOKEN` is set and must never be shown."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probed.config.schema import MAX_SHOWN_ISSUES, ConfigError, read_small_file
from probed.runtime.probeset import load_config, parse_config

TOKEN = "tok-5f4e3d2c1b"
ENV = {"API_TOKEN": TOKEN, "EMPTY": ""}
REPO = Path(__file__).resolve().parents[2]


def errors(text: str, env: dict[str, str] | None = None, placeholders: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "probes.yaml", ENV if env is None else env, placeholder_env=placeholders)
    found = [str(i) for i in info.value.issues]
    assert not any(TOKEN in line for line in found)
    return found


CRASHED = [  # each of these raised out of the loader before
    pytest.param('probes:\n  - {name: a, type: http, target: "http://${UNSET}/"}\n',
                 ["probes.yaml:2:35: probes[0].target: environment variable UNSET is not set"], id="unset-in-url"),
    pytest.param('probes:\n  - {name: a, type: [http], target: "http://x/"}\n',
                 ["probes.yaml:2:21: probes[0].type: expected a string, got a list"], id="type-is-a-list"),
    pytest.param('probes:\n  - {name: a, type: tcp, target: "x:1", labels: {[a]: b}}\n',
                 ["probes.yaml:2:50: probes[0].labels: a key must be a string, got a list"], id="list-as-label-key"),
    pytest.param('probes:\n  - {name: a, type: http, target: "http://x/", http: {max_body_bytes: '
                 + "9" * 400 + "GiB}}\n",
                 ['probes.yaml:2:71: probes[0].http.max_body_bytes: size "' + "9" * 80 + '... (403 characters)" is '
                  "too large (at most 2^63-1 bytes)"], id="size-of-400-nines"),
    pytest.param('probes:\n  - {name: a, type: http, target: "http://x/", http: {max_redirects: ' + "9" * 4301 + "}}\n",
                 ["probes.yaml:2:70: probes[0].http.max_redirects: integer too large (more than 4300 digits)"],
                 id="integer-of-4301-digits"),
    pytest.param('probes:\n  - {name: a, type: http, target: "http://x/", http: {max_redirects: ' + "9" * 20 + "}}\n",
                 ["probes.yaml:2:70: probes[0].http.max_redirects: integer out of range (at most 2^63-1)"],
                 id="integer-over-64-bits"),
    pytest.param('probes:\n  - {name: a, type: http, target: "http://x/", '
                 'http: {fail_if_body_matches_regexp: ["a{4294967295}"]}}\n',
                 ['probes.yaml:2:85: probes[0].http.fail_if_body_matches_regexp[0]: invalid regexp "a{4294967295}": '
                  "invalid repetition size: {4294967295} (at most 1000)"], id="regexp-repeat-overflow"),
    pytest.param('probes:\n  - {name: a, type: http, target: "http://x/", http: {max_redirects: !!int "${UNSET}"}}\n',
                 ["probes.yaml:2:70: probes[0].http.max_redirects: environment variable UNSET is not set"],
                 id="int-tag-on-a-variable"),
    pytest.param('probes:\n  - {name: a, type: http, target: "http://x/", http: {max_redirects: !!int "many"}}\n',
                 ['probes.yaml:2:70: probes[0].http.max_redirects: invalid integer "many"'], id="int-tag-on-text"),
]


@pytest.mark.parametrize(("text", "expected"), CRASHED)
def test_what_crashed_the_loader_is_an_error(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


def test_an_int_tag_on_a_set_variable_is_read_as_an_integer() -> None:
    text = 'probes:\n  - {name: a, type: http, target: "http://x/", http: {max_redirects: !!int "${N}"}}\n'
    assert parse_config(text, "probes.yaml", {"N": "3"}).probes[0].settings.max_redirects == 3


ACCEPTED_BUT_BROKEN = [
    pytest.param('probes:\n  - {name: a, type: tcp, target: "x:1", interval: ' + "9" * 400 + "s}\n",
                 ['probes.yaml:2:51: probes[0].interval: duration "' + "9" * 80 + '... (401 characters)" is too long '
                  "(at most 3650d)"], id="interval-of-400-nines"),
    pytest.param('probes:\n  - {name: a, type: tcp, target: "x:1", interval: ' + "9" * 4000 + "}\n",
                 ["probes.yaml:2:51: probes[0].interval: invalid duration " + "9" * 80 + "... (4000 characters) (use "
                  'a unit: "500ms", "10s", "1m", "1h", "1d")'], id="unitless-interval-of-4000-nines"),
    pytest.param('probes:\n  - {name: "abc\\n", type: tcp, target: "x:1"}\n',
                 ['probes.yaml:2:12: probes[0].name: invalid probe name "abc\\n" (letters, digits and _.:/@-, at '
                  "most 128 characters)"], id="name-with-a-newline"),
    pytest.param('probes:\n  - {name: a, type: tcp, target: "x:1", labels: {"team\\n": x}}\n',
                 ["probes.yaml:2:50: probes[0].labels.team\n: invalid label name 'team\\n' (must match "
                  "[a-zA-Z_][a-zA-Z0-9_]*)"], id="label-name-with-a-newline"),
    pytest.param('probes:\n  - {name: a, type: http, target: "http://x/", http: {method: GET, method: POST}}\n',
                 ["probes.yaml:2:68: probes[0].http.method: duplicate key 'method'"], id="duplicate-key-in-a-section"),
    pytest.param('probes:\n  - {name: a, type: tcp, target: "x:1", labels: {team: a, team: b}}\n',
                 ["probes.yaml:2:59: probes[0].labels.team: duplicate key 'team'"], id="duplicate-label"),
    pytest.param('defaults: {http: {method: GET, method: POST}}\nprobes:\n  - {name: a, type: http, target: "http://x/"}\n',
                 ["probes.yaml:1:32: probes[0].http.method: duplicate key 'method'"], id="duplicate-key-in-defaults"),
    pytest.param('probes:\n  - {name: a, type: tls, target: "x:1", tls: {min_days_remaining: .nan}}\n',
                 ["probes.yaml:2:67: probes[0].tls.min_days_remaining: expected a finite number, got nan"],
                 id="nan-days"),
    pytest.param('probes:\n  - {name: a, type: tcp, target: "x:1"}\n'
                 'slos:\n  - {name: s, probes: [a], objective: .inf}\n',
                 ["probes.yaml:4:39: slos[0].objective: expected a finite number, got inf"], id="infinite-objective"),
    pytest.param('probes:\n  - {name: a, type: http, target: "http://x/", http: {headers: {X: "a\\r\\nb"}}}\n',
                 ['probes.yaml:2:64: probes[0].http.headers: the value of header "X" contains a line break or NUL '
                  "(CR, LF and NUL cannot be sent in a header; check the variable it comes from)"], id="header-crlf"),
    pytest.param('probes:\n  - {name: a, type: tcp, target: "${X:?oops}:1"}\n',
                 ['probes.yaml:2:34: probes[0].target: invalid variable reference "${X:?oops}" (write ${VAR} or '
                  "${VAR:-default}; $$ for a literal $)"], id="unsupported-variable-form"),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED_BUT_BROKEN)
def test_what_was_accepted_but_broken_is_an_error(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


@pytest.mark.parametrize(("written", "env", "expected", "secrets"), [
    ("${HOST:-localhost}", {}, "localhost", set()),  # a default written in the file is not a secret
    ("${HOST:-localhost}", {"HOST": ""}, "localhost", set()),
    ("${HOST:-localhost}", {"HOST": "db.internal"}, "db.internal", {"db.internal"}),
    ("${HOST:-}x", {}, "x", set()),
    ("$${HOST}", {"HOST": "db.internal"}, "${HOST}", set()),
    ("$$${HOST}", {"HOST": "db.internal"}, "$db.internal", {"db.internal"}),
])
def test_defaults_and_escapes(written: str, env: dict[str, str], expected: str, secrets: set[str]) -> None:
    config = parse_config(f'probes:\n  - {{name: a, type: http, target: "http://x/{written}"}}\n', "p.yaml", env)
    assert config.probes[0].target == f"http://x/{expected}"
    assert config.secrets == secrets


# --------------------------------------------------------------------------- one pass, close hints


def test_a_duplicate_name_is_reported_with_the_other_errors() -> None:
    assert errors('probes:\n  - {name: a, type: tcp, target: "x:1", interval: 5 s}\n'
                  '  - {name: a, type: tcp, target: "x:2", intervl: 5s}\n') == [
        'probes.yaml:2:51: probes[0].interval: invalid duration "5 s" (use a unit: "500ms", "10s", "1m30s", "1h", '
        '"1d")',
        'probes.yaml:3:12: probes[1].name: duplicate probe name "a" (first at line 2)',
        "probes.yaml:3:41: probes[1].intervl: unknown key 'intervl' (did you mean 'interval'?)",
    ]


def test_hints_only_when_close() -> None:
    (line,) = errors('probes:\n  - {name: a, type: tcp, target: "x:1", retries: 3}\n')
    assert line.startswith("probes.yaml:2:41: probes[0].retries: unknown key 'retries' (expected one of: name, ")
    assert "did you mean" not in line


def test_a_variable_in_a_flow_mapping_says_to_quote_it() -> None:
    assert errors('probes:\n  - {name: a, type: http, target: "http://x/", http: {headers: {password: ${X}}}}\n') == [
        "probes.yaml:2:76: YAML syntax: did not find expected ',' or '}' (in a flow mapping or list, `{` ends a "
        'plain value, so `${X}` reads as `$` and a nested mapping; quote it: `"${X}"`)']


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param('probes:\n  - {name: a, type: tcp, target: "x:1", interval: "${API_TOKEN}"}\n',
                 ['probes.yaml:2:51: probes[0].interval: invalid duration "${API_TOKEN}" (use a unit: "500ms", "10s", '
                  '"1m30s", "1h", "1d")'], id="interval"),
    pytest.param('probes:\n  - {name: a, type: http, target: "http://x/", http: {max_redirects: "${API_TOKEN}"}}\n',
                 ['probes.yaml:2:70: probes[0].http.max_redirects: expected an integer, got a string "${API_TOKEN}"'],
                 id="integer"),
    pytest.param('probes:\n  - {name: a, type: tcp, target: "${API_TOKEN}"}\n',
                 ['probes.yaml:2:34: probes[0].target: invalid target "${API_TOKEN}" (expected host:port, IPv6 as '
                  "[::1]:port)"], id="target"),
    pytest.param('probes:\n  - {name: a, type: http, target: "http://x/", http: {method: "G${API_TOKEN}"}}\n',
                 ['probes.yaml:2:63: probes[0].http.method: invalid HTTP method "G${API_TOKEN}"'], id="inside-a-value"),
])
def test_an_interpolated_value_is_never_shown_in_an_error(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


def test_label_values_are_not_secrets_but_may_not_be_one() -> None:
    config = parse_config('labels: {region: "${REGION}"}\nprobes:\n  - {name: a, type: tcp, target: "x:1"}\n',
                          "probes.yaml", {"REGION": "eu-west-1"})
    assert config.labels == {"region": "eu-west-1"} and "eu-west-1" not in config.secrets
    assert errors('probes:\n  - name: a\n    type: http\n    target: http://x/\n    labels: {team: "${API_TOKEN}"}\n'
                  '    http: {headers: {Authorization: "${API_TOKEN}"}}\n') == [
        "probes.yaml:5:20: probes[0].labels.team: this label value is also a secret in this file (a header, a "
        "password or a ${VAR} used there): label values are exported in every metric"]


def test_each_probe_knows_its_own_secrets() -> None:
    config = parse_config('probes:\n  - {name: a, type: http, target: "http://x/", http: {headers: {X-Key: k-aaaa}}}\n'
                          '  - {name: b, type: http, target: "http://x/?t=${API_TOKEN}"}\n', "probes.yaml", ENV)
    assert config.probe("a").secrets == {"k-aaaa"} and config.probe("b").secrets == {TOKEN}
    assert config.secrets == {"k-aaaa", TOKEN}


# --------------------------------------------------------------------------- --no-env


def test_no_env_makes_variables_placeholders_and_checks_the_rest() -> None:
    text = ('probes:\n'
            '  - {name: a, type: tcp, target: "${HOST}:${PORT}", interval: "${INTERVAL}"}\n'
            '  - {name: b, type: http, target: "http://${HOST:-localhost}/", http: {max_redirects: "${N}"}}\n')
    config = parse_config(text, "probes.yaml", {}, placeholder_env=True)
    a, b = config.probes
    assert a.target == "placeholder-HOST:placeholder-PORT" and a.interval == 30.0  # judged later, with the env
    assert b.target == "http://localhost/" and b.settings.max_redirects == 10
    # Everything else is still checked.
    assert errors(text.replace('"${INTERVAL}"', "5 s"), placeholders=True) == [
        'probes.yaml:2:63: probes[0].interval: invalid duration "5 s" (use a unit: "500ms", "10s", "1m30s", "1h", '
        '"1d")']


def test_the_bundled_config_checks_with_no_environment() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "ORDERS_", "CATALOG_", "JOBS_", "PROBED_"))}
    run = [sys.executable, "-m", "probed.cli", "check", "--config", str(REPO / "probes.yaml")]
    plain = subprocess.run(run, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert plain.returncode == 2 and "environment variable API_TOKEN is not set" in plain.stderr
    no_env = subprocess.run([*run, "--no-env"], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert no_env.returncode == 0, no_env.stderr


# --------------------------------------------------------------------------- cost and files


def test_a_billion_laughs_fails_fast() -> None:
    lol = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(8):
        lol += f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n"
    assert errors(lol + "probes: []\n") == [
        "probes.yaml:6:8: this alias stands for more than 100,000 YAML nodes: a probe, or any one entry of a "
        "section, may hold at most 100,000 YAML nodes (every use of an alias counts the nodes it repeats)"]


@pytest.mark.parametrize(("text", "expected"), [
    # libyaml 0.2.5 lets the 65th `[` through as an event (column 72); 0.2.6 scans ahead to its own
    # cap of 1,000 levels first (column 1008). Either way the operator reads the same refusal.
    pytest.param("probes: " + "[" * 100_000 + "]" * 100_000 + "\n",
                 r"probes\.yaml:1:(72|1008): YAML nested more than 64 levels deep", id="flow"),  # segfaulted libyaml
    pytest.param("probes:\n" + "- " * 50_000 + "x\n", r"probes\.yaml:2:127: YAML nested more than 64 levels deep",
                 id="block"),
    pytest.param("probes: &a [*a]\n", r"probes\.yaml:1:13: alias \*a is inside its own anchor \(a cycle\)",
                 id="cycle"),
])
def test_deep_or_cyclic_yaml_is_refused_before_it_is_built(text: str, expected: str) -> None:
    [error] = errors(text)
    assert re.fullmatch(expected, error), error


def test_twenty_thousand_errors_are_collected_in_linear_time_and_shown_in_part() -> None:
    text = ("probes:\n  - name: a\n    type: http\n    target: http://x/\n    http:\n      valid_status_codes: ["
            + ", ".join(["999"] * 20_000) + "]\n")
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        parse_config(text, "probes.yaml", {})
    # Generous: 0.4 s here; the quadratic de-duplication took 25 s.
    assert time.monotonic() - started < 10
    assert info.value.total == 20_000 and len(info.value.issues) == MAX_SHOWN_ISSUES + 1
    assert str(info.value.issues[-1]) == "probes.yaml: ... and 19,900 more errors not shown"


def test_invalid_utf8_names_its_place(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_bytes(b'probes:\n  - {name: "caf\xc3\xa9-\xff", type: tcp, target: "x:1"}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [str(i) for i in info.value.issues] == [
        f"{path}:2:18: invalid UTF-8 (byte 0xff): a config file must be UTF-8"]


@pytest.mark.parametrize("kind", ["fifo", "directory", "dev-zero", "too-large", "missing"])
def test_a_config_that_is_not_a_small_regular_file_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "probes.yaml"
    expected = {"fifo": "the config is not a regular file (a FIFO)",
                "directory": "the config is not a regular file (a directory)",
                "dev-zero": "the config is not a regular file (a character device)",
                "too-large": "the config is too large (67,108,865 bytes, at most 67,108,864)",
                "missing": "cannot read config: No such file or directory"}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # nobody writes: a blocking open would wait forever
    elif kind == "directory":
        path.mkdir()
    elif kind == "dev-zero":
        path = Path("/dev/zero")
    elif kind == "too-large":
        with path.open("wb") as f:
            f.truncate(64 * 1024 * 1024 + 1)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [str(i) for i in info.value.issues] == [f"{path}: {expected}"]


def test_read_small_file_reads_a_regular_file_and_refuses_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_bytes(b"x" * 10)
    assert read_small_file(path, 10) == b"x" * 10
    with pytest.raises(ValueError, match=r"too large \(11 bytes, at most 10\)"):
        path.write_bytes(b"x" * 11)
        read_small_file(path, 10)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ValueError, match=r"is not a regular file \(a FIFO\)"):
        read_small_file(tmp_path / "fifo", 10)


@pytest.mark.parametrize("content", [
    pytest.param(b"probes: [{name: a, type: [http], target: x}]\n", id="type-list"),
    pytest.param(b"probes: [{name: \"\xff\", type: tcp, target: \"x:1\"}]\n", id="invalid-utf8"),
    pytest.param(None, id="fifo"),
])
def test_run_exits_2_on_a_bad_config(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "probes.yaml"
    if content is None:
        os.mkfifo(path)
    else:
        path.write_bytes(content)
    out = subprocess.run([sys.executable, "-m", "probed.cli", "run", "--config", str(path), "--listen", "127.0.0.1:0",
                          "--state-dir", ""], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and f"{path}:" in out.stderr
