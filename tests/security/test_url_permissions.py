"""Every URL pattern, for every role, against an explicit table: every endpoint has an explicit permission.

A new URL fails `test_every_url_for_every_role` until its row is written here. The admin and allauth
families are grouped by prefix so the table stays readable; everything else is one row per route.

Outcomes: an HTTP status, LOGIN (a redirect to the staff sign-in) or "→/path" (any other redirect). The
admin answers anyone it refuses with a redirect to its own login page, ADMIN_LOGIN; that page is one row
of the table: it sends anonymous visitors on to the staff sign-in and gives a signed-in user 403.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib.admin.sites import site as admin_site
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from ntd.models import User
from ntd.roles import ADMIN, ANALYST, AUDITOR, STAFF_ROLES, SUPERVISOR, WELFARE_OFFICER
from reports.models import ClassificationOption, KnownURL, PolicyClause, Queue, Verdict
from takedown.models import HostingNetwork, NoticeTemplate, Partner, PartnerAPIKey, RoutingRule

pytestmark = pytest.mark.django_db

ANONYMOUS, SUPERUSER, PARTNER = "anonymous", "superuser", "partner"
ROLES = (ANONYMOUS, *STAFF_ROLES, SUPERUSER, PARTNER)
LOGIN = "login"
Outcome = int | str


def expect(anonymous: Outcome = LOGIN, *, staff: Outcome, superuser: Outcome | None = None,
           partner: Outcome | None = None, **by_role: Outcome) -> dict[str, Outcome]:
    """One row: `staff` for every staff role not named; the superuser as staff, the partner as anonymous."""
    assert set(by_role) <= set(STAFF_ROLES), by_role
    row = {role: by_role.get(role, staff) for role in STAFF_ROLES}
    row |= {ANONYMOUS: anonymous, SUPERUSER: staff if superuser is None else superuser}
    row[PARTNER] = anonymous if partner is None else partner
    return row


# --- ntd's own pages, the public pages and the API --------------------------------------------------
ROUTES: dict[str, dict[str, Outcome]] = {
    "": expect(200, staff=200),  # the public landing page, or the staff home
    "healthz": expect(200, staff=200),
    "readyz": expect(200, staff=200),
    "audit/": expect(staff=403, auditor=200, superuser=200),
    "audit/cases/<str:reference>/": expect(staff=403, auditor=404, superuser=404),  # a case's timeline
    # Exports (ntd.export_audit_log: the auditor and the superuser). The form, and the timeline page's direct
    # download links; the walk's case reference exists nowhere, so those are a 404 once the permission is checked.
    "audit/export/": expect(staff=403, auditor=200, superuser=200),
    "audit/cases/<str:reference>/export/<str:format>/": expect(staff=403, auditor=404, superuser=404),
    # Prepared exports (ntd.export_audit_log), each only for the user who asked for it: the walk's job id belongs to
    # no job, so it is the same 404 as someone else's job once the permission is checked.
    "audit/exports/<int:pk>/": expect(staff=403, auditor=404, superuser=404),
    "audit/exports/<int:pk>/download/": expect(staff=403, auditor=404, superuser=404),
    # Verifying the audit chain (ntd.verify_audit_log): starting a run takes a POST.
    "audit/verify/": expect(staff=403, auditor=200, superuser=200),
    "audit/verify/start/": expect(staff=403, auditor=405, superuser=405),
    "audit/verify/progress/": expect(staff=403, auditor=200, superuser=200),
    # Public reporting: open to everyone, signed in or not.
    "report/": expect(200, staff=200),
    "report/received/": expect("→/report/", staff="→/report/"),  # without a fresh receipt
    "report/status/": expect(200, staff=200),
    # The partner API: the key and nothing else (DRF says 403 to a caller without credentials).
    "api/v1/partner/whoami/": expect(403, staff=403, partner=200),
    "api/v1/reports/": expect(403, staff=403, partner=405),  # the key gets in; filing takes a POST
    "api/v1/reports/<str:reference>": expect(403, staff=403, partner=404),  # not one of this partner's
    # Review pages. The walk grants no queue, so a case reference is a 404 for those who may look at cases;
    # the actions take a POST (405 to a GET once the permission is checked).
    # The auditor reads every case (and no case of the walk's exists: 404) but may take none (403 on actions).
    "cases/": expect(staff=403, analyst=200, supervisor=200, auditor=200, superuser=200),
    "cases/next/": expect(staff=403, analyst=405, supervisor=405, superuser=405),
    "cases/team/": expect(staff=403, supervisor=200, superuser=200),
    "cases/team/duplicates/": expect(staff=403, supervisor=405, superuser=405),
    "cases/<str:reference>/": expect(staff=403, analyst=404, supervisor=404, auditor=404, superuser=404),
    "cases/<str:reference>/claim/": expect(staff=403, analyst=405, supervisor=405, superuser=405),
    "cases/<str:reference>/release/": expect(staff=403, analyst=405, supervisor=405, superuser=405),
    "cases/<str:reference>/assess/": expect(staff=403, analyst=405, supervisor=405, superuser=405),
    "cases/<str:reference>/trace/": expect(staff=403, analyst=405, supervisor=405, superuser=405),
    "cases/<str:reference>/decide/": expect(staff=403, supervisor=405, superuser=405),
    "cases/<str:reference>/reopen/": expect(staff=403, supervisor=405, superuser=405),
    "cases/<str:reference>/reassign/": expect(staff=403, supervisor=405, superuser=405),
    "cases/<str:reference>/reveal/": expect(staff=403, supervisor=405, superuser=405),
    # Signed links in notices: open to anyone; the walk's token is forged (400 for everyone)
    "n/<str:purpose>/<str:token>/": expect(400, staff=400),
    # The partner notice API: the key and nothing else; answers take a POST
    "api/v1/notices/": expect(403, staff=403, partner=200),
    "api/v1/notices/<str:reference>/": expect(403, staff=403, partner=404),
    "api/v1/^notices/(?P<reference>[^/]+)/acknowledge(?:/)?$": expect(403, staff=403, partner=405),
    "api/v1/^notices/(?P<reference>[^/]+)/removed(?:/)?$": expect(403, staff=403, partner=405),
    "api/v1/^notices/(?P<reference>[^/]+)/dispute(?:/)?$": expect(403, staff=403, partner=405),
    "api/v1/^notices/(?P<reference>[^/]+)/authorise(?:/)?$": expect(403, staff=403, partner=405),
    "api/v1/^notices/(?P<reference>[^/]+)/hold(?:/)?$": expect(403, staff=403, partner=405),
    # Notices on the case page (takedown.views): POST only.
    "cases/tasks/<int:pk>/resolve/": expect(staff=403, supervisor=405, superuser=405),
    "cases/<str:reference>/removal/verified/": expect(staff=403, analyst=405, supervisor=405, superuser=405),
    "cases/<str:reference>/removal/confirm/": expect(staff=403, analyst=405, supervisor=405, superuser=405),
    "cases/<str:reference>/removal/reject/": expect(staff=403, analyst=405, supervisor=405, superuser=405),
    "cases/<str:reference>/notices/send/": expect(staff=403, supervisor=405, superuser=405),
    "cases/<str:reference>/notices/<str:notice>/uphold/": expect(staff=403, supervisor=405, superuser=405),
    "cases/<str:reference>/notices/<str:notice>/withdraw/": expect(staff=403, supervisor=405, superuser=405),
    "cases/<str:reference>/authorisations/<int:pk>/authorise/": expect(staff=403, supervisor=405, superuser=405),
    "cases/<str:reference>/authorisations/<int:pk>/hold/": expect(staff=403, supervisor=405, superuser=405),
    # The staff case API (reports.case_api): view_case to read, work_case to act (GET on an action is 405 once
    # the permission lets the caller in). The walk grants no queue: the list is empty and no case is found.
    "api/v1/cases/": expect(403, staff=403, analyst=200, supervisor=200, auditor=200, superuser=200),
    "api/v1/cases/next/": expect(403, staff=403, analyst=405, supervisor=405, superuser=405),
    "api/v1/cases/<str:reference>/": expect(403, staff=403, analyst=404, supervisor=404, auditor=404,
                                            superuser=404),
    "api/v1/cases/<str:reference>/claim/": expect(403, staff=403, analyst=405, supervisor=405, superuser=405),
    "api/v1/cases/<str:reference>/release/": expect(403, staff=403, analyst=405, supervisor=405, superuser=405),
    "api/v1/cases/<str:reference>/assess/": expect(403, staff=403, analyst=405, supervisor=405, superuser=405),
    # The API's description: signed-in staff and partners (with their key).
    "api/schema/": expect(403, staff=200, partner=200),
    "api/docs/": expect(403, staff=200, partner=200),
}

# --- allauth: /accounts/… -------------------------------------------------------------------------
SIGNED_IN_ELSEWHERE = "→/"  # allauth sends a signed-in user away from the entrance pages
ACCOUNTS: dict[str, dict[str, Outcome]] = {
    "login/": expect(200, staff=SIGNED_IN_ELSEWHERE),
    "logout/": expect(staff=200),  # a confirmation page; signing out takes a POST
    "inactive/": expect(200, staff=200),
    "signup/": expect(200, staff=SIGNED_IN_ELSEWHERE),  # "sign-up is closed"
    "reauthenticate/": expect(staff=200),
    "reauthenticate/code/": expect(staff="→/accounts/reauthenticate/"),  # allauth 65.22: by mailed code, off here
    "reauthenticate/code/confirm/": expect(staff="→/accounts/reauthenticate/code/"),
    "email/": expect(staff=200),
    "confirm-email/": expect(200, staff=200),
    "password/change/": expect(staff=200),
    "password/set/": expect(staff="→/accounts/password/change/"),
    "password/reset/": expect(200, staff=200),
    "password/reset/done/": expect(200, staff=200),
    "password/reset/key/done/": expect(200, staff=200),
    "^password/reset/key/(?P<uidb36>[0-9A-Za-z]+)-(?P<key>.+)/$": expect(200, staff=200),  # "bad token"
    "login/code/confirm/": expect(staff=SIGNED_IN_ELSEWHERE),  # no code was requested
    "^confirm-email/(?P<key>[-:\\w]+)/$": expect(200, staff=200),  # "invalid link"
    "2fa/": expect(staff=200),
    "2fa/authenticate/": expect(staff=SIGNED_IN_ELSEWHERE),  # no sign-in waiting for its code
    "2fa/reauthenticate/": expect(staff=200),
    "2fa/totp/activate/": expect(staff="→/accounts/2fa/totp/deactivate/"),  # already enrolled
    "2fa/totp/deactivate/": expect(staff=200),  # "you cannot deactivate": test_accounts
    "2fa/recovery-codes/generate/": expect(staff=200),
    "2fa/recovery-codes/": expect(staff=404),  # these users have no recovery codes yet
    "2fa/recovery-codes/download/": expect(staff=404),
}

# --- the Django admin: /admin/… ---------------------------------------------------------------------
# What the admin role may do, model by model (ntd.roles.ROLE_PERMISSIONS); other roles never get in.
ADMIN_ROLE_MAY = {
    "ntd/user": {"view", "add", "change"},
    "auth/group": {"view"},
    "takedown/partner": {"view", "add", "change"},
    "takedown/partnerapikey": {"view", "add", "change"},
    "reports/knownurl": {"view", "add", "change"},
    "reports/queue": {"view", "add", "change"},
    "reports/verdict": {"view", "add", "change"},
    "reports/classificationoption": {"view", "add", "change"},
    "reports/policyclause": {"view", "add", "change"},
    "takedown/hostingnetwork": {"view", "add", "change", "delete"},
    "takedown/routingrule": {"view", "add", "change", "delete"},
    "takedown/noticetemplate": {"view", "add", "change"},  # templates are changed or switched off, not deleted
}
# What each admin page needs, by the last part of its route.
ADMIN_PAGE_NEEDS = {"": "view", "add/": "add", "history/": "view", "delete/": "delete", "change/": "view"}
ADMIN_LOGIN = "→/admin/login/"  # the admin refuses: see the row "login/"


def admin_row(*, admin: Outcome, superuser: Outcome, anonymous: Outcome = LOGIN) -> dict[str, Outcome]:
    """Only the admin role and the superuser get into the admin; everyone else is refused."""
    return expect(anonymous, staff=ADMIN_LOGIN, admin=admin, superuser=superuser)


def site_row(*, admin: Outcome, superuser: Outcome) -> dict[str, Outcome]:
    """The admin site's own pages open to anonymous visitors too, and send them to its login page themselves.

    (Model pages are closed to them earlier, by LoginRequiredMiddleware.)
    """
    return admin_row(admin=admin, superuser=superuser, anonymous=ADMIN_LOGIN)


ADMIN_SITE: dict[str, dict[str, Outcome]] = {
    # Anonymous: to the staff sign-in (password and second factor); signed in without the admin: 403.
    "login/": expect(LOGIN, staff=403, admin="→/admin/", superuser="→/admin/"),
    "": site_row(admin=200, superuser=200),
    "logout/": expect(ADMIN_LOGIN, staff="→/admin/", admin=405, superuser=405),  # signing out takes a POST
    "password_change/": site_row(admin=200, superuser=200),
    "password_change/done/": site_row(admin=200, superuser=200),
    "autocomplete/": site_row(admin=403, superuser=403),  # needs the field it completes
    "jsi18n/": site_row(admin=200, superuser=200),
    "r/<path:content_type_id>/<path:object_id>/": site_row(admin=404, superuser=404),  # no public page
    "(?P<url>.*)$": site_row(admin=404, superuser=404),
    "reports/knownurl/import/": admin_row(admin=200, superuser=200),  # needs add and change
}
# One index page per app with models in the admin (the pattern lists them; filled with "ntd").
ADMIN_APP_INDEX = site_row(admin=200, superuser=200)
# Tables that stay empty: axes keeps its counters in the cache (no client address is stored anywhere).
ADMIN_EMPTY = {"axes/accessattempt", "axes/accesslog", "axes/accessfailurelog"}
# Pages no one gets, not even a superuser: axes writes its rows alone; known URLs are deactivated, not deleted.
# Queues and the classification scheme are retired, never deleted: cases and assessments point at them.
ADMIN_NEVER = {("add", model) for model in ADMIN_EMPTY} | {("delete", f"reports/{model}") for model in (
    "knownurl", "queue", "verdict", "classificationoption", "policyclause")}
CHANGE_PAGE = "→its change page"  # the bare object URL redirects there before any check


def admin_expectation(route: str) -> dict[str, Outcome]:
    if route in ADMIN_SITE:
        return ADMIN_SITE[route]
    if route.startswith("^(?P<app_label>"):
        return ADMIN_APP_INDEX
    model_page = re.fullmatch(r"(\w+/\w+)/(|add/|<id>/password/|<path:object_id>/(?:|history/|delete/|change/))", route)
    if model_page is None:
        raise KeyError(route)  # a page the rules below do not know: give it a row in ADMIN_SITE
    model, page = model_page.groups()
    if page == "<path:object_id>/":
        return admin_row(admin=CHANGE_PAGE, superuser=CHANGE_PAGE)
    if page == "<id>/password/":
        return admin_row(admin=200, superuser=200)
    need = ADMIN_PAGE_NEEDS[page.removeprefix("<path:object_id>/")]
    admin: Outcome = 200 if need in ADMIN_ROLE_MAY.get(model, set()) else 403
    superuser: Outcome = 403 if (need, model) in ADMIN_NEVER else 200
    if model in ADMIN_EMPTY and page.startswith("<path:object_id>/"):
        # "no such row", and back to the index (the history page looks for the row before the permission)
        superuser = "→/admin/"
        admin = "→/admin/" if page.endswith("history/") else admin
    return admin_row(admin=admin, superuser=superuser)


FAMILIES: dict[str, Callable[[str], dict[str, Outcome]]] = {
    "accounts/": lambda route: ACCOUNTS[route],
    "admin/": admin_expectation,
}


def expected(route: str) -> dict[str, Outcome]:
    if route in ROUTES:
        return ROUTES[route]
    for prefix, family in FAMILIES.items():
        if route.startswith(prefix):
            return family(route.removeprefix(prefix))
    raise KeyError(route)


def table_rows() -> set[str]:
    """Every route the table names, to catch rows left behind by a URL that is gone."""
    return {*ROUTES, *("accounts/" + r for r in ACCOUNTS), *("admin/" + r for r in ADMIN_SITE)}


# --- walking the URLconf --------------------------------------------------------------------------
def walk(resolver: URLResolver | None = None, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern), entry


CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")
NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def fill(route: str, values: dict[str, str]) -> str:
    """A concrete URL for `route`: each parameter from `values`, by name and route."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return values.get(f"{route}:{name}") or values[name]

    bare = re.sub(r"(^|/)\^|\$$", r"\1", route)  # a regex pattern's anchors, wherever it was included
    bare = bare.replace("(?:/)?", "")  # an optional trailing slash (takedown.api_urls)
    return "/" + CONVERTER.sub(value, NAMED_GROUP.sub(value, bare))


