"""probes.yaml -> frozen dataclasses, validated completely before anything runs.

The schema *is* the dataclasses: each probe type declares a frozen dataclass for its section
(`http:`, `tcp:` ...) and this module converts YAML nodes into it by reading the type hints.
Working on YAML nodes rather than plain Python objects keeps each value's line and column, so
every error reads `FILE:LINE:COL: probes[3].interval: invalid duration "5 s"`, and all errors
are reported at once.

Supported field types: str, int, float, bool, `X | None`, `tuple[X, ...]`, `Mapping[str, X]`,
nested frozen dataclasses, `Literal[...]`, and `Annotated[T, Converter(fn)]` for values parsed
from a scalar (durations, sizes, regexps, status-code ranges). `Annotated[..., SECRET]` marks
every string inside as a secret for redaction.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from probed import heap

# --------------------------------------------------------------------------- scalar converters


class Converter:
    """Marks an Annotated field as parsed from a scalar by `fn` (which raises ValueError)."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn


class _Secret:
    def __repr__(self) -> str:
        return "SECRET"


SECRET = _Secret()

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """'500ms', '10s', '1m30s', '2h', '30d' -> seconds. Bare numbers are refused: 5 what?"""
    text = str(value)
    if isinstance(value, bool) or not isinstance(value, str) or not text:
        raise ValueError(f'invalid duration {value!r} (use a unit: "500ms", "10s", "1m", "1h", "1d")')
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if not m:
            raise ValueError(f'invalid duration "{text}" (use a unit: "500ms", "10s", "1m30s", "1h", "1d")')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return total


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def parse_size(value: Any) -> int:
    """'1MiB', '512KB', 4096 -> bytes."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid size {value} (must be >= 0)")
        return value
    m = _SIZE.fullmatch(str(value).strip())
    if not m:
        raise ValueError(f'invalid size "{value}" (e.g. 4096, "64KiB", "1MiB", "10MB")')
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])


def compile_regex(value: Any) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ValueError(f"expected a regular expression string, got {_kind(value)}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f'invalid regexp "{value}": {exc}') from None


Duration = Annotated[float, Converter(parse_duration)]
ByteSize = Annotated[int, Converter(parse_size)]
Regex = Annotated[re.Pattern[str], Converter(compile_regex)]

# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class ConfigError(Exception):
    """Raised with every problem found in a config file; str() lists them one per line."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class FieldError(ValueError):
    """Raised from a dataclass's __post_init__ to point the error at one of its fields."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field_name = field_name
        super().__init__(message)


class _Invalid(Exception):
    def __init__(self, node: yaml.Node, message: str, path: str) -> None:
        self.node, self.message, self.path = node, message, path


# --------------------------------------------------------------------------- the common schema

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Labels probed's own series use, plus Prometheus's target labels (which it would rename).
RESERVED_LABELS = frozenset({
    "probe", "type", "target", "reason", "phase", "window", "quantile", "result", "name", "le", "slo", "cause",
    "code", "job", "instance",
})
MIN_INTERVAL_S = 0.1
DEFAULT_INTERVAL_S = 30.0
DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class SchedulerSettings:
    max_concurrency: int = 1000
    """Probes in flight at once, all types together. Runs beyond it wait (and count as late)."""
    shutdown_grace: Duration = 5.0

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise FieldError("max_concurrency", "must be at least 1")


@dataclass(frozen=True)
class ProbeSpec:
    """One configured probe: the common fields plus its type's own section in `settings`."""

    name: str
    type: str
    target: str
    interval: float
    timeout: float
    labels: Mapping[str, str]
    settings: Any
    latency_threshold: float | None = None
    """SLI threshold: an attempt is "fast enough" when it succeeded within it (default: timeout)."""

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        """Equal fingerprints mean a reload can keep this probe's ring and running task."""
        return (self.type, self.target, self.interval, self.timeout, tuple(sorted(self.labels.items())),
                repr(self.settings), self.latency_threshold)


