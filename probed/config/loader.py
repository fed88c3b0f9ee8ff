"""A YAML-to-dataclass engine that keeps every value's place in the file.

It converts YAML *nodes* (not plain Python objects) into frozen dataclasses by reading their type
hints, so every error reads `FILE:LINE:COL: probes[3].interval: invalid duration "5 s"`, and all
errors are collected rather than stopping at the first. It knows nothing of probed's own model
(config/model.py builds that on top of it).

Supported field types: str, int, float, bool, `X | None`, `tuple[X, ...]`, `Mapping[str, X]`,
nested frozen dataclasses, `Literal[...]`, and `Annotated[T, Converter(fn)]` for values parsed
from a scalar (config/schema.py). `Annotated[..., SECRET]` marks every string inside as a secret.
`${VAR}` in a string is replaced from the environment; every replaced value is a secret.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml

from probed.config.schema import SECRET, ConfigIssue, Converter, FieldError, value_kind

# libyaml's parser composes the same nodes, marks included, several times faster than PyYAML's
# pure-Python one; parsing is most of a large config's start-up.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Invalid(Exception):
    def __init__(self, node: yaml.Node, message: str, path: str) -> None:
        self.node, self.message, self.path = node, message, path


_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

class NodeConverter:
    """Converts YAML nodes into typed values, collecting every problem as a ConfigIssue."""

    def __init__(self, filename: str, environ: Mapping[str, str]) -> None:
        self.filename = filename
        self.environ = environ
        self.issues: list[ConfigIssue] = []
        self.secrets: set[str] = set()
        self._constructor = yaml.SafeLoader("")

    def issue(self, node: yaml.Node | None, path: str, message: str) -> None:
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node is not None else (1, 1)
        found = ConfigIssue(self.filename, line, col, path, message)
        if found not in self.issues:
            self.issues.append(found)

    def convert_or(self, node: yaml.Node | None, tp: Any, path: str, fallback: Any) -> Any:
        if node is None:
            return fallback
        try:
            return self.convert(node, tp, path)
        except Invalid as exc:
            self.issue(exc.node, exc.path, exc.message)
            return fallback

    def convert(self, node: yaml.Node, tp: Any, path: str, secret: bool = False) -> Any:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            base, *meta = typing.get_args(tp)
            secret = secret or any(m is SECRET for m in meta)
            for m in meta:
                if isinstance(m, Converter):
                    raw = self.scalar(node, object, path, secret=secret)
                    if raw is None and is_null(node):
                        raise Invalid(node, "expected a value, got null", path)
                    try:
                        return m.fn(raw)
                    except ValueError as exc:
                        raise Invalid(node, str(exc), path) from None
            return self.convert(node, base, path, secret)
        if origin in (types.UnionType, typing.Union):
            args = typing.get_args(tp)
            if type(None) in args and is_null(node):
                return None
            non_null = [a for a in args if a is not type(None)]
            problems = []
            for alt in non_null:
                try:
                    return self.convert(node, alt, path, secret)
                except Invalid as exc:
                    problems.append(exc.message)
            raise Invalid(node, problems[0] if len(problems) == 1 else " or ".join(problems), path)
        if origin is Literal:
            allowed = typing.get_args(tp)
            value = self.scalar(node, object, path, secret=secret)
            if value not in allowed:
                raise Invalid(node, f"invalid value {value!r} (one of: {', '.join(map(str, allowed))})", path)
            return value
        if origin in (tuple, list):
            if not isinstance(node, yaml.SequenceNode):
                raise Invalid(node, f"expected a list, got {node_kind(node)}", path)
            (item_tp, *_rest) = typing.get_args(tp) or (Any,)
            out, errors = [], []
            for i, item in enumerate(node.value):
                try:
                    out.append(self.convert(item, item_tp, f"{path}[{i}]", secret))
                except Invalid as exc:
                    errors.append(exc)
            self._raise_all(errors)
            return tuple(out)
        if origin in (dict, Mapping, typing.Mapping) or tp is dict:
            if not isinstance(node, yaml.MappingNode):
                raise Invalid(node, f"expected a mapping, got {node_kind(node)}", path)
            _key_tp, value_tp = typing.get_args(tp) or (str, Any)
            result: dict[str, Any] = {}
            errors = []
            for key_node, value_node in node.value:
                key = self.scalar(key_node, str, path)
                try:
                    result[key] = self.convert(value_node, value_tp, f"{path}.{key}", secret)
                except Invalid as exc:
                    errors.append(exc)
            self._raise_all(errors)
            return result
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self._dataclass(node, tp, path, secret)
        if tp is Any or tp is object:
            return self._construct(node)
        if tp in (str, int, float, bool):
            return self.scalar(node, tp, path, secret=secret)
        raise TypeError(f"config schema uses an unsupported type {tp!r} at {path}")

    def _dataclass(self, node: yaml.Node, cls: type, path: str, secret: bool) -> Any:
        if is_null(node):
            node = yaml.MappingNode("tag:yaml.org,2002:map", [], node.start_mark, node.end_mark)
        if not isinstance(node, yaml.MappingNode):
            raise Invalid(node, f"expected a mapping, got {node_kind(node)}", path)
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        items = self.mapping_items(node, path, allowed=tuple(fields), report=False)
        errors: list[Invalid] = []
        for key_node, _ in node.value:
            if key_node.value not in fields:
                errors.append(Invalid(key_node, unknown_key_message(key_node.value, tuple(fields)),
                                       f"{path}.{key_node.value}"))
        kwargs: dict[str, Any] = {}
        for fname, f in fields.items():
            if fname in items:
                try:
                    kwargs[fname] = self.convert(items[fname], hints[fname], f"{path}.{fname}", secret)
                except Invalid as exc:
                    errors.append(exc)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                errors.append(Invalid(node, f"missing required key '{fname}'", path))
        self._raise_all(errors)
        try:
            return cls(**kwargs)
        except FieldError as exc:
            target = items.get(exc.field_name, node)
            raise Invalid(target, str(exc), f"{path}.{exc.field_name}") from None
        except (ValueError, TypeError) as exc:
            raise Invalid(node, str(exc), path) from None

    def _raise_all(self, errors: list[Invalid]) -> None:
        """Report all but the last error directly and raise the last, so nothing is lost."""
        if not errors:
            return
        for exc in errors[:-1]:
            self.issue(exc.node, exc.path, exc.message)
        raise errors[-1]

    def mapping_items(self, node: yaml.Node, path: str, allowed: tuple[str, ...] | None,
                       report: bool = True) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            self.issue(node, path, f"expected a mapping, got {node_kind(node)}")
            return {}
        items: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if report and key in items:
                self.issue(key_node, _join(path, key), f"duplicate key '{key}'")
            if report and allowed is not None and key not in allowed:
                self.issue(key_node, _join(path, key), unknown_key_message(key, allowed))
            items[key] = value_node
        return items

    def _construct(self, node: yaml.Node) -> Any:
        return self._constructor.construct_object(node, deep=True)

    def scalar(self, node: yaml.Node, tp: Any, path: str, secret: bool = False) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise Invalid(node, f"expected {_type_word(tp)}, got {node_kind(node)}", path)
        value = self._construct(node)
        if isinstance(value, str):
            value = self._interpolate(value, node, path, secret)
            if tp in (int, float) and node.tag == "tag:yaml.org,2002:str" and value != node.value:
                # `${PORT}` resolved from the environment: re-read it as YAML would.
                value = yaml.safe_load(value)
        if tp is object:
            return value
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool) and node.style is None:
            # `port: 5432` where a string is expected: unambiguous, accept it as written.
            return node.value
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            shown = f'"{value}"' if isinstance(value, str) else repr(value)
            raise Invalid(node, f"expected {_type_word(tp)}, got {value_kind(value)} {shown}", path)
        return value

    def _interpolate(self, value: str, node: yaml.Node, path: str, secret: bool) -> str:
        if "$" not in value:
            if secret and value:
                self.secrets.add(value)
            return value
        missing: list[str] = []

        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            var = m.group(1)
            if var not in self.environ:
                missing.append(var)
                return ""
            resolved = self.environ[var]
            if resolved:
                self.secrets.add(resolved)
            return resolved

        out = _ENV_REF.sub(sub, value)
        if missing:
            raise Invalid(node, f"environment variable {missing[0]} is not set", path)
        if secret and out:
            self.secrets.add(out)
        return out


def merge(defaults: yaml.Node, node: yaml.Node) -> yaml.Node:
    """Deep-merge mapping nodes: the probe's own keys win; values keep their own marks."""
    if not (isinstance(defaults, yaml.MappingNode) and isinstance(node, yaml.MappingNode)):
        return node
    own = {k.value: (k, v) for k, v in node.value}
    merged = list(node.value)
    for key_node, default_value in defaults.value:
        if key_node.value in own:
            k, v = own[key_node.value]
            if isinstance(v, yaml.MappingNode) and isinstance(default_value, yaml.MappingNode):
                merged[merged.index((k, v))] = (k, merge(default_value, v))
        else:
            merged.append((key_node, default_value))
    return yaml.MappingNode(node.tag, merged, node.start_mark, node.end_mark)


def key_value(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return v  # type: ignore[no-any-return]
    return None


def unknown_key_message(key: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (expected one of: {', '.join(allowed)})"
    return f"unknown key '{key}'{hint}"


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "null" if is_null(node) else f'"{node.value}"'


def _type_word(tp: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp, "a value")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
