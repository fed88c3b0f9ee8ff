"""AWS probes end to end: `probed check`'s API budget, `probed once`, and the daemon against moto."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from probed.output.exposition import ExpositionView, render
from probed.runtime.daemon import Daemon
from tests.peers.aws import FAKE_KEY_ID, FAKE_SECRET, AwsHarness

REPO = Path(__file__).resolve().parents[3]
EXTERNAL_ID = "ext-id-4f1c9a77"


def probed(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([sys.executable, "-m", "probed.cli", *args], capture_output=True, text=True, timeout=60,
                          env={**clean, **env}, cwd=REPO)


def aws_env() -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": FAKE_KEY_ID, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent/probed-test/config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/probed-test/credentials",
            "PROBED_AWS_EXTERNAL_ID": EXTERNAL_ID}


def test_check_prints_api_calls_per_minute_and_warns_above_the_budget(tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    config.write_text("""\
probes:
  - {name: tasks, type: aws, aws: {check: ecs_service, region: us-east-1, cluster: c, service: s}}
  - {name: hot, type: aws, interval: 100ms, timeout: 100ms, aws: {check: sts_identity, region: us-east-1}}
""")

    out = probed("check", "--config", str(config), env=aws_env())

    assert out.returncode == 0, out.stderr
    assert "aws: ecs: 3 API calls per minute" in out.stdout.splitlines()
    assert "aws: sts: 600 API calls per minute  WARNING: above 300/min; this shares sts's API rate limit" \
        in out.stdout.splitlines()


def test_once_runs_aws_probes_against_moto_and_keeps_secrets_out(aws: AwsHarness, tmp_path: Path) -> None:
    ecs = aws.admin("ecs")
    ecs.create_cluster(clusterName="prod")
    ecs.register_task_definition(family="api", containerDefinitions=[{"name": "api", "image": "api:1", "memory": 256}])
    ecs.create_service(cluster="prod", serviceName="api", taskDefinition="api", desiredCount=2)
    config = tmp_path / "p.yaml"
    config.write_text(f"""\
defaults:
  aws: {{region: us-east-1, endpoint_url: "{aws.url}"}}
probes:
  - {{name: api-tasks, type: aws, aws: {{check: ecs_service, cluster: prod, service: api}}}}
  - name: data-account
    type: aws
    aws: {{check: sts_identity, expect_account: "210987654321", role_arn: "arn:aws:iam::210987654321:role/ro",
          external_id: "${{PROBED_AWS_EXTERNAL_ID}}"}}
""")

    text = probed("once", "--config", str(config), env=aws_env())
    as_json = probed("once", "--config", str(config), "--json", env=aws_env())

    assert text.returncode == 1, text.stderr  # the ECS service is at 0/2
    assert "api-tasks" in text.stdout and "running 0/2 (pending 2)" in text.stdout
    assert "    deployments: status=PRIMARY rolloutState=IN_PROGRESS" in text.stdout  # facts, via KIND.describe
    rows = {r["name"]: r for r in map(json.loads, as_json.stdout.splitlines())}
    assert rows["api-tasks"]["reason"] == "aws_check_failed"
    assert rows["api-tasks"]["values"] == {"ecs_running_tasks": 0.0, "ecs_desired_tasks": 2.0,
                                           "ecs_pending_tasks": 2.0}
    assert rows["data-account"]["success"] is True, rows["data-account"]["detail"]
    assert rows["data-account"]["target"] == "sts:caller-identity/210987654321"
    for output in (text.stdout, text.stderr, as_json.stdout, as_json.stderr):
        assert EXTERNAL_ID not in output and FAKE_SECRET not in output


def metric_lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


async def test_the_daemon_exports_aws_results_and_owns_the_client_pool(aws: AwsHarness, tmp_path: Path) -> None:
    ecs = aws.admin("ecs")
    ecs.create_cluster(clusterName="prod")
    ecs.register_task_definition(family="api", containerDefinitions=[{"name": "api", "image": "api:1", "memory": 256}])
    ecs.create_service(cluster="prod", serviceName="api", taskDefinition="api", desiredCount=2)
    head = f"""\
defaults:
  interval: 1s
  aws: {{region: us-east-1, endpoint_url: "{aws.url}"}}
probes:
  - {{name: identity, type: aws, aws: {{check: sts_identity}}}}
"""
    config = tmp_path / "p.yaml"
    config.write_text(head + """\
  - {name: api-tasks, type: aws, aws: {check: ecs_service, cluster: prod, service: api}}
  - {name: db-secret, type: aws, aws: {check: secret_readable, secret_id: app/prod/database}}
""")
    daemon = Daemon(str(config))
    await daemon.start()
    try:
        pool = daemon.probes.shared["aws"]
        async with asyncio.timeout(20):  # a hang guard: each probe runs within its first second
            while any(state.last is None for state in daemon.states.values()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        text = (await render(ExpositionView.of(daemon))).decode()
        assert pool.clients == 3  # sts, ecs, secretsmanager

        config.write_text(head)
        outcome = await daemon.reload()
        assert outcome.ok and outcome.removed == 2
        assert pool.clients == 1  # the removed probes' clients are closed
    finally:
        await daemon.shutdown()

    assert pool.clients == 0 and "aws" not in daemon.probes.shared
    assert [line.split("} ")[1] for line in metric_lines(text, "probed_aws_ecs_running_tasks")] == ["0"]
    assert [line.split("} ")[1] for line in metric_lines(text, "probed_aws_ecs_desired_tasks")] == ["2"]
    assert any('status="ACTIVE"} 1' in line for line in metric_lines(text, "probed_aws_status_info"))
    codes = metric_lines(text, "probed_probe_error_codes_total")
    assert any('code="ResourceNotFoundException"}' in line for line in codes)
    assert any('reason="aws_check_failed"}' in line for line in metric_lines(text, "probed_probe_failures_total"))
