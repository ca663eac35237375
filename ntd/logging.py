"""Logging that never carries a client address, a user agent, a request body or a reporter's contact."""

from __future__ import annotations

import logging
import re
from typing import Any

import structlog

# Attributes Django and others attach to records that can carry personal data.
_DROPPED_ATTRIBUTES = ("request", "remote_addr", "client_addr", "ip", "user_agent", "body", "contact", "email")
# Keys of the JSON line that ntd itself writes and that hold nothing personal.
_TRUSTED_KEYS = frozenset({"timestamp", "level", "logger"})
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def scrub_text(text: str) -> str:
    text = _IPV4.sub("[address]", text)
    text = _IPV6.sub("[address]", text)
    return _EMAIL.sub("[e-mail]", text)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items() if k not in _DROPPED_ATTRIBUTES}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else would reach the line as its repr(), which can hold an address: scrub that text.
    return scrub_text(str(value))


def _scrub_event_dict(event_dict: dict[str, Any]) -> dict[str, Any]:
    scrubbed = {}
    for key, value in event_dict.items():
        if key in _DROPPED_ATTRIBUTES:
            continue
        if key in _TRUSTED_KEYS or key.startswith("_") or key == "exc_info":
            # structlog's own bookkeeping (_record, _logger, ...) and exc_info, rendered and scrubbed later.
            scrubbed[key] = value
        else:
            scrubbed[key] = _scrub_value(value)
    return scrubbed


class ScrubFilter(logging.Filter):
    """Drop attributes that may hold personal data and mask addresses in the message and the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in _DROPPED_ATTRIBUTES:
            if name in record.__dict__:
                delattr(record, name)
        if isinstance(record.msg, dict):
            # A structlog event on its way to ProcessorFormatter, which needs it to stay a dict.
            record.msg = _scrub_event_dict(record.msg)
        else:
            record.msg = scrub_text(record.getMessage())
            record.args = None
        if record.exc_info and not record.exc_text:
            # The plain formatter prints exc_text when set; an exception message can quote an address.
            record.exc_text = scrub_text(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = scrub_text(record.stack_info)
        return True


def _drop_personal_keys(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return _scrub_event_dict(event_dict)


def json_formatter() -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Render tracebacks to text before scrubbing, so that the "exception" text is scrubbed too.
            structlog.processors.format_exc_info,
            _drop_personal_keys,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
    )


def configure_structlog() -> None:
    """Route structlog through the standard logging handlers (and so through ScrubFilter)."""
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def logging_config(*, json: bool, level: str, loggers: dict[str, str], stream: str | None = None) -> dict[str, Any]:
    """The one logging setup of ntd's processes (Django, Celery, gunicorn): every line through ScrubFilter,
    JSON or plain. `loggers` names loggers that must not propagate, with their levels."""
    handler: dict[str, Any] = {"class": "logging.StreamHandler", "filters": ["scrub"],
                               "formatter": "json" if json else "plain"}
    if stream:
        handler["stream"] = stream
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"scrub": {"()": "ntd.logging.ScrubFilter"}},
        "formatters": {
            "json": {"()": "ntd.logging.json_formatter"},
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        },
        "handlers": {"console": handler},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {name: {"handlers": ["console"], "level": lvl, "propagate": False}
                    for name, lvl in loggers.items()},
    }
