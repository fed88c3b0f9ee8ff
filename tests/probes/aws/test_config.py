"""The `aws:` section: each check takes exactly its own parameters, errors name the field and line."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from probed.config.schema import ConfigError
from probed.probes import get_kind
from probed.probes.aws import API_CALLS_PER_MINUTE_BUDGET, KIND, api_calls_per_minute
from probed.probes.aws.registry import CHECKS
from probed.probes.aws.settings import COMMON, PARAMETERS, AwsSettings
from probed.runtime.probeset import parse_config
from tests.peers.example import EXAMPLE, EXAMPLE_ENV

REPO = Path(__file__).resolve().parents[3]


def load(yaml_text: str, environ: dict[str, str] | None = None) -> Any:
    return parse_config(yaml_text, "p.yaml", environ or {})


def errors(yaml_text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(yaml_text)
    return [str(issue) for issue in caught.value.issues]


def test_the_registry_knows_the_aws_kind_with_a_60s_default_interval() -> None:
    assert get_kind("aws") is KIND
    config = load("probes:\n  - {name: a, type: aws, aws: {check: sts_identity, region: us-east-1}}\n")
    assert config.probes[0].interval == 60.0
    assert config.probes[0].target == "sts:caller-identity"


def test_the_documented_example_block_loads() -> None:
    config = load(EXAMPLE.read_text(), EXAMPLE_ENV)
    aws = [s for s in config.probes if s.type == "aws"]
    assert {s.settings.check for s in aws} >= set(CHECKS) - {"rds_instance"}
    assert "ext-id-4f1c9a" in config.secrets  # external_id is redacted like any secret
    assert config.probe("api-tasks").target == "ecs:ai-tutor-cluster/ai-tutor-service"
    # The file's `defaults` (interval 30s) win over the aws type's 60s, so each aws probe says its own.
    assert {s.name: s.interval for s in aws if s.interval < 60.0} == {}


@pytest.mark.parametrize(("check", "params", "target"), [
    ("ecs_service", {"cluster": "prod", "service": "api"}, "ecs:prod/api"),
    ("elbv2_target_health",
     {"target_group_arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/73e2d6bc24d8a067"},
     "elbv2:api"),
    ("rds_instance", {"db_instance_identifier": "db-1"}, "rds:db-1"),
    ("rds_cluster", {"db_cluster_identifier": "aurora"}, "rds:cluster/aurora"),
    ("s3_bucket", {"bucket": "app-uploads"}, "s3:app-uploads"),
    ("cloudfront_distribution", {"distribution_id": "E2QWRUHAPOMQZL"}, "cloudfront:E2QWRUHAPOMQZL"),
    ("nat_gateway", {"nat_gateway_id": "nat-0a1b"}, "ec2:nat-0a1b"),
    ("subnet_free_ips", {"subnet_id": "subnet-0a1b"}, "ec2:subnet-0a1b"),
    ("cloudwatch_alarms", {"name_prefix": "api-"}, "cloudwatch:alarms/api-*"),
    ("cloudwatch_metric", {"namespace": "AWS/ECS", "metric_name": "CPUUtilization", "threshold": 80.0,
                           "dimensions": {"ServiceName": "api"}}, "cloudwatch:AWS/ECS/CPUUtilization{ServiceName=api}"),
    ("acm_certificate", {"certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/abc-123"}, "acm:abc-123"),
    ("sns_subscriptions", {"topic_arn": "arn:aws:sns:us-east-1:123456789012:alerts"}, "sns:alerts"),
    ("secret_readable", {"secret_id": "prod/db"}, "secretsmanager:prod/db"),
    ("ecr_image", {"repository": "api", "tag": "v1"}, "ecr:api:v1"),
    ("elasticache_cluster", {"cache_cluster_id": "redis-001"}, "elasticache:redis-001"),
    ("sts_identity", {}, "sts:caller-identity"),
], ids=lambda v: v if isinstance(v, str) and "_" in v else "")
def test_every_check_derives_a_target_from_its_resource(check: str, params: dict[str, Any], target: str) -> None:
    assert KIND.derive_target is not None
    assert KIND.derive_target(AwsSettings(check=check, region="us-east-1", **params)) == target


@pytest.mark.parametrize(("section", "anchor", "expected"), [
    ("{check: ecs_service, region: us-east-2, cluster: c, service: s, min_healthy: 2}", "2}",
     "probes[0].aws.min_healthy: min_healthy is not a parameter of check ecs_service "
     "(it takes: cluster, service, min_running)"),
    ("{check: ecs_service, region: us-east-2, cluster: c}", "{check",
     "probes[0].aws.service: check ecs_service needs 'service'"),
    ("{check: ecs_servise, region: us-east-2}", "ecs_servise",
     "probes[0].aws.check: unknown check 'ecs_servise' (did you mean 'ecs_service'?)"),
    ("{check: rds_instance, db_instance_identifier: db}", "{check",
     "probes[0].aws.region: check rds_instance needs a region, e.g. `region: us-east-1`"),
    ("{check: sts_identity, region: us-east-2, custer: c}", "custer",
     "probes[0].aws.custer: unknown key 'custer' (did you mean 'cluster'?)"),
    ("{check: sts_identity, region: us-east-2, expect_account: '12345'}", "'12345'",
     "probes[0].aws.expect_account: an AWS account ID is 12 digits, got '12345'"
     " (quote it in YAML if it starts with 0)"),
    ("{check: sts_identity, region: us-east-2, role_arn: 'arn:aws:iam::1:role/x'}", "'arn",
     "probes[0].aws.role_arn: expected arn:aws:iam::ACCOUNT:role/NAME, got 'arn:aws:iam::1:role/x'"),
    ("{check: sts_identity, region: us-east-2, external_id: abc}", "abc",
     "probes[0].aws.external_id: external_id only applies with role_arn"),
    ("{check: s3_bucket, region: us-east-2, bucket: b, key: canary}", "canary",
     "probes[0].aws.key: the canary key is only used by the round trip: add `round_trip: true`"),
    ("{check: cloudwatch_metric, region: us-east-2, namespace: N, metric_name: M, threshold: 1, period: 90s}", "90s",
     "probes[0].aws.period: CloudWatch periods are 1s, 5s, 10s, 30s or a multiple of 60s"),
    ("{check: cloudwatch_alarms, region: us-east-2, names: [a], name_prefix: b}", "b}",
     "probes[0].aws.name_prefix: use either `names` or `name_prefix` (DescribeAlarms takes one)"),
    ("{check: subnet_free_ips, region: us-east-2, subnet_id: sn-1}", "sn-1",
     "probes[0].aws.subnet_id: expected 'subnet-0123456789abcdef0'-style value starting with 'subnet-', got 'sn-1'"),
    ("{check: sts_identity, region: mars-1}", "mars-1",
     "probes[0].aws.region: invalid region 'mars-1' (e.g. us-east-1, eu-central-1)"),
], ids=["other-checks-param", "missing-param", "typo-in-check", "no-region", "unknown-key", "bad-account",
        "bad-role-arn", "external-id-without-role", "key-without-round-trip", "bad-period", "names-and-prefix",
        "subnet-id-format", "bad-region"])
def test_a_bad_section_is_rejected_naming_file_line_and_field(section: str, anchor: str, expected: str) -> None:
    line = f"  - {{name: a, type: aws, aws: {section}}}"
    column = line.index(anchor) + 1  # the offending value, or the section when a key is missing
    assert errors(f"probes:\n{line}\n") == [f"p.yaml:2:{column}: {expected}"]


def test_cloudfront_needs_no_region_because_its_api_is_global() -> None:
    config = load("probes:\n  - {name: a, type: aws, aws: {check: cloudfront_distribution, distribution_id: E1}}\n")
    assert config.probes[0].settings.params.distribution_id == "E1"


def test_check_parameters_arrive_typed_with_the_checks_defaults() -> None:
    config = load("""\
