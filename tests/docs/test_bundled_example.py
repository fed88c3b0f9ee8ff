"""The bundled probes.yaml loads with the environment its header documents, and every probe builds."""

from __future__ import annotations

from tests.peers.example import EXAMPLE, EXAMPLE_ENV

from .pages import ProbeSet, parse_config


def test_the_bundled_example_loads_with_its_documented_environment() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    config = parse_config(text, str(EXAMPLE), EXAMPLE_ENV)
    header = text.split("probes:", 1)[0]
    for variable in EXAMPLE_ENV:
        assert variable in header, f"probes.yaml's header must say it needs {variable}"
    assert {spec.type for spec in config.probes} == {"http", "tcp", "tls", "dns", "postgres", "mysql", "redis", "aws"}


async def test_every_bundled_probe_builds_and_closes() -> None:
    config = parse_config(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE), EXAMPLE_ENV)
    async with ProbeSet.of(config) as probes:  # TLS contexts, DNS queries, DSNs, AWS client keys
        assert len(probes.probes) == len(config.probes)