def admin_object_values(objects: list[Model]) -> dict[str, str]:
    """The admin's <object_id> for each registered model: the key of a row that exists."""
    values = {}
    by_model = {type(obj): obj for obj in objects}
    for model in admin_site._registry:
        prefix = f"admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert model in by_model or prefix.removeprefix("admin/")[:-1] in ADMIN_EMPTY, (
            f"{model.__name__} is in the admin: give url_values a row of it, so its pages are really walked")
        pk = str(by_model[model].pk) if model in by_model else "1"
        for page in ("", "history/", "delete/", "change/"):
            values[f"{prefix}<path:object_id>/{page}:object_id"] = pk
        values[f"{prefix}<id>/password/:id"] = pk
    return values


def outcome(client: Client, url: str) -> Outcome:
    response = client.get(url)
    if response.status_code not in (301, 302):
        return response.status_code
    location = response["Location"].split("?")[0]
    if location == settings.LOGIN_URL or location == "/accounts/login/":
        return LOGIN
    return "→" + location


@pytest.fixture
def client_for_role(make_staff: Any, partner_key: tuple[Partner, str]) -> Callable[[str], Client]:
    """A client for one column of the table: signed in (both factors done), anonymous, or holding the key."""
    def make(role: str) -> Client:
        if role == ANONYMOUS:
            return Client()
        if role == PARTNER:
            return Client(headers={"X-Api-Key": partner_key[1]})
        if role == SUPERUSER:
            user = make_staff(None, username="root", is_superuser=True, is_staff=True).user
        else:
            user = make_staff(role).user
        client = Client()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return client

    return make


