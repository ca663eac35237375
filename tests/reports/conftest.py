from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from reports import abuse


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
