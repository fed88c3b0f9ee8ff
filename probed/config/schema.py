"""The building blocks of a config schema: scalar converters, secrets, and the errors.

A probe type declares its section as a frozen dataclass whose fields use these types:
`Duration` ("500ms", "1m30s"), `ByteSize` ("64KiB"), `Regex`, and `Annotated[str, SECRET]` for
values to redact everywhere. A dataclass's `__post_init__` raises `FieldError(field, message)` to
point an error at one of its fields. Nothing here knows probed's own model or its probe types.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any


class Converter:
    """Marks an Annotated field as parsed from a scalar by `fn` (which raises ValueError)."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn


class _Secret:
    def __repr__(self) -> str:
        return "SECRET"


SECRET = _Secret()

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """'500ms', '10s', '1m30s', '2h', '30d' -> seconds. Bare numbers are refused: 5 what?"""
    text = str(value)
    if isinstance(value, bool) or not isinstance(value, str) or not text:
        raise ValueError(f'invalid duration {value!r} (use a unit: "500ms", "10s", "1m", "1h", "1d")')
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if not m:
            raise ValueError(f'invalid duration "{text}" (use a unit: "500ms", "10s", "1m30s", "1h", "1d")')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return total


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def parse_size(value: Any) -> int:
    """'1MiB', '512KB', 4096 -> bytes."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid size {value} (must be >= 0)")
        return value
    m = _SIZE.fullmatch(str(value).strip())
    if not m:
        raise ValueError(f'invalid size "{value}" (e.g. 4096, "64KiB", "1MiB", "10MB")')
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])


def compile_regex(value: Any) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ValueError(f"expected a regular expression string, got {value_kind(value)}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f'invalid regexp "{value}": {exc}') from None


Duration = Annotated[float, Converter(parse_duration)]
ByteSize = Annotated[int, Converter(parse_size)]
Regex = Annotated[re.Pattern[str], Converter(compile_regex)]

@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class ConfigError(Exception):
    """Raised with every problem found in a config file; str() lists them one per line."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class FieldError(ValueError):
    """Raised from a dataclass's __post_init__ to point the error at one of its fields."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field_name = field_name
        super().__init__(message)


def value_kind(value: Any) -> str:
    """"an integer", "a string" ...: how error messages name a value's type."""
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            type(None): "null"}.get(type(value), type(value).__name__)
