"""Checkpoints: probe history and SLO state on disk, so budgets survive restarts.

What is kept: each probe's minute and hour bucket tiers (the SLO engine's input), its cumulative
counters and histogram, its last result (details redacted), failure counts and last known
certificate expiry; each SLO's event counters and timeslice ledger. Raw samples (percentiles)
are not: they cover an hour at most.

The file: `MAGIC`, a little-endian u32 format version, a u32 header length, a JSON header, then a
zlib stream of the bucket blocks in header order. Written every `interval` and at shutdown:
snapshot on the event loop in slices, then compress, write, fsync and rename in a thread, so a
crash mid-write leaves the previous checkpoint whole. A file that cannot be read (corrupt,
truncated, another version) is set aside as `*.corrupt` with a warning, and probed starts clean.

On start, a probe gets its history back by name when its type, target and interval are the same
(the ring would mean something else otherwise). The minutes and hours between the checkpoint and
now stay empty: no data, neither good nor bad.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import struct
import time
import zlib
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probed.config.model import ProbeSpec
from probed.redact import redact
from probed.result import ProbeResult, Reason
from probed.runtime import collector
from probed.runtime.ring import HOUR_SLOTS, MINUTE_SLOTS, Buckets
from probed.runtime.slicing import Slices
from probed.runtime.state import ProbeState
from probed.slo.engine import EventCounter, SliceLedger, SloEngine

log = logging.getLogger("probed.checkpoint")

MAGIC = b"PROBEDCK"
VERSION = 1
DEFAULT_INTERVAL_S = 30.0
_HEAD = struct.Struct("<8sII")


def ring_key(spec: ProbeSpec) -> str:
    """What must not change for a probe's history to carry over. Hashed: targets can hold secrets."""
    return hashlib.sha256(f"{spec.type}\0{spec.target}\0{spec.interval!r}".encode()).hexdigest()[:32]


def state_file(state_dir: Path, config_path: str) -> Path:
    """One file per config, so probed instances with other configs can share a state directory."""
    digest = hashlib.sha256(os.path.abspath(config_path).encode()).hexdigest()[:12]
    return state_dir / f"probed-{digest}.ckpt"


def default_state_dir() -> str:
    """`$XDG_STATE_HOME/probed`, else `~/.local/state/probed`: where a bare `probed run` keeps state."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "probed")


@dataclass
class Snapshot:
    header: dict[str, Any] = field(default_factory=dict)
    """What `read` returns: the parsed header."""
    blocks: list[bytes] = field(default_factory=list)
    encoded: dict[str, list[bytes]] = field(default_factory=lambda: {"probes": [], "slos": []})
    """What `snapshot` makes for `write`: the header's entries, already JSON."""


async def snapshot(states: Mapping[str, ProbeState], engine: SloEngine | None) -> Snapshot:
    """Copy what a checkpoint keeps, a slice at a time (the copies are small; there are many).

    Header entries are JSON-encoded here, in the slices: one json.dumps of every entry in the
    writer thread would hold the GIL, and so the event loop, for the whole encoding. The
    collector is paused meanwhile: every entry made here is freed by reference counting, and its
    passes over them were most of what this held the loop for.
    """
    snap = Snapshot({"written_at": time.time()})
    slices = Slices()
    with collector.paused():
        for state in list(states.values()):
            snap.encoded["probes"].append(_json(_probe_header(state)))
            snap.blocks += [state.ring.minutes.block.tobytes(), state.ring.hours.block.tobytes()]
            await slices.tick()
        for spec in engine.specs if engine is not None else ():
            assert engine is not None
            entry: dict[str, Any] = {"name": spec.name}
            counter, ledger = engine.counters.get(spec.name), engine.ledgers.get(spec.name)
            if counter is not None:
                entry["counter"] = {"good": counter.good, "bad": counter.bad, "seen": counter.seen}
            if ledger is not None:
                entry["ledger"] = {"last": ledger.hours.last, "last_minute": ledger.last_minute,
                                   "good": ledger.good_total, "bad": ledger.bad_total}
                snap.blocks.append(ledger.hours.block.tobytes())
            snap.encoded["slos"].append(_json(entry))
            await slices.tick()
    return snap


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _result(result: ProbeResult | None, secrets: frozenset[str]) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "success": result.success, "reason": result.reason.value, "duration": result.duration_s,
        "phases": dict(result.phases), "values": dict(result.values),
        "info": {k: dict(v) for k, v in result.info.items()},
        "detail": redact(result.detail, secrets), "error_code": result.error_code,
    }


def _restored_result(entry: dict[str, Any] | None) -> ProbeResult | None:
    if entry is None or entry["reason"] not in _REASONS:
        return None
    return ProbeResult(entry["success"], Reason(entry["reason"]), entry["duration"], entry["phases"],
                       entry["values"], entry["info"], entry["detail"], error_code=entry["error_code"])


