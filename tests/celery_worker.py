"""A real Celery worker in a thread, on the real broker, consuming a queue of the test's own.

Used as fixtures: `task_queue` (where tasks sent without a route go during the test) and `celery_worker`
(a Worker whose `next_run(task)` waits for the next finished run of that task). The worker has its own
database connection, so tests that use it commit for real (`transactional_db`).
"""

from __future__ import annotations

import logging
import queue
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun

from ntd.celery import app as celery_app


@pytest.fixture
def task_queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A broker queue of this test's own, where tasks sent without a route go (Celery's task_default_queue)."""
    name = f"ntd-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setitem(celery_app.conf, "task_default_queue", name)
    try:
        yield name
    finally:
        with celery_app.connection_for_write() as conn:
            conn.default_channel.queue_delete(name)


class Worker:
    """Runs of tasks by the worker thread, per task name, in the order they finished."""

    def __init__(self) -> None:
        self.finished: dict[str, queue.Queue[Any]] = {}

    def _runs(self, name: str) -> queue.Queue[Any]:
        return self.finished.setdefault(name, queue.Queue())

    def on_postrun(self, sender: Any = None, retval: Any = None, state: str = "", **_: Any) -> None:
        if sender is not None:
            self._runs(sender.name).put((state, retval))

    def next_run(self, task: Any, timeout: float = 30) -> tuple[str, Any]:
        return self._runs(task.name).get(timeout=timeout)


@pytest.fixture
def celery_worker(transactional_db: None, task_queue: str) -> Iterator[Worker]:
    runs = Worker()
    root_level = logging.getLogger().level  # the worker sets the root logger's level to its own
    task_postrun.connect(runs.on_postrun, weak=False)
    try:
        with start_worker(celery_app, queues=[task_queue], perform_ping_check=False, shutdown_timeout=30,
                          loglevel="WARNING"):
            yield runs
    finally:
        task_postrun.disconnect(runs.on_postrun)
        logging.getLogger().setLevel(root_level)
