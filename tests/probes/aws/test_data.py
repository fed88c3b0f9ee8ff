"""RDS, ElastiCache, S3, Secrets Manager and ECR checks: the app's data and what it deploys."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from probed.result import Reason
from tests.peers.aws import AwsHarness, FakeAws, aws_credentials_env, iam_enforced, iam_user, json_error, query_response

# --------------------------------------------------------------------------- rds_*, elasticache_cluster:
# the status-word checks, each seen `available` and then in the state moto can put it in.


def rds_instance(aws: AwsHarness) -> Callable[[], object]:
    rds = aws.admin("rds")
    rds.create_db_instance(DBInstanceIdentifier="app-db", Engine="postgres", DBInstanceClass="db.t3.micro",
                           MasterUsername="app", MasterUserPassword="not-a-real-password", AllocatedStorage=20)
    return lambda: rds.stop_db_instance(DBInstanceIdentifier="app-db")


def aurora_cluster(aws: AwsHarness) -> Callable[[], object]:
    rds = aws.admin("rds")
    rds.create_db_cluster(DBClusterIdentifier="app-aurora", Engine="aurora-postgresql", MasterUsername="app",
                          MasterUserPassword="not-a-real-password")
    return lambda: rds.stop_db_cluster(DBClusterIdentifier="app-aurora")


def cache_cluster(aws: AwsHarness) -> Callable[[], object]:
    cache = aws.admin("elasticache")
    cache.create_cache_cluster(CacheClusterId="app-redis", Engine="redis", CacheNodeType="cache.t3.micro",
                               NumCacheNodes=1)
    return lambda: cache.delete_cache_cluster(CacheClusterId="app-redis")


@pytest.mark.parametrize(("create", "section", "what", "bad"), [
    (rds_instance, {"check": "rds_instance", "db_instance_identifier": "app-db"}, "instance app-db", "stopped"),
    (aurora_cluster, {"check": "rds_cluster", "db_cluster_identifier": "app-aurora"}, "cluster app-aurora",
     "stopped"),
    (cache_cluster, {"check": "elasticache_cluster", "cache_cluster_id": "app-redis"}, "cache cluster app-redis",
     "deleting"),
], ids=["rds-instance-stopped", "aurora-cluster-stopped", "elasticache-deleting"])
async def test_a_resource_that_leaves_available_fails_with_its_status(
        aws: AwsHarness, create: Callable[[AwsHarness], Callable[[], object]], section: dict[str, str], what: str,
        bad: str) -> None:
    leave_available = create(aws)
    probe = aws.probe(**section)

    available = await probe.run()
    leave_available()
    after = await probe.run()

    assert available.success and available.detail == f"{what} is available"
    assert available.info == {"probed_aws_status_info": {"status": "available"}}
    assert after.reason is Reason.AWS_CHECK_FAILED
    assert after.detail == f"{what} is {bad}, not available"
    assert after.info == {"probed_aws_status_info": {"status": bad}}


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


# --------------------------------------------------------------------------- s3_bucket


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
    assert trip.error_code == "403"
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
    assert result.error_code == "403"
    assert "is not authorized to perform: secretsmanager:GetSecretValue" in result.detail


async def test_access_denied_keeps_the_aws_error_code(aws: AwsHarness, fake_aws: FakeAws) -> None:
    # The fake: the JSON body AWS itself sends for a denied GetSecretValue (moto's differs, above).
    fake_aws.reply("GetSecretValue", json_error(
        "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/api-task/abc is not authorized to "
        "perform: secretsmanager:GetSecretValue on resource: app/prod/database"), status=400)

    result = await aws.once(check="secret_readable", secret_id="app/prod/database", endpoint_url=fake_aws.url)

    assert result.reason is Reason.AWS_ERROR
    assert result.error_code == "AccessDeniedException"
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


# --------------------------------------------------------------------------- missing resources


@pytest.mark.parametrize(("section", "code", "detail"), [
    ({"check": "rds_instance", "db_instance_identifier": "nope"}, "DBInstanceNotFound",
     "DescribeDBInstances: DBInstanceNotFound: DBInstance nope not found."),
    # HEAD responses have no body, so no error code: the HTTP status stands in for it.
    ({"check": "s3_bucket", "bucket": "app-uploads"}, "404", "HeadBucket: 404: Not Found"),
    ({"check": "secret_readable", "secret_id": "app/prod/database"}, "ResourceNotFoundException",
     "GetSecretValue: ResourceNotFoundException: Secrets Manager can't find the specified secret."),
    ({"check": "ecr_image", "repository": "app/api", "tag": "v41"}, "RepositoryNotFoundException",
     "DescribeImages: RepositoryNotFoundException: The repository with name 'app/api' does not exist in the "
     "registry with id '123456789012'"),
], ids=["rds-instance", "s3-bucket", "secret", "ecr-repository"])
async def test_a_missing_resource_is_an_aws_error_keeping_its_code(aws: AwsHarness, section: dict[str, str],
                                                                   code: str, detail: str) -> None:
    result = await aws.once(**section)

    assert result.reason is Reason.AWS_ERROR
    assert result.error_code == code
    assert result.detail == detail