def _probe_header(state: ProbeState) -> dict[str, Any]:
    ring = state.ring
    entry = {
        "name": state.spec.name, "key": ring_key(state.spec),
        "minutes_last": ring.minutes.last, "hours_last": ring.hours.last,
        "counters": [ring.minutes.block.typecode, ring.hours.block.typecode],
        "rows": [ring.minutes.rows_kept, ring.hours.rows_kept],
        "successes": ring.successes_total, "failures": ring.failures_total, "fast": ring.fast_total,
        "hist": list(ring.hist_counts), "hist_sum": ring.hist_sum,
        "by_reason": {r.value: n for r, n in state.failures_by_reason.items()},
        "error_codes": dict(state.error_codes), "skipped": dict(state.skipped),
        "last_ts": state.last_ts, "last": _result(state.last, state.secrets),
        "last_failure_ts": state.last_failure_ts, "last_failure": _result(state.last_failure, state.secrets),
        "failing_since": state.failing_since,
    }
    if state.cert_expiry is not None:  # most probes see no certificate: no key, a smaller header
        entry["cert_expiry"] = state.cert_expiry
    return entry


def write(path: Path, snap: Snapshot) -> int:
    """Atomically replace the checkpoint at `path` (blocking: run it in a thread). Returns bytes."""
    header = b"".join((b'{"written_at":', _json(snap.header["written_at"]),
                       b',"probes":[', b",".join(snap.encoded["probes"]),
                       b'],"slos":[', b",".join(snap.encoded["slos"]), b"]}"))
    tmp = path.with_name(path.name + ".tmp")
    size = _HEAD.size + len(header)
    # Block by block: zlib releases the GIL while it works, and the loop gets it back in between.
    packer = zlib.compressobj(1)
    with open(tmp, "wb") as f:
        f.write(_HEAD.pack(MAGIC, VERSION, len(header)))
        f.write(header)
        for block in snap.blocks:
            chunk = packer.compress(block)
            size += len(chunk)
            f.write(chunk)
        chunk = packer.flush()
        size += len(chunk)
        f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself must survive a crash too
    finally:
        os.close(dir_fd)
    return size


class CheckpointError(Exception):
    pass


