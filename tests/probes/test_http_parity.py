"""blackbox_exporter's http series that come from response headers (issue 13 item 4)."""

from __future__ import annotations

import email.utils
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from tests.peers.http import HOST, Prober

MODIFIED = 1_700_000_000


@asynccontextmanager
async def server(headers: dict[str, str]) -> AsyncIterator[str]:
    async def page(_: web.Request) -> web.Response:
        return web.Response(text="page", headers=headers)

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    try:
        yield f"http://{HOST}:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


async def test_last_modified_is_exported_as_unix_time_and_absent_without_the_header(prober: Prober) -> None:
    async with server({"Last-Modified": email.utils.formatdate(MODIFIED, usegmt=True)}) as url:
        dated = await prober.once("http", url)
    async with server({}) as url:
        undated = await prober.once("http", url)
    async with server({"Last-Modified": "yesterday, more or less"}) as url:
        garbled = await prober.once("http", url)

    assert dated.success and dated.values["last_modified_timestamp_seconds"] == MODIFIED
    assert "last_modified_timestamp_seconds" not in undated.values
    assert garbled.success and "last_modified_timestamp_seconds" not in garbled.values
