"""`make run`: the web server, a Celery worker and Celery beat in one terminal; Ctrl-C stops all three."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run web, worker and beat together (development only)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("devstack is for development (DEBUG on); production runs docker compose.")
        (settings.BASE_DIR / "var" / "broker" / "processed").mkdir(parents=True, exist_ok=True)
        python = sys.executable
        commands = {
            "web": [python, "manage.py", "runserver", f"127.0.0.1:{options['port']}", "--noreload"],
            "worker": [python, "-m", "celery", "-A", "ntd", "worker", "--loglevel=INFO", "--concurrency=1"],
            "beat": [python, "-m", "celery", "-A", "ntd", "beat", "--loglevel=INFO",
                     "--schedule", str(settings.BASE_DIR / "var" / "celerybeat-schedule")],
        }
        processes = {n: subprocess.Popen(c, cwd=settings.BASE_DIR) for n, c in commands.items()}  # noqa: S603
        self.stdout.write(f"ntd is running on http://127.0.0.1:{options['port']}/ (Ctrl-C stops web, worker, beat)")

        def stop(*_: Any) -> None:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while all(p.poll() is None for p in processes.values()):
                time.sleep(0.5)
        finally:
            stop()
            for name, process in processes.items():
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    self.stderr.write(f"{name} did not stop in time and was killed")
        failed = [n for n, p in processes.items() if p.returncode not in (0, -signal.SIGTERM, -signal.SIGINT)]
        if failed:
            raise CommandError(f"stopped because {', '.join(failed)} exited")
