"""The README: short, and it opens with the two commands that work on a fresh clone."""

from __future__ import annotations

import re

from probed.generate.rules import OPERATIONAL_ALERTS, SLO_ALERT
from probed.output.catalog import SLO_FAMILIES

from .pages import README, ROOT

OPENING = """\
# probed

```sh
./scripts/probed demo    # first run makes ./.venv (PEP 668-safe), then probes 7 local demo targets; open http://127.0.0.1:9470/
./scripts/test           # the whole suite: installs what it needs, then ruff, mypy, mkdocs, pytest
```
"""


def test_the_readme_opens_with_the_demo_and_the_test_command() -> None:
    assert README.read_text(encoding="utf-8").startswith(OPENING)


def test_ci_runs_the_readme_test_command() -> None:
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_readme_stays_short() -> None:
    size = len(README.read_bytes())
    assert size <= 15_000, f"README.md is {size} bytes: move reference material into docs/"


def test_the_readme_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_the_slo_section_names_every_slo_metric_and_the_low_traffic_warning() -> None:
    section = _section("SLOs and error budgets")
    for family in SLO_FAMILIES:
        assert f"`{family.name}" in section, f"the README's SLO section does not explain {family.name}"
    assert "Low traffic" in section and "bench.state" in section


def test_the_alerts_section_says_what_each_alert_means_and_how_to_load_them() -> None:
    section = _section("Alerts and dashboards")
    for alert in (SLO_ALERT, *OPERATIONAL_ALERTS):
        assert f"| `{alert}` |" in section, f"the README's alert table lacks {alert}"
    assert "rule_files:" in section and "PrometheusRule" in section and "/etc/grafana/provisioning" in section
    for dashboard in ("Overview", "Probe", "SLOs", "probed itself"):
        assert f"- **{dashboard}**" in section


def test_the_container_and_kubernetes_sections_have_their_commands() -> None:
    container = _section("Run it in a container")
    assert "docker build" in container and "--read-only" in container and "docker compose up" in container
    kubernetes = _section("Run it on Kubernetes")
    for needed in ("helm install", "eks.amazonaws.com/role-arn", "existingSecret", "serviceMonitor",
                   "prometheusRule", "shards", "location", "probed check --shards"):
        assert needed in kubernetes, f"the README's Kubernetes section lacks {needed}"
