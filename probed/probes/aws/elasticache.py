"""elasticache_cluster: is the cache cluster (a Redis/Valkey/Memcached node group) `available`?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from probed.probes.aws.check import Check, require_status
from probed.result import ProbeResult

AVAILABLE = "available"


@dataclass(frozen=True)
class CacheClusterParams:
    cache_cluster_id: str


async def cache_cluster(client: Any, p: CacheClusterParams, probe: str) -> ProbeResult:
    resp = await client.describe_cache_clusters(CacheClusterId=p.cache_cluster_id)
    cluster = (resp.get("CacheClusters") or [{}])[0]
    return require_status(f"cache cluster {p.cache_cluster_id}", cluster.get("CacheClusterStatus", "unknown"),
                          AVAILABLE, {"engine": cluster.get("Engine"), "engine_version": cluster.get("EngineVersion"),
                                      "nodes": cluster.get("NumCacheNodes")})


ELASTICACHE_CLUSTER = Check(
    name="elasticache_cluster", service="elasticache", params=CacheClusterParams, run=cache_cluster,
    target=lambda p: f"elasticache:{p.cache_cluster_id}", iam_actions=("elasticache:DescribeCacheClusters",),
)
