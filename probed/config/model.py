"""probed's config model (probes.yaml) and the rules that build it, on the generic loader.

The probe types are not imported here: the caller passes the table of types
(`probed.probes.KINDS`), so config sits below the probe packages and never reaches up to them.
`probed.runtime.probeset.load_config` is the usual entry point; it passes that table.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import yaml

from probed.config.blackbox import BlackboxModule, convert_modules
from probed.config.loader import Invalid, NodeConverter, key_value, merge, node_kind
from probed.config.schema import ConfigError, ConfigIssue, Duration, FieldError, clip, read_small_file
from probed.config.slo import SloSection, SloSpec, resolve
from probed.config.source import MAX_FILE_BYTES, compose, decode

# Matched with fullmatch: `$` alone would accept "abc\n" (it matches before a final newline).
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Labels probed's own series use, plus Prometheus's target labels (which it would rename).
RESERVED_LABELS = frozenset({
    "probe", "type", "target", "reason", "phase", "window", "quantile", "result", "name", "le", "slo", "cause",
    "code", "job", "instance",
})
SLO_RESERVED_LABELS = frozenset({"service", "severity"})
"""Set by the SLO's own `service:` and by the generated alerts."""
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


Profile = Literal["blackbox", "standard", "full"]


@dataclass(frozen=True)
class MetricsSettings:
    """What `/metrics` carries per probe. Profiles nest: blackbox's own series; + probed's
    essentials (attempts, failures by reason, staleness, p50/p99 over 5m); + everything (the
    latency histogram, every quantile and window, phases and values under probed's names, skips).
    The switches add or remove one group whatever the profile."""

    profile: Profile = "standard"
    histogram: bool | None = None
    """probed_probe_duration_seconds (a classic histogram: 21 series per probe)."""
    percentiles: bool | None = None
    """Every quantile over every window (12 series) instead of p50 and p99 over 5m."""
    phases: bool | None = None
    """probed_probe_phase_seconds for every type (http's phases are always in probe_http_duration_seconds)."""
    values: bool | None = None
    """probed_probe_value: every numeric fact, also those with a dedicated (blackbox) name."""
    skips: bool | None = None
    """probed_probe_skipped_runs_total per probe (probed_scheduler_skipped_runs_total is always there)."""

    def wants(self, switch: str) -> bool:
        """Whether a switchable group is on: its switch if set, else whether the profile is full."""
        value: bool | None = getattr(self, switch)
        return self.profile == "full" if value is None else value


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
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    """The secrets in this probe's own settings (its `${VAR}` values, header values, passwords)."""

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        """Equal fingerprints mean a reload can keep this probe's running task (and its ring).

        It covers the probe's own secrets by digest: some are kept out of repr() (passwords), and a
        rotated one must restart this probe, and only this one.
        """
        digest = hashlib.sha256("\0".join(sorted(self.secrets)).encode()).hexdigest()
        return (self.type, self.target, self.interval, self.timeout, tuple(sorted(self.labels.items())),
                repr(self.settings), self.latency_threshold, digest)


@dataclass(frozen=True)
class Config:
    path: str
    probes: tuple[ProbeSpec, ...]
    labels: Mapping[str, str]
    scheduler: SchedulerSettings
    secrets: frozenset[str]
    """Literal secret strings (interpolated env values, header values) for redaction."""
    slos: tuple[SloSpec, ...] = ()
    metrics: MetricsSettings = MetricsSettings()
    modules: Mapping[str, BlackboxModule] = field(default_factory=dict)
    """blackbox_exporter modules, for `/probe?module=&target=` (probed/blackbox/)."""

    def probe(self, name: str) -> ProbeSpec:
        for spec in self.probes:
            if spec.name == name:
                return spec
        raise KeyError(name)


class KindSchema(Protocol):
    """What the loader needs to know of a probe type (`probed.probes.ProbeKind` is one)."""

    @property
    def config_cls(self) -> type: ...
    @property
    def validate_target(self) -> Callable[[str, Any], None] | None: ...
    @property
    def derive_target(self) -> Callable[[Any], str] | None: ...
    @property
    def default_interval(self) -> float | None: ...
    @property
    def default_timeout(self) -> float | None: ...


