"""The HTTP probe's checks on what came back: header regexps, body regexps, JSON fields."""

from __future__ import annotations

import json
from typing import Any

from probed.probes.http.config import UNSET, JsonCheck


def check_json(document: Any, check: JsonCheck) -> str:
    node = document
    for key in check.keys:
        if isinstance(node, dict) and str(key) in node:
            node = node[str(key)]
        elif isinstance(node, list) and isinstance(key, int) and -len(node) <= key < len(node):
            node = node[key]
        elif isinstance(node, list) and isinstance(key, str) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return f"body_json: {check.path} is missing"
    if check.equals is not UNSET and not _json_equal(node, check.equals):
        return f"body_json: {check.path} is {clip(json.dumps(node))}, expected {json.dumps(check.equals)}"
    if check.matches is not None:
        text = node if isinstance(node, str) else json.dumps(node)
        if not check.matches.search(text):
            return f"body_json: {check.path} is {clip(json.dumps(node))}, does not match /{check.matches.pattern}/"
    return ""


def _json_equal(actual: Any, expected: Any) -> bool:
    # JSON true is not 1: Python's True == 1 must not make `equals: 1` accept `true`.
    if isinstance(actual, bool) != isinstance(expected, bool):
        return False
    return bool(actual == expected)


def clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