@dataclass(frozen=True)
class Config:
    path: str
    probes: tuple[ProbeSpec, ...]
    labels: Mapping[str, str]
    scheduler: SchedulerSettings
    secrets: frozenset[str]
    """Literal secret strings (interpolated env values, header values) for redaction."""

    def probe(self, name: str) -> ProbeSpec:
        for spec in self.probes:
            if spec.name == name:
                return spec
        raise KeyError(name)


# --------------------------------------------------------------------------- loading


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Parse and validate a whole config file. Raises ConfigError listing every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), 0, 0, "", f"cannot read config: {exc.strerror or exc}")]) from None
    return parse_config(text, str(path), os.environ if environ is None else environ)


def parse_config(text: str, filename: str, environ: Mapping[str, str]) -> Config:
    with heap.paused():  # ~100 objects per probe, nearly all kept: collecting meanwhile finds nothing
        return _Loader(filename, environ).load(text)


_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOP_KEYS = ("defaults", "labels", "probes", "scheduler")
_COMMON_KEYS = ("name", "type", "target", "interval", "timeout", "labels", "latency_threshold")


# libyaml's parser composes the same nodes, marks included, about 4x faster than PyYAML's pure-Python
# one: 10,000 probes parse in ~1 s instead of ~4 s, which is most of start-up.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader:
    def __init__(self, filename: str, environ: Mapping[str, str]) -> None:
        self.filename = filename
        self.environ = environ
        self.issues: list[ConfigIssue] = []
        self.secrets: set[str] = set()
        self._constructor = yaml.SafeLoader("")

    # -- reporting
    def issue(self, node: yaml.Node | None, path: str, message: str) -> None:
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node is not None else (1, 1)
        found = ConfigIssue(self.filename, line, col, path, message)
        if found not in self.issues:
            self.issues.append(found)

    def load(self, text: str) -> Config:
        from probed.probes import KIND_NAMES, get_kind

        try:
            root = yaml.compose(text, Loader=_YAML_LOADER)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            raise ConfigError([ConfigIssue(self.filename, line, col, "", f"YAML syntax: {exc.problem}")]) from None
        except yaml.YAMLError as exc:
            raise ConfigError([ConfigIssue(self.filename, 0, 0, "", f"YAML: {exc}")]) from None
        if root is None:
            raise ConfigError([ConfigIssue(self.filename, 1, 1, "", "the file is empty: expected `probes:`")])
        if not isinstance(root, yaml.MappingNode):
            raise ConfigError([ConfigIssue(self.filename, 1, 1, "", "expected a mapping with `probes:` at the top")])

        top = self._mapping_items(root, "", allowed=_TOP_KEYS)
        labels = self._labels(top.get("labels"), "labels")
        scheduler = self._convert_or(top.get("scheduler"), SchedulerSettings, "scheduler", SchedulerSettings())
        defaults = top.get("defaults")
        if defaults is not None:
            self._mapping_items(defaults, "defaults", allowed=(*_COMMON_KEYS[1:], *KIND_NAMES))

        probes: list[ProbeSpec] = []
        probes_node = top.get("probes")
        if probes_node is None:
            self.issue(root, "", "missing required key 'probes'")
        elif not isinstance(probes_node, yaml.SequenceNode):
            self.issue(probes_node, "probes", f"expected a list of probes, got {_node_kind(probes_node)}")
        else:
            seen: dict[str, yaml.Node] = {}
            for i, node in enumerate(probes_node.value):
                path = f"probes[{i}]"
                spec = self._probe(node, defaults, path, KIND_NAMES, get_kind, labels)
                if spec is None:
                    continue
                if spec.name in seen:
                    first = seen[spec.name]
                    self.issue(_key_value(node, "name") or node, f"{path}.name",
                               f'duplicate probe name "{spec.name}" (first at line {first.start_mark.line + 1})')
                    continue
                seen[spec.name] = _key_value(node, "name") or node
                probes.append(spec)

        if self.issues:
            raise ConfigError(sorted(self.issues, key=lambda i: (i.line, i.column)))
        return Config(self.filename, tuple(probes), labels, scheduler, frozenset(self.secrets))

    # -- one probe
    def _probe(self, node: yaml.Node, defaults: yaml.Node | None, path: str,
               kind_names: tuple[str, ...], get_kind: Callable[[str], Any],
               global_labels: Mapping[str, str]) -> ProbeSpec | None:
        if not isinstance(node, yaml.MappingNode):
            self.issue(node, path, f"expected a probe mapping, got {_node_kind(node)}")
            return None
        errors_before = len(self.issues)
        own = self._mapping_items(node, path, allowed=(*_COMMON_KEYS, *kind_names))
        type_node = own.get("type") or (_key_value(defaults, "type") if defaults is not None else None)
        if type_node is None:
            self.issue(node, path, f"missing required key 'type' (one of: {', '.join(kind_names)})")
            return None
        type_name = self._scalar(type_node, str, f"{path}.type")
        if type_name not in kind_names:
            self.issue(type_node, f"{path}.type", f"unknown probe type {type_name!r} (one of: {', '.join(kind_names)})")
            return None
        kind = get_kind(type_name)
        for other in kind_names:
            if other != type_name and other in own:
                self.issue(own[other], f"{path}.{other}",
                           f"a `{other}:` section does not belong to a probe of type {type_name}")
        merged = _merge(defaults, node) if defaults is not None else node
        items = self._mapping_items(merged, path, allowed=None)

        name = self._required(items, node, "name", str, path)
        if isinstance(name, str) and not NAME_RE.match(name):
            self.issue(items["name"], f"{path}.name",
                       f'invalid probe name "{name}" (letters, digits and _.:/@-, at most 128 characters)')
        target_node = items.get("target")
        if target_node is None and kind.derive_target is None:
            self.issue(node, path, "missing required key 'target'")
            target: Any = None
        else:
            target = self._scalar(target_node, str, f"{path}.target") if target_node is not None else None

        settings_node = items.get(type_name)
        settings = self._convert_or(settings_node, kind.config_cls, f"{path}.{type_name}", None)
        if settings is None and settings_node is None:
            try:
                settings = kind.config_cls()
            except TypeError:
                self.issue(node, path, f"missing required section '{type_name}:'")

        if target is None and kind.derive_target is not None and settings is not None:
            target = kind.derive_target(settings)
        if isinstance(target, str) and kind.validate_target is not None:
            try:
                kind.validate_target(target, settings)
            except ValueError as exc:
                self.issue(target_node or node, f"{path}.target", str(exc))

        interval = self._duration_field(own, items, "interval", path)
        explicit_timeout = "timeout" in items
        timeout = self._duration_field(own, items, "timeout", path)
        if interval is None:
            interval = kind.default_interval or DEFAULT_INTERVAL_S
        if interval < MIN_INTERVAL_S:
            self.issue(items.get("interval"), f"{path}.interval",
                       f"interval {_fmt_s(interval)} is below the minimum of {_fmt_s(MIN_INTERVAL_S)}")
        if timeout is None:
            timeout = min(kind.default_timeout or DEFAULT_TIMEOUT_S, interval)
        elif timeout <= 0:
            self.issue(items.get("timeout"), f"{path}.timeout", "timeout must be greater than 0")
        elif timeout > interval and explicit_timeout:
            self.issue(items.get("timeout"), f"{path}.timeout",
                       f"timeout {_fmt_s(timeout)} exceeds interval {_fmt_s(interval)}")
        latency_threshold = None
        if "latency_threshold" in items:
            latency_threshold = self._convert_or(items["latency_threshold"], Duration,
                                                 f"{path}.latency_threshold", None)
        labels = self._labels(items.get("labels"), f"{path}.labels")
        clash = sorted(set(labels) & set(global_labels))
        if clash:
            self.issue(items.get("labels"), f"{path}.labels", f"label {clash[0]!r} is already a global label")

        if len(self.issues) > errors_before or not isinstance(name, str) or not isinstance(target, str):
            return None
        return ProbeSpec(name=name, type=type_name, target=target, interval=interval, timeout=timeout,
                         labels=labels, settings=settings, latency_threshold=latency_threshold)

    def _duration_field(self, own: dict[str, yaml.Node], items: dict[str, yaml.Node], key: str,
                        path: str) -> float | None:
        node = items.get(key)
        if node is None:
            return None
        value: float | None = self._convert_or(node, Duration, f"{path}.{key}", None)
        return value

    def _required(self, items: dict[str, yaml.Node], node: yaml.Node, key: str, tp: type, path: str) -> Any:
        if key not in items:
            self.issue(node, path, f"missing required key '{key}'")
            return None
        return self._convert_or(items[key], tp, f"{path}.{key}", None)

    def _labels(self, node: yaml.Node | None, path: str) -> dict[str, str]:
        if node is None:
            return {}
        labels = self._convert_or(node, Mapping[str, str], path, {})
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            key = key_node.value
            if not LABEL_NAME_RE.match(key):
                self.issue(key_node, f"{path}.{key}", f"invalid label name {key!r} (must match [a-zA-Z_][a-zA-Z0-9_]*)")
            elif key in RESERVED_LABELS or key.startswith("__"):
                self.issue(key_node, f"{path}.{key}", f"label name {key!r} is reserved by probed")
        return dict(labels)

    # -- generic conversion
    def _convert_or(self, node: yaml.Node | None, tp: Any, path: str, fallback: Any) -> Any:
        if node is None:
            return fallback
        try:
            return self.convert(node, tp, path)
        except _Invalid as exc:
            self.issue(exc.node, exc.path, exc.message)
            return fallback

    def convert(self, node: yaml.Node, tp: Any, path: str, secret: bool = False) -> Any:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            base, *meta = typing.get_args(tp)
            secret = secret or any(m is SECRET for m in meta)
            for m in meta:
                if isinstance(m, Converter):
                    raw = self._scalar(node, object, path, secret=secret)
                    if raw is None and _is_null(node):
                        raise _Invalid(node, "expected a value, got null", path)
                    try:
                        return m.fn(raw)
                    except ValueError as exc:
                        raise _Invalid(node, str(exc), path) from None
            return self.convert(node, base, path, secret)
        if origin in (types.UnionType, typing.Union):
            args = typing.get_args(tp)
            if type(None) in args and _is_null(node):
                return None
            non_null = [a for a in args if a is not type(None)]
            problems = []
            for alt in non_null:
                try:
                    return self.convert(node, alt, path, secret)
                except _Invalid as exc:
                    problems.append(exc.message)
            raise _Invalid(node, problems[0] if len(problems) == 1 else " or ".join(problems), path)
        if origin is Literal:
            allowed = typing.get_args(tp)
            value = self._scalar(node, object, path, secret=secret)
            if value not in allowed:
                raise _Invalid(node, f"invalid value {value!r} (one of: {', '.join(map(str, allowed))})", path)
            return value
        if origin in (tuple, list):
            if not isinstance(node, yaml.SequenceNode):
                raise _Invalid(node, f"expected a list, got {_node_kind(node)}", path)
            (item_tp, *_rest) = typing.get_args(tp) or (Any,)
            out, errors = [], []
            for i, item in enumerate(node.value):
                try:
                    out.append(self.convert(item, item_tp, f"{path}[{i}]", secret))
                except _Invalid as exc:
                    errors.append(exc)
            self._raise_all(errors)
            return tuple(out)
        if origin in (dict, Mapping, typing.Mapping) or tp is dict:
            if not isinstance(node, yaml.MappingNode):
                raise _Invalid(node, f"expected a mapping, got {_node_kind(node)}", path)
            _key_tp, value_tp = typing.get_args(tp) or (str, Any)
            result: dict[str, Any] = {}
            errors = []
            for key_node, value_node in node.value:
                key = self._scalar(key_node, str, path)
                try:
                    result[key] = self.convert(value_node, value_tp, f"{path}.{key}", secret)
                except _Invalid as exc:
                    errors.append(exc)
            self._raise_all(errors)
            return result
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self._dataclass(node, tp, path, secret)
        if tp is Any or tp is object:
            return self._construct(node)
        if tp in (str, int, float, bool):
            return self._scalar(node, tp, path, secret=secret)
        raise TypeError(f"config schema uses an unsupported type {tp!r} at {path}")

    def _dataclass(self, node: yaml.Node, cls: type, path: str, secret: bool) -> Any:
        if _is_null(node):
            node = yaml.MappingNode("tag:yaml.org,2002:map", [], node.start_mark, node.end_mark)
        if not isinstance(node, yaml.MappingNode):
            raise _Invalid(node, f"expected a mapping, got {_node_kind(node)}", path)
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        items = self._mapping_items(node, path, allowed=tuple(fields), report=False)
        errors: list[_Invalid] = []
        for key_node, _ in node.value:
            if key_node.value not in fields:
                errors.append(_Invalid(key_node, _unknown_key_message(key_node.value, tuple(fields)),
                                       f"{path}.{key_node.value}"))
        kwargs: dict[str, Any] = {}
        for fname, f in fields.items():
            if fname in items:
                try:
                    kwargs[fname] = self.convert(items[fname], hints[fname], f"{path}.{fname}", secret)
                except _Invalid as exc:
                    errors.append(exc)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                errors.append(_Invalid(node, f"missing required key '{fname}'", path))
        self._raise_all(errors)
        try:
            return cls(**kwargs)
        except FieldError as exc:
            target = items.get(exc.field_name, node)
            raise _Invalid(target, str(exc), f"{path}.{exc.field_name}") from None
        except (ValueError, TypeError) as exc:
            raise _Invalid(node, str(exc), path) from None

    def _raise_all(self, errors: list[_Invalid]) -> None:
        """Report all but the last error directly and raise the last, so nothing is lost."""
        if not errors:
            return
        for exc in errors[:-1]:
            self.issue(exc.node, exc.path, exc.message)
        raise errors[-1]

    def _mapping_items(self, node: yaml.Node, path: str, allowed: tuple[str, ...] | None,
                       report: bool = True) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            self.issue(node, path, f"expected a mapping, got {_node_kind(node)}")
            return {}
        items: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if report and key in items:
                self.issue(key_node, _join(path, key), f"duplicate key '{key}'")
            if report and allowed is not None and key not in allowed:
                self.issue(key_node, _join(path, key), _unknown_key_message(key, allowed))
            items[key] = value_node
        return items

    def _construct(self, node: yaml.Node) -> Any:
        return self._constructor.construct_object(node, deep=True)

    def _scalar(self, node: yaml.Node, tp: Any, path: str, secret: bool = False) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise _Invalid(node, f"expected {_type_word(tp)}, got {_node_kind(node)}", path)
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
            raise _Invalid(node, f"expected {_type_word(tp)}, got {_kind(value)} {shown}", path)
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
            raise _Invalid(node, f"environment variable {missing[0]} is not set", path)
        if secret and out:
            self.secrets.add(out)
        return out


