"""Logging setup: one line per event, as text for people or JSON for log pipelines.

Every record, probed's own and third-party ones alike (aiobotocore logs a failed credential
refresh with a traceback that holds the `ExternalId`), passes one `RedactingFilter` on the root
logger's handler before it is formatted: its message with the arguments filled in, its
exception and stack text and its `extra=` strings go through `redact()`, which masks the
config's secrets (remembered when probes are built, see ProbeContext), the environment's AWS
credentials and credentials in URLs.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from probed.redact import redact

# Attributes every LogRecord has; anything else was passed with `extra=` and belongs in JSON.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Rewrites a record in place with its secrets masked; never drops one.

    Attached to handlers, not to the root logger itself: a logger's own filters do not see
    records that propagate from child loggers (`aiobotocore.credentials`, `asyncio` ...)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_probed_redacted", False):  # a second handler: already done
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging would report it; keep the raw text
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                record.__dict__[key] = redact(value)
        record.__dict__["_probed_redacted"] = True
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_probed")})
        if record.exc_info or record.exc_text:
            # exc_text: the redacted text RedactingFilter left (formatting exc_info again would not be).
            entry["exc"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str)


def redacting(handler: logging.Handler) -> logging.Handler:
    """`handler` with the one RedactingFilter (added once)."""
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())
    return handler


def setup_logging(fmt: str = "text", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)-7s %(message)s", "%Y-%m-%dT%H:%M:%S")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [redacting(handler)]
    root.setLevel(level.upper())
    # aiohttp's access log would be a line per scrape; probed logs state changes only.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
