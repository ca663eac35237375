"""Staff sign-in: password and TOTP through allauth, forced enrolment, lockout, session limits, audit, headers."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
import redis
import time_machine
from allauth.account import app_settings as account_settings
from allauth.core.internal.ratelimit import parse_rates
from allauth.mfa.models import Authenticator
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.hashers import Argon2PasswordHasher, PBKDF2PasswordHasher
from django.test import Client, RequestFactory

from ntd.audit import Action, AuditEvent
from ntd.models import User
from tests.conftest import PASSWORD, Staff, totp_code

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
MFA_STAGE = "/accounts/2fa/authenticate/"
ENROL = "/accounts/2fa/totp/activate/"
PRODUCTION_HASHERS = list(settings.PASSWORD_HASHERS)


class CheapArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2 at a test's cost: the suite signs in dozens of times (production's cost is checked below)."""

    memory_cost = 1024
    parallelism = 1
    time_cost = 1


@pytest.fixture(autouse=True)
def _cheap_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = [f"{__name__}.CheapArgon2PasswordHasher", *settings.PASSWORD_HASHERS[1:]]




def fresh_code(secret: str) -> str:
    """The current code, never one about to roll over (allauth accepts only the current 30 s step)."""
    if time.time() % 30 > 28.5:
        time.sleep(30 - time.time() % 30 + 0.05)
    return totp_code(secret)


def wrong_code(secret: str) -> str:
    return f"{(int(totp_code(secret)) + 1) % 1_000_000:06d}"


def post_password(client: Client, username: str, password: str = PASSWORD) -> Any:
    return client.post(LOGIN, {"login": username, "password": password})


def sign_in(client: Client, staff: Staff) -> Any:
    """Both steps of the staff sign-in; returns the response to the code."""
    response = post_password(client, staff.user.username)
    assert response.status_code == 302 and response["Location"] == MFA_STAGE
    return client.post(MFA_STAGE, {"code": fresh_code(staff.totp_secret)})


def actions_for(user: User) -> list[str]:
    return list(AuditEvent.objects.filter(target_id=str(user.pk)).values_list("action", flat=True))


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


class TestPasswordAndCode:
    def test_password_then_code_signs_in_and_is_audited(self, make_staff):
        staff = make_staff("analyst")
        client = Client()

        response = post_password(client, staff.user.username)
        assert response.status_code == 302 and response["Location"] == MFA_STAGE
        assert not signed_in(client)  # the password alone is not enough

        response = client.post(MFA_STAGE, {"code": fresh_code(staff.totp_secret)})

        assert response.status_code == 302 and response["Location"] == "/"
        assert int(client.session["_auth_user_id"]) == staff.user.pk
        home = client.get("/")
        assert home.status_code == 200 and b"Signed in as Analyst" in home.content
        assert actions_for(staff.user) == [Action.USER_LOGIN]
        event = AuditEvent.objects.get(action=Action.USER_LOGIN)
        assert (event.actor_type, event.actor_id) == ("user", str(staff.user.pk))

    def test_wrong_code_is_refused_and_audited(self, make_staff):
        staff = make_staff("analyst")
        client = Client()
        post_password(client, staff.user.username)

        response = client.post(MFA_STAGE, {"code": wrong_code(staff.totp_secret)})

        assert response.status_code == 200 and b"Incorrect code" in response.content
        assert not signed_in(client)
        assert client.get("/audit/")["Location"].startswith(LOGIN)
        assert actions_for(staff.user) == [Action.USER_LOGIN_FAILED]
        assert AuditEvent.objects.get(action=Action.USER_LOGIN_FAILED).data == {"factor": "totp"}

    def test_wrong_password_is_refused_and_audited(self, make_staff):
        staff = make_staff("auditor")
        client = Client()

        response = post_password(client, staff.user.username, "not-the-password")

        assert response.status_code == 200 and not signed_in(client)
        assert actions_for(staff.user) == [Action.USER_LOGIN_FAILED]

    def test_codes_cannot_be_guessed_without_limit(self, make_staff):
        # given a password that leaked, the second factor holds: a few wrong codes, then even the right one fails
        staff = make_staff("analyst")
        client = Client()
        post_password(client, staff.user.username)
        for _ in range(settings.AXES_FAILURE_LIMIT):
            assert client.post(MFA_STAGE, {"code": wrong_code(staff.totp_secret)}).status_code == 200

        response = client.post(MFA_STAGE, {"code": fresh_code(staff.totp_secret)})

        assert not signed_in(client)
        assert b"Too many failed" in response.content

    def test_logout_is_audited(self, make_staff):
        staff = make_staff("supervisor")
        client = Client()
        sign_in(client, staff)

        response = client.post("/accounts/logout/")

        assert response.status_code == 302 and response["Location"] == LOGIN
        assert not signed_in(client)
        assert actions_for(staff.user) == [Action.USER_LOGIN, Action.USER_LOGOUT]

    def test_logout_needs_a_post(self, make_staff):
        client = Client()
        sign_in(client, make_staff("analyst"))
        assert client.get("/accounts/logout/").status_code == 200  # a confirmation page
        assert signed_in(client)


