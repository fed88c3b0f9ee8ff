"""`type: tls` on the certificate a real local TLS server presents: a valid chain, the name it must match,
expired, expiring, self-signed and incomplete chains, and the expiry exported whatever went wrong."""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl

from cryptography.hazmat.primitives.serialization import Encoding

from probed.result import Reason
from tests.peers.tls import DAY, Pki, ServerCert, self_signed, tls_server
from tests.peers.tls_attempt import assert_expiry, attempt

# --------------------------------------------------------------------------- healthy


async def test_valid_chain_under_the_test_ca_passes_and_exports_the_chain(pki: Pki, good: ServerCert) -> None:
    async with tls_server(good) as server:
        result = await attempt(pki, server.port)

    assert result.reason is Reason.OK, result.detail
    assert_expiry(result, good)
    assert result.values["cert_chain_length"] == 2  # leaf + intermediate
    # The verified path ends at the root from ca_file; trustme's root outlives the leaf.
    assert result.values["last_chain_expiry_timestamp_seconds"] == result.values["cert_expiry_timestamp_seconds"]
    assert set(result.phases) == {"connect", "tls"}
    assert result.info["probe_tls_version_info"] == {"version": "TLS 1.3"}
    leaf = good.leaf
    assert result.info["probed_tls_cert_info"] == {
        "issuer": leaf.issuer.rfc4514_string(),
        "subject": leaf.subject.rfc4514_string(),
        "fingerprint_sha256": hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest(),
    }
    chain = result.facts["tls"]["chain"]  # type: ignore[index]
    assert list(chain[0]["sans"]) == ["localhost"]
    assert chain[0]["serial"] == format(leaf.serial_number, "X")
    assert len(result.facts["tls"]["verified_chain"]) == 3  # type: ignore[index]


async def test_server_name_is_what_the_certificate_must_match(pki: Pki) -> None:
    cert = pki.leaf_expiring_in(90 * DAY, "api.internal")
    async with tls_server(cert) as server:
        assert (await attempt(pki, server.port, server_name="api.internal")).reason is Reason.OK
        assert (await attempt(pki, server.port, server_name="localhost")).reason is Reason.CERT_HOSTNAME_MISMATCH


async def test_tls12_server_passes_with_the_default_minimum(pki: Pki, good: ServerCert) -> None:
    async with tls_server(good, max_version=ssl.TLSVersion.TLSv1_2) as server:
        result = await attempt(pki, server.port)
    assert result.reason is Reason.OK, result.detail
    assert result.info["probe_tls_version_info"] == {"version": "TLS 1.2"}


# --------------------------------------------------------------------------- certificate problems


async def test_expired_certificate_is_cert_expired_and_exports_its_expiry(pki: Pki) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    expired = pki.leaf("localhost", not_before=now - 60 * DAY, not_after=now - 2 * DAY)
    async with tls_server(expired) as server:
        result = await attempt(pki, server.port)

    assert result.reason is Reason.CERT_EXPIRED
    assert "expired 2.0 days ago" in result.detail
    assert_expiry(result, expired)
    assert result.values["cert_days_remaining"] < -1.99


async def test_certificate_expiring_in_3_days_is_a_cert_expiring_warning(pki: Pki) -> None:
    expiring = pki.leaf_expiring_in(3 * DAY, "localhost")
    async with tls_server(expiring) as server:
        result = await attempt(pki, server.port)
        relaxed = await attempt(pki, server.port, min_days_remaining=2)
        strict = await attempt(pki, server.port, fail_if_expiring="true")

    assert result.success and result.reason is Reason.OK and result.warning is Reason.CERT_EXPIRING
    assert "expires in 3.0 days" in result.detail and "min_days_remaining 14" in result.detail
    assert_expiry(result, expiring)
    assert 2.99 < result.values["cert_days_remaining"] <= 3
    assert relaxed.reason is Reason.OK and relaxed.warning is None
    assert not strict.success and strict.reason is Reason.CERT_EXPIRING and strict.warning is None
    assert strict.detail == result.detail


async def test_wrong_host_name_is_a_mismatch_and_still_exports_the_expiry(pki: Pki) -> None:
    other = pki.leaf_expiring_in(40 * DAY, "www.example.org")
    async with tls_server(other) as server:
        result = await attempt(pki, server.port)

    assert result.reason is Reason.CERT_HOSTNAME_MISMATCH
    assert "www.example.org" in result.detail
    assert_expiry(result, other)
    assert "last_chain_expiry_timestamp_seconds" not in result.values  # nothing was verified


async def test_self_signed_certificate_is_untrusted_and_still_exports_the_expiry(pki: Pki) -> None:
    cert = self_signed("localhost", valid_for=20 * DAY)
    async with tls_server(cert) as server:
        result = await attempt(pki, server.port)

    assert result.reason is Reason.CERT_UNTRUSTED
    assert "self-signed" in result.detail
    assert_expiry(result, cert)
    assert result.info["probed_tls_cert_info"]["subject"] == "CN=localhost"


async def test_leaf_without_its_intermediate_is_untrusted(pki: Pki, good: ServerCert) -> None:
    async with tls_server(good.without_intermediates()) as server:
        result = await attempt(pki, server.port)

    assert result.reason is Reason.CERT_UNTRUSTED
    assert "sent no intermediate" in result.detail
    assert result.values["cert_chain_length"] == 1
    assert_expiry(result, good.without_intermediates())


async def test_expiry_outranks_trust_when_both_are_wrong(pki: Pki) -> None:
    cert = self_signed("localhost", valid_for=-DAY)  # not after: yesterday
    async with tls_server(cert) as server:
        result = await attempt(pki, server.port)
    assert result.reason is Reason.CERT_EXPIRED


async def test_insecure_skip_verify_accepts_untrusted_but_still_checks_expiry(pki: Pki) -> None:
    async with tls_server(self_signed("elsewhere.example", valid_for=20 * DAY)) as server:
        ok = await attempt(pki, server.port, insecure_skip_verify="true")
    async with tls_server(self_signed("elsewhere.example", valid_for=5 * DAY)) as server:
        expiring = await attempt(pki, server.port, insecure_skip_verify="true")

    assert ok.reason is Reason.OK, ok.detail
    assert ok.facts["tls"]["verified"] is False  # type: ignore[index]
    assert expiring.success and expiring.warning is Reason.CERT_EXPIRING
