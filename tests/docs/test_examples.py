"""Every YAML example in the README and docs/ is YAML, and every full config among them loads."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .pages import Block, dummy_environ, parse_config, yaml_blocks

BLOCKS = yaml_blocks()


def load_yaml(block: Block) -> Any:
    return yaml.safe_load(block.text)


def test_there_are_examples() -> None:
    full = [block for block in BLOCKS if isinstance(load_yaml(block), dict) and "probes" in load_yaml(block)]
    assert len(BLOCKS) >= 20 and len(full) >= 15, "the examples went missing (or the fence pattern broke)"


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.id)
def test_every_yaml_block_parses(block: Block) -> None:
    load_yaml(block)  # fragments (a scrape config) are YAML too


@pytest.mark.parametrize(
    "block",
    [block for block in BLOCKS if isinstance(load_yaml(block), dict) and "probes" in load_yaml(block)],
    ids=lambda block: block.id,
)
def test_every_full_config_example_loads(block: Block) -> None:
    config = parse_config(block.text, block.id, dummy_environ(block.text))
    assert config.probes, f"{block.id}: an example config with no probes"
