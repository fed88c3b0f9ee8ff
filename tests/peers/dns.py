"""A DNS server for the tests: answers from a table, over UDP and TCP on one 127.0.0.1 port.

    table = {("www.example.com", "A"): Zone(records=("www.example.com. 300 IN A 192.0.2.10",))}
    async with dns_server(table) as server:
        ... probe f"127.0.0.1:{server.port}" ...
        assert server.queries == {"udp": 1, "tcp": 0}

Each entry says how to answer one (name, type): records (zone-file lines), an rcode, whether
the UDP answer comes back truncated (TC, the full answer over TCP only), whether to stay
silent, or to send a stray datagram with the wrong query ID first. Names not in the table get
NXDOMAIN, as from an authoritative server.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import struct
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Zone:
    records: tuple[str, ...] = ()
    """Zone-file lines: `name ttl IN type data`, e.g. `www.example.com. 300 IN A 192.0.2.10`."""
    rcode: str = "NOERROR"
    authority: tuple[str, ...] = ()
    """Zone-file lines for the authority section (the SOA of an NXDOMAIN or empty answer)."""
    truncate_udp: bool = False
    """Over UDP: TC set and no records; the full answer only over TCP."""
    silent: bool = False
    """Never answer (neither over UDP nor over TCP)."""
    stray_first: bool = False
    """Over UDP: send a datagram with the wrong query ID before the real answer."""
    garbage_udp: bool = False
    """Over UDP: answer with the query's ID followed by bytes that are not a DNS message."""
    silent_tcp: bool = False
    """Never answer over TCP (with `truncate_udp`: the retry gets no answer)."""
    drip_tcp: bool = False
    """Over TCP: send the answer one byte every 20 ms (a slow drip that outlasts any timeout)."""


@dataclass
class DnsServer:
    table: Mapping[tuple[str, str], Zone]
    port: int = 0
    queries: dict[str, int] = field(default_factory=lambda: {"udp": 0, "tcp": 0})
    last_query: dns.message.Message | None = None
    last_zone: Zone | None = None
    queried: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once a query has arrived (over either transport)."""

    def answer(self, wire: bytes, transport: str) -> list[bytes]:
        """The datagrams (or TCP messages) to send back for one query: none when silent."""
        query = dns.message.from_wire(wire)
        self.queries[transport] += 1
        self.queried.set()
        self.last_query = query
        question = query.question[0]
        key = (question.name.to_text().rstrip(".").lower(), dns.rdatatype.to_text(question.rdtype))
        zone = self.table.get(key, Zone(rcode="NXDOMAIN"))
        self.last_zone = zone
        if zone.silent or (zone.silent_tcp and transport == "tcp"):
            return []
        if zone.garbage_udp and transport == "udp":
            return [wire[:2] + b"\x81\x80 this is not a DNS message"]
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.from_text(zone.rcode))
        if zone.truncate_udp and transport == "udp":
            response.flags |= dns.flags.TC
        else:
            response.answer.extend(_rrsets(zone.records))
            response.authority.extend(_rrsets(zone.authority))
        out = [response.to_wire(max_size=65535 if transport == "tcp" else 0)]  # 0: the query's EDNS size
        if zone.stray_first and transport == "udp":
            out.insert(0, struct.pack("!H", (query.id + 1) % 65536) + out[0][2:])
        return out


def _rrsets(lines: tuple[str, ...]) -> list[dns.rrset.RRset]:
    grouped: dict[tuple[str, int, str], list[str]] = {}
    for line in lines:
        name, ttl, _in, rdtype, data = line.split(None, 4)
        grouped.setdefault((name, int(ttl), rdtype), []).append(data)
    return [dns.rrset.from_text(name, ttl, dns.rdataclass.IN, rdtype, *datas)
            for (name, ttl, rdtype), datas in grouped.items()]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport, by construction

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        for datagram in self.server.answer(data, "udp"):
            self.transport.sendto(datagram, addr)


@contextlib.asynccontextmanager
async def dns_server(table: Mapping[tuple[str, str], Zone]) -> AsyncIterator[DnsServer]:
    server = DnsServer(table)
    loop = asyncio.get_running_loop()
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                for message in server.answer(await reader.readexactly(length), "tcp"):
                    framed = struct.pack("!H", len(message)) + message
                    if server.last_zone is not None and server.last_zone.drip_tcp:
                        for i in range(len(framed)):
                            writer.write(framed[i:i + 1])
                            await writer.drain()
                            await asyncio.sleep(0.02)
                    else:
                        writer.write(framed)
                await writer.drain()
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writers.discard(writer)
            writer.close()

    # UDP and TCP on the same port, as DNS servers listen: take a free UDP port, then its TCP twin.
    for _ in range(20):
        udp, _proto = await loop.create_datagram_endpoint(lambda: _Udp(server), local_addr=(HOST, 0))
        server.port = udp.get_extra_info("sockname")[1]
        try:
            tcp = await asyncio.start_server(handle, HOST, server.port)
        except OSError as exc:
            udp.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        break
    else:
        raise RuntimeError("no port free for both UDP and TCP")
    try:
        yield server
    finally:
        udp.close()
        tcp.close()
        for writer in list(writers):
            writer.close()
        await tcp.wait_closed()
        await asyncio.sleep(0)
