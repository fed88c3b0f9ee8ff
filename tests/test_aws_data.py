"""RDS, ElastiCache, S3, Secrets Manager and ECR checks: the app's data and what it deploys."""

# ruff: noqa: F811  (the fixtures imported from tests.peers_aws come back as test parameters)

from __future__ import annotations

import json
import logging

import pytest

from probed.result import Reason
from tests.peers_aws import (  # noqa: F401  (fixtures: admin_clients, aws, fake_aws, moto_server ...)
    AwsHarness,
    FakeAws,
    admin_clients,
    aws,
    aws_credentials_env,
    fake_aws,
    iam_enforced,
    iam_user,
    json_error,
    moto_server,
    query_response,
    shared_loader,
)

# --------------------------------------------------------------------------- rds_instance, rds_cluster


async def test_a_stopped_rds_instance_fails_with_its_status(aws: AwsHarness) -> None:
    rds = aws.admin("rds")
    rds.create_db_instance(DBInstanceIdentifier="app-db", Engine="postgres", DBInstanceClass="db.t3.micro",
                           MasterUsername="app", MasterUserPassword="not-a-real-password", AllocatedStorage=20)
    probe = aws.probe(check="rds_instance", db_instance_identifier="app-db")

    available = await probe.run()
    rds.stop_db_instance(DBInstanceIdentifier="app-db")
    stopped = await probe.run()

    assert available.success and available.detail == "instance app-db is available"
    assert stopped.reason is Reason.AWS_CHECK_FAILED
    assert stopped.detail == "instance app-db is stopped, not available"
    assert stopped.info == {"probed_aws_status_info": {"status": "stopped"}}


async def test_a_stopped_aurora_cluster_fails(aws: AwsHarness) -> None:
    rds = aws.admin("rds")
    rds.create_db_cluster(DBClusterIdentifier="app-aurora", Engine="aurora-postgresql", MasterUsername="app",
                          MasterUserPassword="not-a-real-password")
    probe = aws.probe(check="rds_cluster", db_cluster_identifier="app-aurora")

    available = await probe.run()
    rds.stop_db_cluster(DBClusterIdentifier="app-aurora")
    stopped = await probe.run()

    assert available.success
    assert stopped.reason is Reason.AWS_CHECK_FAILED
    assert stopped.detail == "cluster app-aurora is stopped, not available"


async def test_an_instance_backing_up_is_not_available(aws: AwsHarness, fake_aws: FakeAws) -> None:
    # The fake: moto's instances are only ever available or stopped; AWS shows `backing-up` during
    # snapshots, and `storage-full`, `modifying`, `rebooting` ... which all fail the same way.
    fake_aws.reply("DescribeDBInstances", query_response("DescribeDBInstances", """
        <DBInstances><DBInstance>
          <DBInstanceIdentifier>app-db</DBInstanceIdentifier><DBInstanceStatus>backing-up</DBInstanceStatus>
          <Engine>postgres</Engine>
        </DBInstance></DBInstances>"""))

    result = await aws.once(check="rds_instance", db_instance_identifier="app-db", endpoint_url=fake_aws.url)

    assert result.reason is Reason.AWS_CHECK_FAILED
    assert result.info == {"probed_aws_status_info": {"status": "backing-up"}}


async def test_an_unknown_instance_is_an_aws_error_with_its_code(aws: AwsHarness) -> None:
    result = await aws.once(check="rds_instance", db_instance_identifier="nope")

    assert result.reason is Reason.AWS_ERROR
    assert result.detail == "DescribeDBInstances: DBInstanceNotFound: DBInstance nope not found."
    assert result.info == {"probed_aws_error": {"code": "DBInstanceNotFound"}}


# --------------------------------------------------------------------------- elasticache_cluster


async def test_a_deleting_cache_cluster_fails(aws: AwsHarness) -> None:
    cache = aws.admin("elasticache")
    cache.create_cache_cluster(CacheClusterId="app-redis", Engine="redis", CacheNodeType="cache.t3.micro",
                               NumCacheNodes=1)
    probe = aws.probe(check="elasticache_cluster", cache_cluster_id="app-redis")

    available = await probe.run()
    cache.delete_cache_cluster(CacheClusterId="app-redis")
    deleting = await probe.run()

    assert available.success
    assert deleting.reason is Reason.AWS_CHECK_FAILED
    assert deleting.detail == "cache cluster app-redis is deleting, not available"
    assert deleting.info == {"probed_aws_status_info": {"status": "deleting"}}


# --------------------------------------------------------------------------- s3_bucket


async def test_a_missing_bucket_is_an_aws_error_keeping_the_status_code(aws: AwsHarness) -> None:
    result = await aws.once(check="s3_bucket", bucket="app-uploads")

    assert result.reason is Reason.AWS_ERROR
    assert result.info == {"probed_aws_error": {"code": "404"}}  # HEAD responses carry no error code