def _merge(defaults: yaml.Node, node: yaml.Node) -> yaml.Node:
    """Deep-merge mapping nodes: the probe's own keys win; values keep their own marks."""
    if not (isinstance(defaults, yaml.MappingNode) and isinstance(node, yaml.MappingNode)):
        return node
    own = {k.value: (k, v) for k, v in node.value}
    merged = list(node.value)
    for key_node, default_value in defaults.value:
        if key_node.value in own:
            k, v = own[key_node.value]
            if isinstance(v, yaml.MappingNode) and isinstance(default_value, yaml.MappingNode):
                merged[merged.index((k, v))] = (k, _merge(default_value, v))
        else:
            merged.append((key_node, default_value))
    return yaml.MappingNode(node.tag, merged, node.start_mark, node.end_mark)


def _key_value(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return v  # type: ignore[no-any-return]
    return None


def _unknown_key_message(key: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (expected one of: {', '.join(allowed)})"
    return f"unknown key '{key}'{hint}"


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "null" if _is_null(node) else f'"{node.value}"'


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            type(None): "null"}.get(type(value), type(value).__name__)


def _type_word(tp: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp, "a value")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


__all__ = [
    "SECRET", "ByteSize", "Config", "ConfigError", "ConfigIssue", "Converter", "Duration", "FieldError",
    "ProbeSpec", "Regex", "SchedulerSettings", "compile_regex", "field", "load_config", "parse_config",
    "parse_duration", "parse_size",
]
