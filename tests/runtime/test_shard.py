"""Sharding: every probe runs on exactly one shard (or k), SLOs stay whole, few probes move."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from probed.config.model import Config
from probed.runtime.probeset import parse_config
from probed.runtime.shard import Shard, from_environment, keys, owners, split
from tests.peers.net import closed_port, free_port


def config(probes: int = 1000, slos: int = 50, per_slo: int = 3) -> Config:
    lines = ["probes:"] + [f'  - {{name: p{i}, type: tcp, target: "127.0.0.1:9", interval: 10s}}'
                           for i in range(probes)]
    lines.append("slos:" if slos else "")
    lines += [f"  - {{name: s{j}, probes: [{', '.join(f'p{j * per_slo + k}' for k in range(per_slo))}]}}"
              for j in range(slos)]
    return parse_config("\n".join(lines) + "\n", "test.yaml", {})


def placement(cfg: Config, shards: int, replicas: int = 1) -> dict[str, list[int]]:
    where: dict[str, list[int]] = {p.name: [] for p in cfg.probes}
    for index, part in enumerate(split(cfg, shards, replicas)):
        for probe in part.probes:
            where[probe.name].append(index)
    return where


@pytest.mark.parametrize("shards", [2, 3, 5, 8])
def test_every_probe_runs_on_exactly_one_shard(shards: int) -> None:
    where = placement(config(), shards)
    assert all(len(s) == 1 for s in where.values())
    counts = [sum(1 for s in where.values() if s == [i]) for i in range(shards)]
    assert min(counts) > 0.5 * 1000 / shards  # no shard left nearly idle


@pytest.mark.parametrize("shards", [1, 2, 3, 4, 7])
def test_adding_a_shard_moves_about_one_in_n_plus_one_and_only_to_the_new_shard(shards: int) -> None:
    cfg = config()
    before, after = placement(cfg, shards), placement(cfg, shards + 1)
    moved = [name for name in before if before[name] != after[name]]
    assert all(after[name] == [shards] for name in moved), "a probe moved between old shards"
    assert len(moved) / len(before) <= 1 / (shards + 1) + 0.06


def test_the_probes_of_an_slo_and_the_slo_itself_stay_together() -> None:
    cfg = parse_config("""
probes:
  - {name: a, type: tcp, target: "127.0.0.1:9"}
  - {name: b, type: tcp, target: "127.0.0.1:9"}
  - {name: c, type: tcp, target: "127.0.0.1:9"}
  - {name: d, type: tcp, target: "127.0.0.1:9"}
slos:
  - {name: first, probes: [a, b]}
  - {name: second, probes: [b, c]}