class TestEnrolment:
    def test_user_without_totp_must_enrol_before_anything_else(self, make_staff, django_capture_on_commit_callbacks):
        staff = make_staff("auditor", totp=False, is_superuser=True, is_staff=True)
        client = Client()

        # a password is all this user has, so it is all they are asked for
        response = post_password(client, staff.user.username)
        assert response.status_code == 302 and response["Location"] == "/"

        for path in ("/", "/audit/", "/admin/", "/admin/ntd/user/", "/accounts/password/change/"):
            response = client.get(path)
            assert (response.status_code, response["Location"]) == (302, ENROL), path
        api = client.get("/api/schema/")
        assert api.status_code == 403 and b"second factor" in api.content

        page = client.get(ENROL)
        assert page.status_code == 200
        secret = client.session["mfa.totp.secret"]
        assert secret.encode() in page.content  # shown for manual entry next to the QR code

        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(ENROL, {"code": fresh_code(secret)})

        assert (response.status_code, response["Location"]) == (302, "/accounts/2fa/recovery-codes/")
        assert Authenticator.objects.filter(user=staff.user, type=Authenticator.Type.TOTP).exists()
        codes = client.get(response["Location"])  # shown at once: no second password prompt
        assert codes.status_code == 200 and b"recovery codes" in codes.content.lower()
        assert client.get("/").status_code == 200
        assert client.get("/audit/").status_code == 200
        assert client.get("/admin/").status_code == 200
        assert Action.USER_MFA_ENROLLED in actions_for(staff.user)

    def test_enrolment_wrong_code_is_refused(self, make_staff):
        staff = make_staff("analyst", totp=False)
        client = Client()
        post_password(client, staff.user.username)
        client.get(ENROL)
        secret = client.session["mfa.totp.secret"]

        response = client.post(ENROL, {"code": wrong_code(secret)})

        assert response.status_code == 200 and b"Incorrect code" in response.content
        assert not Authenticator.objects.filter(user=staff.user).exists()
        assert client.get("/")["Location"] == ENROL

    def test_enrolment_still_works_after_the_reauthentication_window(self, make_staff):
        # allauth asks for the password again before adding a factor once the sign-in is a few minutes old
        staff = make_staff("analyst", totp=False)
        client = Client()
        with time_machine.travel(dt.datetime.now(tz=dt.UTC), tick=False) as traveller:
            post_password(client, staff.user.username)
            traveller.shift(account_settings.REAUTHENTICATION_TIMEOUT + 60)

            response = client.get(ENROL)
            assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
            response = client.get(response["Location"])
            assert response.status_code == 200
            response = client.post(response.request["PATH_INFO"] + "?next=" + ENROL, {"password": PASSWORD})
            assert (response.status_code, response["Location"]) == (302, ENROL)

            assert client.get(ENROL).status_code == 200

    def test_the_user_cannot_switch_the_second_factor_off(self, make_staff):
        staff = make_staff("analyst")
        client = Client()
        sign_in(client, staff)
        deactivate = "/accounts/2fa/totp/deactivate/"

        page = client.get(deactivate)
        response = client.post(deactivate)

        assert page.status_code == 200 and b"You cannot deactivate two-factor authentication" in page.content
        assert response.status_code == 200
        assert Authenticator.objects.filter(user=staff.user, type=Authenticator.Type.TOTP).exists()

    def test_factor_pages_ask_for_the_password_again_once_the_sign_in_is_not_fresh(self, make_staff):
        staff = make_staff("analyst")
        client = Client()
        with time_machine.travel(dt.datetime.now(tz=dt.UTC), tick=False) as traveller:
            sign_in(client, staff)
            assert client.get("/accounts/2fa/recovery-codes/generate/").status_code == 200

            traveller.shift(account_settings.REAUTHENTICATION_TIMEOUT + 1)
            response = client.get("/accounts/2fa/recovery-codes/generate/")

        assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")


