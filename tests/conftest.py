"""Shared fixtures. The suite runs on the real PostgreSQL and Redis (see README, `make test`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.test import Client

from ntd import roles
from ntd.models import User
from takedown.models import Partner, PartnerAPIKey

# task_queue and celery_worker: a real Celery worker in a thread; mailbox: a real SMTP server on loopback
pytest_plugins = ["tests.celery_worker", "tests.mailbox"]

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
PASSWORD = "correct-horse-battery-staple"


def pytest_configure(config: Any) -> None:
    from django.conf import settings

    # xdist workers share one Redis: give each its own key space (lockout counters, rate limits).
    settings.CACHES["default"]["KEY_PREFIX"] = f"ntd-test-{WORKER}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: Any, nextitem: Any) -> Any:
    """pytest-django empties the tables after a transactional test with one TRUNCATE, which the audit log's
    append-only trigger refuses (as it should for the application). Only for that clean-up is it lifted."""
    import pgtrigger

    with pgtrigger.ignore("ntd.AuditEvent:no_truncate"):
        result = yield
    if nextitem is not None and _is_transactional(item):  # after the last test the database is gone
        _reseed_defaults(item)
    return result


def _is_transactional(item: Any) -> bool:
    marker = item.get_closest_marker("django_db")
    return bool({"transactional_db", "live_server", "celery_worker"} & set(getattr(item, "fixturenames", ()))
                or (marker is not None and marker.kwargs.get("transaction")))


def _reseed_defaults(item: Any) -> None:
    """The TRUNCATE also empties what data migrations seeded (the default routing rules and notice templates);
    later tests on this worker expect them, as a fresh installation has them. They are put back."""
    import importlib

    from django.apps import apps
    from pytest_django.plugin import blocking_manager_key

    with item.config.stash[blocking_manager_key].unblock():
        importlib.import_module("takedown.migrations.0004_default_routing_rules").add_default_rules(apps, None)
        importlib.import_module("takedown.migrations.0005_default_notice_templates").add_templates(apps, None)


@pytest.fixture(autouse=True)
def _own_cache_keys(settings: Any) -> None:
    """Each test gets a key space of its own in Redis: lockout counters, rate limits and used codes of other
    tests (and other xdist workers) never reach it, and nothing needs deleting afterwards."""
    import uuid

    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"],
                                                      "KEY_PREFIX": f"t-{WORKER}-{uuid.uuid4().hex[:12]}"}}


@pytest.fixture(autouse=True)
def _checkpoint_file(settings: Any, tmp_path: Any) -> None:
    """Each test writes audit checkpoints to its own file, outside the database."""
    settings.AUDIT_CHECKPOINT_PATH = tmp_path / "audit-checkpoints.jsonl"


def totp_code(secret: str, at: float | None = None) -> str:
    import time

    return format_hotp_value(hotp_value(secret, int(at if at is not None else time.time()) // 30))


@dataclass
class Staff:
    user: User
    totp_secret: str | None
    password: str = PASSWORD

    def code(self) -> str:
        assert self.totp_secret
        return totp_code(self.totp_secret)


@pytest.fixture
def make_staff(db: Any) -> Callable[..., Staff]:
    counter = {"n": 0}

    def make(role: str | None = None, *, totp: bool = True, username: str | None = None, **fields: Any) -> Staff:
        counter["n"] += 1
        user = User.objects.create_user(username=username or f"{role or 'norole'}{counter['n']}", password=PASSWORD,
                                        **fields)
        if role:
            roles.assign_role(user, role)
        secret = None
        if totp:
            secret = generate_totp_secret()
            TOTP.activate(user, secret)
        return Staff(user, secret)

    return make


@pytest.fixture
def client_for(make_staff: Callable[..., Staff]) -> Callable[[str], Client]:
    """A test client signed in (password and second factor done) as a new user with `role`."""

    def make(role: str) -> Client:
        staff = make_staff(role)
        client = Client()
        client.force_login(staff.user, backend="django.contrib.auth.backends.ModelBackend")
        return client

    return make


@pytest.fixture
def partner_key(db: Any) -> tuple[Partner, str]:
    partner = Partner.objects.create(name=f"Hotline {WORKER}", kind=Partner.Kind.HOTLINE, country="NL")
    _, key = PartnerAPIKey.objects.create_key(name="test", partner=partner)
    return partner, key


ALL_ROLES = roles.STAFF_ROLES


@pytest.fixture
def scheme(db: Any) -> Any:
    """The seeded classification scheme (loaded again if a transactional test emptied the tables)."""
    from tests.reports.factories import Scheme

    return Scheme()


@pytest.fixture
def default_queue(db: Any) -> Any:
    from reports.models import Queue

    return Queue.objects.get(pk=Queue.objects.default_id())


@pytest.fixture
def member(make_staff: Callable[..., Any], default_queue: Any) -> Callable[..., User]:
    """A new user with `role` (TOTP enrolled), granted `queue` (the default one unless told; None: no grant)."""

    from tests.reports.factories import grant

    def make(role: str = roles.ANALYST, queue: Any = "default", perm: str | None = None, **fields: Any) -> User:
        user = make_staff(role, **fields).user
        if queue is not None:
            grant(user, default_queue if queue == "default" else queue,
                  perm or ("supervise_queue" if role == roles.SUPERVISOR else "work_queue"))
        return user

    return make
