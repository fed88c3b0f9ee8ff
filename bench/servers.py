"""Throwaway PostgreSQL, MariaDB and Redis servers, for the database probe tests and the leak bench.

Each server runs from the binaries installed on the machine, in its own temp dir, on a free
127.0.0.1 port, with a password-protected user and a low connection limit, so tests can hit the
limits without disturbing (or depending on) any server already running on 5432/3306/6379.

Plain context managers, no pytest: `bench/db_leak.py` uses them directly, and the test fixtures
in tests/peers/db.py wrap them (tests may import bench; bench never imports tests).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

PG_USER, PG_PASSWORD, PG_DB = "probe", "pg-Secret-4711", "appdb"
MY_USER, MY_PASSWORD, MY_DB = "probe", "my-Secret-4711", "appdb"
REDIS_PASSWORD, REDIS_ACL_USER, REDIS_ACL_PASSWORD = "rd-Secret-4711", "probe", "acl-Secret-4711"
ADMIN_PASSWORD = "admin-Secret-4711"
MAX_CONNECTIONS = 12
START_TIMEOUT_S = 60.0


class ServerUnavailable(RuntimeError):
    """The engine's binaries are not installed on this machine."""


def free_port() -> int:
    """A loopback port that was free a moment ago (bind to 0, note the port, close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to kill the server when the test process dies, so crashes leave no orphans."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{_tail(log)}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"server did not listen on {port} within {START_TIMEOUT_S:g}s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Server:
    """Start/stop/restart plumbing shared by the three engines."""

    name = "server"

    def __init__(self) -> None:
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"probed-{self.name}-"))
        self.log = self.tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def popen_kwargs(self) -> dict[str, Any]:
        return {}

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                                         **self.popen_kwargs())
        _wait_port(self.port, self.proc, self.log)
        self.wait_ready()

    def wait_ready(self) -> None:
        """Listening is not always accepting (PostgreSQL says "starting up"); engines refine this."""

    def setup_users(self) -> None:
        """Create the probe's user and database (Redis has its users on the command line)."""

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


# --------------------------------------------------------------------------- PostgreSQL


def pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise ServerUnavailable("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb); "
                                "apt-get install postgresql")
    return Path(found[-1]).parent


