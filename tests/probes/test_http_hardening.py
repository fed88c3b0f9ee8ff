"""The HTTP probe against hostile bodies, headers and credentials (issue 12 items 2, 10, 13 b-c).

- A gzip bomb with a 2 GiB cap ends at the timeout, as `timeout` or `body_too_large`, and the
  loop keeps running other probes meanwhile (their results show it, not a stopwatch).
- A body or header built to make a regexp backtrack is matched in linear time (RE2), within
  the timeout, while other probes keep their schedule.
- A body built to make RE2's search slow (its DFA gives up; the cost is then the body's length
  times the pattern's program) is searched in a search thread: the attempt ends at its timeout
  and the loop keeps running other probes; a small body is searched on the loop.
- Header values that cannot be sent are config errors; URL credentials with an explicit
  `Authorization` header: the header wins.
- The Basic header made from URL credentials is a secret; quoted values are redacted, then clipped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from probed.config import regex
from probed.config.regex import MAX_PROGRAM_SIZE, Match, Regexp, SearchPool
from probed.config.schema import ConfigError
from probed.result import Reason
from probed.runtime.attempt import run_attempt
from probed.runtime.probeset import parse_config
from tests.peers.http import HOST, Prober, WebPeer

BACKTRACKER = "a" * 28 + "!"
"""Against `^(a+)+$`, a backtracking engine (Python's `re`) tries every split of the run of `a`
between the two loops before it fails, twice as many for each `a`: far past any timeout here.
RE2 reads it once."""

# --------------------------------------------------------------------------- item 2: CPU bounded by the deadline


@contextlib.asynccontextmanager
async def a_healthy_probe_alongside(prober: Prober, web_peer: WebPeer) -> AsyncIterator[list[Reason]]:
    """A healthy probe every 100 ms with a 1 s timeout, for as long as the block runs: a loop held
    for a second shows in its results as a timeout, or as missing results."""
    fast: list[Reason] = []

    async def fast_probe() -> None:
        probe = prober.make("http", f"{web_peer.url}/health", timeout="1s", interval="1s")
        while True:
            fast.append((await run_attempt(probe, 1.0)).reason)
            await asyncio.sleep(0.1)

    runner = asyncio.ensure_future(fast_probe())
    try:
        yield fast
    finally:
        runner.cancel()


async def test_a_gzip_bomb_ends_at_the_timeout_and_other_probes_keep_their_schedule(
        prober: Prober, web_peer: WebPeer) -> None:
    async with a_healthy_probe_alongside(prober, web_peer) as fast:
        result = await prober.once("http", f"{web_peer.url}/gzip-bomb", {"max_body_bytes": "2GiB"}, timeout=3.0)
    assert result.reason in (Reason.TIMEOUT, Reason.BODY_TOO_LARGE), (result.reason, result.detail)
    assert result.duration_s < 3.0 + 0.5, result.duration_s
    assert len(fast) >= 10, fast  # about 25 in 3 s; a held loop gets a handful
    assert set(fast) == {Reason.OK}, fast


@pytest.fixture
async def backtracker() -> AsyncIterator[str]:
    """A loopback HTTP server whose body and `X-Run` header are BACKTRACKER."""
    async def answer(_: web.Request) -> web.Response:
        return web.Response(text=BACKTRACKER, headers={"X-Run": BACKTRACKER})

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, HOST, 0).start()
    try:
        yield f"http://{HOST}:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("settings", "reason"), [
    ({"fail_if_body_not_matches_regexp": ["^(a+)+$"]}, Reason.BODY_MISMATCH),
    ({"fail_if_body_matches_regexp": ["^(a+)+$"]}, Reason.OK),
    ({"fail_if_header_not_matches": [{"header": "X-Run", "regexp": "^(a+)+$"}]}, Reason.HEADER_MISMATCH),
], ids=["body-must-match", "body-must-not-match", "header"])
async def test_a_body_built_to_make_a_regexp_backtrack_is_matched_within_the_timeout(
        prober: Prober, web_peer: WebPeer, backtracker: str, settings: dict[str, object], reason: Reason) -> None:
    async with a_healthy_probe_alongside(prober, web_peer) as fast:
        for _ in range(5):
            result = await prober.once("http", backtracker, settings, timeout=1.0)
            assert result.reason is reason, (result.reason, result.detail)
            assert result.duration_s < 1.0, result.duration_s
            await asyncio.sleep(0.1)
    assert fast and set(fast) == {Reason.OK}, fast


SLOW_FOR_RE2 = ".*[ -O].{600}~"
"""Under the program-size cap, but close to it: on text of printable characters without `~`, every
character from space to `O` opens a count of 600 that RE2's DFA cannot keep in its states, so
its search steps thousands of instructions over every byte."""


@pytest.fixture
async def random_printable_body() -> AsyncIterator[str]:
    """A loopback HTTP server whose body is a million random printable characters, none a `~`."""
    body = bytes(0x20 + b % 94 for b in os.urandom(1_000_000))  # 0x20 to 0x7d

    async def answer(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, HOST, 0).start()
    try:
        yield f"http://{HOST}:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


async def test_a_body_built_to_make_re2_slow_ends_at_the_timeout_and_other_probes_keep_their_schedule(
        prober: Prober, web_peer: WebPeer, random_printable_body: str) -> None:
    assert Regexp(SLOW_FOR_RE2).program_size > MAX_PROGRAM_SIZE * 0.9
    async with a_healthy_probe_alongside(prober, web_peer) as fast:
        before = len(fast)
        result = await prober.once("http", random_printable_body, {"fail_if_body_matches_regexp": [SLOW_FOR_RE2]},
                                   timeout=1.0)
        during = len(fast) - before
        await asyncio.sleep(0.5)  # the search goes on in its thread, and the loop with the probe alongside
    assert result.reason is Reason.TIMEOUT, (result.reason, result.detail)
    assert result.detail.startswith("checking the body: no result within"), result.detail
    assert during >= 4, fast  # about 8 in the attempt's 0.9 s; a loop held by the search gets one or two
    assert set(fast) == {Reason.OK}, fast
    for _ in range(1200):  # the search finishes in its thread, its result dropped; then no thread is left
        if regex.SEARCHES.busy == 0:
            break
        await asyncio.sleep(0.1)
    assert regex.SEARCHES.busy == 0


class _NoThreads(SearchPool):
    async def search(self, regexp: Regexp, text: str | bytes | bytearray, deadline: float) -> Match | None:
        raise AssertionError(f"a search of {len(text)} characters for /{regexp.pattern}/ left the loop")


async def test_a_small_body_is_searched_on_the_loop(prober: Prober, web_peer: WebPeer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(regex, "SEARCHES", _NoThreads())
    result = await prober.once("http", f"{web_peer.url}/json/ok", {
        "fail_if_body_not_matches_regexp": [r'"status":\s*"ok"'],
        "fail_if_header_not_matches": [{"header": "Content-Type", "regexp": "^application/json"}]})
    assert result.reason is Reason.OK, result.detail


async def test_a_gzip_bomb_under_the_default_cap_is_body_too_large(prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/gzip-bomb")
    assert result.reason is Reason.BODY_TOO_LARGE, result.detail


@pytest.mark.parametrize("query", ["", "?members=3", "?coding=deflate", "?coding=raw-deflate"],
                         ids=["gzip", "gzip-3-members", "deflate", "raw-deflate"])
async def test_compressed_bodies_are_inflated_and_checked(prober: Prober, web_peer: WebPeer, query: str) -> None:
    settings = {"body_json": [{"path": "status", "equals": "ok"}],
                "fail_if_body_not_matches_regexp": [r'^\{"status": "ok", "pad": "x+"\}$']}  # all of it, inflated
    result = await prober.once("http", f"{web_peer.url}/gzipped{query}", settings)
    assert result.reason is Reason.OK, result.detail
    assert result.values["uncompressed_body_length"] == len('{"status": "ok", "pad": ""}') + 100_000
    assert 0 < result.values["content_length"] < 10_000  # the Content-Length header: the compressed size


async def test_a_body_that_is_not_what_its_encoding_says_is_a_protocol_error(
        prober: Prober, web_peer: WebPeer) -> None:
    result = await prober.once("http", f"{web_peer.url}/gzipped?coding=broken",
                               {"fail_if_body_not_matches_regexp": ["ok"]})
    assert result.reason is Reason.PROTOCOL_ERROR and "invalid body encoding" in result.detail, result.detail


async def test_a_huge_equals_value_is_compared_in_steps_and_both_sides_are_clipped(
        prober: Prober, web_peer: WebPeer) -> None:
    # What nested YAML aliases expand to, within the loader's caps (MAX_NODES and the per-entry
    # cap in config/source.py): compared in steps, and the detail quotes both sides clipped.
    huge = [["x" * 50] * 300] * 300
    result = await prober.once("http", f"{web_peer.url}/json/ok", {"body_json": [
        {"path": "status", "equals": huge}]}, timeout=2.0)
    assert result.reason is Reason.BODY_MISMATCH, result.detail
    assert len(result.detail) < 300, len(result.detail)
    assert result.detail.startswith('body_json: status is "ok", expected [["xxxx') and result.detail.endswith("...")

    equal = await prober.once("http", f"{web_peer.url}/json/ok", {"body_json": [
        {"path": "replicas", "equals": [{"lag": 3}]}]})
    assert equal.reason is Reason.OK, equal.detail
    not_bool = await prober.once("http", f"{web_peer.url}/json/ok", {"body_json": [
        {"path": "replicas", "equals": [{"lag": True}]}]})
    assert not_bool.reason is Reason.BODY_MISMATCH, "JSON 3 is not true, at any depth"


# --------------------------------------------------------------------------- item 10: headers and credentials


@pytest.mark.parametrize("bad", ["a\r\nX-Evil: 1", "line\nbreak", "nul\0byte"], ids=["crlf", "lf", "nul"])
def test_header_values_with_cr_lf_or_nul_are_config_errors(bad: str) -> None:
    text = ("probes:\n  - name: api\n    type: http\n    target: http://example.com/\n"
            "    http: {headers: {X-Token: \"${TOKEN}\"}}\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "probes.yaml", {"TOKEN": bad})
    assert str(caught.value) == (
        'probes.yaml:5:21: probes[0].http.headers: the value of header "X-Token" contains a line break or NUL '
        "(CR, LF and NUL cannot be sent in a header; check the variable it comes from)")
    assert bad not in str(caught.value)


async def test_url_credentials_and_an_explicit_authorization_header_the_header_wins(
        prober: Prober, web_peer: WebPeer) -> None:
    target = f"http://app:s3cr3t-pw@{HOST}:{web_peer.port}/echo"
    settings = {"headers": {"authorization": "Bearer explicit-token"},
                "body_json": [{"path": "headers.Authorization", "equals": "Bearer explicit-token"}]}
    result = await prober.once("http", target, settings)
    assert result.reason is Reason.OK, result.detail


# --------------------------------------------------------------------------- item 13 b-c: secrets


async def test_the_basic_header_made_from_url_credentials_is_a_secret(prober: Prober, web_peer: WebPeer) -> None:
    token = base64.b64encode(b"alice:wonder-land-pw").decode()
    target = f"http://alice:wonder-land-pw@{HOST}:{web_peer.port}/headers"
    result = await prober.once("http", target, {"fail_if_header_not_matches": [
        {"header": "X-Echo-Authorization", "regexp": "^nope$"}]})
    assert result.reason is Reason.HEADER_MISMATCH
    assert token not in result.detail and token[:8] not in result.detail, result.detail
    assert '"***"' in result.detail

    echoed = await prober.once("http", target.replace("/headers", "/echo"), {"body_json": [
        {"path": "headers", "equals": "nope"}]})
    assert echoed.reason is Reason.BODY_MISMATCH
    assert token[:8] not in echoed.detail and "wonder-land" not in echoed.detail, echoed.detail


async def test_a_secret_at_the_clip_limit_is_redacted_before_it_is_cut(prober: Prober, web_peer: WebPeer) -> None:
    # The quoted header value is clipped at 80 characters: clipped first, the mask would not
    # match the cut secret and its first 73 characters would show ("Bearer HDRSECR...").
    secret = "HDRSECRET-" + "q" * 100
    result = await prober.once("http", f"{web_peer.url}/headers", {
        "headers": {"Authorization": "Bearer ${TOKEN}"},
        "fail_if_header_not_matches": [{"header": "X-Echo-Authorization", "regexp": "^nope$"}],
    }, environ={"TOKEN": secret})
    assert result.reason is Reason.HEADER_MISMATCH
    assert "HDRSECR" not in result.detail, result.detail

    body = await prober.once("http", f"{web_peer.url}/echo", {
        "headers": {"X-Pad": "p" * 60, "X-Token": "${TOKEN}"},
        "body_json": [{"path": "headers", "equals": "nope"}],
    }, environ={"TOKEN": secret})
    assert body.reason is Reason.BODY_MISMATCH
    assert "HDRSECR" not in body.detail, body.detail
