"""DNS probe: one query to one server, the response code and answers judged.

    - name: www-resolves-to-cloudfront
      type: dns
      target: www.example.com
      dns: {server: 10.0.0.2, type: A, expect: ['d111111abcdef8\\.cloudfront\\.net']}

dnspython builds the query (once, at factory time) and is the reference for reading answers:
exact response codes (EDNS-extended ones included), the TC flag, every record type. The exchange
itself is a few lines over a non-blocking socket instead of dnspython's resolver: the resolver
retries, walks search lists and follows its own timeouts (a probe must make exactly one
observable attempt), and costs several times the bare exchange (docs/performance.md). Reading
the answer has a fast path too, see wire.py.

config.py is the `dns:` section, wire.py reads responses, probe.py is the attempt, describe.py
its `probed once` lines.

UDP by default, retried over TCP when the UDP answer comes back truncated (TC), as a stub
resolver would; `transport: tcp` queries over TCP only. Queries carry EDNS0 with a 1232-byte
UDP payload (the DNS Flag Day 2020 size), so most answers fit one unfragmented datagram.

Reasons, in order: transport (`timeout`, `connection_refused` ...), an rcode outside
`valid_rcodes` (`dns_nxdomain`, `dns_servfail`, `dns_refused`, else `dns_rcode`), an empty answer
section (`dns_no_answer`), `expect` / `fail_if_answer_matches` (`dns_answer_mismatch`), and fewer
records of the queried type than `min_answers` (`dns_no_answer`).
"""

from __future__ import annotations

from probed.config.model import ProbeSpec
from probed.probes import MetricAlias, ProbeContext, ProbeKind
from probed.probes.common.net import IP_ADDR_HASH_VALUE, IP_PROTOCOL_VALUE, LOOKUP_ALIAS, LOOKUP_VALUE
from probed.probes.dns.config import DnsProbeConfig, validate_target
from probed.probes.dns.describe import describe
from probed.probes.dns.probe import DnsProbe


def _factory(spec: ProbeSpec, _ctx: ProbeContext) -> DnsProbe:
    return DnsProbe(spec, spec.settings)


KIND = ProbeKind(
    name="dns",
    config_cls=DnsProbeConfig,
    factory=_factory,
    validate_target=validate_target,
    aliases={
        # blackbox's meaning on every module: resolving the target's (here the server's) name. The
        # server is an address, so it is 0; the query's own time is `query_time_seconds`.
        LOOKUP_VALUE: LOOKUP_ALIAS[LOOKUP_VALUE],
        "query_succeeded": MetricAlias("probe_dns_query_succeeded",
                                       "Displays whether or not the query was executed successfully"),
        "answer_rrs": MetricAlias("probe_dns_answer_rrs", "Records in the answer section."),
        "authority_rrs": MetricAlias("probe_dns_authority_rrs", "Records in the authority section."),
        "additional_rrs": MetricAlias("probe_dns_additional_rrs",
                                      "Records in the additional section (the EDNS OPT record not counted)."),
        # The server's address and its IP version.
        IP_PROTOCOL_VALUE: LOOKUP_ALIAS[IP_PROTOCOL_VALUE],
        IP_ADDR_HASH_VALUE: LOOKUP_ALIAS[IP_ADDR_HASH_VALUE],
    },
    describe=describe,
    phases=("udp", "tcp"),
    values=("query_time_seconds",),
    infos={"probed_dns_rcode_info": "The response code of the last answer (value 1)."},
)

__all__ = ["KIND", "DnsProbe", "DnsProbeConfig"]
