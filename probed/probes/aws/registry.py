"""Every AWS check by its `aws.check` name, in the order the docs list them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from probed.probes.aws.acm import ACM_CERTIFICATE
from probed.probes.aws.check import Check
from probed.probes.aws.cloudfront import CLOUDFRONT_DISTRIBUTION
from probed.probes.aws.cloudwatch import CLOUDWATCH_ALARMS, CLOUDWATCH_METRIC
from probed.probes.aws.ec2 import NAT_GATEWAY, SUBNET_FREE_IPS
from probed.probes.aws.ecr import ECR_IMAGE
from probed.probes.aws.ecs import ECS_SERVICE
from probed.probes.aws.elasticache import ELASTICACHE_CLUSTER
from probed.probes.aws.elbv2 import ELBV2_TARGET_HEALTH
from probed.probes.aws.rds import RDS_CLUSTER, RDS_INSTANCE
from probed.probes.aws.s3 import S3_BUCKET
from probed.probes.aws.secretsmanager import SECRET_READABLE
from probed.probes.aws.sns import SNS_SUBSCRIPTIONS
from probed.probes.aws.sts import STS_IDENTITY

CHECKS: Mapping[str, Check[Any]] = {
    c.name: c
    for c in (
        ECS_SERVICE, ELBV2_TARGET_HEALTH, RDS_INSTANCE, RDS_CLUSTER, S3_BUCKET, STS_IDENTITY,
        CLOUDFRONT_DISTRIBUTION, NAT_GATEWAY, SUBNET_FREE_IPS, CLOUDWATCH_ALARMS, CLOUDWATCH_METRIC,
        ACM_CERTIFICATE, SNS_SUBSCRIPTIONS, SECRET_READABLE, ECR_IMAGE, ELASTICACHE_CLUSTER,
    )
}