class TestEntrances:
    def test_admin_login_is_the_staff_login(self, db):
        response = Client().get("/admin/login/?next=/admin/ntd/user/")
        assert response.status_code == 302
        assert response["Location"] == "/accounts/login/?next=/admin/ntd/user/"

    def test_admin_sends_anonymous_visitors_to_the_staff_login(self, db):
        response = Client().get("/admin/ntd/user/", follow=True)
        assert response.redirect_chain[-1] == ("/accounts/login/?next=/admin/ntd/user/", 302)
        assert response.status_code == 200 and b'name="password"' in response.content

    def test_admin_login_refuses_a_signed_in_user_without_the_admin_site(self, client_for):
        client = client_for("analyst")
        response = client.get("/admin/", follow=True)
        assert response.status_code == 403  # not a redirect loop between the two login pages
        assert response.redirect_chain == [("/admin/login/?next=/admin/", 302)]

    def test_admin_login_passes_a_signed_in_administrator_through(self, client_for):
        response = client_for("admin").get("/admin/login/?next=/admin/ntd/user/")
        assert (response.status_code, response["Location"]) == (302, "/admin/ntd/user/")

    def test_signup_is_closed(self, db):
        client = Client()
        page = client.get("/accounts/signup/")
        response = client.post(
            "/accounts/signup/", {"username": "newcomer", "password1": PASSWORD, "password2": PASSWORD}
        )
        assert page.status_code == 200 and b"Sign Up Closed" in page.content
        assert response.status_code == 200
        assert not User.objects.filter(username="newcomer").exists()


class TestLockout:
    def test_lockout_by_username_after_the_failure_limit(self, make_staff):
        staff = make_staff("analyst", username="locked")
        bystander = make_staff("analyst", username="bystander")
        client = Client()

        for _ in range(settings.AXES_FAILURE_LIMIT):
            response = post_password(client, "locked", "wrong-password-guess")
            assert not signed_in(client)
        assert response.status_code == 429 and b"Too many failed sign-in attempts" in response.content

        # then even the right password is refused, whatever the case of the name...
        for name in ("locked", "LOCKED"):
            response = post_password(client, name)
            assert response.status_code in (200, 429) and response.get("Location") != MFA_STAGE
        # ...by axes itself, not only by the form
        request = RequestFactory().post(LOGIN)
        assert authenticate(request, username="locked", password=PASSWORD) is None
        assert authenticate(request, username="Locked", password=PASSWORD) is None  # allauth ignores case
        assert authenticate(request, username="bystander", password=PASSWORD) == bystander.user

        # another member of staff is not affected
        other = Client()
        assert post_password(other, "bystander")["Location"] == MFA_STAGE

        actions = actions_for(staff.user)
        assert actions.count(Action.USER_LOGIN_FAILED) >= settings.AXES_FAILURE_LIMIT
        assert Action.USER_LOCKED_OUT in actions

    def test_no_client_address_is_stored(self, make_staff):
        make_staff("analyst", username="locked")
        client = Client(REMOTE_ADDR="192.0.2.77")
        for _ in range(settings.AXES_FAILURE_LIMIT + 1):
            post_password(client, "locked", "wrong-password-guess")
        assert client.post(MFA_STAGE, {"code": "000000"}).status_code in (200, 302)

        assert not AccessAttempt.objects.exists()
        assert not AccessLog.objects.exists()
        assert not AccessFailureLog.objects.exists()
        store = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
        keys = [k for k in store.scan_iter(f"{settings.CACHES['default']['KEY_PREFIX']}:*")]
        assert keys, "the lockout counters live in the cache"
        for key in keys:
            blob = key + (store.dump(key) or b"")
            assert b"192.0.2.77" not in blob and b"127.0.0.1" not in blob, key
        for event in AuditEvent.objects.all():
            assert "192.0.2.77" not in str(event.canonical_fields())

    def test_no_allauth_rate_limit_is_keyed_by_client_address(self):
        for action, rates in account_settings.RATE_LIMITS.items():
            assert all(rate.per != "ip" for rate in parse_rates(rates)), action


