"""`probed check` and `probed once`: exit codes, every error at once, readable and JSON output."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.peers.example import EXAMPLE_ENV

REPO = Path(__file__).resolve().parent.parent


def probed(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "probed.cli", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})}, cwd=REPO)


@pytest.fixture
def listener() -> Iterator[tuple[str, str]]:
    """An open loopback port (accepting) and a closed one."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    c = socket.socket()
    c.bind(("127.0.0.1", 0))
    closed = c.getsockname()[1]
    c.close()
    yield f"127.0.0.1:{s.getsockname()[1]}", f"127.0.0.1:{closed}"
    s.close()


def test_check_accepts_the_bundled_example_and_estimates_load() -> None:
    out = probed("check", "--config", "probes.yaml", env=EXAMPLE_ENV)
    assert out.returncode == 0, out.stderr
    assert "probes per second" in out.stdout
    assert "series per scrape" in out.stdout


def test_check_reports_every_error_at_once_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("""\
probes:
  - name: a
    type: tcp
    target: 127.0.0.1:1
    interval: 5 s
  - name: a
    type: tcp
    target: 127.0.0.1:2
    intervl: 10s
  - name: c
    type: nope
    target: x
""")
    out = probed("check", "--config", str(bad))
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert f'{bad}:5:15: probes[0].interval: invalid duration "5 s" (use a unit: "500ms", "10s", "1m30s", "1h", "1d")' \
        in lines
    assert f"{bad}:9:5: probes[1].intervl: unknown key 'intervl' (did you mean 'interval'?)" in lines
    assert any(line.startswith(f"{bad}:11:11: probes[2].type: unknown probe type 'nope'") for line in lines)
    # The duplicate name too, although both probes have errors of their own: one pass, not two.
    assert f'{bad}:6:11: probes[1].name: duplicate probe name "a" (first at line 2)' in lines
    assert lines[-1] == "4 error(s)"


def test_once_runs_probes_and_exits_by_outcome(tmp_path: Path, listener: tuple[str, str]) -> None:
    open_port, closed_port = listener
    config = tmp_path / "p.yaml"
    config.write_text(f"""\
probes:
  - {{name: up, type: tcp, target: "{open_port}", timeout: 1s}}
  - {{name: down, type: tcp, target: "{closed_port}", timeout: 1s}}
""")
    ok = probed("once", "--config", str(config), "up")
    assert ok.returncode == 0, ok.stderr
    assert "up" in ok.stdout and "1 ok, 0 failing" in ok.stdout

    both = probed("once", "--config", str(config), "--json")
    assert both.returncode == 1
    rows = {r["name"]: r for r in map(json.loads, both.stdout.splitlines())}
    assert set(rows["down"]) >= {"name", "type", "target", "success", "reason", "duration_seconds", "phases",
                                 "values", "detail"}
    assert rows["down"]["reason"] == "connection_refused" and rows["down"]["success"] is False
    assert rows["up"]["reason"] == "ok" and rows["up"]["success"] is True

    unknown = probed("once", "--config", str(config), "nope")
    assert unknown.returncode == 2 and "no probe named 'nope'" in unknown.stderr


LOW_TRAFFIC = """\
probes:
  - {name: a, type: tcp, target: "127.0.0.1:1", interval: 60s}
  - {name: b, type: tcp, target: "127.0.0.1:2", interval: 10s}
slos:
  - {name: low, probes: [a], objective: 99.9}
  - {name: busy, probes: [a, b], objective: 99.5}
  - {name: slices, probes: [b], objective: 99.9, budgeting: timeslices}
"""


def test_check_prints_per_slo_traffic_and_warns_when_one_failure_would_page(tmp_path: Path) -> None:
    config = tmp_path / "slos.yaml"
    config.write_text(LOW_TRAFFIC)
    out = probed("check", "--config", str(config))
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if "slo " in ln]
    assert lines == [
        "slo low: 60 events per hour; 1 failed attempt within one hour pages (burn rate over 14.4x at 99.9%)",
        # 14.4 * 0.001 * 60 = 0.864 expected failures: the first one pages. 3 need 2 / (14.4 * 0.001) = 139
        # events per hour (one every 25.9 s), or a budget of 2 / (14.4 * 60) = 0.23%.
        "WARNING: slo low: one failed attempt in an hour would page: too few events for a 99.9% objective; "
        "3 or more need probing more often (60s -> 25.9s, 139 events per hour) or an objective of at most 99.76%",
        # 360 + 60 = 420 events; 14.4 * 0.005 * 420 = 30.24: the 31st pages
        "slo busy: 420 events per hour; 31 failed attempts within one hour page (burn rate over 14.4x at 99.5%)",
        "slo slices: 60 timeslices per hour; 1 bad timeslice within one hour pages (burn rate over 14.4x at 99.9%)",
        "WARNING: slo slices: one bad timeslice in an hour would page: too few timeslices for a 99.9% objective; "
        "3 or more need an objective of at most 99.76%",
    ]


