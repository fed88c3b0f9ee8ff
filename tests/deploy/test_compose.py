"""docker-compose.yml and the local stack's configs: the compose file against the Compose
Specification's JSON schema (vendored, see README.md here), Prometheus' config with promtool,
Alertmanager's with amtool, and what the schema cannot see (mounted files exist, loopback-only ports).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import ROOT, missing, run, tool

COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
CONFIG = "deploy/compose/probes.yaml"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def schema_errors(document: dict[str, Any]) -> list[str]:
    try:
        import jsonschema
    except ImportError:
        missing("jsonschema", "pip install jsonschema, in the test extras")
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_matches_the_compose_spec() -> None:
    assert schema_errors(compose()) == []


@pytest.mark.parametrize("breakage", ["unknown-key", "bad-port-type", "bad-depends-condition"])
def test_the_compose_schema_catches_mistakes(breakage: str) -> None:
    doc = compose()
    if breakage == "unknown-key":
        doc["services"]["probed"]["volumes_from_host"] = ["x"]
    elif breakage == "bad-port-type":
        doc["services"]["probed"]["ports"] = {"9470": 9470}
    else:
        doc["services"]["prometheus"]["depends_on"]["probed"]["condition"] = "service_happy"
    assert schema_errors(doc)


def test_the_stack_is_complete_and_publishes_on_loopback_only() -> None:
    services = compose()["services"]
    assert set(services) == {"probed", "prometheus", "alertmanager", "grafana"}
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"
    probed = services["probed"]
    assert probed["build"]["context"] == "." and probed["read_only"] is True
    assert "0.0.0.0:9470" in probed["command"]
    assert any(v.endswith(":/var/lib/probed") for v in probed["volumes"])


def test_mounted_files_exist() -> None:
    """Bind mounts of missing files silently become empty directories: every source must exist
    (or be a directory another part of the project fills: the generated rules, the dashboards)."""
    later = {"./grafana/dashboards"}
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = re.sub(r"^\$\{[A-Z_]+:-(.*)\}$", r"\1", volume.split(":")[0])
            if not source.startswith("./") or source in later:
                continue
            assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"


def test_compose_probed_config_is_valid() -> None:
    # `python -m probed` from the root: the package of this tree, whichever probed is installed.
    result = run([sys.executable, "-m", "probed", "check", "--config", CONFIG], cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_rules_are_what_probed_rules_generates() -> None:
    """After changing deploy/compose/probes.yaml or the generator:
    python -m probed rules --no-env --config deploy/compose/probes.yaml -o deploy/prometheus/rules/probed-rules.yaml"""
    result = run([sys.executable, "-m", "probed", "rules", "--no-env", "--config", CONFIG], cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    committed = yaml.safe_load((RULES_DIR / "probed-rules.yaml").read_text())
    assert committed == yaml.safe_load(result.stdout), (
        "deploy/prometheus/rules/probed-rules.yaml has drifted from `probed rules`: regenerate it with "
        f"python -m probed rules --no-env --config {CONFIG} -o deploy/prometheus/rules/probed-rules.yaml"
    )


def test_promtool_accepts_the_prometheus_config_with_the_rules(tmp_path: Path) -> None:
    """As mounted in the stack: rule_files read deploy/prometheus/rules/."""
    promtool = tool("promtool", "apt-get install prometheus")
    config = PROMETHEUS.read_text()
    assert "/etc/prometheus/rules/*.yaml" in config
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/rules/", f"{RULES_DIR}/"))
    result = run([promtool, "check", "config", str(tmp_path / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout, result.stdout
    scrape = yaml.safe_load(config)["scrape_configs"]
    assert {"targets": ["probed:9470"]} in [c for job in scrape for c in job.get("static_configs", [])]


def test_amtool_accepts_the_alertmanager_config() -> None:
    amtool = tool("amtool", "apt-get install prometheus-alertmanager")
    result = run([amtool, "check-config", str(ALERTMANAGER)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_is_provisioned_with_prometheus_and_the_dashboards() -> None:
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "probed.yaml").read_text())["providers"]
    grafana = compose()["services"]["grafana"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounted[provider["options"]["path"]] == "./grafana/dashboards"
    assert mounted["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
