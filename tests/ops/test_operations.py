"""Running ntd: health and readiness, JSON logs without personal data, settings that refuse to start unsafe,
`manage.py check --deploy`, and `make run`'s commands on SQLite.

Subprocess tests build their environment from scratch (nothing leaks in from the test run's own settings) and
talk to loopback addresses only. The helpers here are shared with test_compose.py.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import json
import logging
import logging.config
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client, RequestFactory

from ntd.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PUBLIC_HOST = "ntd.example.org"


# --- helpers (also used by test_compose.py) -----------------------------------------------------------


def settings_env_vars(path: Path = ROOT / "ntd" / "settings.py") -> dict[str, bool]:
    """Every environment variable settings.py reads (env.xxx("NAME") or _required("NAME")) -> required?"""
    found: dict[str, bool] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
            continue
        name, func = node.args[0].value, node.func
        if not (isinstance(name, str) and re.fullmatch(r"[A-Z][A-Z0-9_]*", name)):
            continue
        if isinstance(func, ast.Name) and func.id == "_required":
            found[name] = True
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "env":
            found.setdefault(name, False)
    found["ALLOWED_HOSTS"] = True  # required too: settings raise without it when DEBUG is off
    return found


def required_env_vars() -> list[str]:
    return sorted(name for name, required in settings_env_vars().items() if required)


def secret_for(name: str) -> str:
    """A fresh value of the right shape for each secret settings.py insists on."""
    if name == "NTD_ENCRYPTION_KEYS":
        from evidence.crypto import generate_key
        from evidence.keys import format_key

        return format_key(generate_key("ops-test"))
    if name == "ALLOWED_HOSTS":
        return PUBLIC_HOST
    if name == "NTD_PUBLIC_URL":
        return f"https://{PUBLIC_HOST}"
    if name == "NTD_COUNTRY":
        return "NL"
    return secrets.token_urlsafe(48)  # 64 characters, as check --deploy wants of SECRET_KEY


def base_env(**extra: str) -> dict[str, str]:
    """A clean environment: the venv first on PATH, nothing of the test run's own settings."""
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def production_env(**extra: str) -> dict[str, str]:
    """What an operator sets in production (README, Environment), with fresh secrets and the test's stores."""
    env = base_env(
        DEBUG="0",
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=os.environ["REDIS_URL"],
        CSRF_TRUSTED_ORIGINS=f"https://{PUBLIC_HOST}",
        NTD_PUBLIC_URL=f"https://{PUBLIC_HOST}",
    )
    for name in required_env_vars():
        env[name] = secret_for(name)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(port: int, path: str, *, host: str = "127.0.0.1", timeout: float = 5, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host, **headers})
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for_http(port: int, path: str, process: subprocess.Popen[Any], log: Path, *, host: str = "127.0.0.1",
                  timeout: float = 45) -> tuple[int, bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode} before answering:\n{log.read_text()[-4000:]}")
        try:
            return http_get(port, path, host=host, timeout=2)
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"nothing answered on port {port} within {timeout} s:\n{log.read_text()[-4000:]}")


@contextlib.contextmanager
def running(command: list[str], *, env: dict[str, str], log: Path, cwd: Path = ROOT) -> Iterator[subprocess.Popen[Any]]:
    """Start a command in its own process group; whatever happens, the whole group is gone afterwards."""
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        yield process
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 20) -> int:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # Anything of the group still alive (a grandchild that ignored the signal) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.returncode


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# --- /healthz and /readyz ----------------------------------------------------------------------------


