"""The `tls:` section's errors name the field; a target is host:port."""

from __future__ import annotations

import pytest

from probed.config.schema import ConfigError
from probed.runtime.probeset import parse_config


@pytest.mark.parametrize(("section", "message"), [
    ("{client_key: /etc/hostname}", "tls.client_key: client_key needs client_cert"),
    ("{ca_file: /nonexistent/ca.pem}", "tls.ca_file: cannot read /nonexistent/ca.pem"),
    ("{min_version: TLS1.1}", "tls.min_version: invalid value 'TLS1.1' (one of: TLS1.2, TLS1.3)"),
    ("{min_days_remaining: -1}", "tls.min_days_remaining: must be at least 0, got -1"),
    ("{ca_file: /etc/hostname}", "tls.ca_file: unusable TLS file"),
], ids=["key-without-cert", "unreadable-ca", "old-min-version", "negative-days", "not-a-pem"])
def test_config_errors_name_the_field(section: str, message: str) -> None:
    text = f"probes:\n  - name: c\n    type: tls\n    target: example.com:443\n    tls: {section}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "probes.yaml", {})
    assert message in str(err.value)


def test_target_must_be_host_and_port() -> None:
    with pytest.raises(ConfigError, match="invalid target"):
        parse_config("probes:\n  - {name: c, type: tls, target: example.com}\n", "probes.yaml", {})
