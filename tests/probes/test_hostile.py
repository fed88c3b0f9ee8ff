"""Every probe type against every hostile server: no stall, no crash, no internal_error, no leak.

The stall bound is the probe's timeout plus a margin, enforced with `asyncio.timeout` around the
attempt (a bound on liveness, not a speed assertion). A stall that freezes the event loop itself
cannot be caught that way, so the payload that once did (and a fuzz of random ones against the
database types) runs in a child process with a wall-clock limit.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from probed.result import Reason
from tests.peers.aws import aws_credentials_env
from tests.peers.hostile import BEHAVIOURS, Hostile, hostile_server
from tests.peers.http import Prober

TIMEOUT_S = 1.0
MARGIN_S = 2.0
REPO = Path(__file__).resolve().parents[2]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def target_of(type_name: str, peer: Hostile) -> tuple[str, dict[str, Any] | None]:
    a = peer.address
    return {
        "http": (f"http://{a}/", None),
        "tcp": (a, {"send": "PING\r\n", "expect": "PONG"}),
        "tls": (a, None),
        "dns": ("www.example.com", {"server": a, "transport": "tcp"}),
        "postgres": (f"postgres://probe@{a}/db", {"password": "x", "sslmode": "disable"}),
        "mysql": (f"mysql://probe@{a}/db", {"password": "x"}),
        "redis": (f"redis://{a}/0", {"password": "x"}),
        "aws": ("", {"check": "sts_identity", "region": "us-east-1", "endpoint_url": f"http://{a}"}),
    }[type_name]


@pytest.mark.parametrize("behaviour", list(BEHAVIOURS))
@pytest.mark.parametrize("type_name", ["http", "tcp", "tls", "dns", "postgres", "mysql", "redis", "aws"])
async def test_no_hostile_server_stalls_crashes_or_leaks(type_name: str, behaviour: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    aws_credentials_env(monkeypatch)
    prober = Prober()
    async with hostile_server(behaviour) as peer:
        target, settings = target_of(type_name, peer)
        if type_name == "aws":  # aws derives its target; make one first so the client exists
            await prober.once(type_name, target, settings, timeout=5.0)
        gc.collect()
        before = open_fds()
        async with asyncio.timeout(TIMEOUT_S + MARGIN_S):
            result = await prober.once(type_name, target, settings, timeout=TIMEOUT_S)
    await prober.aclose()
    gc.collect()
    assert result.reason is not Reason.INTERNAL_ERROR, result.detail
    assert not result.success, result
    assert open_fds() <= before, f"{type_name} against {behaviour}: {open_fds() - before} descriptors left open"


CHILD = textwrap.dedent("""
    import asyncio, json, random, sys
    from probed.probes.mysql import MysqlProbeConfig
    from probed.probes.postgres import PostgresProbeConfig
    from probed.probes.redis import RedisProbeConfig
    from probed.runtime.attempt import run_attempt
    from tests.peers.db import build_probe

    async def main(payloads):
        current = b""
        async def handle(reader, writer):
            try:
                try:
                    await asyncio.wait_for(reader.read(1024), 0.2)  # MySQL clients wait for the server
                except TimeoutError:
                    pass
                writer.write(current)
                await writer.drain()
                await reader.read()
            except Exception:
                pass
            writer.transport.abort()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pg = f"postgres://u@127.0.0.1:{port}/db"
        kinds = [("postgres", pg, PostgresProbeConfig(password="x", sslmode="disable")),
                 ("postgres", pg, PostgresProbeConfig(password="x")),
                 ("mysql", f"mysql://u@127.0.0.1:{port}/db", MysqlProbeConfig(password="x")),
                 ("redis", f"redis://127.0.0.1:{port}/0", RedisProbeConfig(password="x"))]
        out = []
        for kind, url, cfg in kinds:
            for payload in payloads:
                current = payload
                probe = build_probe(kind, url, cfg, timeout=1.0)
                result = await run_attempt(probe, 1.0)
                await probe.aclose()
                out.append([kind, payload.hex(), result.reason.value, result.detail])
        print(json.dumps(out))

    asyncio.run(main([bytes.fromhex(h) for h in json.loads(sys.argv[1])]))
""")


def run_child(payloads: list[bytes]) -> list[list[str]]:
    """The attempts in a child process: a frozen loop there is a timeout here, not a hung suite."""
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps([p.hex() for p in payloads])], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr[-2000:]
    rows: list[list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return rows


def test_a_type_zero_postgres_message_is_a_protocol_error_not_a_frozen_loop() -> None:
    rows = run_child([b"\x00\xff\xff\xff\xff"])
    pg = [r for r in rows if r[0] == "postgres"]
    assert {r[2] for r in pg} == {"protocol_error"}, pg
    assert "not a PostgreSQL server" in pg[0][3]


NOT_ANY_DATABASE = [b"HTTP/1.1 200 OK\r\n\r\n", b"SSH-2.0-OpenSSH_9.6\r\n", b"$-5\r\n", b":abc\r\n"]
"""Whole lines no database speaks (a bulk length of -5 and a non-numeric integer are not RESP)."""
ODD = [b"\xff" * 64, b"\x00\xff\xff\xff\xff", b"-ERR\r\n", b"*99999999999\r\n"]
"""Half-lines, a valid Redis error reply, an array of 10^11 elements: anything but internal_error."""


def test_garbage_and_random_payloads_on_database_ports_are_protocol_errors() -> None:
    rng = random.Random(12)
    fuzz = [rng.randbytes(rng.randrange(1, 300)) for _ in range(30)]
    rows = run_child(NOT_ANY_DATABASE + ODD + fuzz)
    assert not [r for r in rows if r[2] == "internal_error"], [r for r in rows if r[2] == "internal_error"]
    fixed = {p.hex() for p in NOT_ANY_DATABASE}
    wrong = [r for r in rows if r[1] in fixed and r[2] != "protocol_error"]
    assert not wrong, wrong