SHARD_LINE = re.compile(r"  shard (\d+): (\d+) probes?, ([\d.]+) probes/s \(([+-]\d+)% vs the mean\), (\d+) SLOs?")


def test_check_shards_prints_each_shards_probes_and_rate(tmp_path: Path) -> None:
    config = tmp_path / "many.yaml"
    # 24 probes: 12 every 1s, 12 every 4s (15 probes/s in all), and two SLOs over 3 probes each.
    config.write_text("probes:\n" + "".join(
        f'  - {{name: p{i}, type: tcp, target: "127.0.0.1:1", interval: {1 if i % 2 else 4}s}}\n' for i in range(24))
        + "slos:\n  - {name: first, probes: [p0, p1, p2]}\n  - {name: second, probes: [p3, p4, p5]}\n")
    out = probed("check", "--config", str(config), "--shards", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    at = lines.index("shards: 3")
    rows = [SHARD_LINE.fullmatch(line) for line in lines[at + 1:at + 4]]
    assert all(rows), lines[at:]
    shards = [(int(m[1]), int(m[2]), float(m[3]), int(m[4]), int(m[5])) for m in rows if m]
    assert [s[0] for s in shards] == [0, 1, 2]
    assert sum(s[1] for s in shards) == 24 and all(s[1] > 0 for s in shards)
    assert abs(sum(s[2] for s in shards) - 15.0) <= 0.15  # each rate is rounded to 0.1
    assert sum(s[4] for s in shards) == 2  # each SLO on exactly one shard
    assert "WARNING" not in out.stdout

    copies = probed("check", "--config", str(config), "--shards", "3", "--replicas-per-probe", "2")
    assert copies.returncode == 0, copies.stderr
    counted = [SHARD_LINE.fullmatch(line) for line in copies.stdout.splitlines() if line.startswith("  shard ")]
    assert sum(int(m[2]) for m in counted if m) == 48 and sum(int(m[5]) for m in counted if m) == 4


def test_check_warns_when_a_shard_would_run_nothing(tmp_path: Path) -> None:
    """One SLO over every probe keeps them all on one shard: the others would idle."""
    config = tmp_path / "one-slo.yaml"
    config.write_text("probes:\n" + "".join(f'  - {{name: p{i}, type: tcp, target: "127.0.0.1:1"}}\n'
                                            for i in range(4))
                      + "slos:\n  - {name: everything, probes: [p0, p1, p2, p3]}\n")
    out = probed("check", "--config", str(config), "--shards", "2")
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("  shard ")]
    assert sorted(int(row.split()[2]) for row in rows) == [0, 4]
    (idle,) = [i for i, row in enumerate(rows) if " 0 probes," in row]
    assert f"WARNING: shard {idle} would run no probes: all the probes of an SLO" in out.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["check", "--shards", "0"], "argument --shards: must be at least 1, got 0"),
    (["check", "--shards", "two"], "argument --shards: must be a whole number, got 'two'"),
    (["check", "--shards", "2", "--replicas-per-probe", "0"], "argument --replicas-per-probe: must be at least 1"),
    (["check", "--shards", "2", "--replicas-per-probe", "3"], "--replicas-per-probe 3 needs at least as many --shards"),
    (["run", "--shards", "0"], "argument --shards: must be at least 1, got 0"),
    (["run", "--shards", "2", "--shard-index", "-1"], "argument --shard-index: must be at least 0"),
    (["run", "--shards", "2", "--shard-index", "0", "--replicas-per-probe", "0"],
     "argument --replicas-per-probe: must be at least 1"),
], ids=["check-zero", "check-word", "check-zero-copies", "check-more-copies-than-shards", "run-zero",
        "run-negative-index", "run-zero-copies"])
def test_a_shard_count_below_one_is_refused_with_exit_2(args: list[str], message: str) -> None:
    out = probed(*args, "--config", "probes.yaml", env=EXAMPLE_ENV)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr
    assert "shards:" not in out.stdout