class PostgresServer(Server):
    """PostgreSQL with scram-sha-256 over TCP, TLS available, max_connections 12 (3 reserved)."""

    name = "postgres"

    def __init__(self, tls_files: tuple[str, str] | None = None) -> None:
        self.bindir = pg_bindir()
        super().__init__()
        self.data = self.tmp / "data"
        # PostgreSQL refuses to run as root: run as the `postgres` system user when we are root.
        self.run_as = "postgres" if os.geteuid() == 0 else None
        if self.run_as:
            shutil.chown(self.tmp, self.run_as)
        self.tls_files = tls_files
        self._initdb()

    def popen_kwargs(self) -> dict[str, Any]:
        return {"user": self.run_as} if self.run_as else {}

    def _initdb(self) -> None:
        pwfile = self.tmp / "pw"
        pwfile.write_text(ADMIN_PASSWORD)
        if self.run_as:
            shutil.chown(pwfile, self.run_as)
        subprocess.run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "admin", f"--pwfile={pwfile}",
                        "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions",
                        "-E", "UTF8", "--locale=C"],
                       check=True, capture_output=True, **self.popen_kwargs())
        conf = [
            "listen_addresses = '127.0.0.1'", f"port = {self.port}", f"unix_socket_directories = '{self.tmp}'",
            f"max_connections = {MAX_CONNECTIONS}", "superuser_reserved_connections = 3",
            "password_encryption = 'scram-sha-256'", "fsync = off", "synchronous_commit = off",
            "full_page_writes = off", "shared_buffers = 16MB", "log_min_messages = warning",
        ]
        if self.tls_files:
            cert, key = (self.tmp / "server.crt", self.tmp / "server.key")
            shutil.copy(self.tls_files[0], cert)
            shutil.copy(self.tls_files[1], key)
            key.chmod(0o600)
            if self.run_as:
                shutil.chown(cert, self.run_as)
                shutil.chown(key, self.run_as)
            conf += ["ssl = on", f"ssl_cert_file = '{cert}'", f"ssl_key_file = '{key}'"]
        with (self.data / "postgresql.conf").open("a") as f:
            f.write("\n".join(conf) + "\n")

    def command(self) -> list[str]:
        return [str(self.bindir / "postgres"), "-D", str(self.data)]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            ready = subprocess.run([str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                                   check=False)
            if ready.returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL did not accept connections:\n{_tail(self.log)}")

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)  # fast shutdown: disconnect clients, no waiting for them
        self.proc = None

    def psql(self, *statements: str, db: str = "postgres") -> str:
        """Run statements as the superuser over the unix socket, each in its own transaction."""
        psql = shutil.which("psql") or str(self.bindir / "psql")
        args = [a for stmt in statements for a in ("-c", stmt)]
        out = subprocess.run([psql, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", str(self.tmp),
                              "-p", str(self.port), "-U", "admin", "-d", db, *args],
                             check=False, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def setup_users(self) -> None:
        self.psql(f"CREATE ROLE {PG_USER} LOGIN PASSWORD '{PG_PASSWORD}' IN ROLE pg_monitor",
                  f"CREATE DATABASE {PG_DB} OWNER {PG_USER}")

    @contextlib.contextmanager
    def certificate(self, cert: str, key: str) -> Iterator[None]:
        """Serve another certificate for a while (a reload, no restart), then the original again."""
        names = []
        for src, name in ((cert, "alt.crt"), (key, "alt.key")):
            dst = self.tmp / name
            shutil.copy(src, dst)
            dst.chmod(0o600)  # PostgreSQL refuses a key others can read
            if self.run_as:
                shutil.chown(dst, self.run_as)
            names.append(dst)
        self.psql(f"ALTER SYSTEM SET ssl_cert_file = '{names[0]}'", f"ALTER SYSTEM SET ssl_key_file = '{names[1]}'",
                  "SELECT pg_reload_conf()")
        try:
            yield
        finally:
            self.psql("ALTER SYSTEM RESET ssl_cert_file", "ALTER SYSTEM RESET ssl_key_file", "SELECT pg_reload_conf()")

    def make_standby(self) -> None:
        """Restart as a hot standby (standby.signal, no primary to follow): in recovery, read-only.

        What a probe meets when the endpoint it checks now points at a replica; `promote()` is
        the failover that follows.
        """
        self.stop()
        signal_file = self.data / "standby.signal"
        signal_file.touch()
        if self.run_as:
            shutil.chown(signal_file, self.run_as)
        self.start()

    def promote(self) -> None:
        self.psql("SELECT pg_promote(wait => true)")

    def url(self, user: str = PG_USER, db: str = PG_DB, password: str | None = None, params: str = "") -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgres://{auth}@127.0.0.1:{self.port}/{db}" + (f"?{params}" if params else "")

    def admin_dsn(self) -> str:
        return f"postgres://admin:{ADMIN_PASSWORD}@127.0.0.1:{self.port}/postgres"


# --------------------------------------------------------------------------- MariaDB / MySQL


def mariadb_binaries() -> tuple[str, str]:
    daemon = shutil.which("mariadbd") or ("/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None)
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not daemon or not install:
        raise ServerUnavailable("MariaDB server binaries not found (mariadbd, mariadb-install-db); "
                                "apt-get install mariadb-server")
    return daemon, install


class MariaDbServer(Server):
    """MariaDB with a password user, max_connections 12, no binlog, a tiny buffer pool."""

    name = "mariadb"

    def __init__(self, tls_files: tuple[str, str] | None = None) -> None:
        self.daemon, install = mariadb_binaries()
        self.tls_files = tls_files
        super().__init__()
        self.data = self.tmp / "data"
        self.socket = self.tmp / "mysqld.sock"
        # mariadbd refuses root unless told so explicitly; the data dir then belongs to root.
        self.user_args = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run([install, "--no-defaults", f"--datadir={self.data}", "--auth-root-authentication-method=normal",
                        "--skip-test-db", "--skip-name-resolve", *self.user_args],
                       check=True, capture_output=True)

    def command(self) -> list[str]:
        return [self.daemon, "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
                "--bind-address=127.0.0.1", f"--socket={self.socket}", f"--pid-file={self.tmp / 'mysqld.pid'}",
                f"--max-connections={MAX_CONNECTIONS}", "--skip-name-resolve", "--skip-log-bin",
                "--innodb-buffer-pool-size=8M", "--innodb-log-file-size=8M", "--performance-schema=off",
                "--innodb-flush-log-at-trx-commit=0", f"--log-error={self.log}", *self.user_args,
                *([f"--ssl-cert={self.tls_files[0]}", f"--ssl-key={self.tls_files[1]}"] if self.tls_files else [])]

    def wait_ready(self) -> None:
        import pymysql  # type: ignore[import-untyped]

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                pymysql.connect(unix_socket=str(self.socket), user="root").close()
                return
            except pymysql.err.OperationalError:
                time.sleep(0.05)
        raise RuntimeError(f"MariaDB did not accept connections:\n{_tail(self.log)}")

    def sql(self, *statements: str) -> list[tuple[Any, ...]]:
        """Run statements as root over the unix socket; returns the last one's rows."""
        import pymysql

        conn = pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True)
        try:
            with conn.cursor() as cur:
                rows: list[tuple[Any, ...]] = []
                for stmt in statements:
                    cur.execute(stmt)
                    rows = list(cur.fetchall())
                return rows
        finally:
            conn.close()

    def setup_users(self) -> None:
        # PROCESS lets the probe user see other sessions' queries (the long-running check);
        # no SUPER, so the probe user meets the connection limit like an application would.
        self.sql(f"CREATE DATABASE {MY_DB}",
                 f"CREATE USER '{MY_USER}'@'%' IDENTIFIED BY '{MY_PASSWORD}'",
                 f"GRANT SELECT, PROCESS ON *.* TO '{MY_USER}'@'%'",
                 f"GRANT ALL ON {MY_DB}.* TO '{MY_USER}'@'%'")

    def url(self, user: str = MY_USER, db: str = MY_DB, password: str | None = None, params: str = "") -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"mysql://{auth}@127.0.0.1:{self.port}/{db}" + (f"?{params}" if params else "")

    def threads_connected(self) -> int:
        rows = self.sql("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
        return int(rows[0][1]) - 1  # minus the connection asking


# --------------------------------------------------------------------------- Redis


def redis_binary() -> str:
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.path.exists(p)), None)
    if not found:
        raise ServerUnavailable("redis-server not found; apt-get install redis-server")
    return found


