"""The `http:` section: config errors at their line, the contract example, blackbox's names, and the
private aiohttp hooks the fast connect relies on."""

from __future__ import annotations

import inspect
from pathlib import Path

import aiohttp
import pytest

from probed.config.schema import ConfigError
from probed.probes import get_kind
from probed.runtime.probeset import parse_config

# --------------------------------------------------------------------------- config


def config_error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "probes.yaml", {})
    return str(caught.value)


HTTP_PROBE = "probes:\n  - name: api\n    type: http\n"


@pytest.mark.parametrize(("section", "message"), [
    ("    target: http://example.com/\n    http:\n      valid_status_codes: [200, \"299-200\"]\n",
     'probes.yaml:6:33: probes[0].http.valid_status_codes[1]: invalid status code or range "299-200" '
     '(e.g. 200, "200-299", "2xx"; codes 100-599)'),
    ("    target: http://example.com/\n    http: {valid_status_codes: [700]}\n",
     'probes.yaml:5:33: probes[0].http.valid_status_codes[0]: invalid status code or range "700" '
     '(e.g. 200, "200-299", "2xx"; codes 100-599)'),
    ("    target: http://example.com/\n    http:\n      fail_if_body_not_matches_regexp: ['\"status\": (ok']\n",
     'probes.yaml:6:41: probes[0].http.fail_if_body_not_matches_regexp[0]: invalid regexp ""status": (ok": '
     'missing ): `"status": (ok`'),
    ("    target: http://example.com/\n    http:\n      fail_if_header_not_matches:\n"
     "        - {header: Access-Control-Allow-Origin, regexp: \"https://[app\"}\n",
     'probes.yaml:7:57: probes[0].http.fail_if_header_not_matches[0].regexp: invalid regexp "https://[app": '
     "missing ]: `[app`"),
    ("    target: http://example.com/\n    http:\n      body_json: [{path: \"checks..db\", equals: ok}]\n",
     'probes.yaml:6:26: probes[0].http.body_json[0].path: invalid JSON path "checks..db" '
     "(e.g. status, checks.db.status, items[0].name)"),
    ("    target: http://example.com/\n    http: {methd: POST}\n",
     "probes.yaml:5:12: probes[0].http.methd: unknown key 'methd' (did you mean 'method'?)"),
    ("    target: ftp://example.com/file\n",
     'probes.yaml:4:13: probes[0].target: target must be an http:// or https:// URL, got "ftp://example.com/file"'),
    ('    target: "http:///health"\n',
     'probes.yaml:4:13: probes[0].target: URL "http:///health" has no host'),
    ("    target: https://app:s3cret@example.com:99999/\n",
     'probes.yaml:4:13: probes[0].target: invalid URL "https://app:***@example.com:99999/": '
     "Port out of range 0-65535"),
], ids=["reversed-range", "code-700", "bad-body-regexp", "bad-header-regexp", "bad-json-path", "typo", "ftp-url",
        "no-host", "bad-port-password-redacted"])
def test_config_errors_point_at_the_line(section: str, message: str) -> None:
    assert config_error(HTTP_PROBE + section) == message


def test_an_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    text = HTTP_PROBE + f"    target: https://example.com/\n    http:\n      tls: {{ca_file: {missing}}}\n"
    assert config_error(text) == (f"probes.yaml:6:22: probes[0].http.tls.ca_file: cannot read {missing}: "
                                  "No such file or directory")


def test_the_contract_example_parses() -> None:
    text = """
probes:
  - name: api-health
    type: http
    target: https://api.example.com/health
    interval: 5s
    timeout: 2s
    http:
      method: GET
      headers: {Authorization: "Bearer ${API_TOKEN}"}
      body: null
      valid_status_codes: [200, "200-299"]
      follow_redirects: true
      fail_if_body_matches_regexp: []
      fail_if_body_not_matches_regexp: ['"status":\\s*"ok"']
      fail_if_header_not_matches: [{header: Access-Control-Allow-Origin, regexp: "https://app.example.com"}]
      fail_if_slower_than: 2s
      max_body_bytes: 1MiB
      keepalive: false
      tls: {ca_file: null, insecure_skip_verify: false, server_name: null}
"""
    config = parse_config(text, "probes.yaml", {"API_TOKEN": "t0ken-value"})
    settings = config.probes[0].settings
    assert settings.max_body_bytes == 1024 * 1024 and settings.fail_if_slower_than == 2.0
    assert settings.valid_status_codes == ((200, 200), (200, 299))
    assert "Bearer t0ken-value" in config.secrets


def test_the_private_aiohttp_hooks_of_the_fast_connect_still_exist() -> None:
    # _http_session._Connector overrides one private aiohttp method and calls another, to skip
    # uvloop's thread-pool lookup on every connect. If an aiohttp upgrade renames them, the
    # probe silently falls back to the slower path: this test says so instead.
    create = inspect.signature(aiohttp.TCPConnector._wrap_create_connection).parameters
    existing = inspect.signature(aiohttp.TCPConnector._wrap_existing_connection).parameters
    assert {"addr_infos", "req", "client_error"} <= set(create) and {"req", "client_error"} <= set(existing)
    # A fresh-connection session's protocol factory: closing aborts (tests/probes/test_hostile.py's
    # TLS zoo fails if this hook stops taking effect).
    assert "self._factory = functools.partial(ResponseHandler" in inspect.getsource(aiohttp.BaseConnector.__init__)


def test_aliases_use_blackbox_names() -> None:
    aliases = {k: a.metric for k, a in get_kind("http").aliases.items()}
    assert aliases.items() >= {
        "status_code": "probe_http_status_code", "redirects": "probe_http_redirects",
        "content_length": "probe_http_content_length", "ssl": "probe_http_ssl", "http_version": "probe_http_version",
        "uncompressed_body_length": "probe_http_uncompressed_body_length",
        "failed_due_to_regex": "probe_failed_due_to_regex",
    }.items()
