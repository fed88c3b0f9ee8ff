"""The README is a contract too: its reasons table is the code's vocabulary, its examples load."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from probed.config import parse_config
from probed.probes import ProbeContext, get_kind
from probed.result import Reason

from .example import EXAMPLE, EXAMPLE_ENV

README = Path(__file__).resolve().parent.parent / "README.md"
TABLE_START = "<!-- reasons table: generated from probed/result.py; tests/test_docs.py keeps them in sync -->"
TABLE_END = "<!-- end of reasons table -->"


def reasons_table() -> str:
    rows = ["| reason | meaning |", "|---|---|"]
    rows += [f"| `{reason.value}` | {reason.description} |" for reason in Reason]
    return "\n".join(rows)


def test_the_readme_reasons_table_is_the_code_vocabulary() -> None:
    text = README.read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    assert text[start:end].strip() == reasons_table(), "regenerate the README's table from tests/test_docs.py"


def test_every_yaml_block_in_the_readme_parses() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) >= 8
    for block in blocks:
        yaml.safe_load(block)  # fragments are indented list items or mappings: YAML either way


def test_the_bundled_example_loads_with_its_documented_environment() -> None:
    config = parse_config(EXAMPLE.read_text(), str(EXAMPLE), EXAMPLE_ENV)
    header = EXAMPLE.read_text().split("probes:", 1)[0]
    for variable in EXAMPLE_ENV:
        assert variable in header, f"probes.yaml's header must say it needs {variable}"
    assert {spec.type for spec in config.probes} == {"http", "tcp", "tls", "dns", "postgres", "mysql", "redis", "aws"}


async def test_every_bundled_probe_builds_and_closes() -> None:
    config = parse_config(EXAMPLE.read_text(), str(EXAMPLE), EXAMPLE_ENV)
    ctx = ProbeContext(secrets=config.secrets)
    probes = []
    for spec in config.probes:
        kind = get_kind(spec.type)
        if kind.shared is not None and spec.type not in ctx.shared:
            ctx.shared[spec.type] = kind.shared()
        probes.append(kind.factory(spec, ctx))  # TLS contexts, DNS queries, DSNs, AWS client keys
    for probe in probes:
        await probe.aclose()
    for shared in ctx.shared.values():
        await shared.aclose()
    assert len(probes) == len(config.probes)
