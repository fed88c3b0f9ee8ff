"""Reading a config's YAML text safely and in one pass: UTF-8, size, node count, nesting, and
syntax errors that point at FILE:LINE:COL.

A hostile file must fail fast with a clear error rather than exhaust memory or the stack, so the
node count (every alias use expanded) and the nesting depth are checked on libyaml's event stream
as it is read, before any node is composed from those events. The same pass composes the nodes:
`Document` hands over a top-level mapping one entry at a time and a list one item at a time, so a
caller can convert each probe as soon as its subtree ends and let its nodes go. Only one probe's
nodes are then alive at once, instead of a tree of a million nodes that pymalloc keeps the pages
of long after it is freed.

Errors are ranked as when the whole stream was checked before anything was composed: a syntax
error or an excess anywhere in the file wins over an undefined alias, a duplicate anchor or a
second document (the composer's errors), which are therefore raised only once the stream has been
read to its end. The nodes are PyYAML's own, with the tags, styles and marks libyaml's composer
(CSafeLoader) gives them, so the loader reads them and reports them exactly as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NoReturn, cast

import yaml
from yaml.composer import ComposerError
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from probed.config.schema import ConfigError, ConfigIssue

# libyaml's parser is several times faster than PyYAML's pure-Python one; parsing is most of a
# large config's start-up.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_FILE_BYTES = 64 * 1024 * 1024
"""A config of 100,000 one-line probes is about 12 MB: room for twice as many, written longer."""
MAX_NODES = 4_000_000
"""YAML nodes in a document, each use of an alias counting the nodes it stands for: room for
250,000 one-line probes (about 15 nodes each), or 100,000 with sections of their own (up to 40).
It bounds the work an alias bomb can ask for (the loader walks an aliased subtree again at every
use) and what the converted probes keep; the nodes alive at once are bounded by the two below."""
MAX_ENTRY_NODES = 100_000
"""YAML nodes in one entry (a probe, or one item or value of any top-level section), aliases
expanded. A composed node costs a few hundred bytes: one entry stays within tens of MB while it is
converted. A real probe has fewer than 100; a `body_json.equals` of thousands still fits."""
MAX_HELD_NODES = 500_000
"""YAML nodes of the values composed whole (every top-level section but the probes list, read one
probe at a time), together: all alive until the file ends. Room for SLOs naming 100,000 probes."""
ENTRY_DEPTH = 3  # the nesting level of an entry: the document's mapping, a section, then its entries
_ALIASES = " (every use of an alias counts the nodes it repeats)"
MAX_DEPTH = 64
"""Nesting levels. libyaml's scanner slows down quadratically with depth (and its own composer,
which we do not use, recursed once per level: 100,000 levels crashed the process); real configs
nest fewer than 10."""

STR_TAG = "tag:yaml.org,2002:str"
SEQ_TAG = "tag:yaml.org,2002:seq"
MAP_TAG = "tag:yaml.org,2002:map"

# The YAML 1.1 implicit types of PyYAML's SafeLoader (bool `yes`/`on`, int `0x1f`, timestamps ...),
# by first character as its resolver keeps them, without its method call and two list copies per
# plain scalar.
_IMPLICIT: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {
    first: (*resolvers, *YAML_LOADER.yaml_implicit_resolvers.get(None, ()))
    for first, resolvers in YAML_LOADER.yaml_implicit_resolvers.items() if first is not None}
_WILDCARD: tuple[tuple[str, re.Pattern[str]], ...] = tuple(YAML_LOADER.yaml_implicit_resolvers.get(None, ()))


_RESOLVED: dict[str, str] = {}
_RESOLVED_MAX = 4096
"""Short plain scalars resolved lately: keys and common values (`name`, `type`, `30s`, `http`)
repeat in every probe."""


def resolve_plain(value: str) -> str:
    """The tag of a plain (unquoted, untagged) scalar, as PyYAML's SafeLoader resolves it."""
    tag = _RESOLVED.get(value)
    if tag is not None:
        return tag
    tag = STR_TAG
    for implicit_tag, regexp in _IMPLICIT.get(value[:1], _WILDCARD):
        if regexp.match(value):
            tag = implicit_tag
            break
    if len(value) <= 32:
        if len(_RESOLVED) >= _RESOLVED_MAX:
            _RESOLVED.clear()
        _RESOLVED[value] = tag
    return tag


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
    """The document's root node (None for an empty file), or a ConfigError with FILE:LINE:COL.
    Composed whole, so within MAX_HELD_NODES: for small files."""
    document = Document(text, filename, max_nodes, max_depth)
    root = document.root()
    node = root.node() if root is not None else None
    document.finish()
    return node


