"""A config's top level read in one pass: its sections by key, one long list among them converted
item by item as the file is read (config/source.py's `Document`), and every section's issues in
a fixed order.

The streamed list's items may read other sections (probed's probes read `labels:` and
`defaults:`). When one of those comes after the list in the file, the items were converted
without it: `read` raises `Late` with those sections' nodes, and the caller reads the file again
with them given as `ahead`. A file in the usual order is read once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from probed.config.loader import NodeConverter
from probed.config.nodes import unknown_key_message
from probed.config.schema import ConfigError, ConfigIssue
from probed.config.source import MAP_TAG, Document


class Late(Exception):
    """Sections the streamed items read came after them: read again, with these known first."""

    def __init__(self, nodes: dict[str, yaml.Node]) -> None:
        self.nodes = nodes


class SectionReader(NodeConverter):
    SECTIONS: tuple[str, ...] = ()
    """The top-level keys allowed (others are reported)."""
    STREAMED = ""
    """The list section whose items `convert_items` converts as they are read."""
    NEEDED: tuple[str, ...] = ()
    """The sections `convert_items` reads."""
    PHASES: tuple[str, ...] = ("top",)
    """Issues are shown in file order; those at the same place (an alias used in two sections)
    in this order of the phases they were found in, whatever order the sections come in the
    file. The first phase holds the top-level keys' issues."""
    EMPTY = "the file is empty"
    NOT_A_MAPPING = "expected a mapping at the top"

    def __init__(self, filename: str, environ: Mapping[str, str], placeholders: bool = False,
                 ahead: Mapping[str, yaml.Node] | None = None) -> None:
        super().__init__(filename, environ, placeholders)
        self.ahead = dict(ahead or {})
        self._phases: dict[str, list[ConfigIssue]] = {phase: [] for phase in self.PHASES}
        self.issues = self._phases[self.PHASES[0]]

    def phase(self, name: str) -> None:
        """Issues found from now on belong to this phase."""
        self.issues = self._phases[name]

    def has_issues(self) -> bool:
        return any(self._phases.values())

    def final_issues(self) -> list[ConfigIssue]:
        self.issues = [found for phase in self.PHASES for found in self._phases[phase]]
        return super().final_issues()

    def section(self, sections: Mapping[str, yaml.Node], key: str) -> yaml.Node | None:
        """A section's node, read already or (when it comes after the streamed list) given ahead."""
        return sections.get(key, self.ahead.get(key))

    def convert_items(self, items: Iterator[yaml.Node], sections: Mapping[str, yaml.Node]) -> Any:
        """Convert the streamed list's items, each composed when reached and let go after;
        `sections` holds those read so far (see `section`)."""
        raise NotImplementedError

    def read(self, text: str) -> tuple[yaml.Node, dict[str, yaml.Node], Any]:
        """The root (a mapping without its entries, for messages about the whole file), the
        sections by key, and what `convert_items` returned (None if the streamed section was
        not a plain list: it is then among the sections, an alias or an anchored list included)."""
        document = Document(text, self.filename)
        root = document.root()
        if root is None or not root.is_mapping:
            if root is not None:
                root.node()
            document.finish()  # a YAML error anywhere comes first
            message = self.EMPTY if root is None else self.NOT_A_MAPPING
            raise ConfigError([ConfigIssue(self.filename, 1, 1, "", message)])
        sections: dict[str, yaml.Node] = {}
        seen: set[str] = set()
        streamed: Any = None
        items_read = False
        late: dict[str, yaml.Node] = {}
        for key_node, value in root.entries():
            self.phase(self.PHASES[0])
            key = self.entry_key(key_node, "", seen)
            if key is None:
                continue
            seen.add(key)
            if key not in self.SECTIONS:
                self.issue(key_node, key, unknown_key_message(key, self.SECTIONS))
            if key == self.STREAMED and value.is_sequence:
                streamed, items_read = self.convert_items(value.items(), sections), True
                continue
            sections[key] = value.node()
            if items_read and key in self.NEEDED and key not in self.ahead:
                late[key] = sections[key]
        document.finish()
        if late:
            raise Late(late)
        return yaml.MappingNode(MAP_TAG, [], root.start_mark, None), sections, streamed
