"""Reading a config's YAML text safely: UTF-8, size, node count, nesting, and syntax errors that
point at FILE:LINE:COL.

A hostile file must fail fast with a clear error rather than exhaust memory or the stack: the
event stream is walked first, counting nodes with every alias use expanded and the nesting depth,
and only then composed into nodes for the loader.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from probed.config.schema import ConfigError, ConfigIssue

# libyaml's parser composes the same nodes, marks included, several times faster than PyYAML's
# pure-Python one; parsing is most of a large config's start-up.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_FILE_BYTES = 16 * 1024 * 1024
"""A config of 10,000 probes is about 2 MB."""
MAX_NODES = 1_000_000
"""YAML nodes in a document, each use of an alias counting the nodes it stands for. 10,000 probes
are about 250,000; a million composed nodes take about 600 MB, which is as far as we go."""
MAX_DEPTH = 64
"""Nesting levels. libyaml's composer recurses once per level (100,000 levels crash the process)
and its scanner slows down quadratically with depth; real configs nest fewer than 10."""



def decode(data: bytes, filename: str) -> str:
    """UTF-8 bytes -> text, or a ConfigError pointing at the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[line_start:exc.start].decode("utf-8", "replace")) + 1
        issue = ConfigIssue(filename, data.count(b"\n", 0, exc.start) + 1, column, "",
                            f"invalid UTF-8 (byte 0x{data[exc.start]:02x}): a config file must be UTF-8")
        raise ConfigError([issue]) from None


def compose(text: str, filename: str, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> yaml.Node | None:
    """The document's root node (None for an empty file), or a ConfigError with FILE:LINE:COL."""
    try:
        _check_shape(text, filename, max_nodes, max_depth)
        node: yaml.Node | None = yaml.compose(text, Loader=YAML_LOADER)
        return node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        message = f"YAML syntax: {exc.problem}"
        if mark is not None and _flow_interpolation(text, mark.line):
            message += (" (in a flow mapping or list, `{` ends a plain value: `{password: ${X}}` reads as a "
                        "nested mapping; quote it: `{password: \"${X}\"}`)")
        raise ConfigError([ConfigIssue(filename, line, col, "", message)]) from None
    except yaml.reader.ReaderError as exc:
        before = text[:exc.position]
        line, col = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise ConfigError([ConfigIssue(filename, line, col, "",
                                       f"YAML: character U+{ord(char):04X} is not allowed in YAML")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(filename, 0, 0, "", f"YAML: {exc}")]) from None


def _flow_interpolation(text: str, line: int) -> bool:
    lines = text.splitlines()
    return line < len(lines) and re.search(r"[{\[,]\s*(?:[^\s\"'][^:]*:\s*)?\$\{", lines[line]) is not None


class _Refused(Exception):
    def __init__(self, mark: Any, message: str) -> None:
        self.line: int = mark.line + 1 if mark is not None else 0
        self.column: int = mark.column + 1 if mark is not None else 0
        self.message = message


def _check_shape(text: str, filename: str, max_nodes: int, max_depth: int) -> None:
    """Count nodes (aliases expanded) and depth from the event stream, stopping at the first excess."""
    try:
        try:
            _walk_events(yaml.parse(text, Loader=YAML_LOADER), max_nodes, max_depth)
        except yaml.MarkedYAMLError as exc:
            # libyaml 0.2.6 caps nesting at 1,000 levels itself, and its scanner reads a run of `[`
            # ahead of the events we count, so a deep flow list can hit its cap before ours.
            if "maximum nesting depth" not in (exc.problem or ""):
                raise
            raise _Refused(exc.problem_mark, f"YAML nested more than {max_depth} levels deep") from None
    except _Refused as exc:
        raise ConfigError([ConfigIssue(filename, exc.line, exc.column, "", exc.message)]) from None


def _walk_events(events: Iterator[yaml.Event], max_nodes: int, max_depth: int) -> None:
    count = 0
    open_nodes: list[tuple[str | None, int]] = []
    sizes: dict[str, int] = {}
    for event in events:
        if isinstance(event, yaml.AliasEvent):
            size = sizes.get(event.anchor or "")
            if size is None:
                if any(anchor == event.anchor for anchor, _ in open_nodes):
                    raise _Refused(event.start_mark, f"alias *{event.anchor} is inside its own anchor (a cycle)")
                continue  # undefined: the composer reports it
            count += size
        elif isinstance(event, yaml.ScalarEvent):
            count += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            count += 1
            open_nodes.append((event.anchor, count))
            if len(open_nodes) > max_depth:
                raise _Refused(event.start_mark, f"YAML nested more than {max_depth} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, start = open_nodes.pop()
            if anchor:
                sizes[anchor] = count - start + 1
        if count > max_nodes:
            raise _Refused(event.start_mark, f"the document expands to more than {max_nodes:,} YAML nodes "
                                             "(every use of an alias counts the nodes it repeats)")
