"""The web port's connections cannot starve probing: header and idle timeouts, a connection cap, descriptors
kept for probes. Real clients over loopback; the descriptor test runs `probed run` under a low limit."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from probed.output.connections import FD_SHARE_FOR_WEB, WebLimits, connection_cap
from tests.peers.net import free_port
from tests.peers.web import serving

FAST = WebLimits(max_connections=5, header_timeout_s=0.4, idle_timeout_s=0.6)


async def eof_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the server sent before closing; fails if it is still open after `seconds`."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        async with asyncio.timeout(seconds):
            while chunk := await reader.read(4096):
                data += chunk
    return data


async def test_a_client_that_says_nothing_is_dropped(tmp_path: Path) -> None:
    async with serving(tmp_path, limits=FAST, cap=5) as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        t = time.monotonic()
        await asyncio.sleep(0.05)
        assert s.stats.connections_open == 1
        assert await eof_within(reader, 3) == b""
        assert 0.3 < time.monotonic() - t < 2
        writer.close()
        assert s.stats.connections_timed_out_total == 1 and s.stats.connections_open == 0


async def test_headers_a_byte_at_a_time_are_dropped_at_the_deadline(tmp_path: Path) -> None:
    async with serving(tmp_path, limits=FAST, cap=5) as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        request = b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slowloris\r\n\r\n"
        t = time.monotonic()
        with contextlib.suppress(ConnectionError):
            for byte in request:  # 70 bytes at 20 a second: 3.5 s, far past the 0.4 s deadline
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
                if reader.at_eof() or writer.is_closing() or time.monotonic() - t > 3:
                    break
        assert await eof_within(reader, 3) == b""
        assert time.monotonic() - t < 2.5
        writer.close()
        assert s.stats.connections_timed_out_total == 1


async def test_a_prompt_client_is_served_and_an_idle_keep_alive_is_closed(tmp_path: Path) -> None:
    async with serving(tmp_path, limits=FAST, cap=5) as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head = await reader.readuntil(b"probed is healthy\n")
        assert head.startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.5)  # past the head deadline: a served connection is not "too slow"
        writer.write(b"GET /-/ready HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert (await reader.readuntil(b"ready\n")).startswith(b"HTTP/1.1 200")
        t = time.monotonic()
        assert await eof_within(reader, 3) == b""  # then idle past the keep-alive timeout: closed
        assert time.monotonic() - t < 2
        writer.close()
        assert s.stats.connections_timed_out_total == 0


async def test_connections_beyond_the_cap_are_refused_at_once_and_health_returns(tmp_path: Path) -> None:
    async with serving(tmp_path, limits=FAST, cap=5) as s:
        idle = [await asyncio.open_connection("127.0.0.1", s.port) for _ in range(5)]
        await asyncio.sleep(0.05)
        assert s.stats.connections_open == 5
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        refused = await eof_within(reader, 1)
        assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        writer.close()
        assert s.stats.connections_refused_total == 1
        # The idle ones time out; the port answers again.
        for r, _ in idle:
            assert await eof_within(r, 3) == b""
        async with aiohttp.ClientSession() as session, session.get(s.url + "/-/healthy") as response:
            assert response.status == 200
        for _, w in idle:
            w.close()


def test_the_cap_is_a_share_of_the_descriptor_limit() -> None:
    assert connection_cap(WebLimits(max_connections=256), 1024) == 1024 // FD_SHARE_FOR_WEB
    assert connection_cap(WebLimits(max_connections=256), 1 << 20) == 256
    assert connection_cap(WebLimits(max_connections=256), 2) == 1


# --------------------------------------------------------------------------- probed run under a low limit


@pytest.fixture
async def tcp_target() -> AsyncIterator[int]:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, backlog=1024)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@contextlib.contextmanager
def probed_run(tmp_path: Path, target: int, nofile: tuple[int, int], *extra: str) -> Iterator[int]:
    config = tmp_path / "probes.yaml"
    config.write_text("probes:\n" + "".join(
        f"  - {{name: p{i}, type: tcp, target: '127.0.0.1:{target}', interval: 100ms, timeout: 100ms}}\n"
        for i in range(20)))
    port = free_port()
    log = (tmp_path / "probed.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "probed.cli", "run", "--config", str(config), "--listen", f"127.0.0.1:{port}", *extra],
        stdout=subprocess.DEVNULL, stderr=log, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile))
    try:
        for _ in range(400):
            assert proc.poll() is None, (tmp_path / "probed.log").read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def metrics(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    return {f.name: [(dict(s.labels), s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


def sum_of(samples: list[tuple[dict[str, str], float]], **labels: str) -> float:
    return sum(v for lbl, v in samples if all(lbl.get(k) == x for k, x in labels.items()))


async def healthy(port: int) -> int:
    try:
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{port}/-/healthy", timeout=aiohttp.ClientTimeout(total=1)) as r:
            return r.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


@pytest.mark.slow
async def test_idle_connections_cannot_starve_probes_of_file_descriptors(tmp_path: Path, tcp_target: int) -> None:
    # 256 descriptors, soft = hard so the daemon cannot raise it: the web port gets at most 64 of them.
    # 400 idle connections used to take them all, and every probe failed "Too many open files".
    with probed_run(tmp_path, tcp_target, (256, 256), "--web.header-timeout", "2") as port:
        await asyncio.sleep(1.0)
        before = await metrics(port)
        flood: list[socket.socket] = []
        try:
            for _ in range(400):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))
                flood.append(sock)
            await asyncio.sleep(1.5)  # probes run 15 times each meanwhile
            assert await healthy(port) in (0, 503)  # the web port is full of idle connections ...
            statuses = []
            for _ in range(30):  # ... until they time out (2 s): bounded, about 3 s at most
                statuses.append(await healthy(port))
                if statuses[-1] == 200:
                    break
                await asyncio.sleep(0.2)
            assert statuses[-1] == 200, statuses
        finally:
            for sock in flood:
                sock.close()
        after = await metrics(port)
    log = (tmp_path / "probed.log").read_text()
    assert "Too many open files" not in log
    # Not one attempt failed for want of a descriptor (a loaded machine may still time one out).
    failures = after.get("probed_probe_failures", [])
    assert sum_of(failures) - sum_of(failures, reason="timeout") == 0, failures
    runs = sum_of(after["probed_probes"], result="success") - sum_of(before["probed_probes"], result="success")
    assert runs >= 20 * 10, runs
    assert sum_of(after["probed_web_connections_refused"]) > 0
    assert sum_of(after["probed_web_connections_timed_out"]) >= 60


async def test_the_soft_descriptor_limit_is_raised_to_the_hard_limit(tmp_path: Path, tcp_target: int) -> None:
    with probed_run(tmp_path, tcp_target, (128, 4096)) as port:
        families = await metrics(port)
    assert sum_of(families["process_max_fds"]) == 4096
