"""The per-probe fragment cache of /metrics: each probe's lines, rendered once per change.

A scrape comes every 15 s; a probe runs every minute or two, so most probes have not changed
between two scrapes. Formatting a line is cheap; walking 100,000 scattered probe states once
per metric family (about 25 of them) is not. So each probe keeps its rendered lines for every
per-probe family, one `bytes` per family with lines (b"" for the others: one shared object),
in a tuple in the render's family order. A render validates each probe once, re-renders the
ones that changed, and gathers every family with `b"".join(map(itemgetter(k), ...))`, in C.

Why not one `bytes` per probe and the families' offsets (an `array('H')`, 100 bytes for 18
families): gathering a family then takes a Python slice per probe, and with 100,000 probes
whose blobs are scattered over a heap of a gigabyte that costs about 8 times the C gather
(measured: 1.6 s against 0.2 s per scrape for 18 families); the segments cost about 600
bytes more per probe (about 15 non-empty segments of ~40 bytes of object header each).

What a fragment depends on, and how each is checked (every writer of exposition.py reads only
these; a writer that reads something new must add it to `Fragment.made_from` or the layout):

- the probe's results: `Fragment.made_from()`. `ring.written` moves with every attempt; the
  rest moves without one: a checkpoint restore (last result, counts by reason and error code),
  skips (the scheduler counts them in `skipped`), a reload's secrets;
- its label text (`_ProbeText`, per spec and static labels): by identity;
- the render's layout (metrics settings, windows, quantile picks, and the families exported,
  which grow when a result first carries a new aliased value or info metric): by identity of a
  `Layout`, which `layout()` reuses for every render with an equal signature;
- its percentiles, which the daemon's summarizer refreshes without a new attempt: by identity
  of `state.percentiles.values` (a refresh assigns a new dict; the fragment holds the one it
  was rendered from, so the identity cannot be recycled). Only the latency family's segment is
  re-rendered then, and spliced in when it differs.

A fragment is never mutated once made: a render holds the segments it read across yields while
another render (another profile's view) may renew the same probe's fragment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from operator import itemgetter
from typing import Any, TypeVar

from probed.runtime.slicing import Slices
from probed.runtime.state import ProbeState

BATCH = 32  # probes validated (and re-rendered if changed) between looks at the clock
STRIDE = 1024  # probes' cached lines gathered between looks at the clock
CHUNK_PROBES = 8192  # at most this many probes' lines of one family per chunk

Writer = Callable[[list[str], Sequence[tuple[ProbeState, Any]], Any], None]
"""exposition.py's family writers: append a family's lines for a batch of (state, label text)."""


class Layout:
    """The per-probe families of a render, in order, and everything else that shapes their lines."""

    __slots__ = ("latency", "signature", "writers")

    def __init__(self, signature: tuple[object, ...], writers: tuple[Writer, ...], latency: int | None) -> None:
        self.signature = signature
        self.writers = writers
        self.latency = latency
        """Index of the latency family (re-rendered alone when only the percentiles changed)."""


_layouts: list[Layout] = []  # the most recent first; a few views (profiles) may alternate
_KEEP_LAYOUTS = 4


def layout(signature: tuple[object, ...], writers: Sequence[Writer], latency: int | None) -> Layout:
    """The one `Layout` for this signature: renders that shape lines alike share it (and the cache)."""
    for known in _layouts:
        if known.signature == signature:
            return known
    made = Layout(signature, tuple(writers), latency)
    _layouts.insert(0, made)
    del _layouts[_KEEP_LAYOUTS:]
    return made


class Fragment:
    """One probe's rendered lines for every family of `layout`, and what they were made from.

    What they were made from is kept field by field, not as a key tuple: validating 100,000
    probes per scrape then allocates nothing (a tuple per probe made the collector run often),
    and the fields cost less memory than a tuple of them.
    """

    __slots__ = ("codes", "failures", "last", "last_ts", "layout", "names", "percentiles", "secrets", "segments",
                 "skipped", "text", "written")

    def __init__(self, state: ProbeState, text: object, layout: Layout, segments: tuple[bytes, ...]) -> None:
        self.text = text
        self.layout = layout
        self.segments = segments
        """Family k's lines (b"" for none: one shared object)."""
        self.percentiles = state.percentiles.values
        # An attempt moves `written` (and `last`, `last_ts`): the ring's totals and histogram and
        # the counts by reason and error code change only with it, or in a checkpoint restore,
        # which replaces `last` and the dicts (so those are compared by identity: a record
        # mutates them in place). `skipped` is mutated in place without an attempt, and only
        # grows: its sum moves with any of its counts.
        self.written = state.ring.written
        self.last = state.last
        self.last_ts = state.last_ts
        self.failures = state.failures_by_reason
        self.codes = state.error_codes
        self.secrets = state.secrets
        self.skipped = sum(state.skipped.values())
        self.names = names_of(state)

    def made_from(self, state: ProbeState) -> bool:
        """Whether the probe's results are still those the lines were rendered from."""
        return (self.written == state.ring.written and self.last is state.last and self.last_ts == state.last_ts
                and self.failures is state.failures_by_reason and self.codes is state.error_codes
                and self.secrets is state.secrets and self.skipped == sum(state.skipped.values()))


