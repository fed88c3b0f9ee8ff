"""`type: http`: one request per attempt, blackbox_exporter's phases and checks.

config.py is the `http:` section (`HttpSettings`), session.py the shared aiohttp sessions and the
phase timing, probe.py the attempt, checks.py what it checks in the response.
"""

from __future__ import annotations

from probed.config.model import ProbeSpec
from probed.probes import MetricAlias, ProbeContext, ProbeKind
from probed.probes.common.certs import CERT_ALIASES, CERT_VALUES, TLS_INFOS
from probed.probes.common.describe import describe_connection
from probed.probes.common.net import LOOKUP_ALIAS, REGEX_ALIAS
from probed.probes.http.config import HttpSettings, validate_target
from probed.probes.http.probe import HttpProbe
from probed.probes.http.session import SessionPool
from probed.result import PHASES, ProbeResult


def describe(result: ProbeResult) -> list[str]:
    lines = describe_connection(result)
    final_url = result.facts.get("final_url")
    if final_url:
        lines.append(f"final URL after {result.values.get('redirects', 0):g} redirect(s): {final_url}")
    return lines


def _factory(spec: ProbeSpec, ctx: ProbeContext) -> HttpProbe:
    return HttpProbe(spec, ctx)


KIND = ProbeKind(
    name="http",
    config_cls=HttpSettings,
    factory=_factory,
    validate_target=validate_target,
    shared=SessionPool,
    describe=describe,
    aliases={
        "status_code": MetricAlias("probe_http_status_code", "Response HTTP status code (0: no response)."),
        "redirects": MetricAlias("probe_http_redirects", "The number of redirects followed."),
        "content_length": MetricAlias("probe_http_content_length",
                                      "Length of the HTTP content response (the Content-Length header; -1 without)."),
        "uncompressed_body_length": MetricAlias("probe_http_uncompressed_body_length",
                                                "Length of uncompressed response body (bytes read, after inflating)."),
        "last_modified_timestamp_seconds": MetricAlias(
            "probe_http_last_modified_timestamp_seconds",
            "Returns the Last-Modified HTTP response header in unixtime (absent without the header)"),
        "failed_due_to_regex": REGEX_ALIAS,
        "ssl": MetricAlias("probe_http_ssl", "Whether the final response came over TLS (1) or not (0)."),
        "http_version": MetricAlias("probe_http_version",
                                    "HTTP version of the final response (1.0 or 1.1; HTTP/2 is not supported)."),
        **CERT_ALIASES,
        **LOOKUP_ALIAS,
    },
    phases=PHASES,
    values=CERT_VALUES,
    infos=TLS_INFOS,
)

__all__ = ["KIND", "HttpProbe", "HttpSettings", "SessionPool"]