probes:
  - name: cpu
    type: aws
    aws: {check: cloudwatch_metric, region: eu-west-1, namespace: AWS/ECS, metric_name: CPUUtilization,
          threshold: 80, period: 1m, dimensions: {ServiceName: api}}
""")
    params = config.probes[0].settings.params
    assert (params.threshold, params.period, dict(params.dimensions)) == (80.0, 60.0, {"ServiceName": "api"})
    assert (params.statistic, params.comparison, params.treat_missing_data) == \
        ("Average", "GreaterThanThreshold", "breaching")


@pytest.mark.parametrize("check", list(CHECKS))
def test_every_check_parameter_is_a_section_field_of_the_same_type(check: str) -> None:
    section = typing.get_type_hints(AwsSettings, include_extras=True)
    own = typing.get_type_hints(CHECKS[check].params, include_extras=True)
    for name, tp in own.items():
        assert name in PARAMETERS, f"{check}.{name} missing from AwsSettings"
        assert section[name] in (tp | None, typing.Optional[tp]), f"{check}.{name}: {section[name]} vs {tp}"  # noqa: UP045


def test_every_section_parameter_belongs_to_some_check() -> None:
    owned = {f.name for c in CHECKS.values() for f in dataclasses.fields(c.params)}
    assert set(PARAMETERS) == owned
    assert not set(COMMON) & owned


def test_api_calls_per_minute_counts_worst_case_calls_per_service() -> None:
    config = load("""\
probes:
  - {name: a, type: aws, aws: {check: ecs_service, region: us-east-1, cluster: c, service: s}}
  - {name: b, type: aws, interval: 30s, aws: {check: ecs_service, region: us-east-1, cluster: c, service: t}}
  - {name: c, type: aws, interval: 10s, aws: {check: s3_bucket, region: us-east-1, bucket: bb, round_trip: true}}
  - {name: d, type: aws, interval: 10s, aws: {check: s3_bucket, region: us-east-1, bucket: bb}}
""")
    # ECS: DescribeServices + ListTasks + DescribeTasks when failing; S3: HEAD, or HEAD+PUT+GET+DELETE.
    assert api_calls_per_minute(config.probes) == {"ecs": 3 * 1 + 3 * 2, "s3": 4 * 6 + 1 * 6}


def test_the_example_block_stays_within_the_api_budget() -> None:
    config = load(EXAMPLE.read_text(), EXAMPLE_ENV)
    calls = api_calls_per_minute(s for s in config.probes if s.type == "aws")
    assert calls and max(calls.values()) <= API_CALLS_PER_MINUTE_BUDGET


def test_the_docs_list_every_check_with_its_iam_actions() -> None:
    doc = (REPO / "docs" / "probes" / "aws.md").read_text()
    for check in CHECKS.values():
        assert re.search(rf"^\| `{check.name}` \|", doc, re.MULTILINE), f"{check.name} missing from the checks table"
        for action in check.iam_actions:
            assert action.split()[0] in doc, f"{action} ({check.name}) missing from the IAM policy"
