"""Local targets for the benchmarks, in their own process pinned to the other core.

nginx when it is installed (the closest thing to a production web server, and cheap per
connection), else an aiohttp server on uvloop. TCP benchmarks connect to the same listener.

`tls_target()`: nginx with a `listen ... ssl` server and a certificate chain minted for the run
(trustme: root CA -> intermediate -> leaf for localhost/127.0.0.1, the server sending leaf and
intermediate as production servers do), session tickets and the session cache off, so every
handshake is a full one. `dns_target()`: dnsmasq in the foreground answering `bench.test A`
from its configuration (no upstream, no hosts file, no logging). Both listen on a free
127.0.0.1 port only.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.servers import free_port

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
    listen 127.0.0.1:{port}{ssl} backlog=4096 reuseport;
{tls}    location / {{ return 200 '{{"status":"ok"}}'; }}
  }}
}}
"""
NGINX_TLS = """\
    ssl_certificate {tmp}/chain.pem;
    ssl_certificate_key {tmp}/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    # No resumption of any kind: every handshake is a full one.
    ssl_session_tickets off;
    ssl_session_cache off;
"""

DNS_NAME = "bench.test"
DNS_ADDRESS = "127.0.0.1"

AIOHTTP_SERVER = """
import asyncio, sys, uvloop
from aiohttp import web
async def ok(_): return web.Response(text='{"status":"ok"}')
app = web.Application(); app.router.add_get('/{tail:.*}', ok)
asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None, access_log=None, backlog=4096)
"""


CORES = sorted(os.sched_getaffinity(0))
"""The cores this process may use, read once at import: before `pin_to_first_core()` narrows
its affinity. (Reading the affinity again afterwards, as this module once did, sees one core,
so the peer inherited the benchmark's own core and competed with it for CPU.)"""


def other_core() -> set[int] | None:
    return {CORES[-1]} if len(CORES) > 1 else None


def pin_to_first_core() -> None:
    if len(CORES) > 1:
        os.sched_setaffinity(0, {CORES[0]})


def _wait_listening(port: int, proc: subprocess.Popen[bytes], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"target server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"target server did not listen on {port} within {seconds}s")


def _nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def _dnsmasq() -> str | None:
    return shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None)


SERVER_PIDS: list[int] = []
"""Pids of the peers running now (see peer_cpu_seconds)."""


@contextlib.contextmanager
def _server_process(cmd: list[str], ready: Callable[[subprocess.Popen[bytes]], None]) -> Iterator[None]:
    """Runs `cmd` on the other core until the block ends; `ready(proc)` waits for it to serve."""
    core = other_core()
    preexec = (lambda: os.sched_setaffinity(0, core)) if core else None
    proc = subprocess.Popen(cmd, preexec_fn=preexec, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    SERVER_PIDS.append(proc.pid)
    try:
        ready(proc)
        yield
    finally:
        SERVER_PIDS.remove(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _process_tree_cpu(pid: int, depth: int = 0) -> float:
    """User + system CPU seconds of `pid` and its descendants (nginx: master and worker)."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, IndexError, ValueError):
        return 0.0
    if depth < 3:
        total += sum(_process_tree_cpu(int(c), depth + 1) for c in children)
    return total


def peer_cpu_seconds() -> float:
    """CPU seconds used so far by the running peers."""
    return sum(_process_tree_cpu(pid) for pid in SERVER_PIDS)


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (every core, /proc/stat), to spot other load."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def http_target() -> Iterator[tuple[str, str]]:
    """Yields (url, server name) of a local HTTP server on the other core."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="probed-bench-") as tmp:
        nginx = _nginx()
        if nginx:
            conf = Path(tmp) / "nginx.conf"
            conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, ssl="", tls=""))
            cmd, name = [nginx, "-p", tmp, "-c", str(conf)], "nginx"
        else:
            cmd, name = [sys.executable, "-c", AIOHTTP_SERVER, str(port)], "aiohttp"
        with _server_process(cmd, lambda proc: _wait_listening(port, proc)):
            yield f"http://127.0.0.1:{port}/health", name


