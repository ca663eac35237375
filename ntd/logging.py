"""Logging that never carries a client address, a user agent, a request body or a reporter's contact."""

from __future__ import annotations

import logging
import re
from typing import Any

import structlog

# Attributes Django and others attach to records that can carry personal data.
_DROPPED_ATTRIBUTES = ("request", "remote_addr", "client_addr", "ip", "user_agent", "body", "contact", "email")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def scrub_text(text: str) -> str:
    text = _IPV4.sub("[address]", text)
    text = _IPV6.sub("[address]", text)
    return _EMAIL.sub("[e-mail]", text)


class ScrubFilter(logging.Filter):
    """Drop attributes that may hold personal data and mask addresses in the message itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in _DROPPED_ATTRIBUTES:
            if name in record.__dict__:
                delattr(record, name)
        record.msg = scrub_text(record.getMessage())
        record.args = None
        return True


def _drop_personal_keys(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for name in _DROPPED_ATTRIBUTES:
        event_dict.pop(name, None)
    if isinstance(event_dict.get("event"), str):
        event_dict["event"] = scrub_text(event_dict["event"])
    return event_dict


def json_formatter() -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_personal_keys,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
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
