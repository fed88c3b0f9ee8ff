"""User regexps are RE2 (issue 12 item 2): linear-time matching on whatever a target or a client
sends, in the dialect of blackbox_exporter and Prometheus, with its syntax errors as config errors.
A pattern whose program is too large to search quickly is a config error too, and costly searches
run in a few threads whose queue holds only searches someone still waits for.

HTTP bodies and headers are in test_http_hardening.py, next to the gzip bomb."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import ClassVar

import pytest

from probed.blackbox.guard import Denied, TargetGuard
from probed.config.regex import MAX_PROGRAM_SIZE, Match, Regexp, RegexpError, SearchPool
from probed.config.schema import ConfigError
from probed.result import Reason
from probed.runtime.probeset import parse_config
from tests.peers.http import HOST, Prober, raw_peer

BACKTRACKER = "a" * 28 + "!"
"""Against `^(a+)+$`, a backtracking engine (Python's `re`) tries every split of the run of `a`
between the two loops before it fails, twice as many for each `a`: far past any timeout here."""


async def test_a_banner_built_to_make_expect_backtrack_fails_within_the_timeout(prober: Prober) -> None:
    async with raw_peer("hangup", banner=BACKTRACKER.encode()) as peer:
        result = await prober.once("tcp", peer.address, {"expect": "^(a+)+$"}, timeout=1.0)
    assert result.reason is Reason.EXPECT_MISMATCH, result.detail
    assert result.detail.startswith("connection closed before /^(a+)+$/ matched"), result.detail
    assert result.duration_s < 1.0, result.duration_s


async def test_a_target_built_to_make_an_allowlist_regexp_backtrack_is_denied_at_once() -> None:
    guard = TargetGuard.of(allow=["^(a+)+$"])
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Denied, match=r"not allowed by --probe\.allow-targets"):
        await guard.check(BACKTRACKER, HOST, 80)
    assert loop.time() - started < 1.0  # a scrape's timeout: the check never holds the loop that long


def test_an_allowlist_regexp_is_re2() -> None:
    with pytest.raises(ValueError, match=r"neither a network nor a regexp: uses syntax RE2 does not support"):
        TargetGuard.of(allow=[r"^https://(?!internal)"])


@pytest.mark.parametrize(("section", "value", "column", "what"), [
    ("http: {fail_if_body_matches_regexp: ['%s']}", "(?=x)", 42, "http.fail_if_body_matches_regexp[0]"),
    ("http: {fail_if_body_not_matches_regexp: ['%s']}", r"(a)\1", 46, "http.fail_if_body_not_matches_regexp[0]"),
    ("tcp: {expect: '%s'}", "(?<!x)y", 19, "tcp.expect"),
    ("dns: {fail_if_answer_matches: ['%s']}", r"\Z", 36, "dns.fail_if_answer_matches[0]"),
], ids=["lookahead", "backreference", "tcp-lookbehind", "dns-python-end"])
def test_syntax_re2_does_not_have_is_a_config_error_naming_re2(section: str, value: str, column: int,
                                                               what: str) -> None:
    kind = section.split(":", 1)[0]
    target = {"http": "http://x/", "tcp": "x:1", "dns": "example.com"}[kind]
    text = f"probes:\n  - name: a\n    type: {kind}\n    target: {target}\n    {section % value}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "probes.yaml", {})
    (issue,) = caught.value.issues
    assert str(issue).startswith(f'probes.yaml:5:{column}: probes[0].{what}: invalid regexp "{value}": uses syntax '
                                 "RE2 does not support ("), str(issue)
    assert str(issue).endswith("probed's regexps are RE2, as blackbox_exporter's and Prometheus's: no lookaround, "
                               "no backreferences"), str(issue)


def test_a_repetition_count_go_refuses_is_refused() -> None:
    # RE2 alone would read `{4294967295}` as literal text; Go (blackbox, Prometheus) refuses it.
    for pattern in ("a{4294967295}", "a{1,4294967295}", r"\\{4294967295}"):
        with pytest.raises(RegexpError, match="invalid repetition size"):
            Regexp(pattern)
    assert Regexp(r"a\{4294967295}").search("a{4294967295}") is not None  # an escaped brace is text
    assert Regexp("a{01}").search("a{01}") is not None  # a leading zero makes it text, in Go too


def test_bytewise_patterns_match_bytes_as_re_does_with_a_bytes_pattern() -> None:
    banner = Regexp("^220 .+é$", bytewise=True)
    assert banner.search("220 caf\xff é".encode("latin-1")[:-1] + "é".encode()) is not None  # `.` is any byte
    assert Regexp("^220 .+é$").search(b"220 caf\xff \xc3\xa9") is None  # as text, invalid UTF-8 is no character
    found = Regexp("b+", bytewise=True).search(bytearray(b"abbc"))  # what TcpProbe reads into
    assert found is not None and found.end() == 3


def test_equal_patterns_are_equal() -> None:
    # A reload compares probe settings: an unchanged regexp must not look changed.
    assert Regexp("^ok$") == Regexp("^ok$") and hash(Regexp("^ok$")) == hash(Regexp("^ok$"))
    assert Regexp("^ok$") != Regexp("^ok$", ignore_case=True)


REALISTIC = [
    r'"status":\s*"ok"', r"^https://app\.example\.com$", '<div id="root">', r"^(\+PONG|-NOAUTH)",
    r"d[0-9a-z]+\.cloudfront\.net", r"v=spf1 .*include:amazonses\.com.*", r"^Apache/2\.2", "^[0-4]$",
    r"(?i)<title>.*</title>", r"(?i)(error|exception|fatal|panic|traceback)",
    r"\b(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\b",
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})",
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    r'(?i)"version":\s*"v?\d+\.\d+\.\d+(-[a-z0-9.]+)?"',
]


def test_realistic_patterns_are_far_under_the_program_size_cap() -> None:
    for pattern in REALISTIC:
        assert Regexp(pattern).program_size < MAX_PROGRAM_SIZE / 20, pattern
    for roomy in (r"\pL+", r"[a-z0-9]{1,63}(\.[a-z0-9]{1,63}){1,10}", ".{0,500}"):  # a Unicode class, counted labels
        assert Regexp(roomy).program_size <= MAX_PROGRAM_SIZE, roomy


def test_a_pattern_over_the_program_size_cap_is_a_config_error_with_its_line() -> None:
    text = "probes:\n  - name: a\n    type: http\n    target: http://x/\n" \
           "    http: {fail_if_body_matches_regexp: ['(.*a.{999})c']}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "probes.yaml", {})
    (issue,) = caught.value.issues
    assert str(issue).startswith('probes.yaml:5:42: probes[0].http.fail_if_body_matches_regexp[0]: invalid regexp '
                                 f'"(.*a.{{999}})c": too large: it compiles to 8,006 RE2 instructions, at most '
                                 f"{MAX_PROGRAM_SIZE:,} ("), str(issue)


def test_a_dns_expect_over_the_cap_is_a_config_error_not_exact_text() -> None:
    # An `expect` entry that is not a valid regexp is matched as exact text; one that is a regexp
    # too large to run must not quietly become exact text instead.
    text = ("probes:\n  - {name: d, type: dns, target: example.com,\n"
            "     dns: {server: 127.0.0.1, expect: ['(.*a.{999})c']}}\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "probes.yaml", {})
    (issue,) = caught.value.issues
    assert "probes[0].dns.expect: a regexp too large" in str(issue), str(issue)


class _Gated(Regexp):
    """Its searches wait for `gate` and count themselves: a search thread's work, made visible."""

    gate: ClassVar[threading.Event] = threading.Event()
    searched: ClassVar[list[str]] = []

    def search(self, text: str | bytes | bytearray) -> Match | None:
        self.searched.append(self.pattern)
        self.gate.wait(30)
        return super().search(text)


async def test_searches_whose_callers_gave_up_never_run_and_the_threads_end() -> None:
    pool, _Gated.searched[:] = SearchPool(workers=2), []
    _Gated.gate.clear()
    try:
        running = [asyncio.ensure_future(pool.search(_Gated("x"), "x", time.monotonic() + 30)) for _ in range(2)]
        for _ in range(1000):  # until both threads are busy
            if len(_Gated.searched) == 2:
                break
            await asyncio.sleep(0.01)
        flood = [asyncio.ensure_future(pool.search(_Gated("late"), "late", time.monotonic() + 0.2))
                 for _ in range(50)]
        _, waiting = await asyncio.wait(flood, timeout=10)  # far past their deadlines
        assert not waiting, "a caller waited past its deadline"
        for outcome in flood:
            assert isinstance(outcome.exception(), TimeoutError), outcome
        assert pool.queued == 0  # gone with their callers, not left for the threads
        _Gated.gate.set()
        assert [m is not None for m in await asyncio.gather(*running)] == [True, True]
    finally:
        _Gated.gate.set()
    assert await idle(pool), "a search thread outlived its work"  # nothing to shut down, nothing left behind
    assert _Gated.searched == ["x", "x"], "a search whose caller had given up ran"


async def test_a_search_still_running_at_the_deadline_is_a_timeout_and_its_result_is_dropped() -> None:
    pool, _Gated.searched[:] = SearchPool(workers=1), []
    loop, errors = asyncio.get_running_loop(), []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    _Gated.gate.clear()
    try:
        search = asyncio.ensure_future(pool.search(_Gated("x"), "x", time.monotonic() + 0.1))
        _, waiting = await asyncio.wait([search], timeout=10)  # far past its deadline, the gate still shut
        assert not waiting, "the caller waited past its deadline"
        assert isinstance(search.exception(), TimeoutError), search
        _Gated.gate.set()
        assert await idle(pool)
        await asyncio.sleep(0.05)  # the answer reaches the loop, which drops it
    finally:
        _Gated.gate.set()
        loop.set_exception_handler(None)
    assert _Gated.searched == ["x"] and errors == []


async def idle(pool: SearchPool) -> bool:
    """Whether the pool's threads all end (within a bound far beyond what ending takes)."""
    for _ in range(1000):
        if not pool.busy:
            return True
        await asyncio.sleep(0.01)
    return False
