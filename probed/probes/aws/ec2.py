"""nat_gateway and subnet_free_ips: the network under private tasks.

A NAT gateway that is not `available` cuts private subnets off from ECR, Secrets Manager and
every public API (tasks fail with CannotPullContainerError); a subnet without free addresses
makes new Fargate tasks and Lambda ENIs fail to start, usually mid-deploy, when the task count
doubles. Both surface far from their cause; these checks name it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from probed.probes.aws.check import Check, check_failed, require_at_least, require_prefix, require_status, status_info
from probed.probes.aws.errors import error_code
from probed.result import ProbeResult

AVAILABLE = "available"
_NAT_NOT_FOUND = frozenset({"NatGatewayNotFound", "InvalidNatGatewayID.NotFound", "NatGatewayMalformed"})


@dataclass(frozen=True)
class NatGatewayParams:
    nat_gateway_id: str

    def __post_init__(self) -> None:
        require_prefix("nat_gateway_id", self.nat_gateway_id, "nat-", "nat-0123456789abcdef0")


@dataclass(frozen=True)
class SubnetParams:
    subnet_id: str
    min_free: int = 1
    """Fail when fewer addresses are free. Set it to the tasks a deployment adds at once."""

    def __post_init__(self) -> None:
        require_prefix("subnet_id", self.subnet_id, "subnet-", "subnet-0123456789abcdef0")
        require_at_least("min_free", self.min_free, 0)


async def nat_gateway(client: Any, p: NatGatewayParams, probe: str) -> ProbeResult:
    try:
        resp = await client.describe_nat_gateways(NatGatewayIds=[p.nat_gateway_id])
    except ClientError as exc:
        if error_code(exc) not in _NAT_NOT_FOUND:
            raise
        gateways: list[dict[str, Any]] = []
    else:
        gateways = resp.get("NatGateways") or []
    if not gateways:  # deleted gateways stay listed as `deleted` for about an hour, then vanish
        return check_failed(f"NAT gateway {p.nat_gateway_id} not found", info=status_info("missing"))
    gw = gateways[0]
    failure = ": ".join(x for x in (gw.get("FailureCode"), gw.get("FailureMessage")) if x)
    return require_status(f"NAT gateway {p.nat_gateway_id}", gw.get("State", "unknown"), AVAILABLE,
                          {"subnet_id": gw.get("SubnetId"), "vpc_id": gw.get("VpcId"),
                           "connectivity": gw.get("ConnectivityType")}, why=failure)


async def subnet_free_ips(client: Any, p: SubnetParams, probe: str) -> ProbeResult:
    resp = await client.describe_subnets(SubnetIds=[p.subnet_id])
    subnet = (resp.get("Subnets") or [{}])[0]
    free = int(subnet.get("AvailableIpAddressCount", 0))
    values = {"subnet_available_ip_addresses": float(free)}
    facts = {"cidr_block": subnet.get("CidrBlock"), "availability_zone": subnet.get("AvailabilityZone"),
             "available_ip_addresses": free}
    detail = f"subnet {p.subnet_id} ({subnet.get('CidrBlock', '?')}): {free} free addresses"
    if free < p.min_free:
        return check_failed(f"{detail}, fewer than {p.min_free}", values=values, facts=facts)
    return ProbeResult.ok(detail=detail, values=values, facts=facts)


NAT_GATEWAY = Check(
    name="nat_gateway", service="ec2", params=NatGatewayParams, run=nat_gateway,
    target=lambda p: f"ec2:{p.nat_gateway_id}", iam_actions=("ec2:DescribeNatGateways",),
)
SUBNET_FREE_IPS = Check(
    name="subnet_free_ips", service="ec2", params=SubnetParams, run=subnet_free_ips,
    target=lambda p: f"ec2:{p.subnet_id}", iam_actions=("ec2:DescribeSubnets",),
)