class KindTable(Protocol):
    """The probe types a config may name, in the order docs and error messages list them."""

    @property
    def names(self) -> tuple[str, ...]: ...
    def get(self, name: str) -> KindSchema: ...


# --------------------------------------------------------------------------- loading


def load_config(path: str | os.PathLike[str], kinds: KindTable, environ: Mapping[str, str] | None = None,
                placeholders: bool = False) -> Config:
    """Parse and validate a whole config file. Raises ConfigError listing every problem.

    `placeholders`: unset variables are placeholders, not errors (see NodeConverter).
    """
    filename = os.fspath(path)
    try:
        data = read_small_file(path, MAX_FILE_BYTES)
    except ValueError as exc:
        message = str(exc).replace(f"cannot read {filename}:", "cannot read config:", 1)
        message = message.replace(f"{filename} is", "the config is", 1)
        raise ConfigError([ConfigIssue(filename, 0, 0, "", message)]) from None
    text = decode(data, filename)
    return parse_config(text, filename, os.environ if environ is None else environ, kinds, placeholders)


def parse_config(text: str, filename: str, environ: Mapping[str, str], kinds: KindTable,
                 placeholders: bool = False) -> Config:
    loader = _ConfigLoader(filename, environ, kinds, placeholders)
    try:
        return loader.load(text)
    except ConfigError:
        raise
    except (Exception, RecursionError) as exc:  # a bug of ours: an error to report, not a traceback
        message = f"internal error while checking the config ({type(exc).__name__}): please report it"
        raise ConfigError([*loader.final_issues(), ConfigIssue(filename, 0, 0, "", message)]) from exc


_TOP_KEYS = ("defaults", "labels", "metrics", "modules", "probes", "scheduler", "slos")
_COMMON_KEYS = ("name", "type", "target", "interval", "timeout", "labels", "latency_threshold")



