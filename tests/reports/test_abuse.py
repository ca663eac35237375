"""Abuse resistance of the public form, keyed on a daily-keyed HMAC of the address (reports.abuse).

Small limits keep it quick: the challenge from the third submission of an hour, the limit after the sixth.
Time is frozen in the middle of an hour so that no counter rolls over to the next one under a slow test.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any

import pytest
from altcha import solve_challenge_v1
from django.core import signing
from django.test import Client, RequestFactory

from reports import abuse
from reports.models import Report

pytestmark = pytest.mark.django_db

HOME = "203.0.113.5"
NEIGHBOUR = "203.0.113.6"
WAIT = 15
CHALLENGE_MESSAGE = "Many reports have come from your connection"


@pytest.fixture(autouse=True)
def small_limits(settings: Any, time_machine: Any) -> None:
    settings.INTAKE_CHALLENGE_AFTER = 2
    settings.INTAKE_LIMIT_PER_HOUR = 6
    settings.INTAKE_NOJS_WAIT_SECONDS = WAIT
    settings.ALTCHA_MAX_NUMBER = 5_000
    settings.NUM_PROXIES = 0
    time_machine.move_to(dt.datetime(2026, 3, 2, 10, 20, tzinfo=dt.UTC), tick=False)


def show(client: Client, address: str = HOME, **headers: Any) -> Any:
    return client.get("/report/", REMOTE_ADDR=address, **headers)


def send(client: Client, address: str = HOME, *, stamp: str | None = None, headers: dict[str, str] | None = None,
         **fields: Any) -> Any:
    data = {"urls": "https://example.com/x", "material_kind": "images", "encountered_via": "website",
            "contact": "anonymous", "stamp": stamp or abuse.form_stamp(), **fields}
    return client.post("/report/", data, REMOTE_ADDR=address, **(headers or {}))


def stamp_of(page: Any) -> str:
    return re.search(r'name="stamp" value="([^"]+)"', page.content.decode()).group(1)


def challenge_of(page: Any) -> dict[str, Any]:
    found = re.search(r'<script id="altcha-challenge" type="application/json">(.*?)</script>', page.content.decode())
    assert found, "the page has no challenge"
    return json.loads(found.group(1))


def solve(challenge: dict[str, Any], **reshape: Any) -> str:
    """What static/reports/altcha.js puts in the form: base64 of JSON.stringify({...}) of the solved challenge."""
    solution = solve_challenge_v1(challenge["challenge"], challenge["salt"], challenge["algorithm"],
                                  challenge["maxnumber"])
    assert solution is not None
    payload = {"algorithm": challenge["algorithm"], "challenge": challenge["challenge"], "number": solution.number,
               "salt": challenge["salt"], "signature": challenge["signature"]}
    text = json.dumps(dict(reversed(payload.items())) if reshape.get("reordered") else payload,
                      separators=(", ", ": ") if reshape.get("spaced") else (",", ":"))
    encoded = base64.b64encode(text.encode()).decode()
    return f"{encoded[:8]}.{encoded[8:]}" if reshape.get("noise") else encoded  # base64 decoders skip the "."


def use_up_the_free_submissions(client: Client, address: str = HOME) -> None:
    for _ in range(2):
        assert send(client, address).status_code == 302


class TestChallenge:
    def test_below_the_threshold_the_page_has_no_challenge_and_no_script(self, client):
        send(client)

        page = show(client).content.decode()

        assert "altcha-challenge" not in page and "<script" not in page

    def test_past_the_threshold_the_page_carries_the_challenge_and_the_solver(self, client):
        use_up_the_free_submissions(client)

        page = show(client)

        assert page.status_code == 200
        challenge = challenge_of(page)
        assert set(challenge) == {"algorithm", "challenge", "maxnumber", "salt", "signature"}
        assert challenge["maxnumber"] == 5_000
        assert re.search(r'<script src="/static/reports/altcha(\.[0-9a-f]{12})?\.js" defer', page.content.decode())
        assert f"wait {WAIT} seconds" in page.content.decode()

    def test_a_post_without_a_solution_or_a_wait_is_refused(self, client):
        use_up_the_free_submissions(client)

        response = send(client)

        assert response.status_code == 400
        assert CHALLENGE_MESSAGE in response.content.decode()
        assert "altcha-challenge" in response.content.decode()  # with a new puzzle to solve
        assert Report.objects.count() == 2

    def test_a_solution_is_accepted_once(self, client):
        use_up_the_free_submissions(client)
        payload = solve(challenge_of(show(client)))

        accepted = send(client, altcha=payload)
        replayed = send(client, altcha=payload)

        assert accepted.status_code == 302
        assert replayed.status_code == 400 and CHALLENGE_MESSAGE in replayed.content.decode()
        assert Report.objects.count() == 3

    @pytest.mark.parametrize("reshape", [{"reordered": True}, {"spaced": True}, {"noise": True}],
                             ids=["keys-reordered", "spaced", "base64-noise"])
    def test_a_solution_spelled_another_way_is_still_a_replay(self, client, reshape):
        use_up_the_free_submissions(client)
        challenge = challenge_of(show(client))
        assert send(client, altcha=solve(challenge)).status_code == 302

        respelled = send(client, altcha=solve(challenge, **reshape))

        assert respelled.status_code == 400
        assert Report.objects.count() == 3

    def test_a_wrong_or_forged_solution_is_refused(self, client):
        use_up_the_free_submissions(client)
        challenge = challenge_of(show(client))
        good = json.loads(base64.b64decode(solve(challenge)))
        wrong_number = base64.b64encode(json.dumps({**good, "number": good["number"] + 1}).encode()).decode()
        self_made = base64.b64encode(json.dumps({**good, "signature": "0" * 64}).encode()).decode()

        for payload in (wrong_number, self_made, "not base64 at all", "x" * 3000):
            assert send(client, altcha=payload).status_code == 400
        assert Report.objects.count() == 2

    def test_an_expired_challenge_is_refused(self, client, time_machine):
        use_up_the_free_submissions(client)
        payload = solve(challenge_of(show(client)))
        time_machine.shift(dt.timedelta(minutes=21))

        assert send(client, altcha=payload).status_code == 400


class TestWaitingWithoutJavaScript:
    def test_a_form_shown_long_enough_ago_is_accepted(self, client, time_machine):
        use_up_the_free_submissions(client)
        page = show(client)

        too_soon = send(client, stamp=stamp_of(page))
        time_machine.shift(WAIT - 1)
        still_too_soon = send(client, stamp=stamp_of(too_soon))  # the page sent back keeps the stamp: the wait runs on
        time_machine.shift(1)
        waited = send(client, stamp=stamp_of(still_too_soon))

        assert (too_soon.status_code, still_too_soon.status_code, waited.status_code) == (400, 400, 302)
        assert Report.objects.count() == 3

    def test_a_forged_stamp_does_not_count_as_a_wait(self, client, time_machine):
        use_up_the_free_submissions(client)
        time_machine.shift(WAIT + 1)

        response = send(client, stamp=f"0000:{signing.b62_encode(0)}:forged")

        assert response.status_code == 400
        assert Report.objects.count() == 2


class TestLimit:
    @pytest.fixture(autouse=True)
    def no_challenge(self, settings):
        settings.INTAKE_CHALLENGE_AFTER = settings.INTAKE_LIMIT_PER_HOUR = 3

    def test_past_the_limit_the_source_gets_a_friendly_429_and_nothing_is_filed(self, client):
        for _ in range(3):
            assert send(client).status_code == 302

        posted, shown = send(client), show(client)

        for response in (posted, shown):
            assert response.status_code == 429
            page = response.content.decode()
            assert "Please try again later" in page and "try again in an hour" in page
            assert "immediate danger" in page
            assert 'name="urls"' not in page
        assert Report.objects.count() == 3

    def test_another_address_is_not_limited(self, client):
        for _ in range(4):
            send(client)

        assert show(client, NEIGHBOUR).status_code == 200
        assert send(client, NEIGHBOUR).status_code == 302

    def test_invalid_submissions_count_too(self, client):
        for _ in range(3):
            assert send(client, urls="javascript:alert(1)").status_code == 400

        assert send(client).status_code == 429
        assert not Report.objects.exists()

    def test_the_limit_is_per_hour(self, client, time_machine):
        for _ in range(4):
            send(client)
        time_machine.shift(dt.timedelta(hours=1))

        assert send(client).status_code == 302

    def test_looking_up_a_status_does_not_use_the_report_budget(self, client):
        for _ in range(5):
            client.post("/report/status/", {"reference": "R-0000-0000", "code": "x"}, REMOTE_ADDR=HOME)

        assert send(client).status_code == 302


def request_from(address: str, forwarded_for: str | None = None) -> Any:
    headers = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for is not None else {}
    return RequestFactory().get("/report/", REMOTE_ADDR=address, **headers)


class TestSource:
    def test_the_source_is_the_same_all_day_and_different_the_next(self, time_machine):
        time_machine.move_to(dt.datetime(2026, 3, 2, 23, 59, tzinfo=dt.UTC), tick=False)
        today = abuse.source_of(request_from(HOME))
        neighbour = abuse.source_of(request_from(NEIGHBOUR))
        time_machine.shift(dt.timedelta(minutes=2))
        tomorrow = abuse.source_of(request_from(HOME))
        time_machine.shift(dt.timedelta(hours=23))
        later_tomorrow = abuse.source_of(request_from(HOME))

        assert re.fullmatch(r"[0-9a-f]{32}", today)
        assert today != neighbour
        assert tomorrow != today
        assert later_tomorrow == tomorrow
        assert HOME not in today and HOME not in tomorrow

    def test_the_daily_key_is_random_and_shared_only_through_the_cache(self, settings, monkeypatch):
        monkeypatch.setattr(abuse, "_day_keys", {})  # a process that has not yet seen today's key
        today = abuse.source_of(request_from(HOME))
        monkeypatch.setattr(abuse, "_day_keys", {})  # another process, the same cache: the same source
        assert abuse.source_of(request_from(HOME)) == today

        # the same day, address, code, SECRET_KEY and database, but the cache lost the key (Redis restarted)
        monkeypatch.setattr(abuse, "_day_keys", {})
        settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"],
                                                          "KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"] + "x"}}
        forgotten = abuse.source_of(request_from(HOME))

        assert forgotten != today
        assert abuse.source_of(request_from(HOME)) == forgotten


class TestProxies:
    @pytest.mark.parametrize(("proxies", "remote", "forwarded", "client_address"), [
        (0, "192.0.2.10", "198.51.100.7", "192.0.2.10"),
        (1, "192.0.2.10", "198.51.100.7", "198.51.100.7"),
        (1, "192.0.2.10", "6.6.6.6, 198.51.100.7", "198.51.100.7"),
        (2, "192.0.2.10", "6.6.6.6,198.51.100.7, 192.0.2.11", "198.51.100.7"),
        (2, "192.0.2.10", "198.51.100.7", "192.0.2.10"),
        (1, "192.0.2.10", "", "192.0.2.10"),
        (1, "192.0.2.10", None, "192.0.2.10"),
    ], ids=["none-trusted", "one-proxy", "one-proxy-spoofed-hop", "two-proxies", "too-few-hops", "empty-header",
            "no-header"])
    def test_the_client_address_is_taken_only_from_trusted_hops(self, settings, proxies, remote, forwarded,
                                                                client_address):
        settings.NUM_PROXIES = proxies

        assert abuse.client_address(request_from(remote, forwarded)) == client_address

    def test_clients_behind_one_proxy_are_limited_apart_and_cannot_spoof_their_way_out(self, client, settings):
        settings.NUM_PROXIES = 1
        settings.INTAKE_CHALLENGE_AFTER = settings.INTAKE_LIMIT_PER_HOUR = 2
        proxy = "192.0.2.10"
        for _ in range(2):
            send(client, proxy, headers={"HTTP_X_FORWARDED_FOR": "198.51.100.7"})

        same_client = send(client, proxy, headers={"HTTP_X_FORWARDED_FOR": "198.51.100.7"})
        spoofed = send(client, proxy, headers={"HTTP_X_FORWARDED_FOR": "203.0.113.99, 198.51.100.7"})
        other_client = send(client, proxy, headers={"HTTP_X_FORWARDED_FOR": "198.51.100.8"})

        assert (same_client.status_code, spoofed.status_code, other_client.status_code) == (429, 429, 302)

    def test_without_trusted_proxies_the_header_is_ignored(self, client, settings):
        settings.INTAKE_CHALLENGE_AFTER = settings.INTAKE_LIMIT_PER_HOUR = 2
        for forwarded in ("198.51.100.1", "198.51.100.2"):
            send(client, headers={"HTTP_X_FORWARDED_FOR": forwarded})

        assert send(client, headers={"HTTP_X_FORWARDED_FOR": "198.51.100.3"}).status_code == 429
