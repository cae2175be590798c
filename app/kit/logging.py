"""Logging setup: text or JSON lines, and a filter that masks known secret values."""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(*values: str | None) -> None:
    """Mask these values in every log record of this process from now on."""
    with _lock:
        for value in values:
            if value and len(value) >= 4:
                _secrets.add(value)


def forget_secret(*values: str | None) -> None:
    with _lock:
        for value in values:
            _secrets.discard(value or "")


def redact(text: str) -> str:
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, "***")
    return text


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class QuietPeriodic(logging.Filter):
    """arq's lines about its cron runs (``→ cron:reconcile_jobs()``, ``← cron:… ●``) and
    its health records come every few seconds and say nothing happened: they go out at
    DEBUG. Lines about real jobs stay INFO; what a periodic task did is logged by the
    task itself when it did something."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        periodic = any(isinstance(a, str) and a.startswith("cron:") for a in args) or (
            isinstance(record.msg, str) and record.msg.startswith("recording health")
        )
        if not periodic:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RedactFilter())
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    periodic = logging.getLogger("arq.worker")
    periodic.filters[:] = [f for f in periodic.filters if not isinstance(f, QuietPeriodic)]
    periodic.addFilter(QuietPeriodic())
    for noisy in ("botocore", "aiobotocore", "asyncssh", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
