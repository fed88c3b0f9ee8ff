"""User regexps: RE2, the dialect of blackbox_exporter and Prometheus, matched in linear time.

Python's `re` backtracks: `^(a+)+$` against a short run of `a` ending in `!` takes time
exponential in its length, in one call that no deadline can interrupt, holding the event loop and
with it every other probe. RE2 matches in time linear in the text, whatever the text is, so a
hostile body, banner, DNS answer or `/probe` target cannot stall the daemon. Its syntax is Go's
regexp syntax, the one blackbox_exporter and Prometheus use, so a pattern moves between them
unchanged; like them, it has no lookaround and no backreferences, and a pattern that uses them is
a config error.

Linear in the text is not yet cheap: when RE2's DFA gives up (its states explode on patterns such
as `.*a.{600}x` against text built for them) it steps a simulation of every instruction of the
compiled program over every byte, so a search costs up to the text's length times the program's
size. Two rules keep that away from the event loop:

- a pattern whose program is larger than MAX_PROGRAM_SIZE is a config error: no realistic check
  comes near it, and it bounds what one search can cost;
- `search_until` runs a search whose estimated cost (`cost()`) is above INLINE_COST in one of
  a few search threads (RE2 releases the GIL while it searches), awaited until the caller's
  deadline. A search cannot be interrupted: one still running at the deadline finishes in its
  thread and its result is dropped; one still queued at the deadline never runs.

Every regexp a config file or a flag supplies is compiled here; probed's own fixed regexps
(names, durations ...) stay on `re`. Callers see `Regexp` only, never the re2 module.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import re2

_RE2: Any = re2  # untyped (google-re2-stubs lacks Options.Encoding): this module is its typed face

# A repetition count, as Go's parser reads one (a leading zero makes the brace literal text).
_COUNT = re.compile(r"\{(0|[1-9][0-9]*)(?:,(0|[1-9][0-9]*)?)?\}")
_MAX_COUNT_DIGITS = 9
"""RE2 refuses counts over 1000 but reads a count of ten digits or more as literal text
(`a{4294967295}` would match those 13 characters); Go's parser refuses it, and so does probed."""

MAX_PROGRAM_SIZE = 5000
"""The largest compiled program (RE2 instructions) a user regexp may have. Realistic checks (the
bundled probes.yaml, the docs, blackbox-style status, title, IP, date and UUID patterns) compile
to a few dozen; a Unicode class such as `\\pL` to about a thousand; a hostname pattern with
counted labels, or `.{0,500}`, to a few thousand. Larger programs come from counted repetitions
of wide classes (`.{999}`), whose only effect is a costlier search."""

INLINE_COST = 100_000
"""Estimated cost (bytes of text x program size) up to which a search runs on the event loop:
a health-check body against an ordinary pattern, every time. Above it, a search thread."""

SEARCH_THREADS = 2
"""Searches running at once, process-wide: what a hostile target can keep busy is bounded."""


class Match(Protocol):
    def end(self) -> int: ...


class RegexpError(ValueError):
    """The pattern is not valid RE2; the message says why (e.g. "invalid perl operator: (?=")."""


class RegexpTooLarge(RegexpError):
    """The pattern is valid RE2 but compiles to more than MAX_PROGRAM_SIZE instructions."""


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
    _size: int = field(init=False, repr=False, compare=False)

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
        object.__setattr__(self, "_size", max(compiled.programsize, compiled.reverseprogramsize))
        if self.program_size > MAX_PROGRAM_SIZE:
            raise RegexpTooLarge(f"too large: it compiles to {self.program_size:,} RE2 instructions, at most "
                              f"{MAX_PROGRAM_SIZE:,} (a search costs up to the text's length times that; "
                              "counted repetitions such as .{999} or \\pL{20} add the most)")

    @property
    def program_size(self) -> int:
        """RE2 instructions in the compiled program (the larger of the forward and reverse ones):
        what a search may cost per byte of text, when RE2's DFA gives up."""
        return self._size

    def cost(self, text: str | bytes | bytearray) -> int:
        """The worst case of one search over `text`, in bytes x program instructions."""
        size = len(text) if not isinstance(text, str) or text.isascii() else 4 * len(text)  # UTF-8, at most
        return size * self.program_size

    def search(self, text: str | bytes | bytearray) -> Match | None:
        return cast("Match | None", self._compiled.search(text))

    async def search_until(self, text: str | bytes | bytearray, deadline: float) -> Match | None:
        """`search`, on the loop when it is cheap (`cost() <= INLINE_COST`), else in a search
        thread. Raises TimeoutError at `deadline` (time.monotonic()) if it has no answer yet."""
        if self.cost(text) <= INLINE_COST:
            return self.search(text)
        return await SEARCHES.search(self, text, deadline)

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


@dataclass(eq=False)
class _Search:
    regexp: Regexp
    text: str | bytes | bytearray
    deadline: float
    loop: asyncio.AbstractEventLoop
    answer: asyncio.Future[Match | None]


class SearchPool:
    """Runs searches in at most `workers` threads, first come first served.

    Threads start when there is work and end when there is none, so an idle pool holds no
    thread, and nothing needs shutting down: a daemon stopping (or a test ending) leaves no
    thread behind once the searches it started have finished, and exiting never waits for one
    (the threads are daemon threads; a search's result is no use to a process that is leaving).

    The queue holds only searches someone still waits for: a caller giving up (its deadline,
    or a cancellation) takes its search out of the queue, so a crowd of attempts against hostile
    bodies piles up no work, only waiting attempts that each time out at their own deadline.
    """

    def __init__(self, workers: int = SEARCH_THREADS) -> None:
        self._workers = workers
        self._lock = threading.Lock()
        self._queue: OrderedDict[_Search, None] = OrderedDict()
        self._threads = 0

    @property
    def busy(self) -> int:
        """Threads running (each searching, or about to take the next search)."""
        return self._threads

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def search(self, regexp: Regexp, text: str | bytes | bytearray, deadline: float) -> Match | None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        loop = asyncio.get_running_loop()
        job = _Search(regexp, text, deadline, loop, loop.create_future())
        with self._lock:
            self._queue[job] = None
            start = self._threads < self._workers
            if start:
                self._threads += 1
        if start:
            try:
                threading.Thread(target=self._work, name="probed-regexp", daemon=True).start()
            except BaseException:
                with self._lock:
                    self._threads -= 1
                    self._queue.pop(job, None)
                raise
        try:
            return await asyncio.wait_for(job.answer, left)
        finally:
            with self._lock:
                self._queue.pop(job, None)  # still queued: it will never run

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._threads -= 1
                    return
                job, _ = self._queue.popitem(last=False)
            _run(job)


def _run(job: _Search) -> None:
    if time.monotonic() >= job.deadline:
        return  # its caller is giving up (its wait times out on its own loop)
    found: Match | None = None
    error: Exception | None = None
    try:
        found = job.regexp.search(job.text)
    except Exception as exc:  # handed to the caller, which raises it
        error = exc

    def settle() -> None:
        if job.answer.done():  # the caller gave up: the result is dropped
            return
        if error is not None:
            job.answer.set_exception(error)
        else:
            job.answer.set_result(found)

    with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody is waiting
        job.loop.call_soon_threadsafe(settle)


SEARCHES = SearchPool()
"""The process's search threads."""
