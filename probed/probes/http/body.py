"""Reading an HTTP body in bounded steps: decompression, decoding, the size cap and the deadline.

aiohttp would decompress inside its protocol callback, where a gzip bomb (1 MB on the wire,
gigabytes inflated) is CPU work no timeout can interrupt: the loop stalls, every other probe
misses its schedule, and the attempt reports `ok` long after its timeout. So the sessions ask
aiohttp for the raw body (`auto_decompress=False`) and this module inflates it with
`zlib.decompressobj` at most `STEP` bytes at a time, checking the cap and the attempt's own
deadline after every step and yielding to the loop between steps. The cap (`max_body_bytes`)
applies to the inflated size, as before.

gzip bodies may hold several members (RFC 1952, as Go and curl read them); `deflate` is zlib-
wrapped (RFC 9110) or, from some servers, raw. Other codings are not requested (the sessions send
`Accept-Encoding: gzip, deflate`); one sent anyway is counted raw and cannot be checked.
"""

from __future__ import annotations

import asyncio
import codecs
import zlib
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar

import aiohttp

from probed.probes.common.deadline import Deadline

STEP = 256 * 1024
"""Bytes inflated, decoded or compared between two checks of the deadline (well under 1 ms of CPU)."""
ACCEPT_ENCODING = "gzip, deflate"

_GZIP = 16 + zlib.MAX_WBITS
_WBITS = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": zlib.MAX_WBITS}

T = TypeVar("T")

Step: TypeAlias = Callable[[float], Awaitable[object]] | None
"""What step-wise work yields between pieces: None after a piece done on the loop, or a piece to
await until the attempt's deadline (given as time.monotonic()), whose result is sent back."""
Steps: TypeAlias = Generator[Step, object, T]


class OutOfTime(Exception):
    """The attempt's own deadline passed between two steps."""


class BadEncoding(Exception):
    """The body is not valid for its Content-Encoding (or the coding is one probed cannot read)."""


class _Inflater:
    def __init__(self, coding: str) -> None:
        self._wbits = _WBITS[coding]
        self._gzip = self._wbits == _GZIP
        self._d: zlib._Decompress | None = None
        self._done = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The inflated bytes of `data`, in pieces of at most STEP bytes."""
        pending = False  # a full STEP came out: zlib may hold more output for the same input
        while (data or pending) and not self._done:
            if self._d is None:
                # Some servers send raw deflate as "deflate": a zlib stream starts with CM=8.
                wbits = -zlib.MAX_WBITS if self._wbits == zlib.MAX_WBITS and data[0] & 0x0F != 8 else self._wbits
                self._d = zlib.decompressobj(wbits)
            try:
                out = self._d.decompress(data, STEP)
            except zlib.error as exc:
                raise BadEncoding(f"invalid body encoding: {exc}") from None
            data, pending = self._d.unconsumed_tail, len(out) == STEP
            if out:
                yield out
            if self._d.eof:
                data, pending = self._d.unused_data, False
                self._d = None  # the next gzip member, if any
                if not self._gzip:
                    self._done = True  # bytes after a deflate stream are not body


@dataclass
class Body:
    size: int = 0
    """Inflated bytes read (all of them, also those not kept)."""
    parts: list[str] = field(default_factory=list)
    too_large: bool = False

    @property
    def text(self) -> str:
        return "".join(self.parts)


async def read_body(content: aiohttp.StreamReader, coding: str, cap: int, keep: bool, charset: str | None,
                    deadline: Deadline) -> Body:
    """Reads the body up to `cap` inflated bytes (plus one step). Keeps it as text only if `keep`.

    Raises OutOfTime at the deadline, BadEncoding for a body its coding cannot read."""
    coding = coding.strip().lower()
    inflater = _Inflater(coding) if coding in _WBITS else None
    if inflater is None and coding not in ("", "identity") and keep:
        raise BadEncoding(f'Content-Encoding "{coding[:40]}" is not supported (the probe asks for {ACCEPT_ENCODING})')
    decoder = _decoder(charset) if keep else None
    body = Body()
    while not content.at_eof():
        chunk = await content.readany()
        if not chunk:
            break
        for piece in inflater.feed(chunk) if inflater is not None else (chunk,):
            body.size += len(piece)
            if body.size > cap:
                body.too_large, body.parts = True, []
                return body
            if decoder is not None:
                body.parts.append(decoder.decode(piece))
            if deadline.expired():
                raise OutOfTime
            if inflater is not None:
                await asyncio.sleep(0)  # inflating is CPU work: let the other probes run
    if decoder is not None:
        body.parts.append(decoder.decode(b"", True))
    return body


def _decoder(charset: str | None) -> codecs.IncrementalDecoder:
    try:
        return codecs.getincrementaldecoder(charset or "utf-8")(errors="replace")
    except LookupError:  # a charset Python does not know
        return codecs.getincrementaldecoder("utf-8")(errors="replace")


async def in_steps(work: Steps[T], deadline: Deadline) -> T:
    """Drives step-wise work (see Step): awaits the pieces it hands over, checks the deadline and
    lets the loop run between pieces. Raises OutOfTime at the deadline, also when a piece it
    awaits has no result by then (a search thread's search, config/regex.py)."""
    reply: object = None
    try:
        while True:
            step = work.send(reply)
            reply = None
            if step is not None:
                try:
                    reply = await step(deadline.at)
                except TimeoutError:
                    work.close()
                    raise OutOfTime from None
            if deadline.expired():
                work.close()
                raise OutOfTime
            await asyncio.sleep(0)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