def _segment(write: Writer, state: ProbeState, text: object, ctx: object) -> bytes:
    lines: list[str] = []
    write(lines, ((state, text),), ctx)
    if not lines:
        return b""
    lines.append("")
    return "\n".join(lines).encode()


def current(state: ProbeState, text: object, lay: Layout, ctx: object) -> Fragment:
    """The probe's fragment for this render: the cached one if nothing it depends on changed,
    with a new latency segment if only the percentiles did, else rendered anew (and cached)."""
    cached = state.exposition_cache
    if isinstance(cached, Fragment) and cached.layout is lay and cached.text is text and cached.made_from(state):
        if cached.percentiles is state.percentiles.values:
            return cached
        return _with_new_latency(cached, state, ctx)
    return _build(state, text, lay, ctx)


def _build(state: ProbeState, text: object, lay: Layout, ctx: object) -> Fragment:
    segments = tuple([_segment(write, state, text, ctx) for write in lay.writers])
    # What the lines were made from is read after the writers ran: the latency writer computes
    # a probe's first percentiles on demand (a new dict).
    made = Fragment(state, text, lay, segments)
    state.exposition_cache = made
    return made


def _with_new_latency(old: Fragment, state: ProbeState, ctx: object) -> Fragment:
    k = old.layout.latency
    segments = old.segments
    if k is not None:
        segment = _segment(old.layout.writers[k], state, old.text, ctx)
        if segment != segments[k]:
            segments = (*segments[:k], segment, *segments[k + 1:])
    made = Fragment(state, old.text, old.layout, segments)
    state.exposition_cache = made
    return made


Cut = list[tuple[bytes, ...]]
"""Each probe's segments, as one render read them."""


async def current_all(pairs: Sequence[tuple[ProbeState, object]], lay: Layout, ctx: object, slices: Slices) -> Cut:
    """Every probe's current lines (`current()`), in slices."""
    cut: Cut = []
    for i in range(0, len(pairs), BATCH):
        for state, text in pairs[i:i + BATCH]:
            fragment = current(state, text, lay, ctx)
            cut.append(fragment.segments)
        if slices.due():
            await slices.pause()
    return cut


async def family_chunks(headers: Sequence[bytes], cut: Cut, slices: Slices) -> AsyncIterator[bytes]:
    """Family k (its header, then every probe's segment k) for each k in turn, in chunks of at
    most a slice of work or CHUNK_PROBES probes. A family with no sample has no header either."""
    for k, header in enumerate(headers):
        parts: list[bytes] = [header]
        gathered = 0
        segment_k = itemgetter(k)  # gathered in C: no Python step per probe
        for i in range(0, len(cut), STRIDE):
            parts += map(segment_k, cut[i:i + STRIDE])
            gathered += STRIDE
            if gathered >= CHUNK_PROBES or slices.due():
                chunk = b"".join(parts)
                if len(chunk) > len(header):
                    yield chunk
                    header = b""
                parts, gathered = [header], 0
                if slices.due():
                    await slices.pause()
        chunk = b"".join(parts)
        if len(chunk) > len(header):
            yield chunk


class Names:
    """The type and value and info names of a probe's last result, interned: probes whose
    results name the same things share one object, so a render finds the few distinct ones
    (what `_dynamic_families` needs) without looking into every probe's result."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[object, ...]) -> None:
        self.key = key


_names: dict[tuple[object, ...], Names] = {}
_KEEP_NAMES = 10_000  # then start over: a duplicate Names only costs a second look at equal names


def names_of(state: ProbeState) -> Names | None:
    last = state.last
    if last is None:
        return None
    key = (state.spec.type, tuple(last.values), tuple(last.info))
    names = _names.get(key)
    if names is None:
        if len(_names) >= _KEEP_NAMES:
            _names.clear()
        names = _names[key] = Names(key)
    return names


T = TypeVar("T")


def label_texts(states: Sequence[ProbeState], text: Callable[[ProbeState], T],
                ) -> tuple[list[tuple[ProbeState, T]], list[tuple[ProbeState, T]]]:
    """Each probe with its label text, and the first probe of each distinct `Names` in order:
    the families the results carry are those the distinct ones carry, in the same order."""
    pairs: list[tuple[ProbeState, T]] = []
    distinct: dict[Names, tuple[ProbeState, T]] = {}
    for state in states:
        pair = (state, text(state))
        pairs.append(pair)
        cached = state.exposition_cache
        if isinstance(cached, Fragment) and cached.last is state.last and cached.text is pair[1]:
            names = cached.names
        else:
            names = names_of(state)
        if names is not None and names not in distinct:
            distinct[names] = pair
    return pairs, list(distinct.values())


def text_of(cached: object) -> object:
    """The label text a probe's `exposition_cache` holds, under its fragment if it has one."""
    return cached.text if isinstance(cached, Fragment) else cached


def forget(states: Sequence[ProbeState]) -> None:
    """Drops the probes' fragments (their label texts stay): the next render renders every line."""
    for state in states:
        state.exposition_cache = text_of(state.exposition_cache)