async def test_the_round_trip_writes_reads_and_deletes_a_canary(aws: AwsHarness) -> None:
    s3 = aws.admin("s3")
    s3.create_bucket(Bucket="app-uploads")

    head = await aws.once(check="s3_bucket", bucket="app-uploads")
    trip = await aws.once(name="uploads", check="s3_bucket", bucket="app-uploads", round_trip=True)

    assert head.success and set(head.phases) == {"head_bucket"}
    assert trip.success, trip.detail
    assert trip.detail == "bucket app-uploads: put/get/delete of probed-canary/uploads ok"
    assert set(trip.phases) == {"head_bucket", "put", "get", "delete"}
    assert trip.values["s3_round_trip_seconds"] > 0
    assert s3.list_objects_v2(Bucket="app-uploads").get("KeyCount") == 0  # nothing left behind


async def test_a_bucket_policy_denying_writes_fails_the_round_trip(aws: AwsHarness) -> None:
    s3 = aws.admin("s3")
    s3.create_bucket(Bucket="app-uploads")
    s3.put_bucket_policy(Bucket="app-uploads", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::app-uploads/*"}]}))

    head = await aws.once(check="s3_bucket", bucket="app-uploads")
    trip = await aws.once(check="s3_bucket", bucket="app-uploads", round_trip=True, key="canary/app.txt")

    assert head.success  # HeadBucket alone would have missed it
    assert trip.reason is Reason.AWS_ERROR
    # moto answers a policy deny with a bare 403 (AWS adds an AccessDenied body): the code is kept either way.
    assert trip.info == {"probed_aws_error": {"code": "403"}}
    assert trip.detail.startswith("PutObject: 403")


# --------------------------------------------------------------------------- secret_readable

SECRET_VALUE = "postgres://app:Zq8vN3xT6wLp@db.internal:5432/app"


async def test_a_readable_secret_passes_and_its_value_goes_nowhere(aws: AwsHarness,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    aws.admin("secretsmanager").create_secret(Name="app/prod/database", SecretString=SECRET_VALUE)
    caplog.set_level(logging.DEBUG)  # as `probed run --log-level debug` would

    result = await aws.once(check="secret_readable", secret_id="app/prod/database")

    assert result.success and result.detail == "secret app/prod/database readable"
    assert "Zq8vN3xT6wLp" not in repr(result)
    assert "Zq8vN3xT6wLp" not in caplog.text  # botocore logs response bodies at DEBUG: capped in clients.py


async def test_a_missing_secret_is_an_aws_error(aws: AwsHarness) -> None:
    result = await aws.once(check="secret_readable", secret_id="app/prod/database")

    assert result.reason is Reason.AWS_ERROR
    assert result.info == {"probed_aws_error": {"code": "ResourceNotFoundException"}}


async def test_a_role_without_permission_cannot_read_its_secret(aws: AwsHarness,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    aws.admin("secretsmanager").create_secret(Name="app/prod/database", SecretString=SECRET_VALUE)
    key_id, secret = iam_user(aws, "task-role-without-policy")
    aws_credentials_env(monkeypatch, key_id, secret)

    with iam_enforced(aws.url):
        result = await aws.once(check="secret_readable", secret_id="app/prod/database")

    # Known credentials, missing permission: an aws_error for IAM, not aws_auth. (moto words the
    # denial as a query-protocol XML body, which a JSON-protocol client sees as a bare 403.)
    assert result.reason is Reason.AWS_ERROR
    assert result.info == {"probed_aws_error": {"code": "403"}}
    assert "is not authorized to perform: secretsmanager:GetSecretValue" in result.detail


async def test_access_denied_keeps_the_aws_error_code(aws: AwsHarness, fake_aws: FakeAws) -> None:
    # The fake: the JSON body AWS itself sends for a denied GetSecretValue (moto's differs, above).
    fake_aws.reply("GetSecretValue", json_error(
        "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/api-task/abc is not authorized to "
        "perform: secretsmanager:GetSecretValue on resource: app/prod/database"), status=400)

    result = await aws.once(check="secret_readable", secret_id="app/prod/database", endpoint_url=fake_aws.url)

    assert result.reason is Reason.AWS_ERROR
    assert result.info == {"probed_aws_error": {"code": "AccessDeniedException"}}
    assert result.facts == {"aws_error_code": "AccessDeniedException", "http_status": 400,
                            "request_id": "fake-request-1"}


# --------------------------------------------------------------------------- ecr_image


def push_image(aws: AwsHarness, tag: str) -> None:
    ecr = aws.admin("ecr")
    ecr.create_repository(repositoryName="app/api")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7,
                           "digest": "sha256:" + "a" * 64}, "layers": []}
    ecr.put_image(repositoryName="app/api", imageManifest=json.dumps(manifest), imageTag=tag)


async def test_a_missing_image_tag_fails_and_a_present_one_passes(aws: AwsHarness) -> None:
    push_image(aws, "v41")

    present = await aws.once(check="ecr_image", repository="app/api", tag="v41")
    missing = await aws.once(check="ecr_image", repository="app/api", tag="v42")

    assert present.success
    assert present.values["ecr_image_pushed_timestamp_seconds"] > 1.6e9
    assert missing.reason is Reason.AWS_CHECK_FAILED
    assert missing.detail == "app/api:v42 not found"


async def test_a_missing_repository_is_an_aws_error(aws: AwsHarness) -> None:
    result = await aws.once(check="ecr_image", repository="app/api", tag="v41")

    assert result.reason is Reason.AWS_ERROR
    assert result.info == {"probed_aws_error": {"code": "RepositoryNotFoundException"}}
