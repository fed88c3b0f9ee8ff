"""Small helpers for the loader (config/loader.py) and probed's model (config/model.py): merging
defaults, finding a key, how messages name a node or a type, and what converting a type takes."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import re
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml

from probed.config.schema import ALLOW_NONFINITE, SECRET, Converter, clip

NULL_TAG = "tag:yaml.org,2002:null"
STR_TAG = "tag:yaml.org,2002:str"

HINT_CUTOFF = 0.75
"""How close an unknown key must be to a known one for a "did you mean" (difflib's ratio): 0.6,
difflib's default, offered 'redis' for 'retries'."""


def merge(defaults: yaml.Node, node: yaml.Node) -> yaml.Node:
    """Deep-merge mapping nodes: the probe's own keys win; values keep their own marks."""
    if not (isinstance(defaults, yaml.MappingNode) and isinstance(node, yaml.MappingNode)):
        return node
    own = {k.value: (i, v) for i, (k, v) in enumerate(node.value) if isinstance(k, yaml.ScalarNode)}
    merged = list(node.value)
    for key_node, default_value in defaults.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        if key_node.value in own:
            i, v = own[key_node.value]
            if isinstance(v, yaml.MappingNode) and isinstance(default_value, yaml.MappingNode):
                merged[i] = (merged[i][0], merge(default_value, v))
        else:
            merged.append((key_node, default_value))
    return yaml.MappingNode(node.tag, merged, node.start_mark, node.end_mark)


def key_value(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v  # type: ignore[no-any-return]
    return None


@functools.lru_cache(maxsize=1024)
def unknown_key_message(key: str, allowed: tuple[str, ...]) -> str:
    """'unknown key ... (did you mean ...?)'. Cached: a mistake repeated across thousands of
    probes asks the same question each time, and difflib's answer is slow next to a lookup."""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=HINT_CUTOFF)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (expected one of: {', '.join(allowed)})"
    return f"unknown key '{clip(key)}'{hint}"


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG


def node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "null" if is_null(node) else f'"{clip(str(node.value))}"'


def type_word(tp: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp, "a value")


def tag_word(node: yaml.Node) -> str:
    tag = str(node.tag).rsplit(":", 1)[-1]
    return {"int": "an integer", "float": "a number", "bool": "a boolean", "timestamp": "a timestamp",
            "binary": "binary data"}.get(tag, f"a {tag}")


def shown(value: Any) -> str:
    if isinstance(value, str):
        return f'"{clip(value)}"'
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return "(too large to show)"
    return clip(repr(value))


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def env_number(text: str, tp: Any) -> Any:
    """An interpolated value where a number is expected: digits, or a decimal for floats."""
    stripped = text.strip()
    if re.fullmatch(r"[-+]?\d{1,30}", stripped):
        return int(stripped)
    if tp is float and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", stripped) and len(stripped) < 64:
        return float(stripped)
    return text


# --------------------------------------------------------------------------- plans
# What the loader's convert() does for a type, worked out once per type: a config converts the
# same few types hundreds of thousands of times, and typing's introspection was a large part of it.

SCALAR, ANNOTATED, UNION, LITERAL, SEQUENCE, MAPPING, DATACLASS, ANY, UNSUPPORTED = range(9)
PLANS: dict[Any, tuple[Any, ...]] = {}
"""type -> (kind, details): see make_plan."""
SCALAR_CONSTRUCTORS = {
    tag: build for tag in ("null", "bool", "int", "float", "binary", "timestamp", "str")
    if (build := yaml.SafeLoader.yaml_constructors.get(f"tag:yaml.org,2002:{tag}")) is not None}
"""PyYAML's constructors for scalar tags, called directly (construct_object would remember the node)."""


def plan(tp: Any) -> tuple[Any, ...]:
    found = make_plan(tp)
    with contextlib.suppress(TypeError):  # an unhashable type is worked out every time
        PLANS[tp] = found
    return found


def make_plan(tp: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *meta = typing.get_args(tp)
        converter = next((m for m in meta if isinstance(m, Converter)), None)
        return (ANNOTATED, base, any(m is SECRET for m in meta), not any(m is ALLOW_NONFINITE for m in meta),
                converter)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        return UNION, type(None) in args, tuple(a for a in args if a is not type(None))
    if origin is Literal:
        return LITERAL, typing.get_args(tp)
    if origin in (tuple, list):
        (item_tp, *_rest) = typing.get_args(tp) or (Any,)
        return SEQUENCE, item_tp
    if origin in (dict, Mapping, typing.Mapping) or tp is dict:
        _key_tp, value_tp = typing.get_args(tp) or (str, Any)
        return MAPPING, value_tp
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return (DATACLASS,)
    if tp is Any or tp is object:
        return (ANY,)
    if tp in (str, int, float, bool):
        return (SCALAR,)
    return (UNSUPPORTED,)


@functools.cache
def dataclass_plan(cls: type) -> tuple[dict[str, Any], tuple[str, ...], frozenset[str]]:
    """A dataclass's type hints, its init fields in order, and the required ones."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = tuple(f for f in dataclasses.fields(cls) if f.init)
    required = frozenset(f.name for f in fields
                         if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    return hints, tuple(f.name for f in fields), required
