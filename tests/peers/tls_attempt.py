"""One attempt of a `type: tls` probe built from YAML, and what the TLS probe tests check on its result."""

from __future__ import annotations

import datetime as dt

from probed.config.model import ProbeSpec
from probed.probes import ProbeContext, get_kind
from probed.probes.common.net import IP_ADDR_HASH_VALUE, IP_PROTOCOL_VALUE, LOOKUP_VALUE
from probed.probes.tls import TlsProbe
from probed.result import ProbeResult
from probed.runtime.attempt import run_attempt
from probed.runtime.probeset import parse_config
from tests.peers.tls import HOST, Pki, ServerCert

NET_VALUES = {LOOKUP_VALUE, IP_PROTOCOL_VALUE, IP_ADDR_HASH_VALUE}
"""What every attempt carries, certificate or not: the lookup time, and the IP version once connected."""


def tls_spec(port: int, timeout: str = "2s", **options: object) -> ProbeSpec:
    lines = "".join(f"\n      {k}: {v}" for k, v in options.items())
    text = f"""
probes:
  - name: cert
    type: tls
    target: "{HOST}:{port}"
    timeout: {timeout}
    tls:{lines or " {}"}
"""
    return parse_config(text, "probes.yaml", {}).probes[0]


def make_probe(pki: Pki, port: int, timeout: str = "2s", **options: object) -> tuple[TlsProbe, float]:
    options = {"server_name": "localhost", "ca_file": str(pki.ca_file), **options}
    spec = tls_spec(port, timeout, **options)
    probe = get_kind("tls").factory(spec, ProbeContext())
    assert isinstance(probe, TlsProbe)
    return probe, spec.timeout


async def attempt(pki: Pki, port: int, timeout: str = "2s", **options: object) -> ProbeResult:
    probe, timeout_s = make_probe(pki, port, timeout, **options)
    try:
        return await run_attempt(probe, timeout_s)
    finally:
        await probe.aclose()


def assert_expiry(result: ProbeResult, cert: ServerCert) -> None:
    """The exported expiry is the minted certificate's (to the second), and so are the days."""
    expiry = result.values["cert_expiry_timestamp_seconds"]
    assert abs(expiry - cert.earliest_not_after()) < 1
    now = dt.datetime.now(dt.UTC).timestamp()
    assert abs(result.values["cert_days_remaining"] - (expiry - now) / 86400) < 0.01
