"""`probed import-blackbox blackbox.yml`: a blackbox_exporter config as probes.yaml's `modules:`.

Every module is checked with the same schema `probed run` uses (config/blackbox.py), so what this
writes loads. A module probed cannot run (icmp, grpc, a key with no equivalent) is left out and
reported with its place and reason; the others are copied as written (same keys, same values),
because the module format is blackbox's own. `${VAR}`s are kept as written and not resolved.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from probed.config.blackbox import parse_modules
from probed.config.schema import ConfigError, ConfigIssue
from probed.config.source import YAML_LOADER

HEADER = """\
# blackbox_exporter modules, imported by `probed import-blackbox {source}`.
# Scrape them as you scraped blackbox: /probe?module=NAME&target=... on probed's port (docs/blackbox.md).
"""


@dataclass(frozen=True)
class Imported:
    text: str
    """probes.yaml text with the `modules:` probed can run (and `probes: []`)."""
    converted: tuple[str, ...]
    skipped: tuple[ConfigIssue, ...]
    """One issue per problem of the modules left out, with FILE:LINE:COL."""


def import_blackbox(text: str, filename: str) -> Imported:
    """Convert; raises ConfigError only when the file is not a blackbox config at all."""
    raw = yaml.load(text, Loader=YAML_LOADER)  # the C safe loader
    if not isinstance(raw, dict) or not isinstance(raw.get("modules"), dict):
        raise ConfigError([ConfigIssue(filename, 1, 1, "", "expected a blackbox config with `modules:` at the top")])
    issues: list[ConfigIssue] = []
    try:
        parse_modules(text, filename)
    except ConfigError as exc:
        issues = list(exc.issues)
    bad = {i.path.split(".")[1] for i in issues if i.path.startswith("modules.") and "." in i.path}
    keep = {name: module for name, module in raw["modules"].items() if name not in bad}
    body = yaml.safe_dump({"modules": keep, "probes": []}, sort_keys=False, default_flow_style=False)
    return Imported(HEADER.format(source=filename) + body, tuple(keep), tuple(issues))
