"""The HTTP attempt: one request (following redirects), blackbox phases, a capped body, then checks.

An attempt fails, in this order, on: a transport error (refused, reset, DNS, TLS, garbage), too
many redirects, a status outside `valid_status_codes`, a body over `max_body_bytes`, a header
check, a body check (regexps, JSON fields), the TLS inspection (`_inspect_tls`), and finally
`slow` when everything passed but took longer than `fail_if_slower_than`.

The `http:` schema lives in config.py, the aiohttp sessions and the phase timing in session.py,
the header, body and JSON checks in checks.py; this module is the attempt itself.
"""

from __future__ import annotations

import base64
import email.utils
import functools
import ssl
import time
from time import perf_counter
from typing import Any

import aiohttp
from yarl import URL

from probed.config.model import ProbeSpec
from probed.probes import ProbeContext
from probed.probes.common.certs import (
    cert_info,
    cert_values,
    chain_facts,
    judge,
    read_chain,
)
from probed.probes.common.deadline import Deadline
from probed.probes.common.errors import classify
from probed.probes.common.net import FAMILIES, with_lookup_time
from probed.probes.common.tls import TLS_WATCHER, client_context
from probed.probes.http.body import BadEncoding, Body, OutOfTime, Steps, in_steps, read_body
from probed.probes.http.checks import HeaderCheck, check_body, check_headers
from probed.probes.http.config import HttpSettings
from probed.probes.http.session import SessionPool, Timing
from probed.redact import redact, remember
from probed.result import ProbeResult, Reason


