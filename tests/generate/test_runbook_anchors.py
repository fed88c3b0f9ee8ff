"""`probed rules --runbook-base URL` links each operational alert to `URL#<alert>`: every such
anchor exists on the alerts page as mkdocs builds it (the site the base URL points at)."""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from probed.generate.rules import RuleOptions, rule_groups

from .tools import ROOT, bundled_config

BASE = "https://docs.example.com/alerts-and-dashboards/"
PAGE = "alerts-and-dashboards/index.html"


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids |= {value for name, value in attrs if name == "id" and value}


def built_ids(site: Path) -> set[str]:
    try:
        import mkdocs  # noqa: F401  (docs extra)
    except ImportError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI=true but mkdocs (docs extra) is not installed", pytrace=False)
        pytest.skip("mkdocs is not installed")
    # --no-strict: this test is about the anchors; `mkdocs build --strict` runs on its own in scripts/test.
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "--no-strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(site)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    parser = _Ids()
    parser.feed((site / PAGE).read_text(encoding="utf-8"))
    return parser.ids


def runbook_anchors() -> dict[str, str]:
    """alert name -> the anchor its runbook_url ends with."""
    out = {}
    for group in rule_groups(bundled_config(), RuleOptions(runbook_base=BASE)):
        for rule in group["rules"]:
            url = rule.get("annotations", {}).get("runbook_url", "")
            if url.startswith(BASE):
                out[rule["alert"]] = url.removeprefix(BASE).removeprefix("#")
    return out


def test_every_runbook_anchor_the_rules_link_exists_on_the_built_page(tmp_path: Path) -> None:
    anchors = runbook_anchors()
    assert len(anchors) >= 7, "the operational alerts lost their runbook_url"
    ids = built_ids(tmp_path / "site")
    missing = {alert: anchor for alert, anchor in anchors.items() if anchor not in ids}
    assert not missing, f"runbook_url anchors with no heading id on {PAGE}: {missing}"
