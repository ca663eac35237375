"""A second ntd on loopback, for the hotline-to-hotline exchange: its own database, web server and worker.

The fixture `second_instance` runs instance B as production runs it (DEBUG off, fresh secrets, gunicorn with
gunicorn.conf.py, a Celery worker) beside the test run's own ntd (instance A, the pytest live server):
  1. a fresh PostgreSQL database `ntd_exchange_b_<the run's database>_<xdist worker>` (dropped first if a
     crashed run left it),
  2. `manage.py migrate` for it,
  3. gunicorn on a free loopback port and a Celery worker on a broker queue of its own, in a Redis database
     number of its own,
  4. `run(code)`: Python run inside B (`manage.py shell -c` with B's environment), its stdout returned.
Everything is torn down afterwards: both process groups killed, the database dropped, B's Redis keys deleted.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from tests.ops.test_operations import (
    ROOT,
    VENV_BIN,
    base_env,
    free_port,
    http_get,
    required_env_vars,
    secret_for,
    settings_env_vars,
    stop_group,
)

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
START_TIMEOUT = 60.0


def _worker_number() -> int:
    digits = "".join(ch for ch in WORKER if ch.isdigit())
    return int(digits) if digits else 0


def redis_url_for_b(url: str) -> str:
    """The test run's Redis server, at a database number other than the run's own (B's broker and cache)."""
    parts = urllib.parse.urlsplit(url)
    own = int(parts.path.strip("/") or 0)
    number = (own + 8 + _worker_number()) % 16
    if number == own:
        number = (number + 1) % 16
    return parts._replace(path=f"/{number}").geturl()


def database_name_for_b(url: str) -> str:
    """`ntd_exchange_b_<the run's database>_<xdist worker>`: two runs on one server never share B's database."""
    own = urllib.parse.urlsplit(url).path.strip("/") or "ntd"
    return f"ntd_exchange_b_{own}_{WORKER}"[:63]


@dataclass
class Instance:
    """Instance B: where it answers, its environment, and its logs."""

    url: str
    env: dict[str, str]
    logs: dict[str, Path]
    queue: str
    processes: dict[str, subprocess.Popen[Any]] = field(default_factory=dict)

    def run(self, code: str, *, timeout: float = 120) -> str:
        """Run Python inside B (`manage.py shell -c`) and return what it printed; a failure raises with its
        output and B's logs."""
        result = subprocess.run([sys.executable, "manage.py", "shell", "--no-imports", "-c", code], cwd=ROOT,
                                env=self.env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"code run in instance B failed ({result.returncode}):\n{result.stderr[-6000:]}"
                                 f"\n{self.log_tail()}")
        return result.stdout

    def run_json(self, code: str, *, timeout: float = 120) -> Any:
        """Run Python inside B whose last printed line is JSON, and return that value."""
        lines = self.run(code, timeout=timeout).strip().splitlines()
        assert lines, f"the code run in instance B printed nothing\n{self.log_tail()}"
        return json.loads(lines[-1])

    def alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"instance B's {name} exited with {process.returncode}\n{self.log_tail()}")

    def log_tail(self, chars: int = 6000) -> str:
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            parts.append(f"--- instance B, {name} (last {chars} characters) ---\n{text[-chars:]}")
        return "\n".join(parts)


def _exchange_env(*, database_url: str, redis_url: str, port: int, queue: str, tmp: Path,
                  **extra: str) -> dict[str, str]:
    env = base_env(DEBUG="0")
    for name in required_env_vars():
        env[name] = secret_for(name)
    env.update(
        PYTHONPATH=str(ROOT),  # this checkout's code, whatever the venv was installed from
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CACHE_KEY_PREFIX=f"ntd-exchange-b-{WORKER}",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        NTD_PUBLIC_URL=f"http://127.0.0.1:{port}",
        CSRF_TRUSTED_ORIGINS=f"http://127.0.0.1:{port}",
        SECURE_SSL_REDIRECT="0",
        SECURE_COOKIES="0",
        NOTICE_ALLOW_HTTP="1",
        TRACE_NEW_CASES="0",
        NOTICE_GROUPING_SECONDS="0",
        NOTICE_RETRY_SECONDS="1",
        NOTICE_HTTP_TIMEOUT="10",
        EMAIL_URL="console://",
        LOG_JSON="0",
        AUDIT_CHECKPOINT_PATH=str(tmp / "audit" / "checkpoints.jsonl"),
        EXPORT_DIR=str(tmp / "exports"),
        # gunicorn.conf.py: loopback only, one worker
        PORT=str(port),
        BIND_HOST="127.0.0.1",
        WEB_CONCURRENCY="1",
        # Tasks B sends without a route go to B's own queue (read by settings.py when it offers the variable;
        # B's Redis database number keeps it apart from every other worker either way).
        CELERY_TASK_DEFAULT_QUEUE=queue,
    )
    env.update(extra)
    return env