def _describe_codes(ranges: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


@functools.lru_cache(maxsize=256)
def _code_set(ranges: tuple[tuple[int, int], ...]) -> frozenset[int]:
    # One O(1) lookup per attempt; cached, so probes with the same codes share one set.
    return frozenset(c for lo, hi in ranges for c in range(lo, hi + 1))


class HttpProbe:
    """Everything an attempt needs is computed here once; `probe()` only does I/O and checks."""

    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        s: HttpSettings = spec.settings if spec.settings is not None else HttpSettings()
        self._url, self._headers, derived = _credentials(URL(spec.target), dict(s.headers))
        self._secrets = ctx.secrets | derived
        remember(derived)
        self._timeout = spec.timeout
        self._method = s.method.upper()
        self._data = s.body.encode() if s.body is not None else None
        self._follow = s.follow_redirects
        # aiohttp fails when the redirect count *reaches* its limit; ours is the number allowed.
        self._aiohttp_max_redirects = s.max_redirects + 1
        self._max_redirects = s.max_redirects
        self._ok_codes = _code_set(s.valid_status_codes)
        self._codes_text = _describe_codes(s.valid_status_codes)
        self._header_checks: list[HeaderCheck] = [
            *((h.header, h.regexp, h.allow_missing, True) for h in s.fail_if_header_not_matches),
            *((h.header, h.regexp, h.allow_missing, False) for h in s.fail_if_header_matches)]
        self._body_must = s.fail_if_body_not_matches_regexp
        self._body_must_not = s.fail_if_body_matches_regexp
        self._json_checks = s.body_json
        self._needs_body = bool(self._body_must or self._body_must_not or self._json_checks)
        self._slow = s.fail_if_slower_than
        self._max_body = s.max_body_bytes
        self._keepalive = s.keepalive
        self._family = FAMILIES[s.ip_protocol]
        self._last_peer: tuple[int, str] | None = None
        self._connected: tuple[int, str] | None = None
        self._ssl: ssl.SSLContext = client_context(s.tls)
        self._server_hostname = s.tls.server_name
        self._min_days, self._fail_if_expiring = s.tls.min_days_remaining, s.tls.fail_if_expiring
        shared = ctx.shared.get("http")
        # The daemon hands every probe the kind's shared pool; a probe built without one (a
        # test, a library user) owns a private pool and closes it in aclose().
        self._owns_pool = not isinstance(shared, SessionPool)
        self._pool: SessionPool = shared if isinstance(shared, SessionPool) else SessionPool()
        self._session: aiohttp.ClientSession | None = None
        self._last_ssl_object: ssl.SSLObject | None = None

    async def aclose(self) -> None:
        if self._keepalive and self._session is not None:
            await self._session.close()
        if self._owns_pool:
            await self._pool.aclose()

    async def probe(self) -> ProbeResult:
        self._connected = None  # set by the attempt once it has a connection
        result = await self._attempt_once()
        return with_lookup_time(result, self._connected)

    async def _attempt_once(self) -> ProbeResult:
        session = self._session
        if session is None or session.closed:
            pool = self._pool
            session = self._session = (pool.keepalive_session(self._family) if self._keepalive
                                        else pool.session(self._family))
        timing = Timing(perf_counter())
        deadline = Deadline(self._timeout)
        token = TLS_WATCHER.set(timing)
        try:
            response = await session.request(
                self._method, self._url, headers=self._headers, data=self._data,
                allow_redirects=self._follow, max_redirects=self._aiohttp_max_redirects,
                ssl=self._ssl, server_hostname=self._server_hostname, trace_request_ctx=timing,
            )
        except (aiohttp.ClientError, OSError) as exc:
            return self._broken(exc, timing)
        finally:
            TLS_WATCHER.reset(token)
            # A reused keepalive connection opens nothing: it is the one an earlier attempt made.
            if timing.peer is not None or not self._keepalive:
                self._last_peer = timing.peer
            self._connected = self._last_peer
        try:
            result = await self._evaluate(response, timing, deadline)
        except (aiohttp.ClientError, OSError) as exc:
            return self._broken(exc, timing)
        finally:
            # Closes the connection unless the body was read to the end (then it is already
            # back in the pool or closed): after a cap, an error or a cancellation nothing
            # keeps a half-read connection alive.
            response.close()
        took = perf_counter() - timing.start
        if result.success and took > self._timeout:
            # CPU work the loop could not interrupt (the scheduler's cancellation only lands at
            # an await): an attempt past its timeout is never ok, whatever it found.
            return ProbeResult.fail(Reason.TIMEOUT, f"the attempt took {took * 1000:.0f} ms, past its timeout "
                                    f"({self._timeout:g}s)", phases=result.phases, values=result.values,
                                    info=result.info, facts=result.facts)
        return result

    async def _evaluate(self, response: aiohttp.ClientResponse, timing: Timing, deadline: Deadline) -> ProbeResult:
        ssl_object = self._tls_of(response, timing)
        # A HEAD response declares the length of the body it does not send.
        declared = response.content_length if self._method != "HEAD" else None
        too_large = declared is not None and declared > self._max_body
        body, stopped = Body(), None
        if not too_large:
            try:
                body = await read_body(response.content, response.headers.get("Content-Encoding", ""),
                                       self._max_body, self._needs_body, response.charset, deadline)
            except OutOfTime:
                stopped = Reason.TIMEOUT, f"reading the body: no end within {deadline.total_s:.3g}s"
            except BadEncoding as exc:
                stopped = Reason.PROTOCOL_ERROR, str(exc)
            too_large = body.too_large
        end = perf_counter()
        size = body.size
        status = response.status
        version = response.version
        values: dict[str, float] = {
            "status_code": status,
            "redirects": len(response.history),
            # blackbox's meaning: the Content-Length header (-1 without); the bytes read, inflated,
            # are the uncompressed body length.
            "content_length": -1 if response.content_length is None else response.content_length,
            "uncompressed_body_length": size,
            "failed_due_to_regex": 0,
            "ssl": 1 if response.url.scheme == "https" else 0,
            "http_version": version.major + version.minor / 10 if version is not None else 0,
        }
        modified = _last_modified(response.headers.get("Last-Modified"))
        if modified is not None:
            values["last_modified_timestamp_seconds"] = modified
        info: dict[str, dict[str, str]] = {}
        facts: dict[str, object] = {}
        if response.history:
            facts["final_url"] = redact(str(response.url), self._secrets)
        tls_problem = None
        if ssl_object is not None:
            tls_problem = self._inspect_tls(ssl_object, True, values, info, facts)
        result: dict[str, Any] = {"phases": timing.phases(end), "values": values, "info": info, "facts": facts}

        if stopped is not None:
            return ProbeResult.fail(stopped[0], redact(stopped[1], self._secrets), **result)
        if status not in self._ok_codes:
            detail = f"HTTP {status} {response.reason or ''}".rstrip() + f" (expected {self._codes_text})"
            return ProbeResult.fail(Reason.HTTP_STATUS, redact(detail, self._secrets), **result)
        if too_large:
            return ProbeResult.fail(Reason.BODY_TOO_LARGE,
                                    f"body larger than max_body_bytes ({self._max_body} bytes)", **result)
        if self._header_checks:
            failed = await self._checked("headers", Reason.HEADER_MISMATCH, deadline, result,
                                         check_headers(response.headers, self._header_checks, self._secrets))
            if failed is not None:
                return failed
        if self._needs_body:
            failed = await self._checked("body", Reason.BODY_MISMATCH, deadline, result,
                                         check_body(body.text, self._body_must_not, self._body_must,
                                                    self._json_checks, self._secrets))
            if failed is not None:
                return failed
        warning = None
        if tls_problem is not None:
            if not (tls_problem[0].can_warn and not self._fail_if_expiring):
                return ProbeResult.fail(tls_problem[0], redact(tls_problem[1], self._secrets), **result)
            warning = tls_problem
        if self._slow is not None and end - timing.start > self._slow:
            return ProbeResult.fail(
                Reason.SLOW, f"took {(end - timing.start) * 1000:.0f} ms (fail_if_slower_than {self._slow:g}s)",
                **result)
        if warning is not None:
            return ProbeResult.warn(warning[0], redact(warning[1], self._secrets), **result)
        return ProbeResult.ok(**result)

    def _tls_of(self, response: aiohttp.ClientResponse, timing: Timing) -> ssl.SSLObject | None:
        if response.url.scheme != "https":
            return None
        ssl_object = timing.ssl_object
        if ssl_object is None and response.connection is not None and response.connection.transport is not None:
            ssl_object = response.connection.transport.get_extra_info("ssl_object")  # a reused connection
        if ssl_object is None:
            ssl_object = self._last_ssl_object  # keepalive: the connection made on an earlier attempt
        self._last_ssl_object = ssl_object if self._keepalive else None
        return ssl_object

    async def _checked(self, what: str, reason: Reason, deadline: Deadline, result: dict[str, Any],
                       work: Steps[str]) -> ProbeResult | None:
        """Runs one response check in steps against the deadline: None when it passes."""
        try:
            problem = await in_steps(work, deadline)
        except OutOfTime:
            return ProbeResult.fail(Reason.TIMEOUT, f"checking the {what}: no result within {deadline.total_s:.3g}s",
                                    **result)
        if not problem:
            return None
        result["values"]["failed_due_to_regex"] = 1
        return ProbeResult.fail(reason, redact(problem, self._secrets), **result)

    def _inspect_tls(self, ssl_object: ssl.SSLObject, verified: bool, values: dict[str, float],
                     info: dict[str, dict[str, str]], facts: dict[str, object],
                     verify_error: ssl.SSLCertVerificationError | None = None) -> tuple[Reason, str] | None:
        """THE place where an attempt's TLS connection is inspected, once per attempt.

        `ssl_object` is the final response's connection (`verified`), or the connection whose
        handshake failed (not `verified`: the presented chain is still readable, and with the
        `verify_error` certs.judge() names the failure exactly as `type: tls` does, e.g. an
        expired self-signed certificate is `cert_expired`, not OpenSSL's first complaint).
        Certificate metrics belong here, computed by probed/probes/certs.py: add them to
        `values`/`info`/`facts`, and return a (reason, detail) to fail the attempt, or None.
        """
        now = time.time()
        report = read_chain(ssl_object, verified=verified and self._ssl.verify_mode == ssl.CERT_REQUIRED)
        values.update(cert_values(report, now))
        info.update(cert_info(report))
        facts["tls"] = chain_facts(report, now)
        if not verified and verify_error is None:
            return None
        reason, detail = judge(report, now, self._min_days, verify_error)
        return None if reason is Reason.OK else (reason, detail)

    def _broken(self, exc: BaseException, timing: Timing) -> ProbeResult:
        reason, detail = self._classify(exc)
        now = perf_counter()
        timing.interrupted(now)
        phases = timing.phases(now)
        values: dict[str, float] = {"status_code": 0, "redirects": 0, "content_length": 0,
                                    "uncompressed_body_length": 0, "failed_due_to_regex": 0, "ssl": 0,
                                    "http_version": 0}
        if isinstance(exc, aiohttp.TooManyRedirects):
            values["redirects"] = len(exc.history)
        info: dict[str, dict[str, str]] = {}
        facts: dict[str, object] = {}
        if timing.ssl_object is not None and reason in _TLS_REASONS:
            verify_error = exc.certificate_error if isinstance(exc, aiohttp.ClientConnectorCertificateError) else None
            judged = self._inspect_tls(timing.ssl_object, False, values, info, facts,
                                       verify_error if isinstance(verify_error, ssl.SSLCertVerificationError) else None)
            if judged is not None:
                reason, detail = judged
        return ProbeResult.fail(reason, redact(detail, self._secrets), phases=phases, values=values, info=info,
                                facts=facts)

    def _classify(self, exc: BaseException) -> tuple[Reason, str]:
        """aiohttp's exceptions -> reasons; transport errors fall through to errors.classify."""
        if isinstance(exc, aiohttp.TooManyRedirects):
            last = exc.history[-1].headers.get("Location", "?") if exc.history else "?"
            return Reason.TOO_MANY_REDIRECTS, f"more than {self._max_redirects} redirects (last to {last})"
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return classify(exc.certificate_error)
        if isinstance(exc, aiohttp.ClientConnectorError):
            return classify(exc.os_error)
        if isinstance(exc, aiohttp.ClientConnectionResetError) and "closing transport" in str(exc):
            # The request could not even be written: the peer closed at once, or spoke first in
            # another protocol (an SSH or SMTP banner), which made aiohttp drop the connection.
            return (Reason.CONNECTION_RESET,
                    "connection closed before the request was sent (by the peer, or it spoke first and not HTTP)")
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return Reason.CONNECTION_RESET, "server closed the connection before a complete response"
        if isinstance(exc, aiohttp.ClientPayloadError):
            if "not completed" in str(exc) or isinstance(exc.__cause__, ConnectionError):
                return Reason.CONNECTION_RESET, "connection closed in the middle of the body"
            return Reason.PROTOCOL_ERROR, f"invalid body encoding: {exc}"
        if isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
            return Reason.PROTOCOL_ERROR, f"redirect to an invalid or non-HTTP location: {exc}"
        if isinstance(exc, aiohttp.ClientResponseError):
            # The response parser's errors: the peer did not speak HTTP.
            return Reason.PROTOCOL_ERROR, f"not a valid HTTP response: {exc.message}"
        if isinstance(exc, OSError):
            return classify(exc)
        return Reason.CONNECTION_RESET, f"{type(exc).__name__}: {exc}"


_TLS_REASONS = frozenset({Reason.TLS_HANDSHAKE, Reason.TLS_VERSION, Reason.CERT_EXPIRED, Reason.CERT_EXPIRING,
                          Reason.CERT_UNTRUSTED, Reason.CERT_HOSTNAME_MISMATCH})


def _last_modified(header: str | None) -> float | None:
    """The Last-Modified header as Unix time (blackbox's probe_http_last_modified_timestamp_seconds);
    None when absent or not an HTTP date."""
    if not header:
        return None
    try:
        return email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _credentials(url: URL, headers: dict[str, str]) -> tuple[URL, dict[str, str], frozenset[str]]:
    """URL credentials -> a Basic `Authorization` header, unless the config sets one (then the
    explicit header wins, as in curl and Go). The header and the password are secrets: a server
    that echoes the request must not show them in a detail, a log line or the API."""
    if url.user is None and url.password is None:
        return url, headers, frozenset()
    secrets = {url.password} if url.password else set()
    if not any(name.lower() == "authorization" for name in headers):
        token = base64.b64encode(f"{url.user or ''}:{url.password or ''}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
        secrets |= {f"Basic {token}", token}
    return url.with_user(None), headers, frozenset(secrets)
