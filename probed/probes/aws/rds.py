"""rds_instance / rds_cluster: is the database `available`?

A stopped Aurora cluster (stopped clusters restart by themselves after 7 days, and are often
stopped by hand to save money), an instance `backing-up`, `modifying` or `storage-full`: the
app's connections fail while the endpoint still resolves. The status word is exported as info.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from probed.probes.aws.check import Check, require_status
from probed.result import ProbeResult

AVAILABLE = "available"


@dataclass(frozen=True)
class DbInstanceParams:
    db_instance_identifier: str


@dataclass(frozen=True)
class DbClusterParams:
    db_cluster_identifier: str


async def db_instance(client: Any, p: DbInstanceParams, probe: str) -> ProbeResult:
    resp = await client.describe_db_instances(DBInstanceIdentifier=p.db_instance_identifier)
    db = (resp.get("DBInstances") or [{}])[0]
    return require_status(f"instance {p.db_instance_identifier}", db.get("DBInstanceStatus", "unknown"), AVAILABLE,
                          {"engine": db.get("Engine"), "instance_class": db.get("DBInstanceClass"),
                           "multi_az": db.get("MultiAZ")})


async def db_cluster(client: Any, p: DbClusterParams, probe: str) -> ProbeResult:
    resp = await client.describe_db_clusters(DBClusterIdentifier=p.db_cluster_identifier)
    cluster = (resp.get("DBClusters") or [{}])[0]
    members = [m.get("DBInstanceIdentifier") for m in cluster.get("DBClusterMembers") or []]
    return require_status(f"cluster {p.db_cluster_identifier}", cluster.get("Status", "unknown"), AVAILABLE,
                          {"engine": cluster.get("Engine"), "members": members})


RDS_INSTANCE = Check(
    name="rds_instance", service="rds", params=DbInstanceParams, run=db_instance,
    target=lambda p: f"rds:{p.db_instance_identifier}", iam_actions=("rds:DescribeDBInstances",),
)
RDS_CLUSTER = Check(
    name="rds_cluster", service="rds", params=DbClusterParams, run=db_cluster,
    target=lambda p: f"rds:cluster/{p.db_cluster_identifier}", iam_actions=("rds:DescribeDBClusters",),
)
