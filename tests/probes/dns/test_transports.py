"""How the DNS probe talks to its server: UDP, the TCP retry of a truncated answer, TCP only, timeouts,
cancellation, garbage, stray datagrams, a refused port, the RD flag, and uvloop, the daemon's loop."""

from __future__ import annotations

import asyncio

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from probed.probes import ProbeContext, get_kind
from probed.result import Reason
from tests.peers.dns import HOST, DnsServer, dns_server
from tests.peers.dns_lookup import SERVER_WHERE, TABLE, dns_spec, lookup
from tests.peers.net import closed_port

# --------------------------------------------------------------------------- transports


async def test_truncated_udp_answer_is_retried_over_tcp(server: DnsServer) -> None:
    result = await lookup("big.example.com", server, type="TXT", min_answers=40)

    assert result.reason is Reason.OK, result.detail
    assert server.queries == {"udp": 1, "tcp": 1}
    assert result.facts["transport"] == "tcp" and result.facts["truncated_udp"] is True
    assert set(result.phases) == {"udp", "tcp"}
    assert result.values["answer_rrs"] == 40
    assert result.info == {"probed_dns_rcode_info": {"rcode": "NOERROR"}}


async def test_transport_tcp_queries_over_tcp_only(server: DnsServer) -> None:
    result = await lookup("www.example.com", server, transport="tcp")
    assert result.reason is Reason.OK, result.detail
    assert server.queries == {"udp": 0, "tcp": 1}
    assert result.values["answer_rrs"] == 2


async def test_server_that_never_answers_times_out_naming_the_server(server: DnsServer) -> None:
    result = await lookup("slow.example.com", server, timeout="300ms")

    assert result.reason is Reason.TIMEOUT
    # The probe's own deadline (a tenth inside the timeout) ends it: the detail says who was silent.
    assert result.detail == f"no answer from {HOST}:{server.port} over udp within 0.27s"
    assert set(result.phases) == {"udp"}
    # no answer: nothing to export but blackbox's probe_dns_query_succeeded 0 and the server's address
    assert result.values == {"query_succeeded": 0, **SERVER_WHERE} and result.info == {}
    assert result.facts == {"server": f"{HOST}:{server.port}", "transport": "udp", "truncated_udp": False}
    assert server.queries == {"udp": 1, "tcp": 0}  # one attempt, one query: no retransmission


async def test_truncated_answer_whose_tcp_retry_goes_unanswered_times_out_over_tcp(server: DnsServer) -> None:
    result = await lookup("half.example.com", server, timeout="300ms", type="TXT")

    assert result.reason is Reason.TIMEOUT
    assert result.detail == f"no answer from {HOST}:{server.port} over tcp within 0.27s"
    assert set(result.phases) == {"udp", "tcp"}
    assert result.facts["truncated_udp"] is True
    assert server.queries == {"udp": 1, "tcp": 1}


async def test_a_tcp_answer_dripping_byte_by_byte_ends_at_the_timeout(server: DnsServer) -> None:
    spec = dns_spec("drip.example.com", server.port, timeout="300ms", transport="tcp")
    probe = get_kind("dns").factory(spec, ProbeContext())
    # probe() itself, not run_attempt: the probe's own deadline must end it, however the bytes trickle.
    result = await asyncio.wait_for(probe.probe(), timeout=10)
    assert result.reason is Reason.TIMEOUT
    assert result.detail.endswith("over tcp within 0.27s")


@pytest.mark.parametrize(("name", "transport"), [("slow.example.com", "udp"), ("drip.example.com", "tcp")])
async def test_cancellation_is_never_swallowed(server: DnsServer, name: str, transport: str) -> None:
    spec = dns_spec(name, server.port, timeout="5s", transport=transport)
    task = asyncio.create_task(get_kind("dns").factory(spec, ProbeContext()).probe())
    await asyncio.wait_for(server.queried.wait(), timeout=10)  # the query is out: the probe awaits the answer
    assert server.queries[transport] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_garbage_with_the_query_id_is_a_protocol_error(server: DnsServer) -> None:
    result = await lookup("junk.example.com", server)
    assert result.reason is Reason.PROTOCOL_ERROR
    assert result.detail.startswith("malformed DNS response")
    assert result.detail.endswith(f"(from {HOST}:{server.port} over udp)")
    assert result.values == {"query_succeeded": 0, **SERVER_WHERE}


async def test_datagram_with_another_query_id_is_ignored(server: DnsServer) -> None:
    result = await lookup("stray.example.com", server)
    assert result.reason is Reason.OK, result.detail
    assert result.facts["answers"][0]["data"] == "192.0.2.40"  # type: ignore[index]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_closed_port_is_connection_refused(transport: str) -> None:
    port = closed_port()
    result = await lookup("www.example.com", port, transport=transport)
    assert result.reason is Reason.CONNECTION_REFUSED
    assert result.detail == f"connection refused ({HOST}:{port} over {transport})"
    assert set(result.phases) == {transport}


async def test_recursion_desired_false_clears_the_rd_flag(server: DnsServer) -> None:
    await lookup("www.example.com", server, recursion_desired=False)
    assert server.last_query is not None and not server.last_query.flags & dns.flags.RD


def test_the_daemons_event_loop_uvloop_runs_it_too() -> None:
    """The tests above run on asyncio's loop; the daemon runs on uvloop."""
    import uvloop

    async def scenarios() -> list[Reason]:
        async with dns_server(TABLE) as server:
            return [(await lookup(name, server, **options)).reason for name, options in [
                ("www.example.com", {}), ("big.example.com", {"type": "TXT"}),
                ("nowhere.example.com", {}), ("www.example.com", {"transport": "tcp"}),
            ]]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        reasons = runner.run(scenarios())
    assert reasons == [Reason.OK, Reason.OK, Reason.DNS_NXDOMAIN, Reason.OK]
