"""Concurrent /metrics scrapes share one render; gzip when asked. A real daemon with many probes, real clients."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from probed.output import scrapes
from probed.output.exposition import ExpositionView
from probed.output.web import _accepts_gzip
from tests.peers.web import Served, serving

PROBES = 1500


def many_probes(n: int = PROBES) -> str:
    lines = ["probes:"]
    lines += [f"  - {{name: p{i}, type: tcp, target: '127.0.0.1:1', interval: 1h, labels: {{team: t{i % 7}}}}}"
              for i in range(n)]
    return "\n".join(lines) + "\n"


async def scrape(session: aiohttp.ClientSession, url: str, encoding: str) -> tuple[str, bytes]:
    async with session.get(url + "/metrics", headers={"Accept-Encoding": encoding}) as r:
        assert r.status == 200
        return r.headers.get("Content-Encoding", ""), await r.read()


def text_of(encoding: str, body: bytes) -> bytes:
    return gzip.decompress(body) if encoding == "gzip" else body


class Gate:
    """Renders wait at the gate until `opened`; with `pause_after`, they stop again after that many
    chunks until `resumed`: the test decides when every scraper has arrived."""

    def __init__(self) -> None:
        self.opened, self.resumed, self.paused = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.pause_after: int | None = None

    def set(self) -> None:
        self.opened.set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    g = Gate()
    original = scrapes.render_chunks

    async def gated(view: ExpositionView, now: float | None = None) -> AsyncIterator[bytes]:
        await g.opened.wait()
        n = 0
        async for chunk in original(view, now):
            yield chunk
            n += 1
            if n == g.pause_after:
                g.paused.set()
                await g.resumed.wait()

    monkeypatch.setattr(scrapes, "render_chunks", gated)
    return g


async def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def crowd(s: Served, gate: Gate, encodings: list[str]) -> list[tuple[str, bytes]]:
    """Every scraper sends its request; once all have arrived the render may start."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        before = s.stats.scrapes_total
        tasks = [asyncio.ensure_future(scrape(session, s.url, e)) for e in encodings]
        await until(lambda: s.stats.scrapes_total - before == len(encodings))
        gate.set()
        return await asyncio.gather(*tasks)


async def test_concurrent_scrapes_share_one_render_and_gzip_decompresses_to_the_same_text(
        tmp_path: Path, gate: Gate) -> None:
    async with serving(tmp_path, config=many_probes(), cap=256) as s:
        # HA Prometheus pairs and a crowd: gzip (Prometheus), identity (curl), gzip refused with q=0.
        encodings = ["gzip", "identity", "gzip, deflate", "gzip;q=0, identity"] * 25
        results = await crowd(s, gate, encodings)
        assert s.stats.renders_total == 1 and s.stats.scrapes_total == 100
        assert [e for e, _ in results] == ["gzip" if _accepts_gzip(e) else "" for e in encodings]
        texts = {text_of(e, body) for e, body in results}
        assert len(texts) == 1, "every scraper got the same body"
        text = texts.pop()
        assert text.count(b"\nprobed_probe_info{") == PROBES and text.endswith(b"\n")
        gz = next(body for e, body in results if e == "gzip")
        assert len(gz) < len(text) / 5
        # The next scrape, after the render is over, renders afresh and counts what came before.
        gate.set()
        async with aiohttp.ClientSession() as session:
            _, body = await scrape(session, s.url, "identity")
        assert s.stats.renders_total == 2
        assert b"probed_scrape_renders_total 2\n" in body and b"probed_scrapes_total 101\n" in body


@pytest.mark.parametrize("first", ["identity", "gzip"])
async def test_a_late_reader_of_the_other_encoding_gets_the_whole_body(
        tmp_path: Path, gate: Gate, first: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The render keeps one stream, chosen by the scrape that started it; the other encoding is made
    # from it (compressed from the kept text, or decompressed from the kept gzip) from the start.
    monkeypatch.setattr(scrapes, "COMPRESS_BYTES", 4096)
    monkeypatch.setattr(scrapes, "INFLATE_BYTES", 4096)
    async with serving(tmp_path, config=many_probes(300)) as s:
        other = "gzip" if first == "identity" else "identity"
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            gate.pause_after = 5
            leader = asyncio.ensure_future(scrape(session, s.url, first))
            await until(lambda: s.stats.scrapes_total == 1)
            gate.set()
            await gate.paused.wait()  # the render is under way (and the leader reading): now the late reader
            late_task = asyncio.ensure_future(scrape(session, s.url, other))
            await until(lambda: s.stats.scrapes_total == 2)
            gate.resumed.set()
            late, lead = await late_task, await leader
        assert s.stats.renders_total == 1
        assert text_of(*late) == text_of(*lead)


async def test_a_scraper_that_hangs_up_does_not_end_the_render_for_the_others(
        tmp_path: Path, gate: Gate) -> None:
    async with serving(tmp_path, config=many_probes(300)) as s:
        _, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: identity\r\n\r\n")
        await writer.drain()
        results = await crowd_after(s, gate, hang_up=lambda: close(writer))
        assert len({text_of(e, b) for e, b in results}) == 1
        assert s.stats.renders_total == 1


async def close(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


async def crowd_after(s: Served, gate: Gate, hang_up: Callable[[], Awaitable[None]]
                      ) -> list[tuple[str, bytes]]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        await until(lambda: s.stats.scrapes_total == 1)
        tasks = [asyncio.ensure_future(scrape(session, s.url, e)) for e in ("gzip", "identity") * 5]
        await until(lambda: s.stats.scrapes_total == 11)
        await hang_up()
        gate.set()
        return await asyncio.gather(*tasks)


@pytest.mark.parametrize(("header", "gzip_ok"), [
    ("gzip", True), ("GZIP", True), ("x-gzip", True), ("deflate, gzip;q=1.0, *;q=0.5", True), ("gzip;q=0", False),
    ("gzip; q=0.0", False), ("identity", False), ("", False), ("br", False), ("gzip;q=abc", False),
])
def test_accept_encoding(header: str, gzip_ok: bool) -> None:
    assert _accepts_gzip(header) is gzip_ok
