"""docker-compose.yml, the Dockerfile and gunicorn.conf.py, checked without a Docker engine.

The files are read and compared with settings.py; then each app service's command runs on this machine as
compose would run it, with db and redis replaced by the test's PostgreSQL (a scratch database) and Redis:
web answers /healthz and /readyz through gunicorn, the worker answers a ping and runs a real task, beat starts
with the redbeat scheduler and stays up.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import runpy
import secrets
import shlex
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
import yaml
from django.conf import settings

from ntd.celery import app as celery_app
from tests.ops.test_operations import (
    PUBLIC_HOST,
    ROOT,
    base_env,
    free_port,
    http_get,
    json_lines,
    manage,
    required_env_vars,
    running,
    secret_for,
    settings_env_vars,
    stop_group,
    wait_for_http,
)

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("web", "worker", "beat")
DOCKERFILE = (ROOT / "Dockerfile").read_text()
GUNICORN_CONF = ROOT / "gunicorn.conf.py"
# Variables compose itself interpolates (they never reach settings.py under their own name).
COMPOSE_ONLY = {"POSTGRES_PASSWORD", "NTD_HTTP_PORT", "NTD_DB_PORT", "NTD_REDIS_PORT"}


def gunicorn_env_vars() -> set[str]:
    return set(re.findall(r"""env\.\w+\(\s*["']([A-Z][A-Z0-9_]*)["']""", GUNICORN_CONF.read_text()))


def dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, each on one line: comments dropped, continuation lines joined."""
    lines = [line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#")]
    return [" ".join(step.split()) for step in "\n".join(lines).replace("\\\n", " ").split("\n") if step.strip()]


def command_of(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error} and $$."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        value = variables.get(name)
        if op == ":-":
            return value or arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?") and not value:
            raise LookupError(f"compose refuses to start: {arg}")
        return value or ""

    return _INTERPOLATION.sub(substitute, value)


def compose_environment(service: str, variables: dict[str, str]) -> dict[str, str]:
    environment = SERVICES[service].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {name: interpolate(str(value), variables) for name, value in environment.items()}


# --- What the files say -----------------------------------------------------------------------------------


class TestFiles:
    def test_services_images_and_commands(self):
        assert set(SERVICES) == {"db", "redis", "web", "worker", "beat"}
        assert SERVICES["db"]["image"] == "postgres:17" and "pg_isready" in str(SERVICES["db"]["healthcheck"])
        assert SERVICES["redis"]["image"] == "redis:7" and "healthcheck" in SERVICES["redis"]
        web = " ".join(command_of("web"))
        assert re.search(r"manage\.py migrate --no-input && exec gunicorn -c gunicorn\.conf\.py ntd\.wsgi$", web)
        assert command_of("worker")[:4] == ["celery", "-A", "ntd", "worker"]
        assert command_of("beat")[:4] == ["celery", "-A", "ntd", "beat"]
        for service in APP_SERVICES:
            depends = SERVICES[service]["depends_on"]
            assert depends["redis"]["condition"] == "service_healthy"
            assert ("db" in depends) or depends["web"]["condition"] == "service_healthy"  # web has migrated
        assert "/var/lib/ntd/audit" in str(SERVICES["web"]["volumes"]) + str(SERVICES["worker"]["volumes"])

    def test_every_variable_compose_sets_is_read_by_ntd(self):
        read = set(settings_env_vars())
        for service in APP_SERVICES:
            names = set(SERVICES[service]["environment"])
            allowed = read | (gunicorn_env_vars() if service == "web" else set())
            assert names <= allowed, f"{service} sets {sorted(names - allowed)}, which nothing reads"

    def test_app_services_pass_every_required_value_from_dot_env(self):
        variables = {name: secret_for(name) for name in required_env_vars()} | {"POSTGRES_PASSWORD": "pw"}
        for service in APP_SERVICES:
            environment = compose_environment(service, variables)
            assert environment["DEBUG"] == "0"
            for name in required_env_vars():
                assert environment[name] == variables[name], f"{service} does not pass {name} on"
            # Left out of .env, a value arrives empty and settings.py refuses to start (test_operations.py).
            assert compose_environment(service, {"POSTGRES_PASSWORD": "pw"})["SECRET_KEY"] == ""
            with pytest.raises(LookupError, match="POSTGRES_PASSWORD"):
                compose_environment(service, {})

    def test_dockerfile(self):
        assert re.search(r"^FROM python:3\.13-slim$", DOCKERFILE, re.MULTILINE)
        assert re.search(r"^RUN pip install", DOCKERFILE, re.MULTILINE)
        user = re.findall(r"^USER (\S+)$", DOCKERFILE, re.MULTILINE)
        assert user and user[-1] not in ("root", "0")
        collectstatic = next(step for step in dockerfile_instructions() if "manage.py collectstatic" in step)
        assert collectstatic.startswith("RUN ")
        assert "DEBUG=0" in collectstatic  # the manifest storage production uses
        for name in required_env_vars():
            assert f"{name}=" in collectstatic, f"collectstatic would fail without {name}"
        ignored = (ROOT / ".dockerignore").read_text().split()
        assert {".env", ".git", ".venv", "var"} <= set(ignored)

    def test_gunicorn_logs_no_client_address_and_no_user_agent(self, monkeypatch):
        for name in ("PORT", "BIND_HOST", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "DEBUG", "LOG_JSON"):
            monkeypatch.delenv(name, raising=False)
        conf = runpy.run_path(str(GUNICORN_CONF))
        assert conf["bind"] == ["0.0.0.0:8000"] and conf["workers"] == 2
        assert conf["accesslog"] == "-"
        access_format = conf["access_log_format"]
        # h: client address, a: user agent, f: referrer, q and r: the query string (signed tokens, contacts)
        for atom in ("%(h)s", "%(a)s", "%(f)s", "%(q)s", "%(r)s"):
            assert atom not in access_format
        assert not re.search(r"\{(x-forwarded-for|x-real-ip|forwarded|user-agent|referer)\}i", access_format, re.I)
        monkeypatch.setenv("PORT", "9001")
        monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.2")
        conf = runpy.run_path(str(GUNICORN_CONF))
        assert conf["bind"] == ["0.0.0.0:9001"] and conf["forwarded_allow_ips"] == "10.0.0.2"

    def test_docs_and_example_name_every_variable(self):
        readme = (ROOT / "README.md").read_text()
        example = (ROOT / ".env.example").read_text()
        example_names = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
        for name in set(settings_env_vars()) | gunicorn_env_vars() | COMPOSE_ONLY:
            assert f"`{name}`" in readme, f"README.md's Environment table lacks {name}"
            assert name in example_names, f".env.example lacks {name}"
        unknown = example_names - set(settings_env_vars()) - gunicorn_env_vars() - COMPOSE_ONLY
        assert not unknown, f".env.example names variables nothing reads: {sorted(unknown)}"


# --- The commands, run here --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch_database() -> Iterator[str]:
    """A database of its own, dropped at the end: the services' commands commit to it."""
    server = os.environ["DATABASE_URL"]
    name = f"ntd_compose_{secrets.token_hex(4)}"
    with psycopg.connect(server, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urllib.parse.urlsplit(server)._replace(path=f"/{name}").geturl()
    try:
        yield url
    finally:
        with psycopg.connect(server, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def secrets_env() -> dict[str, str]:
    """What an operator's .env holds (compose passes all of it on): secrets, public address, database password."""
    values = {name: secret_for(name) for name in required_env_vars()}
    values.update(NTD_PUBLIC_URL=f"https://{PUBLIC_HOST}", POSTGRES_PASSWORD=secrets.token_hex(16))
    return values


@pytest.fixture
def service_env(scratch_database, secrets_env, tmp_path):
    """The environment compose gives a service, with db and redis pointing at the test's servers."""

    def make(service: str, **extra: str) -> dict[str, str]:
        env = {**secrets_env, **compose_environment(service, secrets_env)}  # env_file .env, then environment
        assert "@db:" in env["DATABASE_URL"] and "//redis:" in env["REDIS_URL"]
        env["DATABASE_URL"] = scratch_database
        env["REDIS_URL"] = os.environ["REDIS_URL"]
        assert not [v for v in env.values() if re.search(r"[@/](db|redis):", v)], env
        env["AUDIT_CHECKPOINT_PATH"] = str(tmp_path / "audit" / "checkpoints.jsonl")
        return base_env(**{**env, **extra})

    return make


@pytest.fixture(scope="module")
def migrated(scratch_database, secrets_env):
    env = base_env(**{**secrets_env, **compose_environment("web", secrets_env), "DATABASE_URL": scratch_database,
                      "REDIS_URL": os.environ["REDIS_URL"]})
    result = manage("migrate", "--no-input", env=env)
    assert result.returncode == 0, result.stderr
    return env


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield client
    client.close()


def test_web_command_serves_healthz_and_readyz_through_gunicorn(migrated, service_env, tmp_path):
    port = free_port()
    env = service_env("web", PORT=str(port), BIND_HOST="127.0.0.1")
    log = tmp_path / "web.log"
    with running(command_of("web"), env=env, log=log) as web:
        agent = {"User-Agent": "ProbeAgent/7.3"}
        status, body = wait_for_http(port, "/healthz", web, log, host=PUBLIC_HOST)
        assert (status, body) == (200, b'{"status": "ok"}')
        status, body = http_get(port, "/readyz", host=PUBLIC_HOST, **agent)
        assert status == 200, body
        assert body == b'{"status": "ok", "checks": {"database": "ok", "broker": "ok"}}'

        healthcheck = SERVICES["web"]["healthcheck"]["test"]
        assert healthcheck[0] == "CMD"
        probe = subprocess.run(healthcheck[1:], env=env, capture_output=True, text=True, timeout=30)
        assert probe.returncode == 0, probe.stderr

        stop_group(web)
        assert web.returncode == 0, log.read_text()[-3000:]

    output = log.read_text()
    access = [line for line in json_lines(output) if line.get("logger") == "gunicorn.access"]
    assert any("GET /readyz" in line["event"] for line in access), output[-3000:]
    assert "127.0.0.1" not in output and "ProbeAgent" not in output  # no client address, no user agent


def test_worker_command_answers_a_ping_and_runs_a_real_task(migrated, service_env, tmp_path, redis_client,
                                                              request):
    # A queue and a node name of its own: other workers on the same Redis never take this test's task.
    node_host = f"ntd-ops-{secrets.token_hex(4)}"
    queue = f"ntd-ops-{node_host}"
    env = service_env("worker", HOSTNAME=node_host)
    checkpoints = Path(env["AUDIT_CHECKPOINT_PATH"])
    recorded = manage("verify_audit_log", env=env)  # appends an audit.verified event: the chain has a head
    assert recorded.returncode == 0, recorded.stderr

    # kombu keeps a queue's bindings in Redis after the worker has gone: leave nothing of this queue behind.
    for key in (f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}", queue):
        request.addfinalizer(lambda key=key: redis_client.delete(key))
    log = tmp_path / "worker.log"
    command = [*command_of("worker"), "-Q", queue, "-n", f"celery@{node_host}", "--concurrency=1",
               "--without-mingle", "--without-gossip"]
    with running(command, env=env, log=log) as worker:
        deadline = time.monotonic() + 45
        while not celery_app.control.ping(destination=[f"celery@{node_host}"], timeout=0.5):
            assert worker.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, "the worker never answered a ping:\n" + log.read_text()[-4000:]

        healthcheck = SERVICES["worker"]["healthcheck"]["test"]
        assert healthcheck[0] == "CMD-SHELL"
        probe = subprocess.run(["sh", "-c", interpolate(healthcheck[1], {})], env=env, capture_output=True,
                               text=True, timeout=60)
        assert probe.returncode == 0, probe.stdout + probe.stderr

        celery_app.send_task("ntd.tasks.checkpoint_audit_log_task", queue=queue)
        deadline = time.monotonic() + 30
        while not (checkpoints.exists() and checkpoints.read_text().strip()):
            assert worker.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, "the task never wrote its checkpoint:\n" + log.read_text()[-4000:]
            time.sleep(0.2)

        stop_group(worker)
        assert worker.returncode == 0, log.read_text()[-3000:]

    [checkpoint] = [json.loads(line) for line in checkpoints.read_text().splitlines()]
    assert checkpoint["seq"] >= 1 and len(checkpoint["sig"]) == 64
    verified = manage("verify_audit_log", "--no-record", env=env)  # the checkpoint is signed and matches
    assert verified.returncode == 0 and "intact" in verified.stdout, verified.stdout + verified.stderr
    output = log.read_text()
    events = [line["event"] for line in json_lines(output)]
    assert any(e.startswith("Task ntd.tasks.checkpoint_audit_log_task[") and "succeeded" in e for e in events)
    # The worker logs through the scrubbing JSON formatter too (only Celery's start-up banner is printed as is).
    assert any(e.startswith("Connected to redis://") for e in events), output[-3000:]
    assert not [e for e in events if "127.0.0.1" in e]


def _take_back_messages(client: redis.Redis, queue: str, origin: str) -> int:
    """Remove the messages a process of ours put on a shared queue (beat's own sends, if any were due)."""
    taken = 0
    for raw in client.lrange(queue, 0, -1):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            if json.loads(raw)["headers"]["origin"].startswith(origin):
                taken += client.lrem(queue, 0, raw)
    return taken


def test_beat_command_starts_with_redbeat_and_stays_up(service_env, tmp_path, redis_client):
    # A schedule last run long ago is due at once, and beat would put a task on the shared default queue:
    # start from an empty schedule (nothing is due at start), and take back anything this beat sent after all.
    prefix = settings.CELERY_REDBEAT_KEY_PREFIX
    stale = [key for key in redis_client.scan_iter(f"{prefix}*") if key != f"{prefix}:lock".encode()]
    if stale:
        redis_client.delete(*stale)
    env = service_env("beat")
    log = tmp_path / "beat.log"
    with running(command_of("beat"), env=env, log=log) as beat:
        try:
            deadline = time.monotonic() + 30
            while "beat: Starting..." not in log.read_text():
                assert beat.poll() is None, log.read_text()[-4000:]
                assert time.monotonic() < deadline, log.read_text()[-4000:]
                time.sleep(0.2)
            time.sleep(3)
            assert beat.poll() is None, log.read_text()[-4000:]
            stop_group(beat)
            assert beat.returncode == 0, log.read_text()[-3000:]
        finally:
            stop_group(beat)
            _take_back_messages(redis_client, celery_app.conf.task_default_queue, f"gen{beat.pid}@")
    output = log.read_text()
    assert re.search(r"scheduler -> redbeat\.schedulers\.RedBeatScheduler", output), output[-3000:]
    assert "beat: Acquired lock" in output or "beat: Acquiring lock" in output, output[-3000:]
