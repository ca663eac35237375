"""Set-wise inserts: COPY on PostgreSQL for large batches, one multi-row INSERT otherwise (and on SQLite)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection

COPY_FROM = 200  # rows; below this a multi-row INSERT is as fast and simpler
INSERT_CHUNK = 500


def insert_rows(table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert `rows` (tuples in the order of `columns`) into `table`, inside the caller's transaction."""
    if not rows:
        return
    qn = connection.ops.quote_name
    target = f"{qn(table)} ({', '.join(qn(c) for c in columns)})"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(rows) >= COPY_FROM:
            with cursor.cursor.copy(f"COPY {target} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        if connection.vendor == "sqlite":
            rows = [[_sqlite_value(value) for value in row] for row in rows]
        placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start:start + INSERT_CHUNK]
            cursor.execute(
                f"INSERT INTO {target} VALUES {', '.join([placeholder] * len(chunk))}",  # noqa: S608
                [value for row in chunk for value in row],
            )


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value
