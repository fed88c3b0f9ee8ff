"""What a hostile config can make the loader hold in memory: one value of millions of nodes (a
`body_json.equals` list) is refused where it is, before it is composed, so loading it stays within
tens of MB; a config of 100,000 probes is not affected (bench.config_load).

Each load runs in a child process that reports its own peak RSS (ru_maxrss): a resource bound,
measured against a child that loads a one-probe config, not a timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from probed.config.schema import ConfigError
from probed.config.source import MAX_ENTRY_NODES, MAX_HELD_NODES
from probed.runtime.probeset import parse_config

LOAD = """
import json, resource, sys
from pathlib import Path
from probed.config.schema import ConfigError
from probed.runtime.probeset import load_config
try:
    outcome = f"loaded {len(load_config(Path(sys.argv[1])).probes)}"
except ConfigError as exc:
    outcome = str(exc)
print(json.dumps({"outcome": outcome, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

ELEMENTS = 1_000_000
"""A 12 MB file: composed and converted whole, as before the limit, it took about 500 MB."""
GROWTH_MIB = 150
"""The file's text, held three times over (bytes, str, libyaml's buffer), ~40 MB, plus one entry
of MAX_ENTRY_NODES nodes at a few hundred bytes each, ~40 MB, with room to spare."""


def load_in_child(path: Path) -> tuple[str, float]:
    run = subprocess.run([sys.executable, "-c", LOAD, str(path)], capture_output=True, text=True, timeout=300,
                         check=True)
    report = json.loads(run.stdout)
    return report["outcome"], report["peak_mib"]


def giant_list(path: Path, elements: int) -> None:
    with path.open("w") as f:
        f.write("probes:\n  - name: big\n    type: http\n    target: http://127.0.0.1:9/\n    http:\n"
                "      body_json:\n        - path: items\n          equals: [")
        f.write(", ".join(["1234567890"] * elements))
        f.write("]\n")


def test_one_giant_value_is_refused_where_it_is_within_a_bounded_peak(tmp_path: Path) -> None:
    small, giant = tmp_path / "small.yaml", tmp_path / "giant.yaml"
    small.write_text('probes:\n  - {name: a, type: http, target: "http://127.0.0.1:9/"}\n')
    giant_list(giant, ELEMENTS)
    outcome, baseline = load_in_child(small)
    assert outcome == "loaded 1"
    outcome, peak = load_in_child(giant)
    assert outcome == (f"{giant}:8:19: this list is too large: the entry it is in (from line 2) expands to more "
                       f"than {MAX_ENTRY_NODES:,} YAML nodes; a probe, or any one entry of a section, may hold at "
                       f"most {MAX_ENTRY_NODES:,} YAML nodes (every use of an alias counts the nodes it repeats)")
    assert peak - baseline < GROWTH_MIB, (peak, baseline)


def test_a_probe_just_under_the_entry_limit_loads() -> None:
    equals = ", ".join(["1"] * (MAX_ENTRY_NODES - 20))
    text = ("probes:\n  - {name: a, type: http, target: 'http://x/', http: {body_json: [{path: a, equals: ["
            + equals + "]}]}}\n")
    [probe] = parse_config(text, "probes.yaml", {}).probes
    assert probe.name == "a"


def test_an_alias_standing_for_a_giant_value_is_refused_at_the_alias() -> None:
    big = ", ".join(["1"] * 60_000)
    text = f"x-a: &a [{big}]\nx-b: &b [*a, *a]\nprobes:\n  - {{name: a, type: tcp, target: 'x:1', labels: *b}}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "probes.yaml", {})
    [issue] = info.value.issues
    assert str(issue) == ("probes.yaml:4:49: this alias is too large: the entry it is in (from line 4) expands to "
                          f"more than {MAX_ENTRY_NODES:,} YAML nodes; a probe, or any one entry of a section, may hold "
                          f"at most {MAX_ENTRY_NODES:,} YAML nodes (every use of an alias counts the nodes it repeats)")


def test_the_sections_read_whole_share_one_budget() -> None:
    # Each section is under the entry limit's reach (its items are scalars), but together they would
    # all be held until the file ends.
    sections = MAX_HELD_NODES // 90_000 + 1
    text = "".join(f"x-{s}: [" + ", ".join(["1"] * 90_000) + "]\n" for s in range(sections)) + "probes: []\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "probes.yaml", {})
    refusal = [str(i) for i in info.value.issues if "too large" in str(i)]
    assert refusal == [f"probes.yaml:{sections}:{len(f'x-{sections - 1}: ') + 1}: this section is too large: the "
                       "values read whole (every top-level section but the probes list, which is read one probe at a "
                       f"time) expand to more than {MAX_HELD_NODES:,} YAML nodes together (every use of an alias "
                       "counts the nodes it repeats)"]
