"""The DNS probe tests' zone table (what tests/peers/dns.py's server answers), and one lookup.

`lookup` builds a `type: dns` probe from YAML, as a config file would, runs one attempt against
the server and closes the probe.
"""

from __future__ import annotations

from typing import Any

import yaml

from probed.config.model import ProbeSpec
from probed.probes import ProbeContext, get_kind
from probed.result import ProbeResult
from probed.runtime.attempt import run_attempt
from probed.runtime.probeset import parse_config
from tests.peers.dns import HOST, DnsServer, Zone

CLOUDFRONT = "d111111abcdef8.cloudfront.net"
SERVER_WHERE = {"ip_protocol": 4, "ip_addr_hash": 3668918509, "dns_lookup_time_seconds": 0}
"""blackbox's probe_ip_protocol, probe_ip_addr_hash and probe_dns_lookup_time_seconds (resolving the
server's name: it is an address) of the server 127.0.0.1, on every result."""
TABLE = {
    ("www.example.com", "A"): Zone(records=(
        "www.example.com. 300 IN A 192.0.2.10",
        "www.example.com. 300 IN A 192.0.2.11",
    )),
    ("cdn.example.com", "A"): Zone(records=(
        "cdn.example.com. 60 IN CNAME unexpected-alb-123.eu-west-1.elb.amazonaws.com.",
        "unexpected-alb-123.eu-west-1.elb.amazonaws.com. 60 IN A 192.0.2.20",
    )),
    ("good-cdn.example.com", "A"): Zone(records=(
        f"good-cdn.example.com. 60 IN CNAME {CLOUDFRONT}.",
        f"{CLOUDFRONT}. 60 IN A 192.0.2.30",
    )),
    ("broken.example.com", "A"): Zone(rcode="SERVFAIL"),
    ("private.example.com", "A"): Zone(rcode="REFUSED"),
    ("odd.example.com", "A"): Zone(rcode="NOTIMP"),
    ("empty.example.com", "A"): Zone(),
    ("gone.example.com", "A"): Zone(rcode="NXDOMAIN", authority=(
        "example.com. 900 IN SOA ns-1.awsdns-01.org. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400",)),
    ("big.example.com", "TXT"): Zone(truncate_udp=True, records=tuple(
        f'big.example.com. 120 IN TXT "record-{i:03d} {"x" * 60}"' for i in range(40))),
    ("slow.example.com", "A"): Zone(silent=True),
    ("half.example.com", "TXT"): Zone(truncate_udp=True, silent_tcp=True),
    ("junk.example.com", "A"): Zone(garbage_udp=True),
    ("drip.example.com", "A"): Zone(drip_tcp=True, records=("drip.example.com. 60 IN A 192.0.2.50",)),
    ("stray.example.com", "A"): Zone(stray_first=True, records=("stray.example.com. 5 IN A 192.0.2.40",)),
    ("example.com", "MX"): Zone(records=("example.com. 3600 IN MX 10 inbound-smtp.eu-west-1.amazonaws.com.",)),
    ("example.com", "TXT"): Zone(records=('example.com. 3600 IN TXT "v=spf1 include:amazonses.com ~all"',)),
    ("10.2.0.192.in-addr.arpa", "PTR"): Zone(records=("10.2.0.192.in-addr.arpa. 300 IN PTR www.example.com.",)),
}



def dns_spec(name: str, server_port: int | None, timeout: str = "2s", **options: Any) -> ProbeSpec:
    section = dict(options)
    if server_port is not None:
        section["server"] = f"{HOST}:{server_port}"
    probe = {"name": "lookup", "type": "dns", "target": name, "timeout": timeout, "dns": section}
    return parse_config(yaml.safe_dump({"probes": [probe]}), "probes.yaml", {}).probes[0]


async def lookup(name: str, server: DnsServer | int | None, timeout: str = "2s", **options: Any) -> ProbeResult:
    port = server.port if isinstance(server, DnsServer) else server
    spec = dns_spec(name, port, timeout, **options)
    probe = get_kind("dns").factory(spec, ProbeContext())
    try:
        return await run_attempt(probe, spec.timeout)
    finally:
        await probe.aclose()