def read(path: Path) -> Snapshot:
    """Parse a checkpoint; raises CheckpointError saying what is wrong with it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read it: {exc.strerror or exc}") from None
    if len(data) < _HEAD.size:
        raise CheckpointError("truncated (no header)")
    magic, version, header_len = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointError("not a probed checkpoint")
    if version != VERSION:
        raise CheckpointError(f"format version {version}, this probed reads {VERSION}")
    try:
        header = json.loads(data[_HEAD.size:_HEAD.size + header_len])
        body = zlib.decompress(data[_HEAD.size + header_len:])
    except (ValueError, zlib.error) as exc:
        raise CheckpointError(f"corrupt or truncated: {exc}") from None
    blocks = _split(header, body)
    return Snapshot(header, blocks)


def _split(header: dict[str, Any], body: bytes) -> list[bytes]:
    sizes = []
    for entry in header.get("probes", ()):
        minutes, hours = entry["counters"]
        minutes_rows, hours_rows = entry.get("rows", (3, 3))  # checkpoints before two-row tiers had three
        if {minutes_rows, hours_rows} - {2, 3}:
            raise CheckpointError(f"corrupt: {minutes_rows} and {hours_rows} rows of buckets (2 or 3 expected)")
        sizes += [minutes_rows * MINUTE_SLOTS * array(minutes).itemsize,
                  hours_rows * HOUR_SLOTS * array(hours).itemsize]
    sizes += [3 * HOUR_SLOTS * array("H").itemsize for s in header.get("slos", ()) if "ledger" in s]
    if sum(sizes) != len(body):
        raise CheckpointError(f"corrupt: {len(body)} bytes of buckets where {sum(sizes)} were expected")
    blocks, pos = [], 0
    for size in sizes:
        blocks.append(body[pos:pos + size])
        pos += size
    return blocks


class Restorer:
    """Gives each new probe state (and each SLO) its checkpointed history, once."""

    def __init__(self, snap: Snapshot) -> None:
        self.probes: dict[str, tuple[dict[str, Any], bytes, bytes]] = {}
        it = iter(snap.blocks)
        for entry in snap.header.get("probes", ()):
            self.probes[entry["name"]] = (entry, next(it), next(it))
        self.slos: dict[str, tuple[dict[str, Any], bytes | None]] = {
            s["name"]: (s, next(it) if "ledger" in s else None) for s in snap.header.get("slos", ())}
        self.restored = 0

    def restore_probe(self, state: ProbeState) -> bool:
        found = self.probes.pop(state.spec.name, None)
        if found is None or found[0]["key"] != ring_key(state.spec):
            return False
        entry, minutes, hours = found
        ring = state.ring
        minutes_type, hours_type = entry["counters"]
        minutes_rows, hours_rows = entry.get("rows", (3, 3))  # checked by read()
        _fill(ring.minutes, array(minutes_type, minutes), minutes_rows)
        ring.minutes.last = entry["minutes_last"]
        _fill(ring.hours, array(hours_type, hours), hours_rows)
        ring.hours.last = entry["hours_last"]
        ring.successes_total, ring.failures_total = entry["successes"], entry["failures"]
        ring.fast_total = entry["fast"]
        if len(entry["hist"]) == len(ring.hist_counts):
            ring.hist_counts[:] = array("Q", entry["hist"])
            ring.hist_sum = entry["hist_sum"]
        state.failures_by_reason = {Reason(r): n for r, n in entry["by_reason"].items() if r in _REASONS}
        state.error_codes = dict(entry["error_codes"])
        state.skipped.update({k: v for k, v in entry["skipped"].items() if k in state.skipped})
        state.last = _restored_result(entry["last"])
        state.last_ts = entry["last_ts"] if state.last is not None else 0.0
        state.last_failure = _restored_result(entry["last_failure"])
        state.last_failure_ts = entry["last_failure_ts"] if state.last_failure is not None else 0.0
        state.failing_since = entry.get("failing_since") if state.last is not None and not state.last.success else None
        expiry = entry.get("cert_expiry")  # absent from checkpoints written before it was kept
        state.cert_expiry = float(expiry) if isinstance(expiry, int | float) else None
        self.restored += 1
        return True

    def restore_slos(self, engine: SloEngine) -> None:
        for name, (entry, block) in self.slos.items():
            if "counter" in entry:
                c = entry["counter"]
                engine.counters[name] = EventCounter(c["good"], c["bad"], {k: tuple(v) for k, v in c["seen"].items()})
            if "ledger" in entry and block is not None:
                ledger = SliceLedger(last_minute=entry["ledger"]["last_minute"], good_total=entry["ledger"]["good"],
                                     bad_total=entry["ledger"]["bad"])
                ledger.hours.block[:] = array("H", block)
                ledger.hours.last = entry["ledger"]["last"]
                engine.ledgers[name] = ledger


_REASONS = {r.value for r in Reason}


def _fill(tier: Buckets, counts: array[int], rows: int) -> None:
    """Copy checkpointed counters into a tier, widening or saturating if its width changed, and
    dropping or deriving the fast row if the probe gained or lost its own latency threshold."""
    size = tier.size
    if rows == 3 and tier.rows_kept == 2:
        counts = counts[:2 * size]
    elif rows == 2 and tier.rows_kept == 3:
        counts = counts + array(counts.typecode, (counts[i] - counts[size + i] for i in range(size)))
    if counts.typecode == tier.block.typecode:
        tier.block[:] = counts
    else:
        most = (1 << (8 * tier.block.itemsize)) - 1
        tier.block[:] = array(tier.block.typecode, (min(c, most) for c in counts))


def prepare(path: Path) -> tuple[Restorer | None, int | None]:
    """Make the state directory, take the checkpoint's lock and read it (blocking: use a thread).

    Returns the restorer (None: a clean start) and the lock's file descriptor, which the caller
    keeps open while it runs; None when another probed holds it: that one owns the file, and
    this one runs without persistence rather than overwrite it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        log.warning("another probed is using %s: running without a checkpoint", path)
        return None, None
    return load(path), lock


def load(path: Path) -> Restorer | None:
    """The checkpoint at `path`, or None for a clean start (with a warning if it was bad)."""
    if not path.exists():
        return None
    try:
        return Restorer(read(path))
    except (CheckpointError, KeyError, TypeError, ValueError, StopIteration) as exc:
        aside = path.with_name(path.name + ".corrupt")
        log.warning("state file %s is unusable (%s): starting without history; kept as %s", path, exc, aside.name)
        try:
            os.replace(path, aside)
        except OSError as move_error:
            log.warning("could not move %s aside: %s", path, move_error)
        return None


class Store:
    """A state directory in use: the checkpoint read at start, its lock, and the writer."""

    def __init__(self, path: Path, restorer: Restorer | None, lock: int | None, interval_s: float) -> None:
        self.path = path
        self.restorer = restorer
        self._lock = lock
        self.checkpointer = Checkpointer(path, interval_s) if lock is not None else None

    @classmethod
    async def open(cls, state_dir: str, config_path: str, interval_s: float = DEFAULT_INTERVAL_S) -> Store:
        path = state_file(Path(state_dir), config_path)
        restorer, lock = await asyncio.to_thread(prepare, path)
        return cls(path, restorer, lock, interval_s)

    def close(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


class Checkpointer:
    """Writes a checkpoint every `interval_s` and once more at `close()`."""

    def __init__(self, path: Path, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.path = path
        self.interval_s = interval_s
        self.written = 0
        self.last_bytes = 0

    async def save(self, states: Mapping[str, ProbeState], engine: SloEngine | None) -> None:
        snap = await snapshot(states, engine)
        try:
            self.last_bytes = await asyncio.to_thread(write, self.path, snap)
            self.written += 1
        except OSError as exc:
            log.warning("cannot write checkpoint %s: %s", self.path, exc.strerror or exc)

    async def loop(self, states: Mapping[str, ProbeState], engine: SloEngine | None) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.save(states, engine)