class _ConfigLoader(NodeConverter):
    def __init__(self, filename: str, environ: Mapping[str, str], kinds: KindTable, placeholders: bool) -> None:
        super().__init__(filename, environ, placeholders)
        self.kinds = kinds
        self._label_values: list[tuple[yaml.Node, str, str]] = []

    def load(self, text: str) -> Config:
        root = compose(text, self.filename)
        if root is None:
            raise ConfigError([ConfigIssue(self.filename, 1, 1, "", "the file is empty: expected `probes:`")])
        if not isinstance(root, yaml.MappingNode):
            raise ConfigError([ConfigIssue(self.filename, 1, 1, "", "expected a mapping with `probes:` at the top")])

        top = self.mapping_items(root, "", allowed=_TOP_KEYS)
        labels = self._labels(top.get("labels"), "labels")
        scheduler = self.convert_or(top.get("scheduler"), SchedulerSettings, "scheduler", SchedulerSettings())
        metrics = self.convert_or(top.get("metrics"), MetricsSettings, "metrics", MetricsSettings())
        self.unit_secrets = set()
        modules = convert_modules(self, top.get("modules"))
        self.unit_secrets = None
        defaults = top.get("defaults")
        if defaults is not None:
            self.mapping_items(defaults, "defaults", allowed=(*_COMMON_KEYS[1:], *self.kinds.names))

        probes: list[ProbeSpec] = []
        probes_node = top.get("probes")
        if probes_node is None:
            if "modules" not in top:  # a config of modules only serves /probe: blackbox's way, nothing scheduled
                self.issue(root, "", "missing required key 'probes'")
        elif not isinstance(probes_node, yaml.SequenceNode):
            self.issue(probes_node, "probes", f"expected a list of probes, got {node_kind(probes_node)}")
        else:
            seen: dict[str, yaml.Node] = {}
            for i, node in enumerate(probes_node.value):
                path = f"probes[{i}]"
                self.unit_secrets = set()
                try:
                    spec = self._probe(node, defaults, path, labels)
                except Invalid as exc:  # anything not caught closer still names its place
                    self.issue(exc.node, exc.path, exc.message)
                    spec = None
                secrets, self.unit_secrets = frozenset(self.unit_secrets), None
                # A duplicate name is reported even when either probe has errors of its own: all in one pass.
                name_node = key_value(node, "name")
                name = spec.name if spec is not None else _written_name(name_node)
                if name is None:
                    continue
                if name in seen and name_node is not None:
                    first = seen[name]
                    self.issue(name_node, f"{path}.name",
                               f'duplicate probe name "{name}" (first at line {first.start_mark.line + 1})')
                    continue
                seen[name] = name_node or node
                if spec is not None:
                    probes.append(replace(spec, secrets=secrets) if secrets else spec)

        slos = self._slos(top.get("slos"), probes, probes_node)
        self._check_label_values()
        if self.issues:
            raise ConfigError(self.final_issues())
        return Config(self.filename, tuple(probes), labels, scheduler, frozenset(self.secrets), tuple(slos), metrics,
                      modules)

    def _check_label_values(self) -> None:
        """Label values are exported as they are (they are not secrets, even from `${VAR}`): one that
        is also a secret of this file would leak it into every scrape."""
        for node, path, value in self._label_values:
            if value in self.secrets and value:
                self.issue(node, path, "this label value is also a secret in this file (a header, a password or "
                                       "a ${VAR} used there): label values are exported in every metric")

    # -- SLOs
    def _slos(self, node: yaml.Node | None, probes: list[ProbeSpec], probes_node: yaml.Node | None) -> list[SloSpec]:
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.issue(node, "slos", f"expected a list of SLOs, got {node_kind(node)}")
            return []
        known = {p.name: (p.type, p.labels) for p in probes}
        # Probes with errors of their own are not in `known`: an SLO naming one is not wrong too.
        written = {str(v.value) for item in (probes_node.value if isinstance(probes_node, yaml.SequenceNode) else ())
                   if (v := key_value(item, "name")) is not None and isinstance(v, yaml.ScalarNode)}
        slos: list[SloSpec] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(node.value):
            path = f"slos[{i}]"
            section = self.convert_or(item, SloSection, path, None)
            if not isinstance(section, SloSection):
                continue
            name_node = key_value(item, "name") or item
            if not NAME_RE.fullmatch(section.name):
                self.issue(name_node, f"{path}.name", f'invalid SLO name "{section.name}" (letters, digits and _.:/@-)')
                continue
            if section.name in seen:
                self.issue(name_node, f"{path}.name",
                           f'duplicate SLO name "{section.name}" (first at line {seen[section.name]})')
                continue
            seen[section.name] = name_node.start_mark.line + 1
            self._check_labels(key_value(item, "labels"), f"{path}.labels", extra_reserved=SLO_RESERVED_LABELS)
            spec, problems = resolve(section, known)
            for field_name, message in problems:
                if field_name == "probes" and message.startswith("no probe named") and \
                        message.split("'")[1] in written:
                    continue
                self.issue(key_value(item, field_name) or item, f"{path}.{field_name}", message)
            if spec is not None:
                slos.append(spec)
        return slos

    # -- one probe
    def _probe(self, node: yaml.Node, defaults: yaml.Node | None, path: str,
               global_labels: Mapping[str, str]) -> ProbeSpec | None:
        kind_names = self.kinds.names
        if not isinstance(node, yaml.MappingNode):
            self.issue(node, path, f"expected a probe mapping, got {node_kind(node)}")
            return None
        errors_before = len(self.issues)
        own = self.mapping_items(node, path, allowed=(*_COMMON_KEYS, *kind_names))
        type_node = own.get("type") or (key_value(defaults, "type") if defaults is not None else None)
        if type_node is None:
            self.issue(node, path, f"missing required key 'type' (one of: {', '.join(kind_names)})")
            return None
        type_name = self.convert_or(type_node, str, f"{path}.type", None)
        if type_name is None:
            return None
        if type_name not in kind_names:
            self.issue(type_node, f"{path}.type",
                       f"unknown probe type {clip(type_name)!r} (one of: {', '.join(kind_names)})")
            return None
        kind = self.kinds.get(type_name)
        for other in kind_names:
            if other != type_name and other in own:
                self.issue(own[other], f"{path}.{other}",
                           f"a `{other}:` section does not belong to a probe of type {type_name}")
        merged = merge(defaults, node) if defaults is not None else node
        items = self.mapping_items(merged, path, allowed=None)

        name = self._required(items, node, "name", str, path)
        if isinstance(name, str) and not NAME_RE.fullmatch(name):
            self.issue(items["name"], f"{path}.name",
                       f'invalid probe name {_quoted(name)} (letters, digits and _.:/@-, at most 128 characters)')
        target_node = items.get("target")
        if target_node is None and kind.derive_target is None:
            self.issue(node, path, "missing required key 'target'")
            target: Any = None
        else:
            target = self.convert_or(target_node, str, f"{path}.target", None) if target_node is not None else None

        settings_node = items.get(type_name)
        settings_errors = len(self.issues)
        settings = self.convert_or(settings_node, kind.config_cls, f"{path}.{type_name}", None)
        if settings is None and settings_node is not None and len(self.issues) == settings_errors:
            # Only a placeholder's error, dropped (--no-env), and on a field with no default.
            self.issue(settings_node, f"{path}.{type_name}", "needs the environment to be checked (a required "
                                                              "value is a ${VAR})")
        if settings is None and settings_node is None:
            try:
                settings = kind.config_cls()
            except TypeError:
                self.issue(node, path, f"missing required section '{type_name}:'")

        if target is None and kind.derive_target is not None and settings is not None:
            target = kind.derive_target(settings)
        if isinstance(target, str) and kind.validate_target is not None and not self.is_placeholder(target_node):
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
            latency_threshold = self.convert_or(items["latency_threshold"], Duration,
                                                 f"{path}.latency_threshold", None)
        labels = self._labels(items.get("labels"), f"{path}.labels")
        clash = sorted(set(labels) & set(global_labels))
        if clash:
            self.issue(items.get("labels"), f"{path}.labels", f"label {clash[0]!r} is already a global label")

        if len(self.issues) > errors_before or not isinstance(name, str) or not isinstance(target, str) \
                or (settings is None and settings_node is not None):
            return None
        return ProbeSpec(name=name, type=type_name, target=target, interval=interval, timeout=timeout,
                         labels=labels, settings=settings, latency_threshold=latency_threshold)

    def _duration_field(self, own: dict[str, yaml.Node], items: dict[str, yaml.Node], key: str,
                        path: str) -> float | None:
        node = items.get(key)
        if node is None:
            return None
        value: float | None = self.convert_or(node, Duration, f"{path}.{key}", None)
        return value

    def _required(self, items: dict[str, yaml.Node], node: yaml.Node, key: str, tp: type, path: str) -> Any:
        if key not in items:
            self.issue(node, path, f"missing required key '{key}'")
            return None
        return self.convert_or(items[key], tp, f"{path}.{key}", None)

    def _labels(self, node: yaml.Node | None, path: str) -> dict[str, str]:
        if node is None:
            return {}
        self.public = True  # label values are exported: never secrets (see _check_label_values)
        try:
            labels = self.convert_or(node, Mapping[str, str], path, {})
        finally:
            self.public = False
        self._check_labels(node, path)
        for key_node, value_node in node.value if isinstance(node, yaml.MappingNode) else ():
            value = labels.get(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
            if isinstance(value, str):
                self._label_values.append((value_node, f"{path}.{key_node.value}", value))
        return dict(labels)

    def _check_labels(self, node: yaml.Node | None, path: str, extra_reserved: frozenset[str] = frozenset()) -> None:
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # reported by the conversion: a key must be a string
            key = str(key_node.value)
            if not LABEL_NAME_RE.fullmatch(key):
                self.issue(key_node, f"{path}.{key}",
                           f"invalid label name {clip(key)!r} (must match [a-zA-Z_][a-zA-Z0-9_]*)")
            elif key in RESERVED_LABELS or key in extra_reserved or key.startswith(("__", "sloth_")):
                self.issue(key_node, f"{path}.{key}", f"label name {key!r} is reserved by probed")


def _written_name(node: yaml.Node | None) -> str | None:
    """A probe's name as written, for spotting duplicates among probes that have other errors."""
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str" and "$" not in node.value:
        return str(node.value)
    return None


def _quoted(text: str) -> str:
    """A value quoted for a message, control characters escaped ("abc\\n", not a broken line)."""
    return '"' + clip(text).encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


def _fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"
