"""Label names and values in probes.yaml: the rules global, probe and SLO labels follow."""

from __future__ import annotations

import re
from collections.abc import Mapping

import yaml

from probed.config.loader import NodeConverter
from probed.config.schema import clip

LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Labels probed's own series use, plus Prometheus's target labels (which it would rename).
RESERVED_LABELS = frozenset({
    "probe", "type", "target", "reason", "phase", "window", "quantile", "result", "name", "le", "slo", "cause",
    "code", "job", "instance",
})
SLO_RESERVED_LABELS = frozenset({"service", "severity"})
"""Set by the SLO's own `service:` and by the generated alerts."""

_LABELS = Mapping[str, str]
_SECRET_LABEL = ("this label value is also a secret in this file (a header, a password or a ${VAR} used there): "
                 "label values are exported in every metric")


class Labels:
    """Converts and checks the labels of one config, reporting on its converter."""

    def __init__(self, converter: NodeConverter) -> None:
        self.converter = converter
        self._values: list[tuple[str, tuple[int, int, str, str]]] = []
        """Every label value with the place of the issue it would be (kept without its node: a
        probe's nodes are gone by the time `check_values` runs)."""

    def convert(self, node: yaml.Node | None, path: str) -> dict[str, str]:
        if node is None:
            return {}
        converter = self.converter
        converter.public = True  # label values are exported: never secrets (see check_values)
        try:
            labels: dict[str, str] = converter.convert_or(node, _LABELS, path, {})
        finally:
            converter.public = False
        self.check_names(node, path)
        for key_node, value_node in node.value if isinstance(node, yaml.MappingNode) else ():
            value = labels.get(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
            where = converter.place(value_node, f"{path}.{key_node.value}", _SECRET_LABEL) \
                if isinstance(value, str) and value else None
            if value and where is not None:
                self._values.append((value, where))
        return labels  # a dict of its own: convert_or made it

    def check_names(self, node: yaml.Node | None, path: str, extra_reserved: frozenset[str] = frozenset()) -> None:
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # reported by the conversion: a key must be a string
            key = str(key_node.value)
            if not LABEL_NAME_RE.fullmatch(key):
                self.converter.issue(key_node, f"{path}.{key}",
                                     f"invalid label name {clip(key)!r} (must match [a-zA-Z_][a-zA-Z0-9_]*)")
            elif key in RESERVED_LABELS or key in extra_reserved or key.startswith(("__", "sloth_")):
                self.converter.issue(key_node, f"{path}.{key}", f"label name {key!r} is reserved by probed")

    def check_values(self) -> None:
        """Label values are exported as they are (they are not secrets, even from `${VAR}`): one that
        is also a secret of this file would leak it into every scrape."""
        for value, where in self._values:
            if value in self.converter.secrets:
                self.converter.issue_at(*where)
