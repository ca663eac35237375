"""Running jobs at the same moment, each on its own database connection (concurrency tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection


def run_at_once(jobs: Sequence[Callable[[], Any]], *, timeout: float = 120) -> list[Any]:
    """Run each job in its own thread (so on its own database connection), all released together.

    Returns the jobs' results in order; fails the test if a job raised or did not finish.
    """
    start = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(index: int, job: Callable[[], Any]) -> None:
        try:
            start.wait()
            results[index] = job()
        except BaseException as exc:  # noqa: BLE001 - handed to the test, which fails on it
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a job did not finish"
    errors = [result for result in results if isinstance(result, BaseException)]
    assert not errors, errors
    return results
