"""A YAML-to-dataclass engine that keeps every value's place in the file.

It converts YAML *nodes* (not plain Python objects) into frozen dataclasses by reading their type
hints, so every error reads `FILE:LINE:COL: probes[3].interval: invalid duration "5 s"`, and all
errors are collected rather than stopping at the first. It knows nothing of probed's own model
(config/model.py builds that on top of it).

Supported field types: str, int, float, bool, `X | None`, `tuple[X, ...]`, `Mapping[str, X]`,
nested frozen dataclasses, `Literal[...]`, and `Annotated[T, Converter(fn)]` for values parsed
from a scalar (config/schema.py). `Annotated[..., SECRET]` marks every string inside as a secret.

`${VAR}` in a string is replaced from the environment, `${VAR:-default}` too but with `default`
when VAR is unset or empty (as in a shell), and `$$` is a literal `$`. Every value read from the
environment is a secret, except where the converter is told otherwise (label values: they are
exported as labels by design). A message about an interpolated value shows the text as written
(`"${API_TOKEN}"`), never the value.

Hostile input costs little: config/source.py reads and composes the YAML within limits first.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Container, Iterator, Mapping
from typing import Any

import yaml

from probed.config.nodes import (
    ANNOTATED,
    ANY,
    DATACLASS,
    LITERAL,
    MAPPING,
    NULL_TAG,
    PLANS,
    SCALAR,
    SCALAR_CONSTRUCTORS,
    SEQUENCE,
    STR_TAG,
    UNION,
    dataclass_plan,
    env_number,
    is_null,
    join,
    node_kind,
    plan,
    shown,
    tag_word,
    type_word,
    unknown_key_message,
)
from probed.config.schema import (
    MAX_INT,
    MAX_SHOWN_ISSUES,
    ConfigIssue,
    FieldError,
    clip,
    value_kind,
)
from probed.redact import MIN_SECRET_LENGTH, redact


class Invalid(Exception):
    def __init__(self, node: yaml.Node, message: str, path: str) -> None:
        self.node, self.message, self.path = node, message, path


_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")
ENV_REF = _ENV_REF
"""`${VAR}` and `${VAR:-default}` references (group 1: the name, group 2: the default)."""
PLACEHOLDER_PREFIX = "placeholder-"


# --------------------------------------------------------------------------- converting


class NodeConverter:
    """Converts YAML nodes into typed values, collecting every problem as a ConfigIssue.

    `placeholders`: an unset variable is not an error but a placeholder, and an error about a
    value that holds one is dropped (the field keeps its default): `probed check --no-env`.
    """

    def __init__(self, filename: str, environ: Mapping[str, str], placeholders: bool = False) -> None:
        self.filename = filename
        self.environ = environ
        self.placeholders = placeholders
        self.issues: list[ConfigIssue] = []
        self._seen: set[ConfigIssue] = set()
        self.secrets: set[str] = set()
        self.unit_secrets: set[str] | None = None
        """While a unit (a probe) is converted: the secrets found in it."""
        self.public = False
        """While set, values read from the environment are not recorded as secrets (label values)."""
        self._interpolated: dict[int, tuple[yaml.Node, str, list[tuple[str, str]]]] = {}
        """id(node) -> (node, resolved text, [(variable, value)]) for scalars that used the environment."""
        self._placeholder_nodes: set[int] = set()
        self._constructor = yaml.SafeLoader("")

    def issue(self, node: yaml.Node | None, path: str, message: str) -> None:
        where = self.place(node, path, message)
        if where is not None:
            self.issue_at(*where)

    def place(self, node: yaml.Node | None, path: str, message: str) -> tuple[int, int, str, str] | None:
        """(line, column, path, message) of the issue `issue()` would record now (None: about a
        placeholder), to record later with `issue_at()` once the node is gone."""
        if node is not None and id(node) in self._placeholder_nodes:
            return None
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node is not None else (1, 1)
        if node is not None and id(node) in self._interpolated:
            message = self._mask(node, message)
        return line, col, path, message

    def issue_at(self, line: int, column: int, path: str, message: str) -> None:
        found = ConfigIssue(self.filename, line, column, path, message)
        if found not in self._seen:
            self._seen.add(found)
            self.issues.append(found)

    def forget_nodes(self) -> None:
        """Drop what is remembered about the nodes converted so far (which used the environment),
        once no issue can be reported about them any more: a unit's nodes can then be freed, and
        their ids are never mistaken for those of the nodes that reuse them."""
        if self._interpolated:
            self._interpolated.clear()
            self._placeholder_nodes.clear()

    def is_placeholder(self, node: yaml.Node | None) -> bool:
        return node is not None and id(node) in self._placeholder_nodes

    def _mask(self, node: yaml.Node, message: str) -> str:
        """Show the text as written (`${API_TOKEN}`) where a message quotes an interpolated value."""
        _, resolved, used = self._interpolated[id(node)]
        for value, written in [(resolved, str(node.value)), *((v, f"${{{var}}}") for var, v in used)]:
            if not value:
                continue
            for quoted, as_written in ((f'"{value}"', f'"{written}"'), (repr(value), repr(written))):
                message = message.replace(quoted, as_written)
            if len(value) >= MIN_SECRET_LENGTH:
                message = message.replace(value, written)
        return message

    def record_secret(self, value: str) -> None:
        if value:
            self.secrets.add(value)
            if self.unit_secrets is not None:
                self.unit_secrets.add(value)

    def convert_or(self, node: yaml.Node | None, tp: Any, path: str, fallback: Any) -> Any:
        if node is None:
            return fallback
        if tp is str and node.__class__ is yaml.ScalarNode and node.tag == STR_TAG and "$" not in node.value:
            return node.value  # what scalar() returns for plain text, without its calls
        try:
            return self.convert(node, tp, path)
        except Invalid as exc:
            self.issue(exc.node, exc.path, exc.message)
            return fallback

    def convert(self, node: yaml.Node, tp: Any, path: str, secret: bool = False) -> Any:
        how = PLANS.get(tp) or plan(tp)
        kind = how[0]
        if kind is SCALAR:
            return self.scalar(node, tp, path, secret=secret)
        if kind is ANNOTATED:
            _, base, is_secret, finite, converter = how
            secret = secret or is_secret
            if converter is not None:
                raw = self.scalar(node, object, path, secret=secret)
                if raw is None and is_null(node):
                    raise Invalid(node, "expected a value, got null", path)
                try:
                    return converter.fn(raw)
                except ValueError as exc:
                    raise Invalid(node, str(exc), path) from None
            if base is float and not finite:
                return self.scalar(node, float, path, secret=secret, finite=False)
            return self.convert(node, base, path, secret)
        if kind is UNION:
            _, nullable, non_null = how
            if nullable and is_null(node):
                return None
            if len(non_null) == 1:  # `X | None`: X's own error, with its own place (a nested field's)
                return self.convert(node, non_null[0], path, secret)
            problems = []
            for alt in non_null:
                try:
                    return self.convert(node, alt, path, secret)
                except Invalid as exc:
                    problems.append(exc.message)
            raise Invalid(node, problems[0] if len(problems) == 1 else " or ".join(problems), path)
        if kind is LITERAL:
            allowed = how[1]
            value = self.scalar(node, object, path, secret=secret)
            if not isinstance(value, str | int | float | bool | None) or value not in allowed:
                raise Invalid(node, f"invalid value {clip(repr(value))} (one of: {', '.join(map(str, allowed))})", path)
            return value
        if kind is SEQUENCE:
            if not isinstance(node, yaml.SequenceNode):
                raise Invalid(node, f"expected a list, got {node_kind(node)}", path)
            item_tp = how[1]
            out, errors = [], []
            for i, item in enumerate(node.value):
                try:
                    out.append(self.convert(item, item_tp, f"{path}[{i}]", secret))
                except Invalid as exc:
                    if not self.is_placeholder(exc.node):
                        errors.append(exc)
            self._raise_all(errors)
            return tuple(out)
        if kind is MAPPING:
            value_tp = how[1]
            result: dict[str, Any] = {}
            errors = []
            plain = value_tp is str and not secret
            for key, _key_node, value_node in self.mapping_entries(node, path):
                if plain and value_node.__class__ is yaml.ScalarNode and value_node.tag == STR_TAG \
                        and "$" not in value_node.value:
                    result[key] = value_node.value  # as in convert_or: labels are mostly this
                    continue
                try:
                    result[key] = self.convert(value_node, value_tp, f"{path}.{key}", secret)
                except Invalid as exc:
                    if not self.is_placeholder(exc.node):
                        errors.append(exc)
            self._raise_all(errors)
            return result
        if kind is DATACLASS:
            return self._dataclass(node, tp, path, secret)
        if kind is ANY:
            return self._construct(node, path)
        raise TypeError(f"config schema uses an unsupported type {tp!r} at {path}")

    def _dataclass(self, node: yaml.Node, cls: type, path: str, secret: bool) -> Any:
        if is_null(node):
            node = yaml.MappingNode("tag:yaml.org,2002:map", [], node.start_mark, node.end_mark)
        hints, fields, required_names = dataclass_plan(cls)
        items: dict[str, yaml.Node] = {}
        errors: list[Invalid] = []
        for key, key_node, value_node in self.mapping_entries(node, path):
            if key in fields:
                items[key] = value_node
            else:
                errors.append(Invalid(key_node, unknown_key_message(key, fields), f"{path}.{key}"))
        kwargs: dict[str, Any] = {}
        for fname in fields:
            required = fname in required_names
            if fname in items:
                try:
                    kwargs[fname] = self.convert(items[fname], hints[fname], f"{path}.{fname}", secret)
                except Invalid as exc:
                    if not (self.is_placeholder(exc.node) and not required):
                        errors.append(exc)  # a placeholder's field keeps its default (--no-env)
            elif required:
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

    def mapping_entries(self, node: yaml.Node, path: str) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping with string keys; reports duplicate and
        non-string keys (YAML says duplicates are errors: the last one does not silently win)."""
        if not isinstance(node, yaml.MappingNode):
            raise Invalid(node, f"expected a mapping, got {node_kind(node)}", path)
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = self.entry_key(key_node, path, seen)
            if key is not None:
                seen.add(key)
                yield key, key_node, value_node

    def entry_key(self, key_node: yaml.Node, path: str, seen: Container[str]) -> str | None:
        """A mapping key as a string; None, reported, if it is not a string or is in `seen` already."""
        if key_node.__class__ is yaml.ScalarNode and key_node.tag != NULL_TAG and key_node.value not in seen:
            return key_node.value  # type: ignore[no-any-return]  # the usual case, first
        if not isinstance(key_node, yaml.ScalarNode) or is_null(key_node):
            self.issue(key_node, path, f"a key must be a string, got {node_kind(key_node)}")
            return None
        key = str(key_node.value)
        if key in seen:
            self.issue(key_node, join(path, key), f"duplicate key '{key}'")
            return None
        return key

    def mapping_items(self, node: yaml.Node, path: str, allowed: tuple[str, ...] | None) -> dict[str, yaml.Node]:
        """The entries of a mapping by key; with `allowed`, unknown keys are reported too."""
        if not isinstance(node, yaml.MappingNode):
            self.issue(node, path, f"expected a mapping, got {node_kind(node)}")
            return {}
        items: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:  # mapping_entries, inline: this runs for every probe
            if key_node.__class__ is yaml.ScalarNode and key_node.tag != NULL_TAG and key_node.value not in items:
                key = key_node.value  # entry_key's usual case, without its call
            elif (key := self.entry_key(key_node, path, items)) is None:
                continue
            if allowed is not None and key not in allowed:
                self.issue(key_node, join(path, key), unknown_key_message(key, allowed))
            items[key] = value_node
        return items

    def _construct(self, node: yaml.Node, path: str) -> Any:
        constructor = self._constructor
        try:
            build = SCALAR_CONSTRUCTORS.get(node.tag) if node.__class__ is yaml.ScalarNode else None
            if build is not None:
                return build(constructor, node)
            try:
                return constructor.construct_object(node, deep=True)
            finally:
                # PyYAML's constructor keeps every node it built (all of a config's, which the loader
                # otherwise lets go probe by probe), and after an error it keeps the node it failed on
                # as "recursive", which misreported the same default in every later probe.
                constructor.constructed_objects.clear()
                constructor.recursive_objects.clear()
        except (ValueError, OverflowError, TypeError, yaml.YAMLError) as exc:
            if isinstance(exc, ValueError) and "limit" in str(exc) and "digits" in str(exc):
                message = "integer too large (more than 4300 digits)"
            elif isinstance(exc, yaml.MarkedYAMLError):
                message = f"cannot read this value: {exc.problem}"
            elif isinstance(node, yaml.ScalarNode):  # `!!int "many"`
                message = f'invalid {tag_word(node).split(" ", 1)[-1]} "{clip(str(node.value))}"'
            else:
                message = f"cannot read {tag_word(node)}: {clip(str(exc))}"
            raise Invalid(node, message, path) from None

    def scalar(self, node: yaml.Node, tp: Any, path: str, secret: bool = False, finite: bool = True) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise Invalid(node, f"expected {type_word(tp)}, got {node_kind(node)}", path)
        if node.tag == STR_TAG:
            value = node.value  # what PyYAML's str constructor returns
            if (tp is str or tp is object) and "$" not in value:  # the usual case: nothing more to do
                if secret:
                    self.record_secret(value)
                return value
        elif "${" in str(node.value):
            # `!!int "${PORT}"`: interpolate first, then read the text as the tag says.
            text = self._interpolate(str(node.value), node, path, secret)
            value = self._construct(yaml.ScalarNode(node.tag, text, node.start_mark, node.end_mark, node.style), path)
        else:
            value = self._construct(node, path)
        if isinstance(value, str):
            value = self._interpolate(value, node, path, secret)
            if tp in (int, float) and id(node) in self._interpolated:
                value = env_number(value, tp)  # `${PORT}` from the environment: read as a number
        if tp is object:
            return value
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value) if abs(value) <= MAX_INT else math.inf
        if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool) and node.style is None:
            # `port: 5432` where a string is expected: unambiguous, accept it as written.
            return node.value
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise Invalid(node, f"expected {type_word(tp)}, got {value_kind(value)} {shown(value)}", path)
        if tp is int and not -MAX_INT - 1 <= value <= MAX_INT:
            raise Invalid(node, "integer out of range (at most 2^63-1)", path)
        if tp is float and finite and not math.isfinite(value):
            raise Invalid(node, f"expected a finite number, got {value}", path)
        return value

    def _interpolate(self, value: str, node: yaml.Node, path: str, secret: bool) -> str:
        if "$" not in value:
            if secret:
                self.record_secret(value)
            return value
        missing: list[str] = []
        malformed: list[str] = []
        used: list[tuple[str, str]] = []
        placeholder = False

        def sub(m: re.Match[str]) -> str:
            nonlocal placeholder
            if m.group(0) == "$$":
                return "$"
            var, default = m.group(1), m.group(2)
            if var is None:
                end = value.find("}", m.start())
                malformed.append(value[m.start():end + 1 if end >= 0 else m.start() + 20])
                return ""
            resolved = self.environ.get(var)
            if default is not None and not resolved:
                return default  # written in the file: not a secret of itself
            if resolved is None:
                if not self.placeholders:
                    missing.append(var)
                    return ""
                placeholder = True
                resolved = f"{PLACEHOLDER_PREFIX}{var}"
            used.append((var, resolved))
            if not self.public:
                self.record_secret(resolved)
            return resolved

        out = _ENV_REF.sub(sub, value)
        if used or missing:
            self._interpolated[id(node)] = (node, out, used)
        if placeholder:
            self._placeholder_nodes.add(id(node))
        if malformed:
            raise Invalid(node, f'invalid variable reference "{malformed[0]}" (write ${{VAR}} or ${{VAR:-default}}; '
                                f'$$ for a literal $)', path)
        if missing:
            raise Invalid(node, f"environment variable {missing[0]} is not set", path)
        if secret:
            self.record_secret(out)
        return out

    def final_issues(self) -> list[ConfigIssue]:
        """Every issue in file order; the shown ones pass through redaction once more, in case a
        secret reached a message through another node (a dataclass's own check, say)."""
        ordered = sorted(self.issues, key=lambda i: (i.line, i.column))
        for i, found in enumerate(ordered[:MAX_SHOWN_ISSUES]):
            masked = redact(found.message, self.secrets)
            if masked != found.message:
                ordered[i] = dataclasses.replace(found, message=masked)
        return ordered
