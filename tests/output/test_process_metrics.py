"""The standard series every Prometheus exporter has (process_*, python_gc_*, python_info), from
prometheus_client's own collectors: a real daemon's /metrics carries each family the catalog lists,
exactly once per scrape, and no client family the catalog does not list."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from probed.output.catalog import CLIENT_FAMILIES
from tests.peers.web import serving

CLIENT_PREFIXES = ("process_", "python_")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="prometheus_client's process collector reads /proc (Linux only)")


def type_lines(text: str) -> Counter[str]:
    """How many times each family is declared (`# TYPE <name> <type>`)."""
    return Counter(re.findall(r"^# TYPE (\S+) \S+$", text, re.MULTILINE))


def sample_names(text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.MULTILINE)}


async def test_a_daemon_scrape_carries_each_standard_family_exactly_once(tmp_path: Path) -> None:
    async with serving(tmp_path) as served, aiohttp.ClientSession() as session:
        for _ in range(2):  # the second scrape renders them again, still once each
            async with session.get(served.url + "/metrics") as response:
                assert response.status == 200
                text = await response.text()
            declared = type_lines(text)
            expected = {f.name: f.type for f in CLIENT_FAMILIES}
            assert {name: declared[name] for name in expected} == dict.fromkeys(expected, 1)
            for name, type_ in expected.items():
                assert f"# TYPE {name} {type_}\n" in text, name
                assert name in sample_names(text), f"{name} is declared without a sample"
            unlisted = {n for n in declared if n.startswith(CLIENT_PREFIXES)} - expected.keys()
            assert not unlisted, f"exported but missing from catalog.CLIENT_FAMILIES: {sorted(unlisted)}"
            assert [n for n, count in declared.items() if count > 1] == []
