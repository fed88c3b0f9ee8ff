"""Loading a config and building its probes: the one place both happen.

`load_config` / `parse_config` bind the config loader to the table of probe types. `ProbeSet`
builds probes from their specs together with what probes of one type share (an AWS client pool,
say), and closes both. The daemon, `probed once`, the demo and the tests all go through it, so
a probe is built and released the same way everywhere.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from probed.config import model
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
    with collector.paused():  # ~100 objects per probe, nearly all kept: collecting meanwhile finds nothing
        return model.load_config(path, KINDS, {} if placeholder_env else environ, placeholders=placeholder_env)


def parse_config(text: str, filename: str, environ: Mapping[str, str], placeholder_env: bool = False) -> Config:
    with collector.paused():
        return model.parse_config(text, filename, {} if placeholder_env else environ, KINDS,
                                  placeholders=placeholder_env)


class ProbeSet:
    """Live probe instances by name, and the state shared by the probes of each type."""

    def __init__(self) -> None:
        self.probes: dict[str, Probe] = {}
        self.shared: dict[str, Any] = {}

    @classmethod
    def of(cls, config: Config, names: Iterable[str] | None = None) -> ProbeSet:
        """A set of the named probes (all by default) of `config`, built now."""
        probes = cls()
        for name in (names if names is not None else (s.name for s in config.probes)):
            probes.build(config.probe(name), config.secrets)
        return probes

    def build(self, spec: ProbeSpec, secrets: frozenset[str]) -> Probe:
        kind = get_kind(spec.type)
        if kind.shared is not None and spec.type not in self.shared:
            self.shared[spec.type] = kind.shared()
        probe = self.probes[spec.name] = kind.factory(spec, ProbeContext(secrets=secrets, shared=self.shared))
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
        await self._close_shared([t for t in self.shared if t not in types_in_use])

    async def aclose(self) -> None:
        await asyncio.gather(*(p.aclose() for p in self.probes.values()), return_exceptions=True)
        self.probes.clear()
        await self._close_shared(list(self.shared))

    async def _close_shared(self, types: list[str]) -> None:
        for type_name in types:
            close = getattr(self.shared.pop(type_name), "aclose", None)
            if close is not None:
                await close()

    async def __aenter__(self) -> ProbeSet:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
