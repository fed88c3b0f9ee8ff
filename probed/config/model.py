"""probed's config model (probes.yaml) and the rules that build it, on the generic loader.

The probe types are not imported here: the caller passes the table of types
(`probed.probes.KINDS`), so config sits below the probe packages and never reaches up to them.
`probed.runtime.probeset.load_config` is the usual entry point; it passes that table.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import yaml

from probed.config.blackbox import BlackboxModule, convert_modules
from probed.config.labels import SLO_RESERVED_LABELS, Labels
from probed.config.loader import Invalid
from probed.config.nodes import key_value, merge, node_kind
from probed.config.schema import ConfigError, ConfigIssue, Duration, FieldError, clip, read_small_file
from probed.config.sections import Late, SectionReader
from probed.config.slo import SloSection, SloSpec, resolve
from probed.config.source import MAX_FILE_BYTES, STR_TAG, decode

# Matched with fullmatch: `$` alone would accept "abc\n" (it matches before a final newline).
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}")
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
        try:
            return loader.load(text)
        except Late as late:  # `labels:` or `defaults:` after `probes:`: read again, knowing them first
            ahead = late.nodes  # (outside this block, the first reading's probes are let go first)
        loader = _ConfigLoader(filename, environ, kinds, placeholders, ahead=ahead)
        return loader.load(text)
    except ConfigError:
        raise
    except (Exception, RecursionError) as exc:  # a bug of ours: an error to report, not a traceback
        message = f"internal error while checking the config ({type(exc).__name__}): please report it"
        raise ConfigError([*loader.final_issues(), ConfigIssue(filename, 0, 0, "", message)]) from exc


_TOP_KEYS = ("defaults", "labels", "metrics", "modules", "probes", "scheduler", "slos")
_COMMON_KEYS = ("name", "type", "target", "interval", "timeout", "labels", "latency_threshold")


class _ConfigLoader(SectionReader):
    """Reads probes.yaml in one pass: each probe is converted as soon as its YAML ends, and its
    nodes are let go (config/sections.py); the other sections are small and read whole."""

    SECTIONS = _TOP_KEYS
    STREAMED = "probes"
    NEEDED = ("labels", "defaults")  # global labels (clashes), defaults (merged into each probe)
    PHASES = ("top", "labels", "scheduler", "metrics", "modules", "defaults", "probes", "slos", "label_values")
    EMPTY = "the file is empty: expected `probes:`"
    NOT_A_MAPPING = "expected a mapping with `probes:` at the top"

    def __init__(self, filename: str, environ: Mapping[str, str], kinds: KindTable, placeholders: bool,
                 ahead: Mapping[str, yaml.Node] | None = None) -> None:
        super().__init__(filename, environ, placeholders, ahead)
        self.kinds = kinds
        self.labels = Labels(self)
        self._labels_and_defaults: tuple[dict[str, str], yaml.Node | None] | None = None
        self._default_settings: dict[str, Any] = {}
        self._durations: dict[str, float] = {}
        self._probe_keys = (*_COMMON_KEYS, *kinds.names)

    def load(self, text: str) -> Config:
        return self._build(*self.read(text))

    def _build(self, root: yaml.Node, top: dict[str, yaml.Node],
               streamed: tuple[list[ProbeSpec], set[str]] | None) -> Config:
        labels, _ = self._before_probes(top)
        self.phase("scheduler")
        scheduler = self.convert_or(top.get("scheduler"), SchedulerSettings, "scheduler", SchedulerSettings())
        self.phase("metrics")
        metrics = self.convert_or(top.get("metrics"), MetricsSettings, "metrics", MetricsSettings())
        self.phase("modules")
        self.unit_secrets = set()
        modules = convert_modules(self, top.get("modules"))
        self.unit_secrets = None
        self.phase("probes")
        probes_node = top.get("probes")
        if streamed is not None:
            pass  # converted as they were read
        elif probes_node is None:
            if "modules" not in top:  # a config of modules only serves /probe: blackbox's way, nothing scheduled
                self.issue(root, "", "missing required key 'probes'")
        elif not isinstance(probes_node, yaml.SequenceNode):
            self.issue(probes_node, "probes", f"expected a list of probes, got {node_kind(probes_node)}")
        else:  # an alias, or a list with an anchor
            streamed = self.convert_items(iter(probes_node.value), top)
        probes, written = streamed or ([], set())
        self.phase("slos")
        slos = self._slos(top.get("slos"), probes, written, labels)
        self.phase("label_values")
        self.labels.check_values()
        if self.has_issues():
            raise ConfigError(self.final_issues())
        return Config(self.filename, tuple(probes), labels, scheduler, frozenset(self.secrets), tuple(slos), metrics,
                      modules)

    def _before_probes(self, top: Mapping[str, yaml.Node]) -> tuple[dict[str, str], yaml.Node | None]:
        """The global labels and the defaults node, converted and checked once."""
        if self._labels_and_defaults is None:
            self.phase("labels")
            labels = self.labels.convert(self.section(top, "labels"), "labels")
            self.phase("defaults")
            defaults = self.section(top, "defaults")
            if defaults is not None:
                self.mapping_items(defaults, "defaults", allowed=(*_COMMON_KEYS[1:], *self.kinds.names))
            self._labels_and_defaults = labels, defaults
        return self._labels_and_defaults

    def convert_items(self, items: Iterator[yaml.Node],
                      top: Mapping[str, yaml.Node]) -> tuple[list[ProbeSpec], set[str]]:
        """Every probe, converted one at a time; and every name written, for the SLOs' messages."""
        labels, defaults = self._before_probes(top)
        self.phase("probes")
        probes: list[ProbeSpec] = []
        written: set[str] = set()
        seen: dict[str, int] = {}  # name -> line of the first probe with it
        for i, node in enumerate(items):
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
            if isinstance(name_node, yaml.ScalarNode):
                written.add(str(name_node.value))
            name = spec.name if spec is not None else _written_name(name_node)
            if name is not None and name in seen and name_node is not None:
                self.issue(name_node, f"{path}.name", f'duplicate probe name "{name}" (first at line {seen[name]})')
            elif name is not None:
                seen[name] = (name_node or node).start_mark.line + 1
                if spec is not None:
                    probes.append(replace(spec, secrets=secrets) if secrets else spec)
            self.forget_nodes()  # nothing more is said about this probe's nodes
        return probes, written

    # -- SLOs
    def _slos(self, node: yaml.Node | None, probes: list[ProbeSpec], written: set[str],
              global_labels: Mapping[str, str]) -> list[SloSpec]:
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.issue(node, "slos", f"expected a list of SLOs, got {node_kind(node)}")
            return []
        known = {p.name: (p.type, p.labels) for p in probes}
        # Probes with errors of their own are not in `known` (but in `written`): an SLO naming one is not wrong too.
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
            self.labels.check_names(key_value(item, "labels"), f"{path}.labels", extra_reserved=SLO_RESERVED_LABELS)
            spec, problems = resolve(section, known, global_labels)
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
        own = self.mapping_items(node, path, allowed=self._probe_keys)
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
        # Without defaults, reading the same mapping again would find nothing new.
        items = own if defaults is None else self.mapping_items(merge(defaults, node), path, allowed=None)

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
        settings = None if settings_node is None else \
            self.convert_or(settings_node, kind.config_cls, f"{path}.{type_name}", None)
        if settings is None and settings_node is not None and len(self.issues) == settings_errors:
            # Only a placeholder's error, dropped (--no-env), and on a field with no default.
            self.issue(settings_node, f"{path}.{type_name}", "needs the environment to be checked (a required "
                                                              "value is a ${VAR})")
        if settings is None and settings_node is None:
            settings = self._default_settings.get(type_name)
            if settings is None:
                try:  # one frozen instance for every probe without a section: built once, kept once
                    settings = self._default_settings[type_name] = kind.config_cls()
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
        labels_node = items.get("labels")
        labels = self.labels.convert(labels_node, f"{path}.labels") if labels_node is not None else {}
        clash = sorted(set(labels) & set(global_labels)) if global_labels else None
        if clash:
            self.issue(labels_node, f"{path}.labels", f"label {clash[0]!r} is already a global label")

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
        if node.tag == STR_TAG and node.value in self._durations:  # "30s" again: the same text, the same value
            return self._durations[node.value]
        value: float | None = self.convert_or(node, Duration, f"{path}.{key}", None)
        if value is not None and node.tag == STR_TAG and "$" not in node.value and len(self._durations) < 1024:
            self._durations[node.value] = value
        return value

    def _required(self, items: dict[str, yaml.Node], node: yaml.Node, key: str, tp: type, path: str) -> Any:
        if key not in items:
            self.issue(node, path, f"missing required key '{key}'")
            return None
        return self.convert_or(items[key], tp, f"{path}.{key}", None)


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
