"""The shared client pool and the probe's boundary: reuse, lifecycle, timeouts, transport failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from botocore.loaders import Loader

from probed.probes.aws import ClientPool
from probed.probes.aws.models import create_loader, load_models
from probed.result import Reason
from tests.peers.aws import AwsHarness, FakeAws, aws_credentials_env, json_error
from tests.peers.net import free_port

HEALTHY_SERVICE = {"failures": [], "services": [{
    "serviceName": "api", "status": "ACTIVE", "runningCount": 1, "desiredCount": 1, "pendingCount": 0,
    "deployments": []}]}


async def until(predicate: Callable[[], object]) -> None:
    """Wait for background work; the generous bound is a hang guard, not a timing claim."""
    async with asyncio.timeout(20):
        while not predicate():  # noqa: ASYNC110  (polling the pool's state; it has no event to wait on)
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("service", ["sts", "ecs"])
def test_the_loop_friendly_loader_reads_the_same_models_as_botocore(service: str) -> None:
    ours, botocores = create_loader(), Loader()
    load_models(ours, [service])

    for type_name in ("service-2", "endpoint-rule-set-1"):
        theirs = botocores.load_service_model(service, type_name)
        assert json.dumps(ours.load_service_model(service, type_name)) == json.dumps(theirs)  # order included
    assert json.dumps(ours.load_data("endpoints")) == json.dumps(botocores.load_data("endpoints"))


async def test_probes_of_one_service_and_region_share_one_client(aws: AwsHarness) -> None:
    first = aws.probe(name="a", check="sts_identity")
    second = aws.probe(name="b", check="sts_identity", expect_account="123456789012")
    other_service = aws.probe(name="c", check="secret_readable", secret_id="x")

    await first.run(), await second.run(), await other_service.run()

    assert aws.pool.clients == 2  # sts and secretsmanager
    assert first.impl.lease.key == second.impl.lease.key != other_service.impl.lease.key


async def test_the_client_is_created_when_the_probe_is_built_not_on_its_first_attempt(aws: AwsHarness) -> None:
    aws.probe(check="sts_identity")
    assert aws.pool.clients == 0

    await aws.pool.ready()  # what the daemon can await at start-up before probes run

    assert aws.pool.clients == 1  # made in the background: no attempt ran


async def test_the_last_probe_of_a_key_to_close_closes_its_client(aws: AwsHarness) -> None:
    first, second = aws.probe(name="a", check="sts_identity"), aws.probe(name="b", check="sts_identity")
    await first.run()

    await first.impl.aclose()
    assert aws.pool.clients == 1
    await second.impl.aclose()
    assert aws.pool.clients == 0


async def test_a_closed_pool_closes_its_clients_and_takes_no_new_probes(aws: AwsHarness, shared_loader: object) -> None:
    pool = ClientPool(data_loader=shared_loader)
    aws.pool, own = pool, aws.pool
    await own.aclose()
    probe = aws.probe(check="sts_identity")
    assert (await probe.run()).success

    await pool.aclose()

    assert pool.clients == 0
    with pytest.raises(RuntimeError, match="closed"):
        aws.probe(name="late", check="sts_identity")


async def test_concurrent_probes_sharing_a_client_never_queue_for_a_connection(aws: AwsHarness,
                                                                                fake_aws: FakeAws) -> None:
    # The fake answers only once all of them are in flight together. aiohttp's default cap (100
    # connections per client) would hold the last 20 back, the barrier would never open and every
    # probe would end in `timeout`: time spent queueing inside the client is measured as latency.
    n = 120
    fake_aws.reply("DescribeServices", HEALTHY_SERVICE, hold_until=n)
    probes = [aws.probe(name=f"api-{i}", check="ecs_service", cluster="prod", service="api",
                        endpoint_url=fake_aws.url) for i in range(n)]

    results = await asyncio.gather(*(p.run() for p in probes))

    assert [r.reason for r in results] == [Reason.OK] * n
    assert fake_aws.max_in_flight == n
    assert aws.pool.clients == 1


async def test_a_slow_api_times_out_and_the_shared_client_survives(aws: AwsHarness, fake_aws: FakeAws) -> None:
    fake_aws.hang("DescribeServices")
    probe = aws.probe(check="ecs_service", cluster="prod", service="api", endpoint_url=fake_aws.url, timeout=0.5)

    slow = await probe.run()
    fake_aws.reply("DescribeServices", HEALTHY_SERVICE)
    fast = await probe.run()

    assert slow.reason is Reason.TIMEOUT
    assert fast.success, fast.detail
    assert aws.pool.clients == 1


async def test_a_cancelled_attempt_stays_cancelled(aws: AwsHarness, fake_aws: FakeAws) -> None:
    fake_aws.hang("DescribeServices")
    probe = aws.probe(check="ecs_service", cluster="prod", service="api", endpoint_url=fake_aws.url)
    attempt = asyncio.ensure_future(probe.impl.probe())
    await until(lambda: fake_aws.calls)

    attempt.cancel()

    with pytest.raises(asyncio.CancelledError):
        await attempt


async def test_an_endpoint_nobody_listens_on_is_connection_refused(aws: AwsHarness) -> None:
    result = await aws.once(check="sts_identity", endpoint_url=f"http://127.0.0.1:{free_port()}")

    assert result.reason is Reason.CONNECTION_REFUSED


async def test_credentials_that_appear_later_are_picked_up(aws: AwsHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    # At start-up the ECS credentials endpoint can be briefly unreachable: the client must not be
    # made without credentials and then fail forever.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    probe = aws.probe(check="sts_identity")

    before = await probe.run()
    aws_credentials_env(monkeypatch)
    after = await probe.run()

    assert before.reason is Reason.AWS_AUTH
    assert after.success, after.detail


async def test_a_secret_from_the_config_never_reaches_the_detail(aws: AwsHarness, fake_aws: FakeAws) -> None:
    aws.secrets = frozenset({"ext-id-4f1c9a"})
    fake_aws.reply("DescribeServices", HEALTHY_SERVICE | {"failures": [{"arn": "x", "reason": "ext-id-4f1c9a"}],
                                                          "services": []})

    result = await aws.once(check="ecs_service", cluster="prod", service="api", endpoint_url=fake_aws.url)

    assert result.detail == "service api not found in cluster prod (***)"


@pytest.mark.parametrize(("code", "status", "reason"), [
    ("ThrottlingException", 400, Reason.AWS_THROTTLED),
    ("TooManyRequestsException", 429, Reason.AWS_THROTTLED),
    ("UnrecognizedClientException", 400, Reason.AWS_AUTH),
    ("InvalidSignatureException", 400, Reason.AWS_AUTH),
    ("ExpiredTokenException", 400, Reason.AWS_AUTH),
    ("AccessDeniedException", 400, Reason.AWS_ERROR),
    ("ClusterNotFoundException", 400, Reason.AWS_ERROR),
    ("ServerException", 500, Reason.AWS_ERROR),
])
async def test_aws_error_codes_map_to_reasons(aws: AwsHarness, fake_aws: FakeAws, code: str, status: int,
                                              reason: Reason) -> None:
    fake_aws.reply("DescribeServices", json_error(code, "it says why"), status=status)

    result = await aws.once(check="ecs_service", cluster="prod", service="api", endpoint_url=fake_aws.url)

    assert result.reason is reason
    assert result.error_code == code
    assert fake_aws.count("DescribeServices") == 1  # never retried, whatever the code


async def test_ec2_errors_are_read_from_ec2s_own_error_format(aws: AwsHarness, fake_aws: FakeAws) -> None:
    fake_aws.reply("DescribeSubnets", "<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
                   "<Message>Request limit exceeded.</Message></Error></Errors><RequestID>r-1</RequestID></Response>",
                   status=503)

    result = await aws.once(check="subnet_free_ips", subnet_id="subnet-0123456789abcdef0", endpoint_url=fake_aws.url)

    assert result.reason is Reason.AWS_THROTTLED
    assert result.detail == "DescribeSubnets: RequestLimitExceeded: Request limit exceeded."
