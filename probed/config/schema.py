"""The building blocks of a config schema: scalar converters, secrets, and the errors.

A probe type declares its section as a frozen dataclass whose fields use these types:
`Duration` ("500ms", "1m30s"), `ByteSize` ("64KiB"), `Regex`, and `Annotated[str, SECRET]` for
values to redact everywhere. A dataclass's `__post_init__` raises `FieldError(field, message)` to
point an error at one of its fields. Nothing here knows probed's own model or its probe types.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any

from probed.config.regex import Regexp, RegexpError


class Converter:
    """Marks an Annotated field as parsed from a scalar by `fn` (which raises ValueError)."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn


class _Secret:
    def __repr__(self) -> str:
        return "SECRET"


SECRET = _Secret()


class _AllowNonFinite:
    def __repr__(self) -> str:
        return "ALLOW_NONFINITE"


ALLOW_NONFINITE = _AllowNonFinite()
"""`Annotated[float, ALLOW_NONFINITE]`: the field accepts .nan, .inf and -.inf (no field does today)."""

MAX_INT = 2**63 - 1
"""Integers in a config fit in 64 bits: anything larger is a typo, and breaks the libraries it reaches."""
MAX_DURATION_S = 3650 * 86400.0
"""Ten years: no interval, timeout or window is longer, and a longer one is a typo (or `9999...s`)."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """'500ms', '10s', '1m30s', '2h', '30d' -> seconds. Bare numbers are refused: 5 what?"""
    text = str(value)
    if isinstance(value, bool) or not isinstance(value, str) or not text:
        raise ValueError(f'invalid duration {clip(repr(value))} (use a unit: "500ms", "10s", "1m", "1h", "1d")')
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if not m:
            raise ValueError(f'invalid duration "{text}" (use a unit: "500ms", "10s", "1m30s", "1h", "1d")')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not total <= MAX_DURATION_S:  # also inf (from 400 nines) and nan
        raise ValueError(f'duration "{clip(text)}" is too long (at most 3650d)')
    return total


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def parse_size(value: Any) -> int:
    """'1MiB', '512KB', 4096 -> bytes (exact arithmetic: no float rounds "9...9GiB" to infinity)."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid size {value} (must be >= 0)")
        if value > MAX_INT:
            raise ValueError("size is too large (at most 2^63-1 bytes)")
        return value
    text = str(value).strip()
    m = _SIZE.fullmatch(text)
    if not m:
        raise ValueError(f'invalid size "{clip(text)}" (e.g. 4096, "64KiB", "1MiB", "10MB")')
    if len(m.group(1)) > 30:
        raise ValueError(f'size "{clip(text)}" is too large (at most 2^63-1 bytes)')
    size = int(Fraction(m.group(1)) * _SIZE_UNITS[m.group(2)])
    if size > MAX_INT:
        raise ValueError(f'size "{clip(text)}" is too large (at most 2^63-1 bytes)')
    return size


def compile_regex(value: Any) -> Regexp:
    """A config's regexp, in RE2 syntax (as blackbox_exporter and Prometheus): see config/regex.py."""
    if not isinstance(value, str):
        raise ValueError(f"expected a regular expression string, got {value_kind(value)}")
    try:
        return Regexp(value)
    except RegexpError as exc:
        raise ValueError(f'invalid regexp "{clip(value)}": {exc}') from None


def check_finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    return value


def clip(text: str, limit: int = 80) -> str:
    """Values quoted in messages are clipped: a 5,000-character value makes no better error."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def read_small_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """Read a file the config names (the config itself, a CA bundle, a key), never blocking or bloating.

    Refuses what is not a regular file (a FIFO would block the open or the read forever, /dev/zero
    never ends, a directory is a mistake) and files over `limit` bytes. Raises ValueError with a
    message to show as is ("/run/x is not a regular file (a FIFO)").
    """
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise ValueError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{os.fspath(path)} is not a regular file ({_file_kind(info.st_mode)})")
        if info.st_size > limit:
            raise ValueError(f"{os.fspath(path)} is too large ({info.st_size:,} bytes, at most {limit:,})")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # it grew while we read
            raise ValueError(f"{os.fspath(path)} is too large (more than {limit:,} bytes)")
        return b"".join(chunks)
    except OSError as exc:
        raise ValueError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


Duration = Annotated[float, Converter(parse_duration)]
ByteSize = Annotated[int, Converter(parse_size)]
Regex = Annotated[Regexp, Converter(compile_regex)]

@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        if self.line <= 0:  # about the whole file (cannot read it, too large ...)
            return f"{self.file}: {where}{self.message}"
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


MAX_SHOWN_ISSUES = 100
"""A file with 20,000 errors is one mistake repeated (or not a config at all): the first hundred,
in file order, and a count of the rest say as much, and keep a reload's 400 body small."""


class ConfigError(Exception):
    """Raised with every problem found in a config file; str() lists them one per line.

    `issues` holds at most MAX_SHOWN_ISSUES, in file order, then one line counting the rest;
    `total` counts them all.
    """

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.total = len(issues)
        if len(issues) > MAX_SHOWN_ISSUES:
            rest = len(issues) - MAX_SHOWN_ISSUES
            issues = [*issues[:MAX_SHOWN_ISSUES],
                      ConfigIssue(issues[0].file, 0, 0, "", f"... and {rest:,} more errors not shown")]
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
