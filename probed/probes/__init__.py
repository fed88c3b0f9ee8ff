"""The probe interface and the registry of probe types.

A probe makes one attempt and returns a ProbeResult: no loops, no sleeps, no metrics. Time
belongs to the scheduler (which also enforces the timeout by cancelling `probe()`), recording
to the ring. Each type lives in its own module or package, `probed/probes/<type>`, which exposes
`KIND: ProbeKind`; what several types share is in `probed/probes/common/` (and `sql/` for the
database types). Types are imported lazily so a config without AWS probes never pays for
importing botocore.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from probed.redact import remember

if TYPE_CHECKING:
    from probed.config.model import ProbeSpec
    from probed.result import ProbeResult


class Probe(Protocol):
    """One configured probe. Created by its kind's factory, closed by the daemon."""

    async def probe(self) -> ProbeResult:
        """Make one attempt against the configured target. Target failures are results."""
        ...

    async def aclose(self) -> None:
        """Release long-lived resources (sessions, clients)."""
        ...


@dataclass(frozen=True)
class MetricAlias:
    """Exports `ProbeResult.values[value]` under a dedicated (blackbox-compatible) metric name."""

    metric: str
    help: str
    kind: str = "gauge"


@dataclass(frozen=True)
class ProbeKind:
    name: str
    config_cls: type
    """Frozen dataclass for the type's own section (`http:`, `tcp:` ...)."""
    factory: Callable[[ProbeSpec, ProbeContext], Probe]
    validate_target: Callable[[str, Any], None] | None = None
    """Raises ValueError with a message when the target is malformed for this type."""
    derive_target: Callable[[Any], str] | None = None
    """For types where `target:` may be omitted (aws: `ecs:cluster/service`)."""
    default_interval: float | None = None
    default_timeout: float | None = None
    aliases: Mapping[str, MetricAlias] = field(default_factory=dict)
    """value name -> dedicated metric; every value is also exported as probed_probe_value."""
    shared: Callable[[], Any] | None = None
    """Creates state shared by all probes of this kind (e.g. an AWS client pool), see ProbeContext."""
    describe: Callable[[ProbeResult], list[str]] | None = None
    """Extra human-readable lines for `probed once` (the TLS chain, DNS answers with TTLs)."""
    phases: tuple[str, ...] = ()
    """Phase names results of this type carry (for the metric catalog's series counts)."""
    values: tuple[str, ...] = ()
    """Value names results of this type carry, beyond those in `aliases`."""
    infos: Mapping[str, str] = field(default_factory=dict)
    """Info metrics (`ProbeResult.info` keys) results of this type carry -> their help text."""
    estimate: Callable[[Sequence[ProbeSpec]], list[str]] | None = None
    """Extra lines for `probed check` about the load these probes put on their peers (AWS API calls)."""


@dataclass
class ProbeContext:
    """What the daemon hands every probe factory: config-wide facts and shared resources."""

    secrets: frozenset[str] = frozenset()
    shared: dict[str, Any] = field(default_factory=dict)
    """Kind name -> the object its `shared()` made; closed by the daemon on shutdown/reload."""

    def __post_init__(self) -> None:
        # Every probe is built with the config's secrets, so this is where the process learns
        # them: the log handler masks them in third-party records too (see probed/logs.py).
        remember(self.secrets)


# Order is the order in docs and error messages.
_MODULES: Mapping[str, str] = {
    "http": "probed.probes.http",
    "tcp": "probed.probes.tcp",
    "tls": "probed.probes.tls",
    "dns": "probed.probes.dns",
    "postgres": "probed.probes.postgres",
    "mysql": "probed.probes.mysql",
    "redis": "probed.probes.redis",
    "aws": "probed.probes.aws",
}


KIND_NAMES: tuple[str, ...] = tuple(_MODULES)
_cache: dict[str, ProbeKind] = {}


def get_kind(name: str) -> ProbeKind:
    kind = _cache.get(name)
    if kind is None:
        kind = importlib.import_module(_MODULES[name]).KIND
        assert isinstance(kind, ProbeKind) and kind.name == name
        _cache[name] = kind
    return kind


class _Kinds:
    """The table of probe types handed to the config loader (config never imports probes)."""

    names = KIND_NAMES

    def get(self, name: str) -> ProbeKind:
        return get_kind(name)


KINDS = _Kinds()
