"""Splitting one config across replicas: each probe runs on one shard (or k), chosen by hashing.

Kubernetes runs the replicas (a StatefulSet) and Prometheus scrapes each; probed only has to
agree, in every replica independently, on who runs what. Rendezvous (highest-random-weight)
hashing does that with no coordination: every shard scores every key and a key belongs to the
top-scoring shard, so going from N to N+1 shards moves only the keys the new shard now wins,
about 1/(N+1) of them, and nothing else.

The key is the probe's name, except for probes in an SLO: those are keyed by their SLO (all the
probes of SLOs that share probes, together), so each SLO is evaluated whole, exactly, in one
process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from probed.config.model import Config

_ORDINAL = re.compile(r"-(\d+)$")


def _weight(key: str, shard: int) -> int:
    digest = hashlib.blake2b(f"{key}\0{shard}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owners(key: str, shards: int, replicas: int = 1) -> list[int]:
    """The `replicas` shards that run `key`, best first."""
    ranked = sorted(range(shards), key=lambda i: _weight(key, i), reverse=True)
    return ranked[:max(1, min(replicas, shards))]


def keys(config: Config) -> dict[str, str]:
    """Probe name -> the key it is placed by: its SLO group's, or its own name."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for slo in config.slos:
        names = [f"slo:{slo.name}", *(f"probe:{p}" for p in slo.probes)]
        for name in names[1:]:
            a, b = find(names[0]), find(name)
            if a != b:
                parent[max(a, b)] = min(a, b)  # the smallest name leads: stable across reloads
    return {p.name: find(f"probe:{p.name}") for p in config.probes}


@dataclass(frozen=True)
class Shard:
    index: int
    count: int
    replicas: int = 1
    """How many shards run each probe (redundancy, e.g. from several locations)."""

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"shards must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index must be in 0..{self.count - 1}, got {self.index}")
        if not 1 <= self.replicas <= self.count:
            raise ValueError(f"replicas per probe must be in 1..{self.count}, got {self.replicas}")

    def select(self, config: Config) -> Config:
        """This shard's part of `config`: its probes, the SLOs over them, a `shard` label when
        probes run more than once (so Prometheus tells the copies apart)."""
        if self.count == 1:
            return config
        placed = keys(config)
        mine = {name for name, key in placed.items() if self.index in owners(key, self.count, self.replicas)}
        labels = dict(config.labels)
        if self.replicas > 1:
            labels["shard"] = str(self.index)
        return dataclasses.replace(
            config, probes=tuple(p for p in config.probes if p.name in mine),
            slos=tuple(s for s in config.slos if s.probes and s.probes[0] in mine), labels=labels)


UNSHARDED = Shard(0, 1)


def split(config: Config, shards: int, replicas: int = 1) -> list[Config]:
    """Every shard's part, for `probed check --shards N`."""
    return [Shard(i, shards, replicas).select(config) for i in range(shards)]


def from_environment(shards: int | None, index: int | None, replicas: int | None,
                     environ: Iterable[tuple[str, str]] | None = None) -> Shard:
    """Flags first, then PROBED_SHARDS / PROBED_SHARD_INDEX / PROBED_REPLICAS_PER_PROBE; the index
    defaults to the host name's ordinal, as a StatefulSet names its pods (`probed-2` -> 2)."""
    env = dict(os.environ if environ is None else environ)

    def number(name: str, default: int) -> int:
        text = env.get(name, "").strip()
        try:
            return int(text) if text else default
        except ValueError:
            raise ValueError(f"{name} must be a whole number, got {text!r}") from None

    count = shards if shards is not None else number("PROBED_SHARDS", 1)
    copies = replicas if replicas is not None else number("PROBED_REPLICAS_PER_PROBE", 1)
    if index is None:
        if env.get("PROBED_SHARD_INDEX"):
            index = number("PROBED_SHARD_INDEX", 0)
        elif count > 1:
            host = env.get("HOSTNAME") or socket.gethostname()
            m = _ORDINAL.search(host)
            if m is None:
                raise ValueError(f"--shards {count} needs --shard-index (or PROBED_SHARD_INDEX): the host name "
                                 f"{host!r} ends in no ordinal like a StatefulSet pod's (probed-2)")
            index = int(m.group(1))
        else:
            index = 0
    return Shard(index, count, copies)
