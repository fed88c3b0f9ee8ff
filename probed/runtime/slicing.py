"""Work in slices: the one loop shape for anything that walks every probe on the event loop.

With thousands of probes, one pass over all of them (percentiles, a scrape, the API, an SLO
evaluation) takes long enough that, run on the loop in one piece, it would delay every probe by
that much. So such a pass checks the clock as it goes and yields to the loop every SLICE_S of work.
The clock is perf_counter, not loop.time(): uvloop's clock is cached per loop iteration and does
not advance inside one step, so slicing on it would never yield.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import TypeVar

SLICE_S = 0.002
"""Work between yields to the event loop: bounds what a pass adds to any probe's lateness."""

T = TypeVar("T")
R = TypeVar("R")


class Slices:
    """`due()` says a slice is used up; `pause()` yields to the loop and starts the next one.

    `rest_s`: how long each pause lasts. 0 (the default) comes back as soon as the loop has run
    what was ready: right for a pass someone waits on (a scrape). A background pass with time to
    spare rests between slices instead, so that it never has the loop two slices in a row: with
    back-to-back slices the loop spends most of a pass in them, and every attempt that falls due
    meanwhile waits for one or more of them before it starts."""

    __slots__ = ("_end", "_rest_s", "_slice_s")

    def __init__(self, slice_s: float | None = None, rest_s: float = 0.0) -> None:
        self._slice_s = SLICE_S if slice_s is None else slice_s
        self._rest_s = rest_s
        self._end = perf_counter() + self._slice_s

    def due(self) -> bool:
        return perf_counter() > self._end

    async def pause(self) -> None:
        await asyncio.sleep(self._rest_s)
        self._end = perf_counter() + self._slice_s

    async def tick(self) -> None:
        if perf_counter() > self._end:
            await self.pause()


async def sliced_map(items: Iterable[T], fn: Callable[[T], R], slice_s: float | None = None) -> list[R]:
    """`[fn(x) for x in items]`, yielding to the loop between slices. `items` is copied first:
    a reload may change the collection it comes from while this yields."""
    out: list[R] = []
    slices = Slices(slice_s)
    for item in list(items):
        out.append(fn(item))
        if slices.due():
            await slices.pause()
    return out
