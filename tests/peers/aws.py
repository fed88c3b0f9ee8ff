"""Local AWS peers for the aws probe tests: a moto server and a small fake for states moto cannot show.

- `moto_server` (session): one moto ThreadedMotoServer on a free 127.0.0.1 port for the whole run;
  `aws` (per test) resets it, points credentials at fake keys (never a real ~/.aws), and hands out
  setup clients (boto3, sync: setup is not what is measured) and probes under test.
- `fake_aws` (per test): an aiohttp server answering chosen API actions with AWS-shaped responses
  (JSON for json-protocol services such as ECS, XML for query-protocol ones such as ELBv2, RDS,
  SNS, STS, EC2). It serves the states moto never produces (a target `unhealthy`, a NAT gateway
  `failed`, an instance `backing-up`, a rollout FAILED, throttling), counts the calls and who
  signed them, holds replies until enough calls are in flight (or forever: a stalled API) and
  serves the ECS container credentials endpoint (the task role).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import urllib.request
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
import pytest_asyncio
from aiohttp import web
from moto.server import ThreadedMotoServer

from probed.config.model import ProbeSpec
from probed.probes.aws import KIND, AwsSettings, ClientPool
from probed.probes.aws.models import create_loader
from probed.result import ProbeResult
from probed.runtime.attempt import run_attempt
from probed.runtime.probeset import ProbeSet
from tests.peers.net import free_port

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
FAKE_KEY_ID, FAKE_SECRET = "AKIAPROBEDTESTKEY000", "probed-test-secret-key-not-real"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def shared_loader() -> Any:
    """One botocore model cache for every pool in the run (the pool's own cache is per pool)."""
    return create_loader()


@pytest.fixture(scope="session")
def admin_clients(moto_server: str) -> dict[str, Any]:
    return {}


def aws_credentials_env(monkeypatch: pytest.MonkeyPatch, key_id: str = FAKE_KEY_ID,
                        secret: str = FAKE_SECRET) -> None:
    """Fake static keys in the environment, and nothing else from the credential chain."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_ROLE_SESSION_NAME",
                "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # nothing may reach 169.254.169.254
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/probed-test/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/probed-test/credentials")


def aws_spec(name: str = "aws-test", *, interval: float = 60.0, timeout: float = 5.0, **aws: Any) -> ProbeSpec:
    settings = AwsSettings(**aws)
    assert KIND.derive_target is not None
    return ProbeSpec(name=name, type="aws", target=KIND.derive_target(settings), interval=interval, timeout=timeout,
                     labels={}, settings=settings)


@dataclass
class AwsHarness:
    """Probes under test, built by a ProbeSet around one client pool (as the daemon's share one),
    plus setup clients."""

    url: str
    probes: ProbeSet
    admin_clients: dict[str, Any]
    secrets: frozenset[str] = frozenset()

    @property
    def pool(self) -> ClientPool:
        pool: ClientPool = self.probes.shared["aws"]
        return pool

    @pool.setter
    def pool(self, pool: ClientPool) -> None:
        """Probes built from now on share `pool` (the set closes it with the others)."""
        self.probes.shared["aws"] = pool

    def admin(self, service: str) -> Any:
        client = self.admin_clients.get(service)
        if client is None:
            client = self.admin_clients[service] = boto3.client(
                service, region_name=REGION, endpoint_url=self.url, aws_access_key_id="testing",
                aws_secret_access_key="testing")
        return client

    def probe(self, *, name: str = "aws-test", timeout: float = 5.0, endpoint_url: str | None = None,
              **aws: Any) -> Probe:
        aws.setdefault("region", REGION)
        spec = aws_spec(name, timeout=timeout, endpoint_url=endpoint_url or self.url, **aws)
        return Probe(self.probes.add(spec, self.secrets), spec)

    async def once(self, **aws: Any) -> ProbeResult:
        return await self.probe(**aws).run()

    async def close(self) -> None:
        """Every probe built, then the pool (and one a test swapped in)."""
        await self.probes.aclose()


@dataclass
class Probe:
    impl: Any
    spec: ProbeSpec

    async def run(self) -> ProbeResult:
        return await run_attempt(self.impl, self.spec.timeout)


def reset_moto(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()


def set_moto_auth(url: str, free_calls: float) -> None:
    """moto checks signatures and IAM policies after `free_calls` more requests (inf: never)."""
    req = urllib.request.Request(f"{url}/moto-api/reset-auth", data=str(free_calls).encode(), method="POST",
                                 headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req, timeout=10).close()


@contextlib.contextmanager
def iam_enforced(url: str) -> Iterator[None]:
    """Within the block moto checks every signature and IAM policy, like AWS; set users up before it."""
    set_moto_auth(url, 0)
    try:
        yield
    finally:
        set_moto_auth(url, float("inf"))


def iam_user(harness: AwsHarness, name: str, policy: dict[str, Any] | None = None) -> tuple[str, str]:
    """A moto IAM user (with an optional inline policy) and its access key pair."""
    iam = harness.admin("iam")
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="probe", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest_asyncio.fixture
async def aws(moto_server: str, shared_loader: Any, admin_clients: dict[str, Any],
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AwsHarness]:
    aws_credentials_env(monkeypatch)
    reset_moto(moto_server)
    harness = AwsHarness(moto_server, ProbeSet(shared={"aws": ClientPool(data_loader=shared_loader)}), admin_clients)
    try:
        yield harness
    finally:
        await harness.close()


# --------------------------------------------------------------------------- the fake


@dataclass
class Reply:
    body: str
    status: int = 200
    hold_until: int = 0
    """Answer only once this many calls are in flight together (a barrier, not a clock)."""


@dataclass
class Call:
    action: str
    params: dict[str, Any]
    headers: dict[str, str]

    @property
    def access_key_id(self) -> str:
        """Whose key signed the request (SigV4: `Credential=AKID/date/region/service/aws4_request`)."""
        return self.headers.get("Authorization", "").partition("Credential=")[2].partition("/")[0]


CONTAINER_CREDENTIALS_PATH = "/v2/credentials/probed-task"
_NEVER = 1 << 30


class FakeAws:
    """Answers the actions a test scripted; anything else gets a 400 `UnexpectedCall` so it shows.

    It also serves the ECS container credentials endpoint (the task role) at
    CONTAINER_CREDENTIALS_PATH once `container_credentials()` says what to hand out.
    """

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.calls: list[Call] = []
        self.url = ""
        self.closing = asyncio.Event()  # releases held replies at teardown
        self.in_flight = 0
        self.max_in_flight = 0
        self._all_in = asyncio.Event()
        self._container: dict[str, Any] | None = None
        self.container_requests: list[dict[str, str]] = []

    def reply(self, action: str, body: str | dict[str, Any], status: int = 200, hold_until: int = 0) -> None:
        self.replies[action] = Reply(json.dumps(body) if isinstance(body, dict) else body, status, hold_until)

    def hang(self, action: str) -> None:
        """Take the call and never answer it (until teardown): a stalled API, with no clock involved."""
        self.reply(action, "", hold_until=_NEVER)

    def container_credentials(self, key_id: str, token: str, expires_in_s: float = 3600) -> None:
        expiry = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in_s)
        self._container = {"AccessKeyId": key_id, "SecretAccessKey": "fake-task-role-secret", "Token": token,
                           "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}

    def count(self, action: str) -> int:
        return sum(1 for c in self.calls if c.action == action)

    async def handle(self, request: web.Request) -> web.Response:
        if request.path == CONTAINER_CREDENTIALS_PATH and self._container is not None:
            self.container_requests.append(dict(request.headers))
            return web.json_response(self._container)
        raw = await request.read()
        target = request.headers.get("X-Amz-Target")
        if target:  # JSON protocol: the action is in the header, parameters in the JSON body
            action, params = target.rsplit(".", 1)[-1], json.loads(raw or b"{}")
            content_type = "application/x-amz-json-1.1"
        else:  # query protocol: a form with Action=...
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            action, params, content_type = form.pop("Action", "?"), form, "text/xml"
        self.calls.append(Call(action, params, dict(request.headers)))
        reply = self.replies.get(action)
        if reply is None:
            return web.Response(status=400, content_type=content_type,
                                text=json_error("UnexpectedCall", action) if target else query_error("UnexpectedCall",
                                                                                                      action))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if reply.hold_until:
                if self.in_flight >= reply.hold_until:
                    self._all_in.set()
                await _first(self._all_in.wait(), self.closing.wait())
        finally:
            self.in_flight -= 1
        return web.Response(status=reply.status, text=reply.body, content_type=content_type,
                            headers={"x-amzn-RequestId": "fake-request-1"})


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def query_response(action: str, result_xml: str) -> str:
    """A query-protocol (ELBv2, RDS, SNS, STS) success body."""
    return (f"<{action}Response><{action}Result>{result_xml}</{action}Result>"
            f"<ResponseMetadata><RequestId>fake-request-1</RequestId></ResponseMetadata></{action}Response>")


def ec2_response(action: str, inner_xml: str) -> str:
    """EC2's own protocol: no Result wrapper, lowerCamel element names."""
    return f"<{action}Response><requestId>fake-request-1</requestId>{inner_xml}</{action}Response>"


def query_error(code: str, message: str) -> str:
    return (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>fake-request-1</RequestId></ErrorResponse>")


def json_error(code: str, message: str) -> str:
    return json.dumps({"__type": code, "message": message})


def set_moto_transition(url: str, model: str, transition: dict[str, Any] | None) -> None:
    """Hold a moto model in its first state for a number of reads (None: back to moto's default)."""
    action = "set-transition" if transition is not None else "unset-transition"
    body = json.dumps({"model_name": model, **({"transition": transition} if transition else {})}).encode()
    req = urllib.request.Request(f"{url}/moto-api/state-manager/{action}", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).close()


@pytest_asyncio.fixture
async def fake_aws() -> AsyncIterator[FakeAws]:
    fake = FakeAws()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        fake.closing.set()
        await runner.cleanup()
