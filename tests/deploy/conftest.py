"""Shared helpers for the deployment tests: finding tools, rendering the chart."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "probed"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str, hint: str) -> None:
    """A tool the test needs is not there: skip locally, fail in CI (where scripts/test installs it)."""
    message = f"{what} is not available ({hint})"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def tool(name: str, hint: str) -> str:
    """The path of an executable: next to this Python first (a virtualenv's bin/), then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        missing(name, hint)
    assert found is not None
    return found


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("timeout", 120)
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


def helm_module() -> Any:
    try:
        import helm_python
    except ImportError:
        missing("helm_python", "pip install helm-python-sdk, in the test extras")
    return helm_python


def render(values: dict[str, Any] | None = None, chart: Path = CHART) -> dict[str, list[dict[str, Any]]]:
    """The chart's objects, by template file name (NOTES.txt left out)."""
    helm = helm_module()
    out = helm.Chart.load(str(chart)).render(values or {}, name="probed", namespace="monitoring")
    objects: dict[str, list[dict[str, Any]]] = {}
    for path, text in out.items():
        if path.endswith("NOTES.txt"):
            continue
        docs = [d for d in yaml.safe_load_all(text) if d]
        if docs:
            objects[Path(path).name] = docs
    return objects


def by_kind(objects: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for docs in objects.values():
        for d in docs:
            kinds.setdefault(d["kind"], []).append(d)
    return kinds


def notes(values: dict[str, Any] | None = None) -> str:
    helm = helm_module()
    out = helm.Chart.load(str(CHART)).render(values or {}, name="probed", namespace="monitoring")
    return str(next(text for path, text in out.items() if path.endswith("NOTES.txt")))