""", "test.yaml", {})
    placed = keys(cfg)
    assert placed["a"] == placed["b"] == placed["c"] != placed["d"]
    for shards in range(2, 9):
        parts = split(cfg, shards)
        holder = [p for p in parts if any(s.name == "first" for s in p.slos)]
        assert len(holder) == 1
        assert {p.name for p in holder[0].probes} >= {"a", "b", "c"}
        assert {s.name for s in holder[0].slos} == {"first", "second"}
    big = config()
    for shards in (3, 5):
        for part in split(big, shards):
            names = {p.name for p in part.probes}
            assert all(set(s.probes) <= names for s in part.slos)


def test_replicas_per_probe_run_each_probe_on_k_shards_with_a_shard_label() -> None:
    cfg = config(probes=200, slos=0)
    where = placement(cfg, 5, replicas=2)
    assert all(len(set(s)) == 2 for s in where.values())
    assert [p.labels["shard"] for p in split(cfg, 5, 2)] == ["0", "1", "2", "3", "4"]
    assert "shard" not in split(cfg, 5, 1)[0].labels


def test_owners_is_a_pure_function_of_key_and_count() -> None:
    assert owners("probe:x", 4) == owners("probe:x", 4)
    assert owners("probe:x", 4, 4) == sorted(owners("probe:x", 4, 4), key=owners("probe:x", 4, 4).index)
    assert sorted(owners("probe:x", 4, 4)) == [0, 1, 2, 3]


@pytest.mark.parametrize(("env", "flags", "expected"), [
    ({}, (None, None, None), Shard(0, 1)),
    ({"PROBED_SHARDS": "3", "PROBED_SHARD_INDEX": "2"}, (None, None, None), Shard(2, 3)),
    ({"PROBED_SHARDS": "3", "HOSTNAME": "probed-1"}, (None, None, None), Shard(1, 3)),
    ({"PROBED_SHARDS": "3", "HOSTNAME": "probed-1"}, (4, 3, 2), Shard(3, 4, 2)),
], ids=["unsharded", "env", "statefulset-ordinal", "flags-win"])
def test_the_shard_comes_from_flags_then_environment_then_the_pod_name(
        env: dict[str, str], flags: tuple[int | None, int | None, int | None], expected: Shard) -> None:
    assert from_environment(*flags, environ=env.items()) == expected


@pytest.mark.parametrize(("env", "message"), [
    ({"PROBED_SHARDS": "3", "HOSTNAME": "web"}, "ends in no ordinal"),
    ({"PROBED_SHARDS": "3", "PROBED_SHARD_INDEX": "3"}, "must be in 0..2"),
    ({"PROBED_SHARDS": "0"}, "at least 1"),
    ({"PROBED_SHARDS": "2", "PROBED_SHARD_INDEX": "0", "PROBED_REPLICAS_PER_PROBE": "3"}, "must be in 1..2"),
])
def test_a_shard_that_cannot_be_is_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_environment(None, None, None, environ=env.items())


# --------------------------------------------------------------------------- real processes


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def write_config(tmp_path: Path, probes: int, slo: tuple[str, list[str]]) -> Path:
    """`probes` TCP probes of a port nothing listens on, and one SLO over some of them."""
    port = closed_port()
    lines = ["probes:"] + [f'  - {{name: p{i}, type: tcp, target: "127.0.0.1:{port}", interval: 1s}}'
                           for i in range(probes)]
    lines += ["slos:", f"  - {{name: {slo[0]}, probes: [{', '.join(slo[1])}]}}"]
    path = tmp_path / "probes.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Seen:
    """What one running shard reports: the probes it runs and its /metrics."""
    probes: set[str]
    metrics: str


def run_shards(config: Path, log_dir: Path, shards: list[tuple[list[str], dict[str, str]]]) -> list[Seen]:
    """Start one `probed run` per (flags, environment), all at once; read each one's
    /api/v1/probes and /metrics; stop them all."""
    procs, ports = [], [free_port() for _ in shards]
    env_base = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    try:
        for n, ((flags, env), listen) in enumerate(zip(shards, ports, strict=True)):
            log = (log_dir / f"shard-{len(shards)}-{n}.log").open("wb")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "probed", "run", "--config", str(config), "--listen", f"127.0.0.1:{listen}",
                 "--state-dir", "", *flags],
                stdout=subprocess.DEVNULL, stderr=log, env={**env_base, **env}))
            log.close()
        for listen, proc in zip(ports, procs, strict=True):
            deadline = time.monotonic() + 20
            while True:
                assert proc.poll() is None and time.monotonic() < deadline, "a shard did not start"
                try:
                    with socket.create_connection(("127.0.0.1", listen), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.05)
        return [Seen({p["name"] for p in json.loads(get(f"http://127.0.0.1:{port}/api/v1/probes"))["probes"]},
                     get(f"http://127.0.0.1:{port}/metrics")) for port in ports]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)


def by_flags(count: int) -> list[tuple[list[str], dict[str, str]]]:
    return [(["--shards", str(count), "--shard-index", str(i)], {}) for i in range(count)]


def test_three_real_shards_cover_every_probe_once_and_keep_slos_whole(tmp_path: Path) -> None:
    config = write_config(tmp_path, 30, ("pair", ["p0", "p1"]))
    seen = run_shards(config, tmp_path, by_flags(3))
    names = [s.probes for s in seen]
    assert sorted(n for shard in names for n in shard) == sorted(f"p{i}" for i in range(30))
    holder = [i for i, shard in enumerate(names) if "p0" in shard]
    assert len(holder) == 1 and "p1" in names[holder[0]]
    for i, shard in enumerate(seen):
        assert f'probed_shard_info{{shard="{i}",shards="3"}} 1' in shard.metrics
        assert f"probed_shard_probes {len(names[i])}" in shard.metrics
        assert "probed_probes_configured 30" in shard.metrics
        assert ('probed_slo_objective_ratio{slo="pair"' in shard.metrics) == (i == holder[0])


def test_a_third_real_shard_takes_about_a_third_of_the_probes_from_the_others_and_the_slo_moves_whole(
        tmp_path: Path) -> None:
    """2 shards, then 3 over the same file. Shard 1 of 3 is told who it is the way a StatefulSet
    pod is: PROBED_SHARDS in the environment and its host name's ordinal (probed-1), no flags."""
    slo = ["p26", "p27", "p28", "p29"]  # a group the third shard wins: the move is exercised, not assumed
    config = write_config(tmp_path, 40, ("checkout", slo))
    two = run_shards(config, tmp_path, by_flags(2))
    three_shards = by_flags(3)
    three_shards[1] = ([], {"PROBED_SHARDS": "3", "HOSTNAME": "probed-1"})
    three = run_shards(config, tmp_path, three_shards)

    def placement(seen: list[Seen]) -> dict[str, int]:
        where = [(name, i) for i, shard in enumerate(seen) for name in shard.probes]
        assert sorted(name for name, _ in where) == sorted(f"p{i}" for i in range(40)), "each probe exactly once"
        return dict(where)

    before, after = placement(two), placement(three)
    moved = {name for name in before if before[name] != after[name]}
    assert moved and all(after[name] == 2 for name in moved), "a probe moved between the old shards"
    assert len(moved) / len(before) <= 1 / 3 + 0.1
    assert 'probed_shard_info{shard="1",shards="3"} 1' in three[1].metrics

    def slo_holders(seen: list[Seen]) -> list[int]:
        return [i for i, shard in enumerate(seen) if 'probed_slo_objective_ratio{slo="checkout"' in shard.metrics]

    for seen, where in ((two, before), (three, after)):
        assert {where[p] for p in slo} == {where[slo[0]]}, "the SLO's probes split across shards"
        assert slo_holders(seen) == [where[slo[0]]], "the SLO is not evaluated where its probes run"
    assert set(slo) <= moved, "this config's SLO group should be one the new shard takes"
