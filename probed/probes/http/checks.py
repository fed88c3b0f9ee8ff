"""The HTTP probe's checks on what came back: header regexps, body regexps, JSON fields.

The checks are generators that yield between bounded pieces of work (`body.in_steps` drives
them, checking the attempt's deadline between pieces): a huge body or a huge `equals` value
cannot hold the loop. A regexp search is one piece, on the loop when it is cheap, else handed
over to a search thread and awaited until the deadline (`Regexp.search_until`): RE2 is linear in
the text, but times the program's size, and a body built against a pattern can make that seconds.
Values quoted in details are redacted, then clipped, both sides.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

from multidict import CIMultiDictProxy

from probed.config.regex import Regexp
from probed.probes.http.body import Steps
from probed.probes.http.config import UNSET, JsonCheck
from probed.redact import excerpt

SHOWN = 80
"""Characters of a value quoted in a detail."""
NODES_PER_STEP = 4096
"""JSON nodes compared between two yields."""
_ENCODER = json.JSONEncoder()

HeaderCheck = tuple[str, Regexp, bool, bool]
"""(header, regexp, allow_missing, must_match)."""


def shown_json(value: Any, secrets: Iterable[str]) -> str:
    """`value` as JSON, redacted and clipped, without serializing more of it than is shown."""
    parts: list[str] = []
    size = 0
    for part in _ENCODER.iterencode(value):  # lazy: a 70 MB value costs only its first pieces
        parts.append(part)
        size += len(part)
        if size > 4 * SHOWN + 1024:  # enough for excerpt() to redact a secret crossing the cut
            break
    return excerpt("".join(parts), secrets, SHOWN)


def found(pattern: Regexp, text: str) -> Steps[bool]:
    """Whether `pattern` matches anywhere in `text`: one piece of work (see the module's doc)."""
    match = yield functools.partial(pattern.search_until, text)
    return match is not None


def check_headers(headers: CIMultiDictProxy[str], checks: Iterable[HeaderCheck], secrets: Iterable[str]) -> Steps[str]:
    """The header checks in order; the problem found, or "". A value is at most aiohttp's line
    limit, but a pattern can still make its search costly: each is one piece of work too."""
    for name, pattern, allow_missing, must_match in checks:
        values = headers.getall(name, ())
        if not values:
            if allow_missing:
                continue
            return f"header {name} is missing"
        matched = False
        for value in values:
            if (yield from found(pattern, value)):
                matched = True
                break
        if matched != must_match:
            verb = "does not match" if must_match else "matches"
            return f'header {name}: "{excerpt(values[0], secrets, SHOWN)}" {verb} /{pattern.pattern}/'
    return ""


def check_body(text: str, must_not: Iterable[Regexp], must: Iterable[Regexp],
               json_checks: Iterable[JsonCheck], secrets: Iterable[str]) -> Steps[str]:
    """The body checks in order; the problem found, or "". One regexp search (or the JSON parse)
    is one piece, as neither can be interrupted inside a call."""
    for pattern in must_not:
        if (yield from found(pattern, text)):
            return f"body matches /{pattern.pattern}/"
    for pattern in must:
        if not (yield from found(pattern, text)):
            return f"body does not match /{pattern.pattern}/"
    checks = tuple(json_checks)
    if checks:
        yield None
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            return f'body is not JSON: "{excerpt(text, secrets, SHOWN)}"'
        for check in checks:
            problem = yield from check_json(document, check, secrets)
            if problem:
                return problem
    return ""


def check_json(document: Any, check: JsonCheck, secrets: Iterable[str] = ()) -> Steps[str]:
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
    if check.equals is not UNSET and not (yield from json_equal(node, check.equals)):
        return f"body_json: {check.path} is {shown_json(node, secrets)}, expected {shown_json(check.equals, secrets)}"
    if check.matches is not None:
        text = node if isinstance(node, str) else json.dumps(node)
        if not (yield from found(check.matches, text)):
            return f"body_json: {check.path} is {shown_json(node, secrets)}, does not match /{check.matches.pattern}/"
    return ""


def json_equal(actual: Any, expected: Any) -> Steps[bool]:
    """JSON equality, iteratively (no recursion limit), yielding every NODES_PER_STEP nodes.

    JSON true is not 1 at any depth: Python's True == 1 must not make `equals: 1` accept `true`."""
    stack = [(actual, expected)]
    visited = 0
    while stack:
        a, e = stack.pop()
        visited += 1
        if visited % NODES_PER_STEP == 0:
            yield None
        if a is e and not isinstance(a, (dict, list)):
            continue
        if isinstance(a, bool) != isinstance(e, bool):
            return False
        if isinstance(a, dict):
            if not isinstance(e, dict) or a.keys() != e.keys():
                return False
            stack.extend((a[k], e[k]) for k in a)
        elif isinstance(a, list):
            if not isinstance(e, (list, tuple)) or len(a) != len(e):
                return False
            stack.extend(zip(a, e, strict=True))
        elif isinstance(e, (dict, list, tuple)) or a != e:
            return False
    return True
