"""ECS service, ALB target health, NAT gateway and subnet checks, against moto and (for states moto
cannot produce) the local fake."""

from __future__ import annotations

import json
from typing import Any

from probed.result import Reason
from tests.peers.aws import AwsHarness, FakeAws, ec2_response, json_error, query_response

AMI = "ami-12c6146b"  # one of the images moto preloads


def ecs_service(aws: AwsHarness, desired: int = 2) -> Any:
    ecs = aws.admin("ecs")
    ecs.create_cluster(clusterName="prod")
    ecs.register_task_definition(family="api", containerDefinitions=[{"name": "api", "image": "api:1", "memory": 256}])
    ecs.create_service(cluster="prod", serviceName="api", taskDefinition="api", desiredCount=desired)
    return ecs


# --------------------------------------------------------------------------- ecs_service


async def test_ecs_service_fails_at_0_of_2_and_passes_at_2_of_2(aws: AwsHarness) -> None:
    ecs = ecs_service(aws)  # moto starts services with no running tasks
    probe = aws.probe(check="ecs_service", cluster="prod", service="api")

    down = await probe.run()
    assert down.reason is Reason.AWS_CHECK_FAILED
    assert down.detail == "running 0/2 (pending 2)"
    assert down.values == {"ecs_running_tasks": 0.0, "ecs_desired_tasks": 2.0, "ecs_pending_tasks": 2.0}

    ecs.update_service(cluster="prod", service="api", desiredCount=2)  # moto: running = desired
    up = await probe.run()
    assert up.success, up.detail
    assert up.values["ecs_running_tasks"] == 2.0
    assert up.info == {"probed_aws_status_info": {"status": "ACTIVE"}}