class RedisServer(Server):
    """Redis with requirepass, an ACL user, a small maxmemory, no persistence."""

    name = "redis"

    def __init__(self, maxmemory: str = "64mb", maxclients: int = MAX_CONNECTIONS, replica_of: int | None = None,
                 tls_files: tuple[str, str] | None = None) -> None:
        self.binary = redis_binary()
        super().__init__()
        self.tls_port = free_port() if tls_files else None
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", REDIS_PASSWORD,
                "--user", f"{REDIS_ACL_USER}", "on", f">{REDIS_ACL_PASSWORD}", "~*", "&*", "+@all",
                "--maxmemory", maxmemory, "--maxmemory-policy", "noeviction", "--maxclients", str(maxclients),
                "--save", "", "--appendonly", "no", "--dir", str(self.tmp), "--logfile", str(self.log),
                "--protected-mode", "no"]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of), "--masterauth", REDIS_PASSWORD]
        if tls_files and self.tls_port:
            args += ["--tls-port", str(self.tls_port), "--tls-cert-file", tls_files[0], "--tls-key-file", tls_files[1],
                     "--tls-auth-clients", "no"]
        self._args = args

    def command(self) -> list[str]:
        return self._args

    def cli(self, *args: str) -> str:
        out = subprocess.run([shutil.which("redis-cli") or "redis-cli", "-h", "127.0.0.1", "-p", str(self.port),
                              "--no-auth-warning", "-a", REDIS_PASSWORD, *args],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def url(self, user: str = "", db: int = 0, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if password is not None else (f"{user}@" if user else "")
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def tls_url(self) -> str:
        return f"rediss://127.0.0.1:{self.tls_port}/0"

    @contextlib.contextmanager
    def certificate(self, cert: str, key: str) -> Iterator[None]:
        """Serve another certificate for a while (CONFIG SET reloads it), then the original again."""
        original = [self.cli("CONFIG", "GET", name).splitlines()[1] for name in ("tls-cert-file", "tls-key-file")]
        self.cli("CONFIG", "SET", "tls-cert-file", cert, "tls-key-file", key)
        try:
            yield
        finally:
            self.cli("CONFIG", "SET", "tls-cert-file", original[0], "tls-key-file", original[1])

    def connected_clients(self) -> int:
        info = self.cli("INFO", "clients")
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        return int(fields["connected_clients"]) - 1  # minus redis-cli itself
