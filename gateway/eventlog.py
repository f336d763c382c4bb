"""One structured JSON log line per message. Never message content or real identities."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from typing import Any

_log = logging.getLogger("veil.message")


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiosmtpd logs every SMTP command, MAIL FROM included: real addresses. Only on request.
    for chatty in ("mail.log", "uvicorn.access"):
        logging.getLogger(chatty).setLevel("DEBUG" if level == "debug" else "WARNING")


def log_message(*, direction: str, reply: str, seconds: float, **details: Any) -> None:
    """Emit the per-message line. `details` holds aliases, verdicts and counts, never content."""
    if not _log.isEnabledFor(logging.INFO):
        return
    event = {"ts": round(time.time(), 3), "event": "message", "id": uuid.uuid4().hex[:16],
             "pid": os.getpid(), "direction": direction, "reply": reply,
             "ms": round(seconds * 1000, 2)}
    event.update({k: v for k, v in details.items() if v not in (None, "")})
    _log.info(json.dumps(event, default=str))


def log_event(event: str, **details: Any) -> None:
    _log.info(json.dumps({"ts": round(time.time(), 3), "event": event, "pid": os.getpid(),
                          **details}, default=str))
