"""User regexps: RE2, the dialect of blackbox_exporter and Prometheus, matched in linear time.

Python's `re` backtracks: `^(a+)+$` against a short run of `a` ending in `!` takes time
exponential in its length, in one call that no deadline can interrupt, holding the event loop and
with it every other probe. RE2 matches in time linear in the text, whatever the text is, so a
hostile body, banner, DNS answer or `/probe` target cannot stall the daemon. Its syntax is Go's
regexp syntax, the one blackbox_exporter and Prometheus use, so a pattern moves between them
unchanged; like them, it has no lookaround and no backreferences, and a pattern that uses them is
a config error.

Every regexp a config file or a flag supplies is compiled here; probed's own fixed regexps
(names, durations ...) stay on `re`. Callers see `Regexp` only, never the re2 module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import re2

_RE2: Any = re2  # untyped (google-re2-stubs lacks Options.Encoding): this module is its typed face

# A repetition count, as Go's parser reads one (a leading zero makes the brace literal text).
_COUNT = re.compile(r"\{(0|[1-9][0-9]*)(?:,(0|[1-9][0-9]*)?)?\}")
_MAX_COUNT_DIGITS = 9
"""RE2 refuses counts over 1000 but reads a count of ten digits or more as literal text
(`a{4294967295}` would match those 13 characters); Go's parser refuses it, and so does probed."""


class Match(Protocol):
    def end(self) -> int: ...


class RegexpError(ValueError):
    """The pattern is not valid RE2; the message says why (e.g. "invalid perl operator: (?=")."""


def _options(ignore_case: bool, bytewise: bool) -> Any:
    options = _RE2.Options()
    options.log_errors = False  # RE2 would print each refused pattern to stderr; the caller reports it
    options.never_capture = True  # probed asks whether (and where) a pattern matches, never for groups
    options.case_sensitive = not ignore_case
    if bytewise:
        # Each byte is one character: `.` matches any byte (also invalid UTF-8), and the pattern,
        # given as UTF-8, matches the same bytes as text would.
        options.encoding = _RE2.Options.Encoding.LATIN1
    return options


@dataclass(frozen=True)
class Regexp:
    """A compiled user regexp. Equal to another of the same source and options (a reload finds
    an unchanged probe unchanged); `search` finds it anywhere, `fullmatch` must match it all.

    `bytewise` patterns match bytes byte by byte, as `re` does with a bytes pattern; the others
    match text (str) as Unicode (bytes given to them are read as UTF-8)."""

    pattern: str
    ignore_case: bool = False
    bytewise: bool = False
    _compiled: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            # Given as bytes, so that the pattern can be UTF-8 also when the text is Latin-1.
            compiled = _RE2.compile(self.pattern.encode(), _options(self.ignore_case, self.bytewise))
        except UnicodeEncodeError:  # a lone surrogate ("\ud800" in YAML)
            raise RegexpError("the pattern is not valid Unicode text") from None
        except _RE2.error as exc:
            raise RegexpError(_reason(exc)) from None
        _check_counts(self.pattern)
        object.__setattr__(self, "_compiled", compiled)

    def search(self, text: str | bytes | bytearray) -> Match | None:
        return cast("Match | None", self._compiled.search(text))

    def fullmatch(self, text: str | bytes | bytearray) -> Match | None:
        return cast("Match | None", self._compiled.fullmatch(text))


def _check_counts(pattern: str) -> None:
    for count in _COUNT.finditer(pattern):
        escapes = 0
        while count.start() - escapes > 0 and pattern[count.start() - escapes - 1] == "\\":
            escapes += 1
        if escapes % 2 == 0 and any(len(n or "") > _MAX_COUNT_DIGITS for n in count.groups()):
            raise RegexpError(f"invalid repetition size: {count.group()[:24]} (at most 1000)")


_UNSUPPORTED = ("invalid perl operator", "invalid escape sequence", "invalid named capture group")
"""RE2's errors for syntax Perl or Python's `re` have and RE2 has not: lookaround, `\\1`, `\\Z` ..."""


def _reason(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else ""
    if isinstance(reason, bytes):
        reason = reason.decode(errors="replace")
    code, _, fragment = str(reason).partition(": ")  # "missing ): (unclosed"
    if len(fragment) > 60:  # RE2 quotes the rest of the pattern from the error on
        fragment = f"{fragment[:60]}..."
    text = f"{code}: `{fragment}`" if fragment else (code or "not a valid regexp")
    if text.startswith(_UNSUPPORTED):
        return (f"uses syntax RE2 does not support ({text}); probed's regexps are RE2, as "
                "blackbox_exporter's and Prometheus's: no lookaround, no backreferences")
    return text
