"""The `dns:` section: its default server, its errors, and what a target and a server may be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from probed.config.schema import ConfigError
from probed.probes.dns import config as dns_config
from probed.runtime.probeset import parse_config


def test_default_server_is_the_first_nameserver_of_resolv_conf(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search corp.example\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n")
    monkeypatch.setattr(dns_config, "RESOLV_CONF", str(conf))
    assert dns_config.system_server() == ("10.0.0.2", 53)


@pytest.mark.parametrize(("section", "message"), [
    ({"server": "dns.google"}, "dns.server: server must be an IP address"),
    ({"server": "10.0.0.2:99999"}, "dns.server: invalid port"),
    ({"type": "ANY"}, "dns.type: invalid value 'ANY'"),
    ({"valid_rcodes": ["NOPE"]}, "dns.valid_rcodes[0]: invalid value 'NOPE'"),
    ({"min_answers": -1}, "dns.min_answers: must be at least 0"),
    ({"fail_if_answer_matches": ["("]}, "dns.fail_if_answer_matches[0]: invalid regexp"),
    ({"transport": "doh"}, "dns.transport: invalid value 'doh' (one of: udp, tcp)"),
], ids=["server-name", "server-port", "type", "rcode", "min-answers", "regexp", "transport"])
def test_config_errors_name_the_field(section: dict[str, Any], message: str) -> None:
    text = yaml.safe_dump({"probes": [{"name": "d", "type": "dns", "target": "example.com", "dns": section}]})
    with pytest.raises(ConfigError) as err:
        parse_config(text, "probes.yaml", {})
    assert message in str(err.value)


@pytest.mark.parametrize("target", ["example.com:53", "https://example.com", "two words"])
def test_target_is_a_name_not_an_address(target: str) -> None:
    with pytest.raises(ConfigError, match="invalid name"):
        parse_config(yaml.safe_dump({"probes": [{"name": "d", "type": "dns", "target": target}]}), "p.yaml", {})


@pytest.mark.parametrize(("server", "expected"), [
    ("10.0.0.2", ("10.0.0.2", 53)), ("10.0.0.2:5353", ("10.0.0.2", 5353)),
    ("fd00::2", ("fd00::2", 53)), ("[fd00::2]:5353", ("fd00::2", 5353)),
])
def test_server_forms(server: str, expected: tuple[str, int]) -> None:
    assert dns_config.parse_server(server) == expected
