"""Local targets for the benchmarks, in their own process pinned to the other core.

nginx when it is installed (the closest thing to a production web server, and cheap per
connection), else an aiohttp server on uvloop. TCP benchmarks connect to the same listener.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

NGINX_CONF = """\
worker_processes 1;
daemon off;
error_log {tmp}/error.log crit;
pid {tmp}/nginx.pid;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
  server {{
    listen 127.0.0.1:{port} backlog=4096 reuseport;
    location / {{ return 200 '{{"status":"ok"}}'; }}
  }}
}}
"""

AIOHTTP_SERVER = """
import asyncio, sys, uvloop
from aiohttp import web
async def ok(_): return web.Response(text='{"status":"ok"}')
app = web.Application(); app.router.add_get('/{tail:.*}', ok)
asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None, access_log=None, backlog=4096)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def other_core() -> set[int] | None:
    cores = sorted(os.sched_getaffinity(0))
    return {cores[-1]} if len(cores) > 1 else None


def pin_to_first_core() -> None:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > 1:
        os.sched_setaffinity(0, {cores[0]})


def _wait_listening(port: int, proc: subprocess.Popen[bytes], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"target server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"target server did not listen on {port} within {seconds}s")


@contextlib.contextmanager
def http_target() -> Iterator[tuple[str, str]]:
    """Yields (url, server name) of a local HTTP server on the other core."""
    port = free_port()
    core = other_core()
    preexec = (lambda: os.sched_setaffinity(0, core)) if core else None
    with tempfile.TemporaryDirectory(prefix="probed-bench-") as tmp:
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if nginx:
            conf = Path(tmp) / "nginx.conf"
            conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
            cmd, name = [nginx, "-p", tmp, "-c", str(conf)], "nginx"
        else:
            cmd, name = [sys.executable, "-c", AIOHTTP_SERVER, str(port)], "aiohttp"
        proc = subprocess.Popen(cmd, preexec_fn=preexec, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_listening(port, proc)
            yield f"http://127.0.0.1:{port}/health", name
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
