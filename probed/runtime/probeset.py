"""Loading a config and building its probes: the one place both happen.

`load_config` / `parse_config` bind the config loader to the table of probe types. `ProbeSet`
builds probes from their specs together with what probes of one type share (an AWS client pool,
say), and closes both. The daemon, `probed once`, the demo, `/probe` and the tests all go through
it, so a probe is built and released the same way everywhere.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from probed.config import model
from probed.config.loader import ENV_REF
from probed.config.model import Config, ProbeSpec
from probed.probes import KINDS, Probe, ProbeContext, get_kind
from probed.runtime import collector

SHARED_READY_S = 5.0


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None,
                placeholder_env: bool = False) -> Config:
    """Read and validate a config file. Raises ConfigError listing every problem.

    `placeholder_env` (`--no-env`: checking a config or generating rules in CI without the secrets
    it names): the environment is not read; every `${VAR}` is `placeholder-VAR` (`${VAR:-x}` is
    `x`), and a value that holds a placeholder is not judged (the field keeps its default).
    """
    with collector.paused():  # a probe is many objects, nearly all kept: collecting meanwhile finds nothing
        return model.load_config(path, KINDS, {} if placeholder_env else environ, placeholders=placeholder_env)


def load_config_for(path: str | os.PathLike[str], names: Iterable[str],
                    environ: Mapping[str, str] | None = None) -> Config:
    """The config for running only the probes `names` (`probed once NAME`): an unset `${VAR}` of
    another probe is a placeholder, not an error, so that checking one probe does not need the
    secrets of all. Anywhere else (the named probes, defaults, labels, SLOs) it is still an error,
    exactly as a full load reports it: a placeholder never reaches a probe that runs.
    """
    environ = os.environ if environ is None else environ
    wanted = set(names)
    text = Path(path).read_text(encoding="utf-8")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return load_config(path, environ)  # the full load says where the syntax is wrong
    others = []
    if isinstance(document, dict) and isinstance(document.get("probes"), list):
        others = [p for p in document["probes"] if not (isinstance(p, dict) and p.get("name") in wanted)]
        document = {**document, "probes": [p for p in document["probes"] if p not in others]}
    if not others or _unset_variables(document, environ):
        return load_config(path, environ)  # nothing to forgive, or a variable the named probes need
    with collector.paused():
        return model.load_config(path, KINDS, environ, placeholders=True)


def _unset_variables(node: object, environ: Mapping[str, str]) -> list[str]:
    """The `${VAR}`s (without a default) under `node` that `environ` does not set."""
    if isinstance(node, dict):
        return [v for key, value in node.items() for v in (*_unset_variables(key, environ),
                                                           *_unset_variables(value, environ))]
    if isinstance(node, list):
        return [v for item in node for v in _unset_variables(item, environ)]
    if isinstance(node, str):
        return [m.group(1) for m in ENV_REF.finditer(node)
                if m.group(1) and m.group(2) is None and m.group(1) not in environ]
    return []


def parse_config(text: str, filename: str, environ: Mapping[str, str], placeholder_env: bool = False) -> Config:
    with collector.paused():
        return model.parse_config(text, filename, {} if placeholder_env else environ, KINDS,
                                  placeholders=placeholder_env)


class ProbeSet:
    """Live probe instances by name, and the state shared by the probes of each type.

    `shared`: objects made by the caller for some types (the /probe endpoint's HTTP pool, which
    checks every address it connects to; a test's AWS client pool). Such an object stays the one
    of its type for the set's life: the set closes it with itself but never swaps in the kind's
    default, so a probe built after a close cannot slip past the caller's pool.
    """

    def __init__(self, shared: Mapping[str, Any] | None = None) -> None:
        self.probes: dict[str, Probe] = {}
        self.shared: dict[str, Any] = dict(shared or {})
        self._given = frozenset(self.shared)
        self._unnamed: list[Probe] = []

    @classmethod
    def of(cls, config: Config, names: Iterable[str] | None = None) -> ProbeSet:
        """A set of the named probes (all by default) of `config`, built now."""
        probes = cls()
        for name in (names if names is not None else (s.name for s in config.probes)):
            probes.build(config.probe(name), config.secrets)
        return probes

    def make(self, spec: ProbeSpec, secrets: frozenset[str]) -> Probe:
        """A probe with this set's shared state that the set does not keep: the caller closes it
        (a /probe request's probe, gone after its one attempt)."""
        kind = get_kind(spec.type)
        if kind.shared is not None and spec.type not in self.shared:
            self.shared[spec.type] = kind.shared()
        return kind.factory(spec, ProbeContext(secrets=secrets, shared=self.shared))

    def build(self, spec: ProbeSpec, secrets: frozenset[str]) -> Probe:
        """A probe kept by its name (the daemon's: replaced and removed by name on reload)."""
        probe = self.probes[spec.name] = self.make(spec, secrets)
        return probe

    def add(self, spec: ProbeSpec, secrets: frozenset[str]) -> Probe:
        """A probe kept without a name and closed with the set (tests build many of one name)."""
        probe = self.make(spec, secrets)
        self._unnamed.append(probe)
        return probe

    def __getitem__(self, name: str) -> Probe:
        return self.probes[name]

    def __contains__(self, name: object) -> bool:
        return name in self.probes

    async def remove(self, name: str) -> None:
        await self.probes.pop(name).aclose()

    async def ready(self, timeout_s: float = SHARED_READY_S) -> None:
        """Let shared resources finish building (AWS clients parse their API models). Bounded: a
        slow AssumeRole must not hold start-up; what is still pending finishes in the background."""
        waits = [asyncio.ensure_future(obj.ready()) for obj in self.shared.values() if hasattr(obj, "ready")]
        if waits:
            await asyncio.wait(waits, timeout=timeout_s)

    async def close_unused_shared(self, types_in_use: set[str]) -> None:
        await self._close_shared([t for t in self.shared if t not in types_in_use and t not in self._given])

    async def aclose(self) -> None:
        probes = [*self.probes.values(), *self._unnamed]
        self.probes.clear()
        self._unnamed.clear()
        await asyncio.gather(*(p.aclose() for p in probes), return_exceptions=True)
        await self._close_shared(list(self.shared))

    async def _close_shared(self, types: list[str]) -> None:
        for type_name in types:
            obj = self.shared[type_name] if type_name in self._given else self.shared.pop(type_name)
            close = getattr(obj, "aclose", None)
            if close is not None:
                await close()

    async def __aenter__(self) -> ProbeSet:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