class TestSessionLimits:
    def test_idle_limit_is_the_session_age_renewed_by_each_request(self, make_staff):
        staff = make_staff("auditor")
        client = Client()
        with time_machine.travel(dt.datetime.now(tz=dt.UTC), tick=False) as traveller:
            sign_in(client, staff)
            assert client.session.get_expiry_age() == settings.SESSION_IDLE_SECONDS
            assert client.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == ""  # gone when the browser closes

            traveller.shift(settings.SESSION_IDLE_SECONDS - 60)
            assert client.get("/audit/").status_code == 200  # still active: the limit starts again
            traveller.shift(settings.SESSION_IDLE_SECONDS - 60)
            assert client.get("/audit/").status_code == 200

            traveller.shift(settings.SESSION_IDLE_SECONDS + 1)
            response = client.get("/audit/")
            assert response.status_code == 302 and response["Location"].startswith(LOGIN)

    def test_absolute_limit_ends_an_active_session(self, make_staff):
        staff = make_staff("auditor")
        client = Client()
        step = settings.SESSION_IDLE_SECONDS - 60
        with time_machine.travel(dt.datetime.now(tz=dt.UTC), tick=False) as traveller:
            sign_in(client, staff)
            elapsed = 0
            while elapsed + step <= settings.SESSION_ABSOLUTE_SECONDS:
                traveller.shift(step)
                elapsed += step
                assert client.get("/audit/").status_code == 200, elapsed

            traveller.shift(settings.SESSION_ABSOLUTE_SECONDS - elapsed + 1)
            response = client.get("/audit/")

        assert (response.status_code, response["Location"]) == (302, "/accounts/login/?next=/audit/")
        assert not signed_in(client)
        assert actions_for(staff.user)[-2:] == [Action.USER_SESSION_EXPIRED, Action.USER_LOGOUT]
        assert b"Your session has expired" in client.get(LOGIN).content


class TestStoredSecrets:
    def test_passwords_are_hashed_with_argon2(self, make_staff, settings):
        settings.PASSWORD_HASHERS = PRODUCTION_HASHERS
        staff = make_staff("analyst")
        algorithm, params, *_ = staff.user.password.split("$")
        assert (algorithm, params) == ("argon2", "argon2id")
        assert staff.user.check_password(PASSWORD)

    def test_an_older_hash_is_upgraded_at_sign_in(self, make_staff):
        staff = make_staff("analyst")
        old_hash = PBKDF2PasswordHasher().encode(PASSWORD, "staticsalt1234", iterations=1000)
        User.objects.filter(pk=staff.user.pk).update(password=old_hash)
        sign_in(Client(), staff)
        staff.user.refresh_from_db()
        assert staff.user.password.startswith("argon2$")


class TestSecurityHeaders:
    @pytest.mark.parametrize("path", ["/", "/accounts/login/"])
    def test_headers_on_a_page(self, db, path):
        response = Client().get(path, secure=True)

        assert response.status_code == 200
        directives = [part.split() for part in response["Content-Security-Policy"].split(";")]
        csp = {name: sources for name, *sources in directives}
        assert csp["default-src"] == ["'none'"]
        assert csp["script-src"][0] == "'self'" and all(s.startswith("'nonce-") for s in csp["script-src"][1:])
        assert csp["style-src"] == ["'self'"]
        assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"]
        assert csp["form-action"] == ["'self'"]
        assert not any("unsafe" in source or source == "*" for sources in csp.values() for source in sources)
        assert response["Strict-Transport-Security"].startswith("max-age=31536000")
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"  # none to other sites; see the browser journeys
        assert response["Cross-Origin-Opener-Policy"] == "same-origin"
        assert response.cookies.get("csrftoken") is None or response.cookies["csrftoken"]["secure"]

    def test_no_hsts_over_plain_http(self, db):
        assert "Strict-Transport-Security" not in Client().get("/")

    def test_session_cookie_is_secure_and_http_only(self, make_staff):
        client = Client()
        response = sign_in(client, make_staff("analyst"))
        cookie = response.cookies[settings.SESSION_COOKIE_NAME]
        assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"


@pytest.mark.django_db
def test_totp_secrets_are_stored_sealed_not_in_clear(make_staff):
    from allauth.mfa.models import Authenticator

    from ntd.demo import totp_secret_of

    staff = make_staff("analyst")
    stored = Authenticator.objects.get(user=staff.user, type=Authenticator.Type.TOTP).data["secret"]
    assert staff.totp_secret not in stored and stored.startswith("sealed:v1:")
    assert totp_secret_of(staff.user) == staff.totp_secret
