"""CloudWatch alarms and metric thresholds, and whether the SNS alert topic reaches anyone."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from probed.result import Reason
from tests.peers.aws import AwsHarness, FakeAws, query_response

# --------------------------------------------------------------------------- cloudwatch_alarms


def alarms(aws: AwsHarness, *names: str) -> Any:
    cw = aws.admin("cloudwatch")
    for name in names:
        cw.put_metric_alarm(AlarmName=name, Namespace="AWS/ApplicationELB", MetricName="HTTPCode_Target_5XX_Count",
                            Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=10,
                            ComparisonOperator="GreaterThanThreshold")
    return cw


async def test_an_alarm_in_alarm_fails_the_check_naming_it(aws: AwsHarness) -> None:
    cw = alarms(aws, "api-5xx", "api-latency", "worker-queue-depth")
    probe = aws.probe(check="cloudwatch_alarms", name_prefix="api-")

    quiet = await probe.run()
    cw.set_alarm_state(AlarmName="api-5xx", StateValue="ALARM", StateReason="Threshold Crossed: 1 datapoint [42.0]")
    firing = await probe.run()

    assert quiet.success and quiet.detail == "none of 2 alarms in ALARM"
    assert firing.reason is Reason.AWS_CHECK_FAILED
    assert firing.detail == "1 of 2 alarms in ALARM: api-5xx (api-5xx: Threshold Crossed: 1 datapoint [42.0])"
    assert firing.values == {"cloudwatch_alarms_in_alarm": 1.0, "cloudwatch_alarms": 2.0}


async def test_a_named_alarm_that_no_longer_exists_fails(aws: AwsHarness) -> None:
    alarms(aws, "api-5xx")

    result = await aws.once(check="cloudwatch_alarms", names=["api-5xx", "api-latency"])

    assert result.reason is Reason.AWS_CHECK_FAILED
    assert result.detail == "none of 1 alarms in ALARM; not found: api-latency"


@pytest.mark.parametrize("selection", [{"name_prefix": "api-"}, {"names": ["api-5xx"]}], ids=["prefix", "names"])
async def test_the_selection_is_rechecked_on_what_the_api_returns(aws: AwsHarness, fake_aws: FakeAws,
                                                                  selection: dict[str, Any]) -> None:
    # The fake: an endpoint (a proxy, an emulator) that ignores the filter and returns every alarm.
    # moto filters as AWS does, so only a fake can show that another team's alarm does not page.
    fake_aws.reply("DescribeAlarms", {"CompositeAlarms": [], "MetricAlarms": [
        {"AlarmName": "api-5xx", "StateValue": "OK"},
        {"AlarmName": "worker-queue-depth", "StateValue": "ALARM", "StateReason": "Threshold Crossed"}]})

    result = await aws.once(check="cloudwatch_alarms", endpoint_url=fake_aws.url, **selection)

    assert result.success, result.detail
    assert result.detail == "none of 1 alarms in ALARM"
    assert result.values == {"cloudwatch_alarms_in_alarm": 0.0, "cloudwatch_alarms": 1.0}
    assert fake_aws.calls[0].params["AlarmTypes"] == ["MetricAlarm", "CompositeAlarm"]  # and it did ask


# --------------------------------------------------------------------------- cloudwatch_metric


def cpu(aws: AwsHarness, value: float) -> None:
    aws.admin("cloudwatch").put_metric_data(Namespace="AWS/ECS", MetricData=[{
        "MetricName": "CPUUtilization", "Dimensions": [{"Name": "ServiceName", "Value": "api"}], "Value": value,
        "Timestamp": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)}])


CPU = {"check": "cloudwatch_metric", "namespace": "AWS/ECS", "metric_name": "CPUUtilization",
       "dimensions": {"ServiceName": "api"}, "period": 60.0}


@pytest.mark.parametrize(("comparison", "threshold", "success"), [
    ("GreaterThanThreshold", 85.0, False),
    ("GreaterThanThreshold", 95.0, True),
    ("GreaterThanOrEqualToThreshold", 93.0, False),
    ("LessThanThreshold", 93.0, True),
    ("LessThanOrEqualToThreshold", 93.0, False),
])
async def test_the_latest_datapoint_is_compared_like_an_alarm_would(aws: AwsHarness, comparison: str,
                                                                    threshold: float, success: bool) -> None:
    cpu(aws, 93.0)

    result = await aws.once(**CPU, threshold=threshold, comparison=comparison)

    assert result.success is success
    assert result.values == {"cloudwatch_metric_value": 93.0}


async def test_a_breach_says_value_and_threshold(aws: AwsHarness) -> None:
    cpu(aws, 93.0)

    result = await aws.once(**CPU, threshold=85.0)

    assert result.reason is Reason.AWS_CHECK_FAILED
    assert result.detail == "AWS/ECS CPUUtilization Average/60s = 93 > 85"


async def test_missing_data_fails_unless_declared_not_breaching(aws: AwsHarness) -> None:
    cpu(aws, 10.0)  # a datapoint for another service only
    quiet = {**CPU, "dimensions": {"ServiceName": "worker"}, "threshold": 85.0}

    breaching = await aws.once(**quiet)
    not_breaching = await aws.once(**quiet, treat_missing_data="notBreaching")

    assert breaching.reason is Reason.AWS_CHECK_FAILED
    assert breaching.detail == "AWS/ECS CPUUtilization Average/60s: no datapoints in the last 5 periods"
    assert not_breaching.success


# --------------------------------------------------------------------------- sns_subscriptions


async def test_a_topic_without_subscriptions_reaches_nobody(aws: AwsHarness) -> None:
    sns = aws.admin("sns")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    probe = aws.probe(check="sns_subscriptions", topic_arn=topic)

    empty = await probe.run()
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="oncall@example.com")
    subscribed = await probe.run()  # moto confirms subscriptions at once

    assert empty.reason is Reason.AWS_CHECK_FAILED
    assert empty.detail == "topic alerts: 0 confirmed subscriptions, need 1"
    assert subscribed.success and subscribed.values == {"sns_pending_subscriptions": 0.0,
                                                        "sns_confirmed_subscriptions": 1.0}


async def test_a_subscription_pending_confirmation_fails(aws: AwsHarness, fake_aws: FakeAws) -> None:
    # The fake: moto confirms every subscription immediately; AWS keeps e-mail ones
    # PendingConfirmation until someone clicks the link, dropping every alert meanwhile.
    topic = "arn:aws:sns:us-east-1:123456789012:alerts"
    fake_aws.reply("ListSubscriptionsByTopic", query_response("ListSubscriptionsByTopic", f"""
        <Subscriptions>
          <member><TopicArn>{topic}</TopicArn><Protocol>email</Protocol><Owner>123456789012</Owner>
            <SubscriptionArn>PendingConfirmation</SubscriptionArn><Endpoint>oncall@example.com</Endpoint></member>
          <member><TopicArn>{topic}</TopicArn><Protocol>https</Protocol><Owner>123456789012</Owner>
            <SubscriptionArn>{topic}:0b3c5e1a-2d4f-4a6b-8c9d-0e1f2a3b4c5d</SubscriptionArn>
            <Endpoint>https://hooks.example.com/alerts</Endpoint></member>
        </Subscriptions>"""))

    result = await aws.once(check="sns_subscriptions", topic_arn=topic, endpoint_url=fake_aws.url)

    assert result.reason is Reason.AWS_CHECK_FAILED
    assert result.detail == "topic alerts: 1 subscriptions PendingConfirmation (1 email), 1 confirmed"
    assert result.values == {"sns_pending_subscriptions": 1.0, "sns_confirmed_subscriptions": 1.0}
    assert "oncall@example.com" not in repr(result)  # endpoints are personal data
