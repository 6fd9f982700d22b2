"""Structured logs: one JSON line per record; phones, cards, tokens and QR codes masked."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# Order matters: bot tokens and API keys before bare digit runs.
_PATTERNS = [
    (re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}"), "[bot-token]"),
    (re.compile(r"\bkk_[A-Za-z0-9_-]{8,}"), "[api-key]"),
    (re.compile(r"(?i)(bearer\s+)[^\s\"']+"), r"\1[secret]"),
    (re.compile(r"\bQ[0-9A-HJKMNP-TV-Z]{15}\b"), "[qr]"),
    (re.compile(r"\+\d{10,15}\b"), "[phone]"),
    (re.compile(r"\+\d{1,3}[\s(-]+\d[\d\s()-]{6,}\d"), "[phone]"),
    (re.compile(r"\+?\b[78][\s(-]*\d{3}[\s)-]*\d{3}[\s-]*\d{2}[\s-]*\d{2}\b"), "[phone]"),
    (re.compile(r"(?<![\d.])\d{8,19}(?![\d.])"), "[number]"),
]
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def redact(text: str) -> str:
    """Mask anything shaped like a phone, card number, bot token, API key or QR code."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        # Redact the finished line, so nested extras (headers, dicts) are masked too.
        return redact(json.dumps(line, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items()
                          if k not in _STANDARD and not k.startswith("_"))
        return redact(f"{record.levelname:<5} {record.name}: {record.getMessage()} {extras}"
                      + (("\n" + self.formatException(record.exc_info)) if record.exc_info else ""))


def setup_logging(level: str = "INFO", fmt: str = "json", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "sqlalchemy.engine", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
