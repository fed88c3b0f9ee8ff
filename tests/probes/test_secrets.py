"""Planted secrets never leave probed (issue 12 item 13 b-e): TCP details, AWS messages, every log
record (third-party loggers included), and the API, metrics, log and `probed once` of a real
daemon probing servers that echo what they are sent."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError

from probed.logs import setup_logging
from probed.probes import ProbeContext
from probed.probes.aws.errors import failure
from probed.redact import forget_all
from probed.result import Reason
from tests.peers.http import HOST, Prober, WebPeer, raw_peer
from tests.peers.net import free_port

PLANTED = "pässw0rd-PLANTED-42"
"""Non-ASCII on purpose: repr() escapes it in TCP details, JSON in the API."""


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    forget_all()
    yield
    forget_all()


def never_shows(secret: str, text: str) -> None:
    raw = secret.encode()
    for form in (secret, repr(raw)[2:-1], ascii(secret)[1:-1], json.dumps(secret)[1:-1], secret[:8],
                 repr(raw)[2:12]):
        assert form not in text, (form, text)


# --------------------------------------------------------------------------- details


async def test_a_non_ascii_secret_echoed_to_a_tcp_probe_is_masked_in_its_repr(prober: Prober) -> None:
    banner = f"-ERR AUTH {PLANTED} rejected\r\n".encode()
    async with raw_peer("banner", banner=banner) as peer:
        result = await prober.once("tcp", peer.address, {"send": "AUTH ${PW}\r\n", "expect": r"^\+OK"},
                                   timeout=0.5, environ={"PW": PLANTED})
    assert result.reason is Reason.EXPECT_MISMATCH
    never_shows(PLANTED, result.detail)
    assert result.detail == r"no match for /^\+OK/ before the timeout; received b'-ERR AUTH *** rejected\r\n'"


async def test_a_secret_cut_by_the_tcp_detail_limit_shows_no_prefix(prober: Prober) -> None:
    async with raw_peer("banner", banner=b"-ERR " + b"x" * 45 + PLANTED.encode() + b"\r\n") as peer:
        result = await prober.once("tcp", peer.address, {"send": "AUTH ${PW}\r\n", "expect": r"^\+OK"},
                                   timeout=0.5, environ={"PW": PLANTED})
    assert result.reason is Reason.EXPECT_MISMATCH
    never_shows(PLANTED, result.detail)
    assert "***" in result.detail


def test_aws_messages_are_redacted_before_they_are_clipped() -> None:
    secret = "ext-" + "9" * 40
    message = "x" * 250 + f" ExternalId={secret} was refused"
    exc = ClientError({"Error": {"Code": "AccessDenied", "Message": message}}, "AssumeRole")
    result = failure(exc, frozenset({secret}))
    assert result.error_code == "AccessDenied"
    assert "ext-999" not in result.detail and result.detail.endswith("..."), result.detail


# --------------------------------------------------------------------------- every log record


@pytest.fixture
def probed_logging() -> Iterator[None]:
    """probed's own logging setup (writing to the captured stderr); pytest's handlers restored after."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.usefixtures("probed_logging")
def test_every_log_record_is_redacted_third_party_ones_too(fmt: str, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(fmt, "info")
    ProbeContext(secrets=frozenset({"ExtId-PLANTED-0042"}))  # building a probe: the process learns its secrets
    monkeypatch.setenv("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjPLANTEDSESSIONTOKEN")
    try:
        raise RuntimeError("AssumeRole failed: {'ExternalId': 'ExtId-PLANTED-0042', 'RoleArn': 'arn:...'}")
    except RuntimeError:
        # What aiobotocore logs (with a traceback) when a credential refresh fails.
        logging.getLogger("aiobotocore.credentials").warning(
            "Refreshing temporary credentials failed during mandatory refresh period.", exc_info=True)
    logging.getLogger("some.library").info("params %s", {"ExternalId": "ExtId-PLANTED-0042"})
    logging.getLogger("botocore.endpoint").info("header X-Amz-Security-Token: %s", os.environ["AWS_SESSION_TOKEN"])
    logging.getLogger("probed.probe").warning("detail", extra={"detail": "token ExtId-PLANTED-0042"})
    out = capsys.readouterr().err
    assert "Refreshing temporary credentials failed" in out and "Traceback" in out and "RuntimeError" in out
    assert "PLANTED" not in out, out
    assert out.count("***") >= 4


# --------------------------------------------------------------------------- a real daemon


@pytest.fixture
async def echo_tcp() -> AsyncIterator[int]:
    """Answers every line with `-ERR <the line>`: a server that echoes a password back."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(b"-ERR unknown " + line)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


@pytest.mark.slow
async def test_planted_secrets_never_reach_the_api_metrics_log_or_once(
        web_peer: WebPeer, echo_tcp: int, tmp_path: Path) -> None:
    basic = base64.b64encode(f"alice:{PLANTED}".encode()).decode()
    config = tmp_path / "probes.yaml"
    config.write_text(f"""
probes:
  - name: basic-echo
    type: http
    target: "http://alice:${{URL_PW}}@{HOST}:{web_peer.port}/headers"
    interval: 500ms
    http: {{fail_if_header_not_matches: [{{header: X-Echo-Authorization, regexp: "^nope$"}}]}}
  - name: header-echo
    type: http
    target: "http://{HOST}:{web_peer.port}/echo"
    interval: 500ms
    http:
      headers: {{X-Pad: "{'p' * 60}", X-Token: "${{TOKEN}}"}}
      body_json: [{{path: headers, equals: nope}}]
  - name: tcp-echo
    type: tcp
    target: "{HOST}:{echo_tcp}"
    interval: 500ms
    timeout: 400ms
    tcp: {{send: "AUTH ${{TOKEN}}\\r\\n", expect: "^\\\\+OK"}}
""")
    env = {**os.environ, "URL_PW": quote(PLANTED, safe=""), "TOKEN": PLANTED,
           "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjPLANTEDSESSIONTOKEN"}
    port = free_port()
    root = Path(__file__).parent.parent.parent
    log = tmp_path / "probed.log"
    with log.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "probed.cli", "run", "--config", str(config), "--listen", f"{HOST}:{port}",
            stdout=log_file, stderr=log_file, cwd=root, env=env)
        try:
            api, reasons = "", {}
            for _ in range(100):
                await asyncio.sleep(0.2)
                try:
                    api = await asyncio.to_thread(_get, f"http://{HOST}:{port}/api/v1/probes")
                except OSError:
                    continue
                reasons = {p["name"]: (p.get("last") or {}).get("reason") for p in json.loads(api)["probes"]}
                if all(reasons.values()):
                    break
            metrics = await asyncio.to_thread(_get, f"http://{HOST}:{port}/metrics")
            page = await asyncio.to_thread(_get, f"http://{HOST}:{port}/")
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
        once = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "probed.cli", "once", "--config", str(config), "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=root, env=env)
        once_out, _ = await asyncio.wait_for(once.communicate(), 60)
    logged = log.read_text(errors="replace")
    assert reasons == {"basic-echo": "header_mismatch", "header-echo": "body_mismatch",
                       "tcp-echo": "expect_mismatch"}, api
    assert "***" in api and "***" in once_out.decode()
    for where, text in [("api", api), ("metrics", metrics), ("page", page), ("log", logged),
                        ("once", once_out.decode())]:
        for secret in (PLANTED, basic, "IQoJb3JpZ2luX2VjPLANTEDSESSIONTOKEN"):
            try:
                never_shows(secret, text)
            except AssertionError as exc:
                raise AssertionError(f"{where}: {exc}") from None
