"""s3_bucket: can this identity reach the app's bucket, and (optionally) write, read and delete in it?

HeadBucket answers "exists and I may list it" (its errors carry only the HTTP status, 403 or
404, because a HEAD response has no body). The round trip is what the app does: PUT a small
canary object, GET it back and compare, DELETE it, timing each step as a phase. A bucket
policy that denies writes, a KMS key the role cannot use or an object-lock rule shows up here
and not in HeadBucket. The canary key is fixed per probe, so an attempt cut short by its
timeout leaves at most one small object behind, overwritten by the next attempt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from probed.config.schema import FieldError
from probed.probes.aws.check import Check, check_failed
from probed.result import ProbeResult

DEFAULT_KEY_PREFIX = "probed-canary/"
PHASES = ("head_bucket", "put", "get", "delete")


@dataclass(frozen=True)
class S3BucketParams:
    bucket: str
    round_trip: bool = False
    key: str | None = None
    """Canary object key for the round trip (default `probed-canary/<probe name>`)."""

    def __post_init__(self) -> None:
        if self.key is not None and not self.round_trip:
            raise FieldError("key", "the canary key is only used by the round trip: add `round_trip: true`")
        if self.key is not None and not self.key.strip("/"):
            raise FieldError("key", "must name an object, e.g. probed-canary/api")


async def s3_bucket(client: Any, p: S3BucketParams, probe: str) -> ProbeResult:
    phases: dict[str, float] = {}
    start = time.perf_counter()
    await client.head_bucket(Bucket=p.bucket)
    phases["head_bucket"] = time.perf_counter() - start
    if not p.round_trip:
        return ProbeResult.ok(detail=f"bucket {p.bucket} reachable", phases=phases)

    key = p.key or DEFAULT_KEY_PREFIX + probe
    body = f"probed canary {probe} {time.time():.6f}\n".encode()
    mark = time.perf_counter()
    await client.put_object(Bucket=p.bucket, Key=key, Body=body, ContentType="text/plain")
    phases["put"] = time.perf_counter() - mark
    mark = time.perf_counter()
    resp = await client.get_object(Bucket=p.bucket, Key=key)
    async with resp["Body"] as stream:
        read_back = await stream.read()
    phases["get"] = time.perf_counter() - mark
    mark = time.perf_counter()
    await client.delete_object(Bucket=p.bucket, Key=key)
    phases["delete"] = time.perf_counter() - mark
    values = {"s3_round_trip_seconds": phases["put"] + phases["get"] + phases["delete"]}
    if read_back != body:
        return check_failed(f"s3://{p.bucket}/{key} read back {len(read_back)} bytes that differ from the "
                            f"{len(body)} written", phases=phases, values=values)
    return ProbeResult.ok(detail=f"bucket {p.bucket}: put/get/delete of {key} ok", phases=phases, values=values)


S3_BUCKET = Check(
    name="s3_bucket", service="s3", params=S3BucketParams, run=s3_bucket,
    target=lambda p: f"s3:{p.bucket}", calls=lambda p: 4 if p.round_trip else 1,
    iam_actions=("s3:ListBucket", "s3:PutObject", "s3:GetObject", "s3:DeleteObject"),
)