@dataclass(frozen=True)
class TlsTarget:
    hostport: str
    """`127.0.0.1:PORT`, the probe's target."""
    ca_file: str
    """The minted root CA (PEM): the probe's `tls.ca_file`."""
    server_name: str
    """`localhost`: the probe's `tls.server_name`."""
    server: str
    key_type: str
    resumption_refused: bool
    """A second handshake offering the first one's session was a full handshake again."""


def mint_chain(directory: Path, key_type: str = "rsa") -> Path:
    """Root -> intermediate -> leaf for localhost/127.0.0.1 under `directory`; returns the CA file.

    Writes chain.pem (leaf, intermediate), key.pem and ca.pem. `key_type`: rsa (RSA-2048, the
    common production case and the cheaper one for the client to verify) or ecdsa (P-256).
    """
    import trustme

    kt = trustme.KeyType.RSA if key_type == "rsa" else trustme.KeyType.ECDSA
    root = trustme.CA(organization_name="probed bench root", key_type=kt)
    intermediate = root.create_child_ca(key_type=kt)
    leaf = intermediate.issue_cert("localhost", "127.0.0.1", key_type=kt)
    (directory / "chain.pem").write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    (directory / "key.pem").write_bytes(leaf.private_key_pem.bytes())
    ca_file = directory / "ca.pem"
    root.cert_pem.write_to_path(str(ca_file))
    return ca_file


def _resumption_refused(port: int, ca_file: Path, server_name: str) -> bool:
    """Two handshakes, the second offering the first's session (after an HTTP exchange, so TLS
    1.3 tickets, if any, have arrived): True when the second was not resumed."""
    import ssl

    ctx = ssl.create_default_context(cafile=str(ca_file))
    session = None
    reused = []
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=server_name, session=session) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            for _ in range(100):  # bounded: the response is a few hundred bytes
                if not tls.recv(65536):
                    break
            reused.append(tls.session_reused)
            session = tls.session
    return not any(reused)


@contextlib.contextmanager
def tls_target(key_type: str = "rsa") -> Iterator[TlsTarget]:
    """nginx serving TLS (full handshakes only) on a free loopback port, on the other core."""
    nginx = _nginx()
    if nginx is None:
        raise RuntimeError("the tls benchmark needs nginx (/usr/sbin/nginx)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="probed-bench-") as tmp:
        ca_file = mint_chain(Path(tmp), key_type)
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, ssl=" ssl", tls=NGINX_TLS.format(tmp=tmp)))
        with _server_process([nginx, "-p", tmp, "-c", str(conf)], lambda proc: _wait_listening(port, proc)):
            refused = _resumption_refused(port, ca_file, "localhost")
            yield TlsTarget(f"127.0.0.1:{port}", str(ca_file), "localhost", "nginx", key_type, refused)


def _wait_dns(port: int, proc: subprocess.Popen[bytes], seconds: float = 10.0) -> None:
    import dns.message
    import dns.query

    query = dns.message.make_query(DNS_NAME, "A")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dnsmasq exited with {proc.returncode}")
        try:
            answer = dns.query.udp(query, "127.0.0.1", timeout=0.2, port=port)
        except (OSError, dns.exception.Timeout):
            time.sleep(0.05)
            continue
        if answer.answer:
            return
        raise RuntimeError(f"dnsmasq answered {DNS_NAME} without an answer: {answer}")
    raise RuntimeError(f"dnsmasq did not answer on {port} within {seconds}s")


@contextlib.contextmanager
def dns_target() -> Iterator[tuple[str, str, str]]:
    """Yields (server `127.0.0.1:PORT`, the name it answers, server name): dnsmasq on the other core."""
    dnsmasq = _dnsmasq()
    if dnsmasq is None:
        raise RuntimeError("the dns benchmark needs dnsmasq (/usr/sbin/dnsmasq)")
    port = free_port()
    cmd = [
        dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file", "--no-resolv", "--no-hosts",
        "--no-poll", f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces",
        f"--host-record={DNS_NAME},{DNS_ADDRESS}", "--cache-size=10000", "--log-facility=-",
        "--dns-forward-max=10000",
    ]
    with _server_process(cmd, lambda proc: _wait_dns(port, proc)):
        yield f"127.0.0.1:{port}", DNS_NAME, "dnsmasq"
