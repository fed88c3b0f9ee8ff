"""What the generate tests share: the repository's paths, the configs rules are made from, and
the Prometheus tools (Debian's `prometheus` and `prometheus-alertmanager`; scripts/test installs
them). A missing tool skips the test locally and fails it under CI=true."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from probed.config.model import Config
from probed.runtime.probeset import parse_config
from tests.peers.example import EXAMPLE, EXAMPLE_ENV
from tests.peers.net import free_port as free_port  # re-exported: test_live and tests/blackbox import it from here

ROOT = Path(__file__).resolve().parent.parent.parent
RULES = ROOT / "prometheus" / "probed-rules.yaml"
UNIT_TESTS = sorted((ROOT / "prometheus" / "tests").glob("*.yaml"))
ALERTMANAGER = ROOT / "prometheus" / "alertmanager.yml"
DASHBOARDS = ROOT / "grafana" / "dashboards"
HELM = ROOT / "helm" / "probed"
HELM_RULES = HELM / "files" / "probed-rules.yaml"
HELM_DASHBOARDS = HELM / "dashboards"
HELM_SOURCE = "the chart's default config (values.yaml `config`)"


def bundled_config() -> Config:
    return parse_config(EXAMPLE.read_text(encoding="utf-8"), "probes.yaml", EXAMPLE_ENV)


def helm_config() -> Config:
    values = yaml.safe_load((HELM / "values.yaml").read_text(encoding="utf-8"))
    config = values["config"]
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    return parse_config(text, "values.yaml", {}, placeholder_env=True)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: prometheus / prometheus-alertmanager; scripts/test installs them)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)
    return path


def run(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def groups_of_rules() -> list[dict[str, Any]]:
    loaded: dict[str, list[dict[str, Any]]] = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return loaded["groups"]