@pytest.fixture
def url_values(make_staff: Any, partner_key: tuple[Partner, str]) -> dict[str, str]:
    partner = partner_key[0]
    user = make_staff(ANALYST, username="subject").user
    objects: list[Model] = [
        user,
        Group.objects.get(name=ANALYST),
        APIKey.objects.create_key(name="unbound")[0],
        EmailAddress.objects.create(user=user, email="subject@example.org", verified=True, primary=True),
        Authenticator.objects.get(user=user),
        partner,
        PartnerAPIKey.objects.get(partner=partner),
        KnownURL.objects.create(url="https://known.example/a", url_key="0" * 64,
                                registrable_domain="known.example", source="walk"),
        Queue.objects.get(pk=Queue.objects.default_id()),
        Verdict.objects.get_or_create(code="walk", defaults={"label": "Walk", "outcome": "not_illegal"})[0],
        ClassificationOption.objects.get_or_create(field="gender", code="walk", defaults={"label": "Walk"})[0],
        PolicyClause.objects.get_or_create(jurisdiction="INT", code="walk", defaults={"title": "Walk"})[0],
        HostingNetwork.objects.create(asn=64500, name="walk", partner=Partner.objects.create(
            name="Walk host", kind=Partner.Kind.HOSTING_PROVIDER)),
        RoutingRule.objects.create(position=999, situation=RoutingRule.Situation.UNKNOWN,
                                   send_to=RoutingRule.Target.SUPERVISOR),
        NoticeTemplate.objects.get_or_create(kind="takedown", language="zz",
                                             defaults={"subject": "Walk", "body": "Walk"})[0],
    ]
    return {
        **admin_object_values(objects),
        "content_type_id": str(ContentType.objects.get_for_model(Partner).pk),
        "object_id": str(partner.pk),
        "app_label": "ntd",
        "url": "no-such-page/",
        "key": "not-a-key",
        "uidb36": "1",
        "reference": "NO-SUCH-REFERENCE",
        "notice": "N-NO-SUCH",
        "purpose": "acknowledge",
        "token": "not-a-token",
        "format": "csv",  # an export format (audit/cases/<reference>/export/<format>/)
        "pk": "999999",  # a prepared export that does not exist (audit/exports/<pk>/)
    }