def _start(command: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[Any]:
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _wait_for_web(instance: Instance, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        instance.alive()
        try:
            status, _ = http_get(port, "/healthz", timeout=2)
        except OSError:
            time.sleep(0.2)
            continue
        if status == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"instance B's web server did not answer within {START_TIMEOUT} s\n{instance.log_tail()}")


def _wait_for_worker(instance: Instance) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        instance.alive()
        if "ready." in instance.logs["worker"].read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"instance B's worker was not ready within {START_TIMEOUT} s\n{instance.log_tail()}")


def _database(server: str, name: str, *, create: bool) -> None:
    with psycopg.connect(server, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')


def _forget_redis_keys(url: str, queue: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(f"{prefix}:*"))
        if queue != "celery":  # a queue of B's own (the shared default one may hold another run's messages)
            keys += [queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}",
                     *client.scan_iter(f"{queue}\x06*")]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="module")
def second_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    """Instance B of ntd (NTD_COUNTRY NL), running beside the test run's own; see the module's docstring."""
    server = os.environ["DATABASE_URL"]
    name = database_name_for_b(server)
    database_url = urllib.parse.urlsplit(server)._replace(path=f"/{name}").geturl()
    redis_url = redis_url_for_b(os.environ["REDIS_URL"])
    queue = f"ntd-exchange-b-{WORKER}-{secrets.token_hex(4)}"
    if "CELERY_TASK_DEFAULT_QUEUE" not in settings_env_vars():
        queue = "celery"  # settings.py cannot name another default queue: B's Redis database is B's alone
    tmp = tmp_path_factory.mktemp("instance-b")
    port = free_port()
    env = _exchange_env(database_url=database_url, redis_url=redis_url, port=port, queue=queue, tmp=tmp,
                        NTD_COUNTRY="NL", NTD_ORGANISATION="Hotline NL (instance B)")
    logs = {"migrate": tmp / "migrate.log", "web": tmp / "web.log", "worker": tmp / "worker.log"}
    instance = Instance(url=f"http://127.0.0.1:{port}", env=env, logs=logs, queue=queue)

    _database(server, name, create=True)
    _forget_redis_keys(redis_url, queue, env["CACHE_KEY_PREFIX"])
    try:
        migrated = subprocess.run([sys.executable, "manage.py", "migrate", "--no-input"], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=300)
        logs["migrate"].write_text(migrated.stdout + migrated.stderr)
        assert migrated.returncode == 0, f"migrating instance B failed:\n{migrated.stderr[-6000:]}"
        instance.processes["web"] = _start([str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "ntd.wsgi"],
                                           env=env, log=logs["web"])
        instance.processes["worker"] = _start(
            [str(VENV_BIN / "celery"), "-A", "ntd", "worker", "-Q", queue, "-c", "1",
             "-n", f"ntd-exchange-b-{WORKER}-{secrets.token_hex(3)}@%h", "--without-mingle", "--without-gossip",
             "--loglevel=INFO"],
            env=env, log=logs["worker"])
        _wait_for_web(instance, port)
        _wait_for_worker(instance)
        yield instance
    finally:
        for process in instance.processes.values():
            stop_group(process)
        _database(server, name, create=False)
        _forget_redis_keys(redis_url, queue, env["CACHE_KEY_PREFIX"])
