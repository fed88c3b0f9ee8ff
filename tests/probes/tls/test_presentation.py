"""What leaves the process after a `type: tls` attempt: `probed once` lines and JSON, and the metrics
under blackbox's and probed's names."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client.parser import text_string_to_metric_families

from probed.output.exposition import ExpositionView, ReloadStatus, render
from probed.probes import get_kind
from probed.runtime.attempt import run_attempt
from probed.runtime.scheduler import SchedulerStats
from probed.runtime.state import ProbeState
from tests.peers.tls import DAY, HOST, Pki, ServerCert, self_signed, tls_server
from tests.peers.tls_attempt import attempt, make_probe, tls_spec

# --------------------------------------------------------------------------- presentation and config


async def test_describe_prints_the_chain_with_expiry_and_days_left(pki: Pki) -> None:
    cert = pki.leaf_expiring_in(3 * DAY, "localhost")
    async with tls_server(cert) as server:
        result = await attempt(pki, server.port)
    lines = get_kind("tls").describe(result)  # type: ignore[misc]
    assert lines[0] == "TLS 1.3, TLS_AES_256_GCM_SHA384, chain verified"
    assert lines[1].startswith("[0] ") and "(3.0 days left)" in lines[1]
    assert any(line.strip() == "names localhost" for line in lines)
    assert any(line.startswith("[1] ") and "Testing CA" in line for line in lines)


# --------------------------------------------------------------------------- what leaves the process


def families(text: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text.decode()):
        for sample in fam.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def only(fams: dict[str, list[tuple[dict[str, str], float]]], metric: str) -> tuple[dict[str, str], float]:
    (sample,) = fams[metric]
    return sample


async def test_metrics_under_blackbox_and_probed_names_survive_a_network_failure(
        pki: Pki, good: ServerCert) -> None:
    async with tls_server(good) as server:
        probe, timeout = make_probe(pki, server.port)
        state = ProbeState.new(tls_spec(server.port))
        state.record(await run_attempt(probe, timeout), ts=time.time())
    view = ExpositionView([state], {}, SchedulerStats(), ReloadStatus(True, time.time()))
    fams = families(await render(view))

    labels, expiry = only(fams, "probe_ssl_earliest_cert_expiry")
    assert labels == {"probe": "cert", "type": "tls"}
    assert abs(expiry - good.earliest_not_after()) < 1
    assert only(fams, "probe_ssl_last_chain_expiry_timestamp_seconds")[1] == expiry
    assert 89.99 < only(fams, "probed_tls_cert_expiry_days")[1] <= 90
    assert only(fams, "probe_tls_version_info") == ({"probe": "cert", "type": "tls", "version": "TLS 1.3"}, 1)
    leaf = good.leaf
    assert only(fams, "probed_tls_cert_info") == ({
        "probe": "cert", "type": "tls", "issuer": leaf.issuer.rfc4514_string(),
        "subject": leaf.subject.rfc4514_string(),
        "fingerprint_sha256": hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()}, 1)

    state.record(await run_attempt(probe, timeout), ts=time.time())  # the server is gone: refused
    fams = families(await render(view))
    assert only(fams, "probe_success")[1] == 0
    assert only(fams, "probe_ssl_earliest_cert_expiry")[1] == expiry  # the expiry alert does not flap
    assert "probe_tls_version_info" not in fams  # no handshake this time


async def probed_once(config: Path, *args: str) -> tuple[int, str]:
    """`probed once` in a subprocess, awaited so that this loop's peers keep serving."""
    # From the repository root: from tests/probes, the dns/ and http/ test packages would shadow
    # dnspython and the standard library's http.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "probed.cli", "once", "--config", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[3])
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None and proc.returncode != 2, stderr.decode()
    return proc.returncode, stdout.decode()


async def test_probed_once_shows_the_chain_and_its_expiry_also_when_trust_or_name_fail(
        pki: Pki, good: ServerCert, tmp_path: Path) -> None:
    untrusted = self_signed("localhost", valid_for=20 * DAY)
    wrong = pki.leaf_expiring_in(40 * DAY, "www.example.org")
    async with tls_server(good) as ok, tls_server(untrusted) as bad, tls_server(wrong) as other:
        config = tmp_path / "probes.yaml"
        config.write_text("probes:\n" + "".join(
            f"  - {{name: {name}, type: tls, target: '{HOST}:{port}', timeout: 2s,\n"
            f"     tls: {{server_name: localhost, ca_file: '{pki.ca_file}'}}}}\n"
            for name, port in [("good", ok.port), ("self-signed", bad.port), ("wrong-host", other.port)]))
        code, human = await probed_once(config)
        json_code, text = await probed_once(config, "--json")

    assert code == json_code == 1
    results = {r["name"]: r for r in map(json.loads, text.splitlines())}
    for name, cert, reason in [("good", good, "ok"), ("self-signed", untrusted, "cert_untrusted"),
                               ("wrong-host", wrong, "cert_hostname_mismatch")]:
        values = results[name]["values"]
        assert results[name]["reason"] == reason
        assert abs(values["cert_expiry_timestamp_seconds"] - cert.earliest_not_after()) < 1
        assert abs(values["cert_days_remaining"] - (cert.earliest_not_after() - time.time()) / 86400) < 0.01
        assert results[name]["facts"]["tls"]["chain"][0]["fingerprint_sha256"] == hashlib.sha256(
            cert.leaf.public_bytes(Encoding.DER)).hexdigest()

    lines = human.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("self-signed "))
    assert "cert_untrusted" in lines[row] and "self-signed certificate" in lines[row]
    assert lines[row + 1] == "    chain NOT verified"
    assert lines[row + 2].startswith("    [0] CN=localhost  expires ") and lines[row + 2].endswith("(20.0 days left)")
    assert "the certificate is for www.example.org" in next(line for line in lines if line.startswith("wrong-host "))