class TestHealth:
    def test_healthz_is_open_touches_nothing_and_says_only_ok(self):
        # No database fixture: pytest-django would fail the test if /healthz touched the database.
        response = Client().get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert "no-cache" in response["Cache-Control"]
        assert "Set-Cookie" not in response.headers
        assert Client().post("/healthz").status_code == 405

    @pytest.mark.django_db
    def test_readyz_is_ok_when_the_database_and_the_broker_answer(self):
        response = Client().get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}

    @pytest.mark.django_db
    def test_readyz_names_the_broker_when_it_does_not_answer(self):
        # The Celery app read its configuration at import: point it at a loopback port nobody listens on.
        original = celery_app.conf.broker_url
        celery_app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
        try:
            response = Client().get("/readyz")
        finally:
            celery_app.conf.broker_url = original
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "checks": {"database": "ok", "broker": "fail"}}
        assert Client().get("/readyz").status_code == 200  # and back once it answers again

    @pytest.mark.django_db
    def test_probes_answer_over_plain_http_while_pages_redirect_to_https(self, settings):
        settings.SECURE_SSL_REDIRECT = True
        client = Client()  # a new client loads the middleware with the setting above
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        login = client.get("/accounts/login/")
        assert login.status_code == 301 and login["Location"].startswith("https://")


# --- Logs ----------------------------------------------------------------------------------------------

IPV4 = "192.0.2.44"
IPV6_FULL = "2001:0db8:85a3:0000:0000:8a2e:0370:7334"
IPV6_SHORT = "2001:db8::8a2e:370:7334"
IPV6_LOOPBACK = "::1"
EMAIL = "reporter.name+tag@example.org"
CLIENT_ADDRESS = "198.51.100.7"
USER_AGENT = "ProbeAgent/9.1 (ops test)"
PERSONAL = (IPV4, IPV6_FULL, IPV6_SHORT, IPV6_LOOPBACK, EMAIL, CLIENT_ADDRESS, USER_AGENT, "reporter.name")


@pytest.fixture
def production_log() -> Iterator[io.StringIO]:
    """The production LOGGING (JSON formatter, scrub filter) writing into a buffer; restored afterwards."""
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["console"]["formatter"] = "json"
    logging.config.dictConfig(config)
    buffer = io.StringIO()
    handlers = {h for name in ("", "django") for h in logging.getLogger(name).handlers}
    for handler in handlers:
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(buffer)
    try:
        yield buffer
    finally:
        logging.config.dictConfig(settings.LOGGING)


class TestLogs:
    def test_json_lines_carry_no_address_no_user_agent_no_email(self, production_log):
        request = RequestFactory().get("/report/", REMOTE_ADDR=CLIENT_ADDRESS, HTTP_USER_AGENT=USER_AGENT)
        message = f"report from {IPV4} / {IPV6_FULL} / {IPV6_SHORT} / {IPV6_LOOPBACK} by {EMAIL}"

        logging.getLogger("ntd.probe").warning(message, extra={"request": request})
        logging.getLogger("django.request").warning("Not Found: %s", f"/report/{EMAIL}",
                                                    extra={"request": request, "status_code": 404})
        try:
            raise ValueError(f"could not reach {IPV4} for {EMAIL}")
        except ValueError:
            logging.getLogger("ntd.probe").exception("delivery failed for %s", IPV6_SHORT)
        structlog.get_logger("ntd.probe").info(message, ip=CLIENT_ADDRESS, contact=EMAIL, via=IPV6_FULL,
                                               user_agent=USER_AGENT)

        output = production_log.getvalue()
        lines = output.splitlines()
        assert len(lines) == 4
        events = [json.loads(line) for line in lines]  # every line is one JSON object
        for leaked in PERSONAL:
            assert leaked not in output, f"{leaked!r} reached the log"
        assert events[0]["event"].count("[address]") == 4 and "[e-mail]" in events[0]["event"]
        assert events[0]["level"] == "warning" and events[0]["logger"] == "ntd.probe"
        assert "ValueError" in events[2]["exception"]
        assert events[3]["via"] == "[address]" and "ip" not in events[3] and "contact" not in events[3]


# --- Production settings ---------------------------------------------------------------------------------


def test_check_deploy_prints_no_warnings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output
    assert not re.search(r"WARNING|ERROR", output), output


