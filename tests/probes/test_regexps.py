"""User regexps are RE2 (issue 12 item 2): linear-time matching on whatever a target or a client
sends, in the dialect of blackbox_exporter and Prometheus, with its syntax errors as config errors.

HTTP bodies and headers are in test_http_hardening.py, next to the gzip bomb."""

from __future__ import annotations

import asyncio

import pytest

from probed.blackbox.guard import Denied, TargetGuard
from probed.config.regex import Regexp, RegexpError
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
