"""TLS peers for the tests: certificates minted on the spot, servers on free 127.0.0.1 ports.

`Pki` is a throwaway root CA with one intermediate (trustme), plus the odd certificates trustme
does not make (self-signed). `tls_server()` serves any of them from this event loop; other
helpers give a port that accepts TCP and never speaks TLS, and a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import socketserver
import ssl
import struct
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.peers.net import HOST

DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class ServerCert:
    """What a server presents: its chain (leaf first) and key, PEM."""

    chain: tuple[bytes, ...]
    key: bytes

    @property
    def leaf(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.chain[0])

    @property
    def not_after(self) -> float:
        return self.leaf.not_valid_after_utc.timestamp()

    def earliest_not_after(self) -> float:
        return min(x509.load_pem_x509_certificate(c).not_valid_after_utc.timestamp() for c in self.chain)

    def without_intermediates(self) -> ServerCert:
        return ServerCert(self.chain[:1], self.key)

    def load_into(self, ctx: ssl.SSLContext) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp, "chain.pem"), Path(tmp, "key.pem")
            cert.write_bytes(b"".join(self.chain))
            key.write_bytes(self.key)
            ctx.load_cert_chain(cert, key)

    def write(self, directory: Path, stem: str, passphrase: bytes | None = None) -> tuple[Path, Path]:
        """Files for a client certificate (`client_cert`, `client_key`); the key encrypted with
        `passphrase` when given."""
        cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
        cert.write_bytes(b"".join(self.chain))
        pem = self.key
        if passphrase is not None:
            private = serialization.load_pem_private_key(self.key, None)
            pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.BestAvailableEncryption(passphrase))
        key.write_bytes(pem)
        return cert, key


class Pki:
    """A root CA, an intermediate below it, and leaves issued by the intermediate."""

    def __init__(self, directory: Path) -> None:
        self.root = trustme.CA(organization_name="probed test root")
        self.intermediate = self.root.create_child_ca()
        self.ca_file = directory / "root.pem"
        self.root.cert_pem.write_to_path(str(self.ca_file))

    def leaf(self, *names: str, not_before: dt.datetime | None = None,
             not_after: dt.datetime | None = None) -> ServerCert:
        cert = self.intermediate.issue_cert(*names, not_before=not_before, not_after=not_after)
        return ServerCert(tuple(p.bytes() for p in cert.cert_chain_pems), cert.private_key_pem.bytes())

    def leaf_expiring_in(self, delta: dt.timedelta, *names: str) -> ServerCert:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        return self.leaf(*(names or ("localhost",)), not_before=now - 30 * DAY, not_after=now + delta)


def self_signed(name: str, valid_for: dt.timedelta = 90 * DAY) -> ServerCert:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - DAY).not_valid_after(now + valid_for)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return ServerCert((cert.public_bytes(serialization.Encoding.PEM),), key_pem)


# --------------------------------------------------------------------------- servers


@dataclass
class Peer:
    port: int
    accepted: int = 0
    """Connections accepted so far."""
    open: int = 0
    """Connections the client has not closed yet."""
    first_accepted: threading.Event = field(default_factory=threading.Event)
    all_closed: threading.Event = field(default_factory=threading.Event)
    """Set whenever no connection is open (after the first)."""
    released: threading.Event = field(default_factory=threading.Event)
    """Set when the server stops: ends the waits of `hold_open` connections."""


@contextlib.asynccontextmanager
async def tls_server(cert: ServerCert, *, max_version: ssl.TLSVersion | None = None,
                     client_ca: Path | None = None, hold_open: bool = False,
                     session_tickets: bool = True) -> AsyncIterator[Peer]:
    """A TLS server on 127.0.0.1 presenting `cert`.

    After the handshake it waits for the client to close; with `hold_open`, it ignores the
    client altogether (close_notify, FIN) and keeps the connection until the server stops, as
    some load balancers do. With `client_ca` it requires a client certificate issued under it
    (mutual TLS). `session_tickets=False`: no TLS 1.3 session tickets after the handshake.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.load_into(ctx)
    if max_version is not None:
        ctx.maximum_version = max_version
    if not session_tickets:
        ctx.num_tickets = 0
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(client_ca))
    async with _serve(ctx, hold_open=hold_open) as peer:
        yield peer


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[Peer]:
    """Accepts TCP connections and never sends a byte: a TLS client waits for its ServerHello."""
    async with _serve(None) as peer:
        yield peer


@contextlib.asynccontextmanager
async def _serve(ctx: ssl.SSLContext | None, hold_open: bool = False,
                 speak: Callable[[socket.socket, Peer], None] | None = None) -> AsyncIterator[Peer]:
    # Plain threads and blocking sockets, like most TLS servers: OpenSSL writes its alerts
    # straight to the socket (asyncio's SSL transport may close before flushing one, and the
    # alert is what tells a client *why*: protocol_version, certificate_required ...).
    peer = Peer(0)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            peer.accepted += 1
            peer.open += 1
            peer.all_closed.clear()
            peer.first_accepted.set()
            try:
                conn: socket.socket = self.request
                conn.settimeout(10)
                if speak is not None:
                    speak(conn, peer)
                elif ctx is None:
                    _drain(conn)
                else:
                    with ctx.wrap_socket(conn, server_side=True) as tls:
                        if hold_open:
                            peer.released.wait(10)
                        else:
                            _drain(tls)
            except OSError:  # failed handshakes included: ssl.SSLError is an OSError
                pass
            finally:
                peer.open -= 1
                if peer.open == 0:
                    peer.all_closed.set()

    server = socketserver.ThreadingTCPServer((HOST, 0), Handler)
    server.daemon_threads = True
    peer.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        peer.released.set()
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join()


@contextlib.asynccontextmanager
async def banner_server(data: bytes) -> AsyncIterator[Peer]:
    """Sends `data` as soon as a client connects (an HTTP error, an SSH banner), then waits for
    the client to close: a port where something other than TLS answers."""
    def speak(conn: socket.socket, _peer: Peer) -> None:
        conn.sendall(data)
        _drain(conn)

    async with _serve(None, speak=speak) as peer:
        yield peer


@contextlib.asynccontextmanager
async def hanging_up_server(reset: bool) -> AsyncIterator[Peer]:
    """Reads the client's first flight (its ClientHello), then hangs up: with a reset (RST, as an
    IPS or a TLS terminator rejecting the SNI does) or an orderly FIN."""
    def speak(conn: socket.socket, _peer: Peer) -> None:
        conn.recv(65536)
        if reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    async with _serve(None, speak=speak) as peer:
        yield peer


@contextlib.asynccontextmanager
async def dripping_server(first: bytes, every_s: float = 0.01) -> AsyncIterator[Peer]:
    """Sends `first`, then one byte (0x00) every `every_s` until the client goes: a peer that
    looks like a TLS server starting its answer and never finishing it (a slow drip)."""
    def speak(conn: socket.socket, peer: Peer) -> None:
        conn.sendall(first)
        while not peer.released.wait(every_s):
            conn.sendall(b"\x00")  # raises once the client has gone: the connection ends

    async with _serve(None, speak=speak) as peer:
        yield peer


def _drain(conn: socket.socket) -> None:
    while conn.recv(65536):
        pass