SETUP = [sys.executable, "-c", "import django; django.setup(); print('started')"]


def test_settings_start_with_every_required_value_set():
    started = subprocess.run(SETUP, cwd=ROOT, env=production_env(DJANGO_SETTINGS_MODULE="ntd.settings"),
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 0 and "started" in started.stdout, started.stderr


@pytest.mark.parametrize("missing", required_env_vars())
def test_settings_refuse_to_start_without_a_required_value(missing):
    env = production_env(DJANGO_SETTINGS_MODULE="ntd.settings")
    env[missing] = ""  # set but empty, so that a developer's .env cannot fill it in
    refused = subprocess.run(SETUP, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "ImproperlyConfigured" in refused.stderr and missing in refused.stderr, refused.stderr


@pytest.mark.django_db
def test_demo_commands_refuse_with_debug_off():
    from ntd.models import User

    assert not settings.DEBUG
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo")
    assert not User.objects.exists()
    with pytest.raises(CommandError, match="development"):
        call_command("devstack", "--port", "1")


# --- `make run`: the same commands on SQLite with the embedded broker ------------------------------------


def make_run_env(database: Path, port: int) -> dict[str, str]:
    """RUN_ENV from the Makefile, with the database in a scratch folder and a free port."""
    makefile = (ROOT / "Makefile").read_text()
    line = re.search(r"^RUN_ENV\s*:=\s*(.+)$", makefile, re.MULTILINE)
    assert line, "the Makefile defines RUN_ENV"
    env = base_env()
    for word in shlex.split(line.group(1)):
        name, _, value = word.partition("=")
        env[name] = value
    assert env["DEBUG"] == "1" and env["CELERY_BROKER_URL"] == "filesystem://" and env["CACHE_URL"] == "locmem://"
    assert env["DATABASE_URL"].startswith("sqlite:")
    env["DATABASE_URL"] = f"sqlite:///{database}"
    env["PORT"] = str(port)
    return env


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:  # the field after the state: ppid
                found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_make_run_commands_work_on_sqlite(tmp_path):
    port = free_port()
    env = make_run_env(tmp_path / "ntd.sqlite3", port)

    migrated = manage("migrate", "--no-input", env=env)
    assert migrated.returncode == 0, migrated.stderr
    seeded = manage("seed_demo", env=env)
    assert seeded.returncode == 0, seeded.stderr
    for username in ("analyst", "supervisor", "welfare", "admin", "auditor"):
        row = re.search(rf"^\s+{username}\s+.*\s{username}-demo-pass\s+([A-Z2-7]{{16,}})\s+\d{{6}}\s*$",
                        seeded.stdout, re.MULTILINE)
        assert row, f"no login line with password and TOTP secret for {username}:\n{seeded.stdout}"

    log = tmp_path / "devstack.log"
    with running([sys.executable, "manage.py", "devstack", "--port", str(port)], env=env, log=log) as devstack:
        status, body = wait_for_http(port, "/", devstack, log)
        assert status == 200, body[:500]
        assert http_get(port, "/healthz") == (200, b'{"status": "ok"}')
        assert http_get(port, "/accounts/login/")[0] == 200

        # The worker and beat are up on the embedded broker too.
        deadline = time.monotonic() + 45
        while not (re.search(r"celery@\S+ ready\.", log.read_text()) and "beat: Starting..." in log.read_text()):
            assert devstack.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.2)
        children = _children(devstack.pid)
        assert len(children) == 3, f"web, worker and beat: {children}"
        descendants = children | {g for c in children for g in _children(c)}  # the worker's pool too
        assert all(_alive(pid) for pid in children), log.read_text()[-3000:]

        os.killpg(devstack.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
        devstack.wait(timeout=30)
        assert devstack.returncode == 0, log.read_text()[-3000:]
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in descendants) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in descendants if _alive(pid)], "a child of devstack outlived it"
        with pytest.raises(OSError):
            http_get(port, "/healthz", timeout=2)
