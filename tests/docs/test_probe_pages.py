"""Every probe type has its page, reachable from the site's navigation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from probed.probes import KIND_NAMES

from .pages import DOCS, MKDOCS_YML, code_blocks, dummy_environ, parse_config


def nav_pages(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from nav_pages(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from nav_pages(value)


def test_the_kinds_are_known() -> None:
    assert {"http", "tcp", "tls", "dns", "postgres", "mysql", "redis", "aws"} <= set(KIND_NAMES)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_each_probe_type_has_a_page_in_the_nav(kind: str) -> None:
    page = DOCS / "probes" / f"{kind}.md"
    assert page.is_file(), f"probe type {kind!r} has no page: write docs/probes/{kind}.md"
    title = page.read_text(encoding="utf-8").splitlines()[0]
    assert title.startswith("# ") and f"`type: {kind}`" in title, f"{page.name}'s title should name `type: {kind}`"
    nav = list(nav_pages(yaml.safe_load(MKDOCS_YML.read_text(encoding="utf-8"))["nav"]))
    assert f"probes/{kind}.md" in nav, f"add probes/{kind}.md to the nav in mkdocs.yml"


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_each_probe_type_page_has_a_config_of_its_type_that_loads(kind: str) -> None:
    page = DOCS / "probes" / f"{kind}.md"
    types: set[str] = set()
    for block in code_blocks(page):
        if block.lang == "yaml" and "probes" in (yaml.safe_load(block.text) or {}):
            config = parse_config(block.text, block.id, dummy_environ(block.text))
            types |= {spec.type for spec in config.probes}
    assert kind in types, f"{page.name} has no full example (with `probes:`) of a {kind} probe"
