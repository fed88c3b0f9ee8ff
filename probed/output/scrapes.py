"""/metrics bodies: one render at a time, shared by every scrape that arrives while it runs, gzip when asked.

Two hundred concurrent scrapes used to mean two hundred renders interleaved on the loop: lateness
p99 2.5 s and RSS tripled. Now a scrape that arrives while a render runs joins it: it is served
the same body, from its first byte, as it is made. A scrape that arrives after the render finished
starts the next one (fresh data, and still never two renders at once).

What a render keeps while it runs and its readers write, is one stream, chosen by the scrape that
started it, so memory does not grow with the number of readers:

- gzip (Prometheus always asks for it): the body is compressed once, at level 1, in a worker thread
  (zlib releases the GIL), in pieces of COMPRESS_BYTES while the render goes on; only the
  compressed stream is kept (about 1/15 of the text). A reader that wants plain text then
  decompresses it, in pieces.
- plain text (curl): the chunks are kept as rendered; a reader that wants gzip starts the
  compressor, which catches up on the chunks kept so far.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from probed.output.exposition import ExpositionView, render_chunks
from probed.output.webstats import WebStats

log = logging.getLogger("probed")

COMPRESS_BYTES = 256 * 1024
"""Text handed to the compressor at a time: a millisecond or two of zlib at level 1."""
INFLATE_BYTES = 256 * 1024
"""Plain text a decompressing reader produces per step, between yields to the loop."""
WRITE_BYTES = 256 * 1024
"""What a reader writes before it lets the loop run something else."""
GZIP_LEVEL = 1


class SharedBody:
    """One render's output, growing; readers follow it from the start."""

    def __init__(self, keep_text: bool) -> None:
        self.text: list[bytes] | None = [] if keep_text else None
        self.gzip: list[bytes] | None = None if keep_text else []
        self.done = False
        self.error: BaseException | None = None
        self._grown: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def grew(self) -> None:
        grown, self._grown = self._grown, asyncio.get_running_loop().create_future()
        grown.set_result(None)

    def want_gzip(self) -> None:
        if self.gzip is None:
            self.gzip = []  # the render catches up from the kept text

    async def follow(self, chunks: list[bytes]) -> AsyncIterator[bytes]:
        i = unpaused = 0
        while True:
            grown = self._grown
            while i < len(chunks):
                yield chunks[i]
                unpaused += len(chunks[i])
                i += 1
                if unpaused >= WRITE_BYTES:
                    # A write the socket takes at once does not yield to the loop: without this, a
                    # reader behind the render would copy megabytes in one step, and 200 of them ...
                    unpaused = 0
                    await asyncio.sleep(0)
            if self.error is not None:
                raise self.error
            if self.done:
                return
            await grown

    async def as_gzip(self) -> AsyncIterator[bytes]:
        self.want_gzip()
        assert self.gzip is not None
        async for chunk in self.follow(self.gzip):
            yield chunk

    async def as_text(self) -> AsyncIterator[bytes]:
        if self.text is not None:
            async for chunk in self.follow(self.text):
                yield chunk
            return
        assert self.gzip is not None
        inflate = zlib.decompressobj(wbits=31)
        async for chunk in self.follow(self.gzip):
            data = inflate.decompress(chunk, INFLATE_BYTES)
            while True:
                if data:
                    yield data
                if not inflate.unconsumed_tail:
                    break
                await asyncio.sleep(0)
                data = inflate.decompress(inflate.unconsumed_tail, INFLATE_BYTES)
        tail = inflate.flush()
        if tail:
            yield tail


class Scrapes:
    """Hands each /metrics request the body of the render in progress, or starts one."""

    def __init__(self, view: Callable[[], ExpositionView], stats: WebStats) -> None:
        self._view = view
        self._stats = stats
        self._current: SharedBody | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    def join(self, gzip: bool) -> SharedBody:
        self._stats.scrapes_total += 1
        body = self._current
        if body is None or body.done:
            body = self._current = SharedBody(keep_text=not gzip)
            self._stats.renders_total += 1
            # Not the request's task: a scraper that hangs up must not end the render for the others.
            self._task = asyncio.get_running_loop().create_task(self._render(body), name="metrics-render")
        elif gzip:
            body.want_gzip()
        return body

    async def _render(self, body: SharedBody) -> None:
        loop = asyncio.get_running_loop()
        deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        pending: list[bytes] = []
        pending_bytes = 0
        compressing: asyncio.Future[bytes] | None = None
        caught_up = body.gzip is not None and body.text is None

        async def compress(data: bytes) -> None:
            # One piece in the worker while the loop renders the next; never two at once.
            nonlocal compressing
            if compressing is not None:
                self._gz_append(body, await compressing)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="probed-gzip")
            compressing = asyncio.ensure_future(loop.run_in_executor(self._executor, deflate.compress, data))

        try:
            async for chunk in render_chunks(self._view()):
                if body.text is not None:
                    body.text.append(chunk)
                if body.gzip is not None:
                    if not caught_up:  # a gzip reader joined a plain-text render: start from the top
                        assert body.text is not None
                        pending, pending_bytes = list(body.text), sum(map(len, body.text))
                        caught_up = True
                    else:
                        pending.append(chunk)
                        pending_bytes += len(chunk)
                    if pending_bytes >= COMPRESS_BYTES:
                        await compress(b"".join(pending))
                        pending, pending_bytes = [], 0
                body.grew()
            if body.gzip is not None:
                if not caught_up:
                    assert body.text is not None
                    pending = list(body.text)
                await compress(b"".join(pending))
                assert compressing is not None
                self._gz_append(body, await compressing)
                self._gz_append(body, deflate.flush())
        except asyncio.CancelledError:
            body.error = ConnectionAbortedError("probed is shutting down")
            raise
        except Exception as exc:  # a bug in rendering: every reader's response ends early, logged once
            log.exception("rendering /metrics failed")
            body.error = exc
        finally:
            body.done = True
            if self._current is body:
                self._current = None  # readers hold the body as long as they need it
            body.grew()

    @staticmethod
    def _gz_append(body: SharedBody, data: bytes) -> None:
        if data:
            assert body.gzip is not None
            body.gzip.append(data)
            body.grew()

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