@pytest.mark.parametrize(("env", "message"), [
    ({"PROBED_SHARDS": "0"}, "shards must be at least 1, got 0"),
    ({"PROBED_SHARDS": "2", "PROBED_SHARD_INDEX": "0", "PROBED_REPLICAS_PER_PROBE": "0"},
     "replicas per probe must be in 1..2, got 0"),
    ({"PROBED_SHARDS": "three"}, "PROBED_SHARDS must be a whole number, got 'three'"),
])
def test_run_refuses_a_shard_environment_below_one_with_exit_2(env: dict[str, str], message: str) -> None:
    out = probed("run", "--config", "probes.yaml", "--state-dir", "", env={**EXAMPLE_ENV, **env})
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--probe-failing-for", "five minutes"], 'invalid duration "five minutes"'),
    (["--probe-failing-for", "5"], 'invalid duration "5"'),
    (["--probe-failing-for", "0s"], 'duration "0s" must be longer than 0'),
    (["--probe-failing-for", "0.5ms"], "finer than Prometheus reads"),
    (["--job", 'probed"} or vector(1) #'], "is not a job name"),
    (["--job", ""], "is not a job name"),
])
def test_rules_refuses_a_bad_duration_or_job_with_exit_2(args: list[str], message: str) -> None:
    out = probed("rules", "--no-env", "--config", "probes.yaml", *args)
    assert out.returncode == 2, out.stdout[:500] + out.stderr
    assert message in out.stderr and out.stdout == ""


def test_rules_writes_a_duration_prometheus_reads_and_the_job_it_was_given(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    out = probed("rules", "--no-env", "--config", "probes.yaml", "--probe-failing-for", "1.5m",
                 "--job", "monitoring/probed", "-o", str(rules))
    assert out.returncode == 0, out.stderr
    (failing,) = [r for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"]
                  if r.get("alert") == "ProbedProbeFailing"]
    assert failing["for"] == "1m30s" and 'job="monitoring/probed"' in failing["expr"]
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_demo_writes_its_config_for_keeps_and_ends_with_the_next_steps(tmp_path: Path) -> None:
    from tests.peers.net import free_port

    kept = tmp_path / "my-probes.yaml"
    done = probed("demo", "--seconds", "2", "--listen", f"127.0.0.1:{free_port()}", "--write-config", str(kept))
    assert done.returncode == 0, done.stderr
    assert f"from {kept}" in done.stderr and "Next: your own probes." in done.stderr
    assert "probed check --config my-probes.yaml" in done.stderr
    check = probed("check", "--config", str(kept))
    assert check.returncode == 0 and "7 probes" in check.stdout, check.stdout + check.stderr


def test_once_json_array_is_one_json_document(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text('probes:\n  - {name: a, type: tcp, target: "127.0.0.1:1"}\n'
                    '  - {name: b, type: tcp, target: "127.0.0.1:2"}\n')
    done = probed("once", "--config", str(path), "--json-array")
    assert done.returncode != 0  # both fail: nothing listens
    names = [item["name"] for item in json.loads(done.stdout)]
    assert names == ["a", "b"]


def test_once_name_needs_only_the_named_probes_variables(tmp_path: Path, listener: tuple[str, str]) -> None:
    """`probed once up` runs without DB_PASSWORD, which only another probe uses; a variable the
    named probe uses is still required, with the full load's error."""
    open_port, _ = listener
    config = tmp_path / "p.yaml"
    config.write_text("""\
probes:
  - {name: up, type: tcp, target: "${UP_TARGET}", timeout: 1s}
  - name: db
    type: postgres
    target: "postgres://probe:${DB_PASSWORD}@db.internal:5432/app"
""")
    env = {"UP_TARGET": open_port}
    clean = {k: v for k, v in os.environ.items() if k not in ("DB_PASSWORD", "UP_TARGET")}

    def once(*args: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "probed.cli", "once", "--config", str(config), *args],
                              capture_output=True, text=True, timeout=60, env=environ, cwd=REPO)

    named = once("up", environ={**clean, **env})
    assert named.returncode == 0, named.stderr
    assert "1 ok, 0 failing" in named.stdout and "placeholder" not in named.stdout + named.stderr

    needs_its_own = once("db", environ={**clean, **env})
    assert needs_its_own.returncode == 2 and "DB_PASSWORD is not set" in needs_its_own.stderr

    everything = once(environ={**clean, **env})
    assert everything.returncode == 2 and "DB_PASSWORD is not set" in everything.stderr

    own_missing = once("up", environ=clean)
    assert own_missing.returncode == 2 and "UP_TARGET is not set" in own_missing.stderr