@pytest.fixture(autouse=True)
def _fast_hashing(settings: Any) -> None:
    """This walk signs nobody in with a password; the users it creates need no slow hash."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]




def test_every_url_for_every_role(client_for_role: Callable[[str], Client], url_values: dict[str, str]) -> None:
    clients = {role: client_for_role(role) for role in ROLES}
    missing, wrong, walked = [], [], set()
    for route, pattern in walk():
        walked.add(route)
        url = fill(route, url_values)
        assert resolve(url).func is pattern.callback, f"{url} does not reach {route}"
        try:
            row = expected(route)
        except KeyError:
            missing.append(route)
            continue
        for role in ROLES:
            want = "→" + url + "change/" if row[role] == CHANGE_PAGE else row[role]
            got = outcome(clients[role], url)
            if got != want:
                wrong.append(f"{role:16} GET {url:60} expected {want!s:>8}, got {got}")

    assert not missing, "every endpoint has an explicit permission; add these to the table:\n" + "\n".join(missing)
    assert not wrong, "\n".join(wrong)
    assert table_rows() <= walked, f"rows for URLs that no longer exist: {sorted(table_rows() - walked)}"


# --- writes by the wrong role ---------------------------------------------------------------------
def _counts() -> dict[str, int]:
    return {"users": User.objects.count(), "partners": Partner.objects.count(),
            "groups": Group.objects.count(), "factors": Authenticator.objects.count()}


@pytest.mark.parametrize(("role", "path", "refused"), [
    (ANALYST, "/admin/ntd/user/add/", 403),
    (AUDITOR, "/admin/takedown/partner/add/", 403),
    (SUPERVISOR, "/admin/ntd/user/{user}/change/", 403),
    (WELFARE_OFFICER, "/admin/auth/group/{group}/delete/", 403),
    (ADMIN, "/admin/ntd/user/{user}/delete/", 403),  # the admin role adds and changes users, never deletes
    (ADMIN, "/admin/auth/group/{group}/change/", 403),  # roles are code (ntd.roles), read-only here
    (ADMIN, "/admin/mfa/authenticator/{totp}/delete/", 403),
    (ANONYMOUS, "/admin/ntd/user/add/", LOGIN),
    (PARTNER, "/admin/takedown/partner/add/", LOGIN),
    (PARTNER, "/api/v1/partner/whoami/", 405),
    (ANALYST, "/api/v1/reports/", 403),  # a session is not a partner key
    (ANONYMOUS, "/audit/", LOGIN),
    (AUDITOR, "/audit/", 405),
])
def test_wrong_role_cannot_change_state(client_for_role: Callable[[str], Client], url_values: dict[str, str],
                                        role: str, path: str, refused: Outcome) -> None:
    subject = User.objects.get(username="subject")
    ids = {"user": subject.pk, "group": Group.objects.get(name=ANALYST).pk,
           "totp": Authenticator.objects.get(user=subject).pk}
    client = client_for_role(role)
    before = _counts()
    data = {"username": "intruder", "password1": "x" * 20, "password2": "x" * 20, "name": "Rogue hotline",
            "kind": "hotline", "country": "NL", "post": "yes", "urls": ["https://example.org/"]}

    response = client.post(path.format(**ids), data)

    got: Outcome = response.status_code
    if response.status_code == 302:
        location = response["Location"].split("?")[0]
        got = LOGIN if location == "/accounts/login/" else response.status_code
        if location == "/admin/login/":
            got = outcome(client, response["Location"])
    assert got == refused
    assert _counts() == before
    subject.refresh_from_db()
    assert subject.username == "subject" and subject.is_active


# --- the partner key --------------------------------------------------------------------------------
@pytest.mark.parametrize("spoil", [None, "revoked", "expired", "partner_inactive", "wrong_secret", "bearer"])
def test_partner_key_opens_the_partner_api_only_while_valid(partner_key: tuple[Partner, str], spoil: str | None):
    partner, key = partner_key
    api_key = PartnerAPIKey.objects.get(partner=partner)
    headers = {"X-Api-Key": key}
    if spoil == "revoked":
        PartnerAPIKey.objects.filter(pk=api_key.pk).update(revoked=True)
    elif spoil == "expired":
        PartnerAPIKey.objects.filter(pk=api_key.pk).update(expiry_date=timezone.now() - dt.timedelta(seconds=1))
    elif spoil == "partner_inactive":
        Partner.objects.filter(pk=partner.pk).update(is_active=False)
    elif spoil == "wrong_secret":
        headers = {"X-Api-Key": key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")}
    elif spoil == "bearer":
        headers = {"Authorization": f"Api-Key {key}"}  # the header ntd reads is X-Api-Key, nothing else

    response = Client(headers=headers).get("/api/v1/partner/whoami/")

    if spoil is None:
        assert response.status_code == 200
        assert response.json() == {"partner": partner.name, "kind": "hotline", "country": "NL"}
    else:
        assert response.status_code == 403
