"""Structured logging: one JSON object per line, context as keys, no email address ever."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

# Defence in depth: callers log pseudonyms, but anything shaped like an address is masked.
_ADDRESS = re.compile(r"[^\s@\"'<>]+@[^\s@\"'<>]+\.[^\s@\"'<>]+")


def redact(text: str) -> str:
    """Mask anything that looks like an email address."""
    return _ADDRESS.sub("<address>", text)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line with its level, logger, message and fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class StructuredLogger:
    """A logger whose calls take context as keyword fields: logger.info("sent", kind="alert")."""

    def __init__(self, name: str):
        self._logger = logging.getLogger(name)

    def _log(self, level: int, message: str, exc_info: bool, fields: dict[str, Any]) -> None:
        self._logger.log(level, message, exc_info=exc_info, extra={"fields": fields}, stacklevel=3)

    def debug(self, message: str, **fields: Any) -> None:
        self._log(logging.DEBUG, message, False, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._log(logging.INFO, message, False, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._log(logging.WARNING, message, False, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._log(logging.ERROR, message, False, fields)

    def exception(self, message: str, **fields: Any) -> None:
        self._log(logging.ERROR, message, True, fields)


def get_logger(name: str) -> StructuredLogger:
    """Return the structured logger of a module."""
    return StructuredLogger(name)


def setup(level: int = logging.INFO, stream: Any = None) -> None:
    """Send every log record to one stream as JSON lines (stdout, as Lambda collects it)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