async def test_ecs_service_failure_names_the_last_stopped_task_reason(aws: AwsHarness) -> None:
    ecs = ecs_service(aws)
    task = ecs.run_task(cluster="prod", taskDefinition="api", launchType="FARGATE", startedBy="ecs-svc/1",
                        networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-1"]}})["tasks"][0]
    ecs.stop_task(cluster="prod", task=task["taskArn"],
                  reason="CannotPullContainerError: pull image manifest has been retried 1 time(s)")

    result = await aws.once(check="ecs_service", cluster="prod", service="api")

    assert result.reason is Reason.AWS_CHECK_FAILED
    assert result.detail == ("running 0/2 (pending 2), last stop: "
                             "CannotPullContainerError: pull image manifest has been retried 1 time(s)")


async def test_min_running_replaces_desired_count_as_the_floor(aws: AwsHarness) -> None:
    ecs_service(aws)  # 0 of 2 running

    tolerant = await aws.once(check="ecs_service", cluster="prod", service="api", min_running=0)
    strict = await aws.once(check="ecs_service", cluster="prod", service="api", min_running=1)

    assert tolerant.success, tolerant.detail
    assert strict.reason is Reason.AWS_CHECK_FAILED
    assert strict.detail.startswith("running 0/2 (pending 2), below min_running 1")


async def test_a_missing_service_is_a_failed_check_and_a_missing_cluster_an_aws_error(aws: AwsHarness) -> None:
    ecs_service(aws)

    no_service = await aws.once(check="ecs_service", cluster="prod", service="worker")
    no_cluster = await aws.once(check="ecs_service", cluster="staging", service="api")

    assert no_service.reason is Reason.AWS_CHECK_FAILED
    assert no_service.detail == "service worker not found in cluster prod (MISSING)"
    assert no_cluster.reason is Reason.AWS_ERROR
    assert no_cluster.error_code == "ClusterNotFoundException"


async def test_a_failed_rollout_fails_even_when_the_old_tasks_still_run(aws: AwsHarness, fake_aws: FakeAws) -> None:
    # The fake: moto only ever reports rolloutState IN_PROGRESS or COMPLETED, never FAILED
    # (the deployment circuit breaker), nor containers with exit codes.
    fake_aws.reply("DescribeServices", {"failures": [], "services": [{
        "serviceName": "api", "status": "ACTIVE", "runningCount": 2, "desiredCount": 2, "pendingCount": 0,
        "deployments": [
            {"status": "PRIMARY", "rolloutState": "FAILED", "failedTasks": 3, "runningCount": 0, "desiredCount": 2,
             "rolloutStateReason": "ECS deployment circuit breaker: tasks failed to start."},
            {"status": "ACTIVE", "rolloutState": "COMPLETED", "runningCount": 2, "desiredCount": 2}]}]})
    fake_aws.reply("ListTasks", {"taskArns": ["arn:aws:ecs:us-east-1:123456789012:task/prod/1",
                                              "arn:aws:ecs:us-east-1:123456789012:task/prod/2"]})
    fake_aws.reply("DescribeTasks", {"failures": [], "tasks": [
        {"taskArn": "arn:aws:ecs:us-east-1:123456789012:task/prod/1", "stoppedAt": 1700000000.0,
         "stoppedReason": "Essential container in task exited", "containers": [{"name": "api", "exitCode": 1}]},
        {"taskArn": "arn:aws:ecs:us-east-1:123456789012:task/prod/2", "stoppedAt": 1700000100.0,
         "stoppedReason": "Essential container in task exited",
         "containers": [{"name": "api", "exitCode": 137, "reason": "OutOfMemoryError: Container killed"}]}]})

    result = await aws.once(check="ecs_service", cluster="prod", service="api", endpoint_url=fake_aws.url)

    assert result.reason is Reason.AWS_CHECK_FAILED
    assert result.detail == ("running 2/2, rollout FAILED: ECS deployment circuit breaker: tasks failed to start., "
                             "last stop: Essential container in task exited (api: exit 137, OutOfMemoryError: "
                             "Container killed)")
    assert fake_aws.calls[1].params == {"cluster": "prod", "serviceName": "api", "desiredStatus": "STOPPED",
                                        "maxResults": 10}


async def test_a_healthy_service_costs_one_call(aws: AwsHarness, fake_aws: FakeAws) -> None:
    fake_aws.reply("DescribeServices", {"failures": [], "services": [{
        "serviceName": "api", "status": "ACTIVE", "runningCount": 2, "desiredCount": 2, "pendingCount": 0,
        "deployments": [{"status": "PRIMARY", "rolloutState": "COMPLETED"}]}]})

    result = await aws.once(check="ecs_service", cluster="prod", service="api", endpoint_url=fake_aws.url)

    assert result.success
    assert [c.action for c in fake_aws.calls] == ["DescribeServices"]


async def test_throttling_is_its_own_reason_with_the_code_kept(aws: AwsHarness, fake_aws: FakeAws) -> None:
    # The fake: moto never throttles.
    fake_aws.reply("DescribeServices", json_error("ThrottlingException", "Rate exceeded"), status=400)

    result = await aws.once(check="ecs_service", cluster="prod", service="api", endpoint_url=fake_aws.url)

    assert result.reason is Reason.AWS_THROTTLED
    assert result.detail == "DescribeServices: ThrottlingException: Rate exceeded"
    assert result.error_code == "ThrottlingException"
    assert fake_aws.count("DescribeServices") == 1  # retries are off: one attempt, one call


# --------------------------------------------------------------------------- elbv2_target_health


def target_group(aws: AwsHarness) -> tuple[str, Any]:
    ec2 = aws.admin("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    tg = aws.admin("elbv2").create_target_group(Name="api", Protocol="HTTP", Port=8080, VpcId=vpc,
                                                TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    return tg, ec2


async def test_an_empty_target_group_has_no_healthy_target(aws: AwsHarness) -> None:
    tg, _ = target_group(aws)

    result = await aws.once(check="elbv2_target_health", target_group_arn=tg)

    assert result.reason is Reason.AWS_CHECK_FAILED
    assert result.detail == "healthy 0/0 (need 1)"
    assert result.values == {"elbv2_healthy_targets": 0.0, "elbv2_unhealthy_targets": 0.0, "elbv2_targets": 0.0}


async def test_a_stopped_instance_target_leaves_no_healthy_target(aws: AwsHarness) -> None:
    tg, ec2 = target_group(aws)
    instance = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    aws.admin("elbv2").register_targets(TargetGroupArn=tg, Targets=[{"Id": instance, "Port": 8080}])
    probe = aws.probe(check="elbv2_target_health", target_group_arn=tg)

    running = await probe.run()
    ec2.stop_instances(InstanceIds=[instance])
    stopped = await probe.run()

    assert running.success and running.detail == "healthy 1/1"
    assert stopped.reason is Reason.AWS_CHECK_FAILED
    assert stopped.detail == f"healthy 0/1; {instance}:8080 unused (Target.InvalidState) (need 1)"


async def test_all_healthy_fails_on_one_unhealthy_target(aws: AwsHarness, fake_aws: FakeAws) -> None:
    # The fake: moto reports registered targets as healthy, or unused/draining; never `unhealthy`.
    fake_aws.reply("DescribeTargetHealth", query_response("DescribeTargetHealth", """
        <TargetHealthDescriptions>
          <member><Target><Id>10.0.1.10</Id><Port>8080</Port></Target>
            <TargetHealth><State>healthy</State></TargetHealth></member>
          <member><Target><Id>10.0.1.11</Id><Port>8080</Port></Target>
            <TargetHealth><State>unhealthy</State><Reason>Target.ResponseCodeMismatch</Reason></TargetHealth></member>
        </TargetHealthDescriptions>"""))
    tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/73e2d6bc24d8a067"

    enough = await aws.once(check="elbv2_target_health", target_group_arn=tg, endpoint_url=fake_aws.url)
    every = await aws.once(check="elbv2_target_health", target_group_arn=tg, all_healthy=True,
                           endpoint_url=fake_aws.url)

    assert enough.success
    assert every.reason is Reason.AWS_CHECK_FAILED
    assert every.detail == "healthy 1/2; 10.0.1.11:8080 unhealthy (Target.ResponseCodeMismatch) (1 unhealthy)"
    assert every.values == {"elbv2_healthy_targets": 1.0, "elbv2_unhealthy_targets": 1.0, "elbv2_targets": 2.0}


# --------------------------------------------------------------------------- nat_gateway, subnet_free_ips


def subnet(aws: AwsHarness, cidr: str = "10.0.1.0/28") -> tuple[Any, str]:
    ec2 = aws.admin("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    return ec2, ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]


async def test_a_deleted_nat_gateway_fails(aws: AwsHarness) -> None:
    ec2, subnet_id = subnet(aws)
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnet_id, AllocationId=eip)["NatGateway"]["NatGatewayId"]
    probe = aws.probe(check="nat_gateway", nat_gateway_id=nat)

    available = await probe.run()
    ec2.delete_nat_gateway(NatGatewayId=nat)
    deleted = await probe.run()

    assert available.success and available.info == {"probed_aws_status_info": {"status": "available"}}
    assert deleted.reason is Reason.AWS_CHECK_FAILED
    assert deleted.detail == f"NAT gateway {nat} is deleted, not available"
    assert deleted.info == {"probed_aws_status_info": {"status": "deleted"}}


async def test_a_nat_gateway_that_does_not_exist_fails(aws: AwsHarness) -> None:
    result = await aws.once(check="nat_gateway", nat_gateway_id="nat-0123456789abcdef0")

    assert result.reason is Reason.AWS_CHECK_FAILED
    assert result.detail == "NAT gateway nat-0123456789abcdef0 not found"


async def test_a_failed_nat_gateway_reports_its_failure_code(aws: AwsHarness, fake_aws: FakeAws) -> None:
    # The fake: moto's NAT gateways are always `available` until deleted; AWS marks one `failed`
    # when, for example, its subnet has no free address.
    fake_aws.reply("DescribeNatGateways", ec2_response("DescribeNatGateways", """
        <natGatewaySet><item>
          <natGatewayId>nat-0f1e2d3c4b5a69788</natGatewayId><state>failed</state>
          <failureCode>InsufficientFreeAddressesInSubnet</failureCode>
          <failureMessage>Subnet has insufficient free addresses to create this NAT gateway</failureMessage>
          <subnetId>subnet-1</subnetId><vpcId>vpc-1</vpcId>
        </item></natGatewaySet>"""))

    result = await aws.once(check="nat_gateway", nat_gateway_id="nat-0f1e2d3c4b5a69788", endpoint_url=fake_aws.url)

    assert result.reason is Reason.AWS_CHECK_FAILED
    assert result.detail == ("NAT gateway nat-0f1e2d3c4b5a69788 is failed, not available "
                             "(InsufficientFreeAddressesInSubnet: Subnet has insufficient free addresses to create "
                             "this NAT gateway)")
    assert result.info == {"probed_aws_status_info": {"status": "failed"}}


async def test_an_exhausted_subnet_fails(aws: AwsHarness) -> None:
    ec2, subnet_id = subnet(aws)  # a /28: 16 addresses, 5 reserved by AWS
    probe = aws.probe(check="subnet_free_ips", subnet_id=subnet_id, min_free=4)

    roomy = await probe.run()
    ec2.create_network_interface(SubnetId=subnet_id, SecondaryPrivateIpAddressCount=10)  # takes all 11
    full = await probe.run()

    assert roomy.success and roomy.values == {"subnet_available_ip_addresses": 11.0}
    assert full.reason is Reason.AWS_CHECK_FAILED
    assert full.detail == f"subnet {subnet_id} (10.0.1.0/28): 0 free addresses, fewer than 4"
    assert full.values == {"subnet_available_ip_addresses": 0.0}


async def test_an_unknown_subnet_is_an_aws_error_with_its_code(aws: AwsHarness) -> None:
    result = await aws.once(check="subnet_free_ips", subnet_id="subnet-0123456789abcdef0")

    assert result.reason is Reason.AWS_ERROR
    assert result.error_code == "InvalidSubnetID.NotFound"
    assert json.dumps(result.facts)  # facts stay JSON-able for `probed once --json`