class Document:
    """One YAML document read in one pass: `root()`, then its value read in full or in parts
    (`Value`), then `finish()`, which reads to the end of the stream. Every problem, wherever it is
    found, is raised as a ConfigError with FILE:LINE:COL."""

    def __init__(self, text: str, filename: str, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH,
                 max_entry_nodes: int = MAX_ENTRY_NODES, max_held_nodes: int = MAX_HELD_NODES) -> None:
        self.text = text
        self.filename = filename
        self._max_nodes = max_nodes
        self._max_depth = max_depth
        self._max_entry = max_entry_nodes
        self._max_held = max_held_nodes
        self._parser = YAML_LOADER(text)
        self._anchors: dict[str, yaml.Node] = {}
        self._root: Value | None = None
        # The shape check's state: nodes so far (aliases expanded), open collections (anchor,
        # count at their start, start mark, is a list), and the size of every anchored node.
        self._count = 0
        self._open: list[tuple[str | None, int, Any, bool]] = []
        self._sizes: dict[str, int] = {}
        # The count at the open entry's start and at the start of the value composed whole now (if
        # any), the nodes composed whole before it, and the count not to exceed (the least limit).
        self._entry_start: int | None = None
        self._held_start: int | None = None
        self._held, self._limit = 0, max_nodes

    def root(self) -> Value | None:
        """The document's root value, not read yet; None for a file without a document."""
        self._next()  # StreamStartEvent
        if isinstance(self._next(), StreamEndEvent):
            return None
        self._root = Value(self, self._read())  # the event after DocumentStartEvent; checked when read
        return self._root

    def finish(self) -> None:
        """Read the rest of the stream: the root's unread parts, and check there is no other document."""
        if self._root is not None:
            self._root.skip()
            self._next()  # DocumentEndEvent
            event = self._next()
            if isinstance(event, DocumentStartEvent):
                self._fail(ComposerError("expected a single document in the stream", None,
                                         "but found another document", _mark(event.start_mark)))
        self._drain()

    # -- events
    def _read(self) -> Any:
        """The next event, not checked yet."""
        try:
            return self._parser.get_event()
        except yaml.YAMLError as exc:
            raise self._yaml_error(exc) from None

    def _next(self) -> Any:
        event = self._read()
        self._check(event)
        return event

    def _check(self, event: Any) -> None:
        """Count the nodes (aliases expanded) and the depth, stopping at the first excess."""
        cls = event.__class__
        if cls is ScalarEvent:
            self._count += 1
            if event.anchor:
                self._sizes[event.anchor] = 1
        elif cls is MappingStartEvent or cls is SequenceStartEvent:
            self._count += 1
            self._open.append((event.anchor, self._count, event.start_mark, cls is SequenceStartEvent))
            if len(self._open) > self._max_depth:
                raise self._refused(event.start_mark, f"YAML nested more than {self._max_depth} levels deep")
            if len(self._open) == ENTRY_DEPTH:
                self._entry_start, self._limit = self._count, min(self._limit, self._count - 1 + self._max_entry)
        elif cls is MappingEndEvent or cls is SequenceEndEvent:
            anchor, start, _, _ = self._open.pop()
            if anchor:
                self._sizes[anchor] = self._count - start + 1
            if len(self._open) == ENTRY_DEPTH - 1:
                self._entry_start, self._limit = None, self._limit_now()
        elif cls is AliasEvent:
            size = self._sizes.get(event.anchor or "")
            if size is not None:
                self._count += size
                if len(self._open) == ENTRY_DEPTH - 1 and size > self._max_entry:  # the alias is an entry
                    raise self._entry_too_large(event)
            elif any(anchor == event.anchor for anchor, *_ in self._open):
                raise self._refused(event.start_mark, f"alias *{event.anchor} is inside its own anchor (a cycle)")
            # else undefined: the composer reports it, once the rest of the stream is read
        if self._count > self._limit:
            raise self._excess(event)

    def _limit_now(self) -> int:
        entry = self._max_nodes if self._entry_start is None else self._entry_start - 1 + self._max_entry
        held = self._max_nodes if self._held_start is None else self._held_start + self._max_held - self._held
        return min(self._max_nodes, entry, held)

    def _excess(self, event: Any) -> ConfigError:
        """The refusal for the limit the count has just passed (the document's, an entry's, or the held)."""
        if self._count > self._max_nodes:
            return self._refused(event.start_mark, f"the document expands to more than {self._max_nodes:,} YAML "
                                                   f"nodes{_ALIASES}")
        if self._entry_start is not None and self._count - self._entry_start + 1 > self._max_entry:
            return self._entry_too_large(event)
        return self._refused(self._open[1][2] if len(self._open) > 1 else event.start_mark,
                             "this section is too large: the values read whole (every top-level section but the "
                             f"probes list, which is read one probe at a time) expand to more than "
                             f"{self._max_held:,} YAML nodes together{_ALIASES}")

    def _entry_too_large(self, event: Any) -> ConfigError:
        """Points at the alias or the innermost collection holding most of the entry, else the entry."""
        limit, entry = self._max_entry, self._open[ENTRY_DEPTH - 1:]
        rule = f"a probe, or any one entry of a section, may hold at most {limit:,} YAML nodes{_ALIASES}"
        if not entry:
            return self._refused(event.start_mark, f"this alias stands for more than {limit:,} YAML nodes: {rule}")
        within = f"the entry it is in (from line {entry[0][2].line + 1}) expands to more than {limit:,} YAML nodes"
        if event.__class__ is AliasEvent and self._sizes.get(event.anchor or "", 0) > limit // 2:
            return self._refused(event.start_mark, f"this alias is too large: {within}; {rule}")
        place = next((o for o in reversed(entry) if self._count - o[1] + 1 > limit // 2), entry[0])
        kind = "list" if place[3] else "mapping"
        if place is entry[0]:
            return self._refused(place[2], f"this {kind} expands to more than {limit:,} YAML nodes: {rule}")
        return self._refused(place[2], f"this {kind} is too large: {within}; {rule}")

    def compose_held(self, event: Any) -> yaml.Node:
        """The value that starts with `event`, composed whole and kept: counted against MAX_HELD_NODES."""
        self._held_start, self._limit = self._count, min(self._limit, self._count + self._max_held - self._held)
        try:
            return self._compose(event)
        finally:
            self._held += self._count - self._held_start
            self._held_start = None
            self._limit = self._limit_now()

    def _drain(self) -> None:
        """Read (and check) the rest of the stream."""
        while (event := self._read()) is not None:
            self._check(event)
        self._parser.dispose()

    # -- composing
    def _compose(self, event: Any) -> yaml.Node:
        """The node that starts with `event` (not checked yet), composed from the events up to its end.

        The shape check of a scalar (most events are) is done here inline, as `_check` does it,
        to save a call per event."""
        get_event, anchors, resolved = self._parser.get_event, self._anchors, _RESOLVED
        open_nodes: list[Any] = []  # collections being composed; a mapping's children flat, paired at its end
        add_child: Any = None  # the innermost one's children.append
        try:
            while True:
                cls = event.__class__
                node: Any
                if cls is ScalarEvent:
                    self._count = count = self._count + 1
                    if count > self._limit:
                        raise self._excess(event)
                    value, tag = event.value, event.tag
                    if tag is None or tag == "!":
                        tag = (resolved.get(value) or resolve_plain(value)) if event.implicit[0] else STR_TAG
                    node = ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)
                    if event.anchor is not None:
                        self._sizes[event.anchor] = 1
                        self._anchor(event.anchor, node, event)
                elif cls is MappingStartEvent or cls is SequenceStartEvent:
                    self._check(event)
                    tag = event.tag
                    if tag is None or tag == "!":
                        tag = MAP_TAG if cls is MappingStartEvent else SEQ_TAG
                    node_cls = MappingNode if cls is MappingStartEvent else SequenceNode
                    node = node_cls(tag, [], event.start_mark, None, event.flow_style)
                    if event.anchor is not None:
                        self._anchor(event.anchor, node, event)
                    open_nodes.append(node)
                    add_child = node.value.append
                    event = get_event()
                    continue
                elif cls is MappingEndEvent or cls is SequenceEndEvent:
                    self._check(event)
                    node = open_nodes.pop()
                    if cls is MappingEndEvent:
                        flat = iter(node.value)
                        node.value = list(zip(flat, flat, strict=False))  # (key, value) pairs
                    node.end_mark = event.end_mark
                    if open_nodes:
                        add_child = open_nodes[-1].value.append
                elif cls is AliasEvent:
                    self._check(event)
                    node = anchors.get(event.anchor)
                    if node is None:
                        self._fail(ComposerError(None, None, "found undefined alias", _mark(event.start_mark)))
                else:
                    raise AssertionError(f"unexpected YAML event {event!r}")
                if not open_nodes:
                    return node  # type: ignore[no-any-return]
                add_child(node)
                event = get_event()
        except yaml.YAMLError as exc:
            raise self._yaml_error(exc) from None

    def _anchor(self, anchor: str, node: yaml.Node, event: Any) -> None:
        first = self._anchors.get(anchor)
        if first is not None:
            self._fail(ComposerError("found duplicate anchor; first occurrence", _mark(first.start_mark),
                                     "second occurrence", _mark(event.start_mark)))
        self._anchors[anchor] = node

    # -- errors
    def _fail(self, error: yaml.MarkedYAMLError) -> NoReturn:
        """A composer's error counts only if the rest of the stream is sound: read it all first."""
        self._drain()
        raise _config_error(error, self.text, self.filename) from None

    def _refused(self, mark: Any, message: str) -> ConfigError:
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        return ConfigError([ConfigIssue(self.filename, line, column, "", message)])

    def _yaml_error(self, exc: yaml.YAMLError) -> ConfigError:
        # libyaml 0.2.6 caps nesting at 1,000 levels itself, and its scanner reads a run of `[`
        # ahead of the events we count, so a deep flow list can hit its cap before ours.
        if isinstance(exc, yaml.MarkedYAMLError) and "maximum nesting depth" in (exc.problem or ""):
            return self._refused(exc.problem_mark, f"YAML nested more than {self._max_depth} levels deep")
        return _config_error(exc, self.text, self.filename)


class Value:
    """A value of the document not read yet: read it once, with `node()` (all of it), `items()` (a
    list, one item at a time) or `entries()` (a mapping, one key at a time)."""

    __slots__ = ("_document", "_event", "_parts", "start_mark")

    def __init__(self, document: Document, event: Any) -> None:
        self._document = document
        self._event: Any = event
        self._parts: Iterator[Any] | None = None
        self.start_mark: Any = event.start_mark

    @property
    def is_mapping(self) -> bool:
        return self._event.__class__ is MappingStartEvent

    @property
    def is_sequence(self) -> bool:
        """A list that can be read in parts: one with an anchor is composed whole, for its aliases."""
        return self._event.__class__ is SequenceStartEvent and self._event.anchor is None

    def node(self) -> yaml.Node:
        event, self._event = self._event, None
        if event is None:
            raise RuntimeError("this YAML value was read already")
        return self._document.compose_held(event)

    def items(self) -> Iterator[yaml.Node]:
        """A list's items, each composed when it is reached (`is_sequence` must be true)."""
        self._parts = self._items()
        return self._parts

    def entries(self) -> Iterator[tuple[yaml.Node, Value]]:
        """A mapping's keys, each composed, with its value not read yet (`is_mapping` must be true)."""
        self._parts = self._entries()
        return self._parts

    def skip(self) -> None:
        """Read whatever of this value was not read (the stream must move past it)."""
        if self._parts is not None:
            for _ in self._parts:
                pass
        elif self._event is not None:
            self.node()

    def _items(self) -> Iterator[yaml.Node]:
        document = self._document
        document._check(self._event)  # the list's start
        self._event = None
        while (event := document._read()).__class__ is not SequenceEndEvent:
            yield document._compose(event)
        document._check(event)

    def _entries(self) -> Iterator[tuple[yaml.Node, Value]]:
        document = self._document
        document._check(self._event)  # the mapping's start
        self._event = None
        while (event := document._read()).__class__ is not MappingEndEvent:
            key = document._compose(event)
            value = Value(document, document._read())
            yield key, value
            value.skip()
        document._check(event)


def _mark(mark: Any) -> yaml.Mark:
    """libyaml's marks, typed as PyYAML's (they have the same line and column)."""
    return cast("yaml.Mark", mark)


def _config_error(exc: yaml.YAMLError, text: str, filename: str) -> ConfigError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        message = f"YAML syntax: {exc.problem}"
        cut = _flow_interpolation(text, mark, exc.problem or "") if mark is not None else None
        if cut is not None:
            message += (f" (in a flow mapping or list, `{{` ends a plain value, so `{cut}` reads as `$` and a "
                        f"nested mapping; quote it: `\"{cut}\"`)")
        return ConfigError([ConfigIssue(filename, line, col, "", message)])
    if isinstance(exc, yaml.reader.ReaderError):
        before = text[:exc.position]
        line, col = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        message = f"YAML: character U+{ord(char):04X} is not allowed in YAML"
        return ConfigError([ConfigIssue(filename, line, col, "", message)])
    return ConfigError([ConfigIssue(filename, 0, 0, "", f"YAML: {exc}")])


_INTERPOLATION = re.compile(r"\$\{[^}\s\"']*\}?")


def _flow_interpolation(text: str, mark: Any, problem: str) -> str | None:
    """The unquoted `${NAME}` a flow mapping or list cut short where libyaml stopped, if that is
    what it stopped on: the text as written on that line, for the hint."""
    lines = text.splitlines()
    if "expected ','" not in problem or mark.line >= len(lines):  # only a flow collection ends a value at `{`
        return None
    line = lines[mark.line]
    found = [m.group() for m in _INTERPOLATION.finditer(line) if m.start() <= mark.column  # up to the mark
             and line[:m.start()].count('"') % 2 == 0 and line[:m.start()].count("'") % 2 == 0]  # not quoted
    return found[-1] if found else None
