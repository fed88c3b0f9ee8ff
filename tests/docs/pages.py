"""What the docs tests read: the repository's Markdown, its code blocks, and the config loader."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# The one place the docs tests name the config loader and the probe set: fix these imports here
# when they move.
from probed.runtime.probeset import ProbeSet, parse_config

__all__ = [
    "DOCS", "MKDOCS_YML", "README", "ROOT", "Block", "ProbeSet",
    "code_blocks", "dummy_environ", "markdown_files", "parse_config", "yaml_blocks",
]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def code_blocks(path: Path) -> Iterator[Block]:
    text = path.read_text(encoding="utf-8")
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        yield Block(path, line, match.group(1), match.group(2))


def yaml_blocks() -> list[Block]:
    return [block for path in markdown_files() for block in code_blocks(path) if block.lang == "yaml"]


def dummy_environ(text: str) -> dict[str, str]:
    """A value for every `${VAR}` the text uses (the loader refuses a missing one, by design)."""
    return {name: f"dummy-{name.lower()}-value" for name in _ENV_REF.findall(text)}
