"""ecr_image: does the repository hold the image tag the service deploys?

A tag deleted by a lifecycle policy, or a pipeline that pushed to the wrong repository, shows up
only when ECS next starts a task (CannotPullContainerError during a scale-out at 3 a.m.).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from probed.probes.aws.check import Check, check_failed
from probed.probes.aws.errors import error_code
from probed.result import ProbeResult

_TAG_MISSING = "ImageNotFoundException"


@dataclass(frozen=True)
class ImageParams:
    repository: str
    tag: str


async def ecr_image(client: Any, p: ImageParams, probe: str) -> ProbeResult:
    try:
        resp = await client.describe_images(repositoryName=p.repository, imageIds=[{"imageTag": p.tag}])
    except ClientError as exc:
        if error_code(exc) != _TAG_MISSING:
            raise  # RepositoryNotFoundException, AccessDenied ...: the call failed, an aws_error
        return check_failed(f"{p.repository}:{p.tag} not found", facts={"aws_error_code": _TAG_MISSING})
    image = (resp.get("imageDetails") or [{}])[0]
    values: dict[str, float] = {}
    facts: dict[str, object] = {"digest": image.get("imageDigest"), "tags": image.get("imageTags") or []}
    if image.get("imagePushedAt") is not None:
        values["ecr_image_pushed_timestamp_seconds"] = image["imagePushedAt"].timestamp()
        facts["pushed_at"] = image["imagePushedAt"].isoformat()
    return ProbeResult.ok(detail=f"{p.repository}:{p.tag} present ({str(image.get('imageDigest', '?'))[:19]})",
                          values=values, facts=facts)


ECR_IMAGE = Check(
    name="ecr_image", service="ecr", params=ImageParams, run=ecr_image,
    target=lambda p: f"ecr:{p.repository}:{p.tag}", iam_actions=("ecr:DescribeImages",),
)
