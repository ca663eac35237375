from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from ntd import roles
from ntd.models import User
from reports import abuse
from tests.reports.factories import grant


@pytest.fixture(autouse=True)
def _no_minimum_form_time(settings: Any) -> None:
    settings.INTAKE_MIN_FORM_SECONDS = 0


def stamp_of(response: Any) -> str:
    return re.search(r'name="stamp" value="([^"]+)"', response.content.decode()).group(1)


@pytest.fixture
def report_form(client: Client) -> Any:
    """POST the public form as a person would: fetch it first, then send the answers with its stamp."""

    def post(urls: str, **fields: Any) -> Any:
        data = {"urls": urls, "material_kind": "images", "encountered_via": "website", "contact": "anonymous",
                "stamp": abuse.form_stamp(), **fields}
        return client.post("/report/", data)

    return post


@pytest.fixture
def member(make_staff: Callable[..., Any], default_queue: Any) -> Callable[..., User]:
    """A new user with `role` (TOTP enrolled), granted `queue` (the default one unless told; None: no grant)."""

    def make(role: str = roles.ANALYST, queue: Any = "default", perm: str | None = None, **fields: Any) -> User:
        user = make_staff(role, **fields).user
        if queue is not None:
            grant(user, default_queue if queue == "default" else queue,
                  perm or ("supervise_queue" if role == roles.SUPERVISOR else "work_queue"))
        return user

    return make
