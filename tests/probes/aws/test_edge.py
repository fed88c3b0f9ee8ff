"""The edge and the identity: CloudFront, ACM, STS credentials and cross-account roles."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from probed.result import Reason
from tests.peers.aws import (
    CONTAINER_CREDENTIALS_PATH,
    AwsHarness,
    FakeAws,
    aws_credentials_env,
    iam_enforced,
    iam_user,
    json_error,
    query_error,
    query_response,
    set_moto_transition,
)

# --------------------------------------------------------------------------- cloudfront_distribution


def distribution(aws: AwsHarness, enabled: bool) -> str:
    config = {
        "CallerReference": f"probed-{enabled}", "Comment": "", "Enabled": enabled,
        "Origins": {"Quantity": 1, "Items": [{"Id": "alb", "DomainName": "alb.example.com", "CustomOriginConfig": {
            "HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "https-only"}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "alb", "ViewerProtocolPolicy": "redirect-to-https",
                                 "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"},
    }
    dist_id: str = aws.admin("cloudfront").create_distribution(DistributionConfig=config)["Distribution"]["Id"]
    return dist_id


async def test_an_enabled_deployed_distribution_passes_and_a_disabled_one_fails(aws: AwsHarness) -> None:
    enabled, disabled = distribution(aws, True), distribution(aws, False)

    ok = await aws.once(check="cloudfront_distribution", distribution_id=enabled)
    off = await aws.once(check="cloudfront_distribution", distribution_id=disabled)

    assert ok.success and ok.detail == f"distribution {enabled} enabled and Deployed"
    assert off.reason is Reason.AWS_CHECK_FAILED
    assert off.detail == f"distribution {disabled}: disabled"


async def test_a_distribution_still_deploying_fails_until_deployed(aws: AwsHarness) -> None:
    set_moto_transition(aws.url, "cloudfront::distribution", {"progression": "manual", "times": 2})
    try:
        dist = distribution(aws, True)  # moto reads the status once while creating
        probe = aws.probe(check="cloudfront_distribution", distribution_id=dist)
        deploying = await probe.run()
        deployed = await probe.run()
    finally:
        set_moto_transition(aws.url, "cloudfront::distribution", None)

    assert deploying.reason is Reason.AWS_CHECK_FAILED
    assert deploying.detail == f"distribution {dist}: status InProgress, not Deployed"
    assert deployed.success


# --------------------------------------------------------------------------- acm_certificate


def mint(days: float, name: str = "app.example.com") -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


async def test_an_imported_certificate_close_to_expiry_is_expiring(aws: AwsHarness) -> None:
    acm = aws.admin("acm")
    cert, key = mint(days=5)
    soon = acm.import_certificate(Certificate=cert, PrivateKey=key)["CertificateArn"]
    cert, key = mint(days=200, name="www.example.com")
    later = acm.import_certificate(Certificate=cert, PrivateKey=key)["CertificateArn"]

    expiring = await aws.once(check="acm_certificate", certificate_arn=soon)
    fine = await aws.once(check="acm_certificate", certificate_arn=later)

    assert expiring.reason is Reason.CERT_EXPIRING
    assert expiring.detail.startswith("certificate app.example.com expires in 5.0 days (< 30)")
    assert expiring.detail.endswith("imported: ACM will not renew it")
    assert 4.9 < expiring.values["acm_cert_days_remaining"] <= 5.0
    assert fine.success and fine.detail == "certificate www.example.com ISSUED, 200 days left"


async def test_a_certificate_pending_validation_is_not_issued(aws: AwsHarness) -> None:
    arn = aws.admin("acm").request_certificate(DomainName="api.example.com",
                                               ValidationMethod="DNS")["CertificateArn"]

    result = await aws.once(check="acm_certificate", certificate_arn=arn)

    assert result.reason is Reason.AWS_CHECK_FAILED
    assert result.detail == "certificate api.example.com is PENDING_VALIDATION, not ISSUED"
    assert result.info == {"probed_aws_status_info": {"status": "PENDING_VALIDATION"}}


async def test_an_expired_certificate_is_cert_expired(aws: AwsHarness, fake_aws: FakeAws) -> None:
    # The fake: moto refuses to import an expired certificate, and never ages one to EXPIRED.
    fake_aws.reply("DescribeCertificate", {"Certificate": {
        "CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/abc", "DomainName": "old.example.com",
        "Status": "EXPIRED", "Type": "IMPORTED", "NotAfter": 1700000000.0}})

    result = await aws.once(check="acm_certificate", endpoint_url=fake_aws.url,
                            certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/abc")

    assert result.reason is Reason.CERT_EXPIRED
    assert result.values["acm_cert_expiry_timestamp_seconds"] == 1700000000.0


# --------------------------------------------------------------------------- sts_identity, credentials


async def test_the_identity_check_compares_the_account(aws: AwsHarness) -> None:
    right = await aws.once(check="sts_identity", expect_account="123456789012")
    wrong = await aws.once(check="sts_identity", expect_account="999999999999")

    assert right.success and right.facts["account"] == "123456789012"
    assert wrong.reason is Reason.AWS_CHECK_FAILED
    assert wrong.detail.endswith("in account 123456789012, expected account 999999999999")


async def test_an_unknown_access_key_is_an_auth_failure(aws: AwsHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    iam_user(aws, "prober")  # an account with a user, whose key is not the one used below
    aws_credentials_env(monkeypatch, "AKIAUNKNOWNKEY000000", "not-the-secret")

    with iam_enforced(aws.url):  # without it moto accepts any key
        result = await aws.once(check="sts_identity")

    assert result.reason is Reason.AWS_AUTH
    assert result.error_code == "InvalidClientTokenId"


async def test_no_credentials_at_all_is_an_auth_failure(aws: AwsHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    result = await aws.once(check="sts_identity")

    assert result.reason is Reason.AWS_AUTH
    assert result.error_code == "NoCredentialsError"


async def test_a_profile_that_does_not_exist_is_an_auth_failure(aws: AwsHarness) -> None:
    result = await aws.once(check="sts_identity", profile="production")

    assert result.reason is Reason.AWS_AUTH
    assert result.detail == "The config profile (production) could not be found"


async def test_role_arn_probes_as_the_assumed_role_in_the_other_account(aws: AwsHarness) -> None:
    role = "arn:aws:iam::210987654321:role/probed-readonly"

    own = await aws.once(name="own", check="sts_identity", expect_account="210987654321")
    other = await aws.once(name="other", check="sts_identity", expect_account="210987654321", role_arn=role,
                           session_name="probed-xacct")

    assert own.reason is Reason.AWS_CHECK_FAILED  # the base identity is in moto's default account
    assert other.success, other.detail
    assert other.facts["arn"] == "arn:aws:sts::210987654321:assumed-role/probed-readonly/probed-xacct"


async def test_an_assumed_roles_temporary_secret_is_masked_wherever_it_would_show(aws: AwsHarness) -> None:
    from probed import redact

    role = "arn:aws:iam::210987654321:role/probed-readonly"
    before = redact.known_secrets()
    other = await aws.once(name="other", check="sts_identity", expect_account="210987654321", role_arn=role,
                           session_name="probed-masked")
    assert other.success, other.detail

    fresh = redact.known_secrets() - before
    assert len(fresh) == 2, "the role's secret key and session token were not remembered"
    for secret in fresh:
        assert secret not in redact.redact(f"botocore said: {secret}")


async def test_irsa_web_identity_credentials_come_from_the_standard_chain(aws: AwsHarness, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # What EKS injects into a pod whose service account carries eks.amazonaws.com/role-arn; the
    # token is exchanged with (moto's) STS by AssumeRoleWithWebIdentity. Nothing in the probe's config.
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.probed-test-service-account-token.c2ln")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/probed-irsa")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", "probed-pod")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", aws.url)  # the chain's own STS client, to moto

    result = await aws.once(check="sts_identity", expect_account="123456789012")

    assert result.success, result.detail
    assert result.facts["arn"] == "arn:aws:sts::123456789012:assumed-role/probed-irsa/probed-pod"


async def test_ecs_task_role_credentials_come_from_the_container_endpoint(aws: AwsHarness, fake_aws: FakeAws,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    # What the ECS agent (or EKS Pod Identity) sets in the container; the fake serves the endpoint,
    # on loopback (botocore accepts a full URI only on loopback or the ECS/EKS link-local addresses).
    fake_aws.container_credentials("ASIAFAKETASKROLEKEY1", token="FAKE-TASK-SESSION-TOKEN")
    caller_identity_reply(fake_aws)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", fake_aws.url + CONTAINER_CREDENTIALS_PATH)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "fake-agent-authorization")
    caplog.set_level(logging.DEBUG)

    result = await aws.once(check="sts_identity", endpoint_url=fake_aws.url)

    assert result.success, result.detail
    assert [h.get("Authorization") for h in fake_aws.container_requests] == ["fake-agent-authorization"]
    call = fake_aws.calls[-1]
    assert (call.access_key_id, call.headers.get("X-Amz-Security-Token")) == \
        ("ASIAFAKETASKROLEKEY1", "FAKE-TASK-SESSION-TOKEN")
    assert "FAKE-TASK-SESSION-TOKEN" not in caplog.text


def assume_role_reply(fake: FakeAws, key_id: str, expires_in_s: float) -> None:
    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in_s)
    fake.reply("AssumeRole", query_response("AssumeRole", f"""
        <Credentials><AccessKeyId>{key_id}</AccessKeyId><SecretAccessKey>fake-assumed-secret</SecretAccessKey>
          <SessionToken>FAKE-SESSION-TOKEN-{key_id}</SessionToken>
          <Expiration>{expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}</Expiration></Credentials>
        <AssumedRoleUser><AssumedRoleId>AROAFAKE:probed</AssumedRoleId>
          <Arn>arn:aws:sts::210987654321:assumed-role/probed-readonly/probed</Arn></AssumedRoleUser>"""))


def caller_identity_reply(fake: FakeAws) -> None:
    fake.reply("GetCallerIdentity", query_response("GetCallerIdentity", """
        <Arn>arn:aws:sts::210987654321:assumed-role/probed-readonly/probed</Arn>
        <UserId>AROAFAKE:probed</UserId><Account>210987654321</Account>"""))


ROLE = "arn:aws:iam::210987654321:role/probed-readonly"


async def test_assumed_role_credentials_last_an_hour_not_one_call(aws: AwsHarness, fake_aws: FakeAws,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    # The fake: counting AssumeRole calls, and seeing which key signed each request.
    assume_role_reply(fake_aws, "ASIAFAKEASSUMEDKEY01", expires_in_s=3600)
    caller_identity_reply(fake_aws)
    caplog.set_level(logging.DEBUG)
    probe = aws.probe(check="sts_identity", role_arn=ROLE, external_id="ext-7f3a", endpoint_url=fake_aws.url)

    results = [await probe.run() for _ in range(3)]

    assert all(r.success for r in results), results[0].detail
    assert fake_aws.count("AssumeRole") == 1
    assume = fake_aws.calls[0]
    assert assume.params == {"Version": "2011-06-15", "RoleArn": ROLE, "RoleSessionName": "probed",
                             "DurationSeconds": "3600", "ExternalId": "ext-7f3a"}
    assert assume.access_key_id == "AKIAPROBEDTESTKEY000"  # the base credentials assume the role ...
    assert {c.access_key_id for c in fake_aws.calls[1:]} == {"ASIAFAKEASSUMEDKEY01"}  # ... which signs the rest
    assert "FAKE-SESSION-TOKEN" not in caplog.text


async def test_the_role_is_assumed_when_the_client_is_made_not_in_the_first_attempt(aws: AwsHarness,
                                                                                      fake_aws: FakeAws) -> None:
    assume_role_reply(fake_aws, "ASIAFAKEASSUMEDKEY01", expires_in_s=3600)
    caller_identity_reply(fake_aws)
    probe = aws.probe(check="sts_identity", role_arn=ROLE, endpoint_url=fake_aws.url)

    await aws.pool.ready()  # what start-up (or a reload) does: no attempt has run
    assumed = [c.action for c in fake_aws.calls]
    result = await probe.run()

    assert assumed == ["AssumeRole"]
    assert result.success, result.detail
    assert [c.action for c in fake_aws.calls] == ["AssumeRole", "GetCallerIdentity"]  # the attempt: one call


async def test_assumed_role_credentials_are_refreshed_before_they_expire(aws: AwsHarness, fake_aws: FakeAws) -> None:
    assume_role_reply(fake_aws, "ASIAFAKEASSUMEDKEY01", expires_in_s=300)  # inside botocore's 10-min window
    caller_identity_reply(fake_aws)
    probe = aws.probe(check="sts_identity", role_arn=ROLE, endpoint_url=fake_aws.url)
    await aws.pool.ready()
    assume_role_reply(fake_aws, "ASIAFAKEASSUMEDKEY02", expires_in_s=3600)

    results = [await probe.run() for _ in range(3)]

    assert all(r.success for r in results), results[0].detail
    assert fake_aws.count("AssumeRole") == 2  # still valid, but too close to expiry: renewed once, then kept
    assert [c.access_key_id for c in fake_aws.calls if c.action == "GetCallerIdentity"] == \
        ["ASIAFAKEASSUMEDKEY02"] * 3


async def test_a_role_that_cannot_be_assumed_is_an_auth_failure(aws: AwsHarness, fake_aws: FakeAws) -> None:
    fake_aws.reply("AssumeRole", query_error(
        "AccessDenied", "User: arn:aws:iam::123456789012:user/probed is not authorized to perform: sts:AssumeRole"),
        status=403)

    result = await aws.once(check="ecs_service", cluster="prod", service="api", role_arn=ROLE,
                            endpoint_url=fake_aws.url)

    assert result.reason is Reason.AWS_AUTH
    assert result.detail.startswith(f"cannot assume {ROLE}: AccessDenied: User: ")
    assert result.error_code == "AccessDenied"
    assert fake_aws.count("DescribeServices") == 0


async def test_an_expired_session_token_is_an_auth_failure(aws: AwsHarness, fake_aws: FakeAws) -> None:
    fake_aws.reply("DescribeServices", json_error("ExpiredTokenException", "The security token included in the "
                                                  "request is expired"), status=400)

    result = await aws.once(check="ecs_service", cluster="prod", service="api", endpoint_url=fake_aws.url)

    assert result.reason is Reason.AWS_AUTH
    assert result.error_code == "ExpiredTokenException"
