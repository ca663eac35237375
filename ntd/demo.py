"""Demo data for `make run`: one user per role (with a TOTP factor), a few partners. DEBUG only."""

from __future__ import annotations

from dataclasses import dataclass

from allauth.mfa.adapter import get_adapter as get_mfa_adapter
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.conf import settings
from django.db import transaction

from ntd import audit, roles
from ntd.models import User
from takedown.models import HostingNetwork, Partner, PartnerAPIKey, PartnerContact

DEMO_USERS = (
    ("analyst", roles.ANALYST),
    ("analyst2", roles.ANALYST),
    ("supervisor", roles.SUPERVISOR),
    ("welfare", roles.WELFARE_OFFICER),
    ("admin", roles.ADMIN),
    ("auditor", roles.AUDITOR),
)
DEMO_PARTNERS = (
    ("Example Hosting Ltd", Partner.Kind.HOSTING_PROVIDER, "GB"),
    ("Partner Hotline NL", Partner.Kind.HOTLINE, "NL"),
    ("National Police Unit", Partner.Kind.LAW_ENFORCEMENT, "GB"),
    ("International Police Liaison", Partner.Kind.INTERNATIONAL_POLICE, ""),
)
# Where the demo partners get notices (the console mailer of `make run` prints them).
DEMO_CONTACTS = {
    "Example Hosting Ltd": "abuse@hosting.example",
    "Partner Hotline NL": "referrals@hotline-nl.example",
    "National Police Unit": "csam-unit@police.example",
    "International Police Liaison": "liaison@police-international.example",
}
DEMO_NETWORK = (64500, "EXAMPLE-HOSTING-AS")  # a documentation AS number, mapped to the demo host


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    password: str
    totp_secret: str


class DemoRefused(RuntimeError):
    pass


def demo_password(username: str) -> str:
    return f"{username}-demo-pass"


def totp_secret_of(user: User) -> str | None:
    authenticator = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if authenticator is None:
        return None
    return get_mfa_adapter().decrypt(authenticator.data["secret"])


def current_code(secret: str) -> str:
    import time

    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


@transaction.atomic
def seed_demo() -> tuple[list[DemoLogin], str | None]:
    """Create (or refresh) the demo users and partners. Returns the logins and a new partner API key."""
    if not settings.DEBUG:
        raise DemoRefused("seed_demo loads known passwords: it runs only with DEBUG on, never in production.")
    roles.sync_roles()
    logins = []
    for username, role in DEMO_USERS:
        user, _ = User.objects.get_or_create(username=username)
        user.set_password(demo_password(username))
        user.save()
        roles.assign_role(user, role)
        secret = totp_secret_of(user)
        if secret is None:
            secret = generate_totp_secret()
            TOTP.activate(user, secret)
        logins.append(DemoLogin(username, roles.ROLE_LABELS[role], demo_password(username), secret))

    for name, kind, country in DEMO_PARTNERS:
        partner, _ = Partner.objects.get_or_create(name=name, defaults={"kind": kind, "country": country})
        if not partner.contacts.exists():
            PartnerContact.objects.create(partner=partner, channel=PartnerContact.Channel.EMAIL,
                                          email=DEMO_CONTACTS[name], language="en")
    HostingNetwork.objects.get_or_create(asn=DEMO_NETWORK[0], defaults={
        "name": DEMO_NETWORK[1], "partner": Partner.objects.get(name="Example Hosting Ltd")})
    hotline = Partner.objects.get(name="Partner Hotline NL")
    key = None
    if not hotline.api_keys.filter(revoked=False).exists():
        _, key = PartnerAPIKey.objects.create_key(name="demo key", partner=hotline)
    cases = _seed_review(User.objects.filter(username__in=[u for u, _ in DEMO_USERS]))
    audit.record(actor="system", action=audit.Action.DEMO_SEEDED, data={"users": len(logins), "cases": cases})
    return logins, key


DEMO_URLS = [f"https://images.example/gallery/{n}" for n in range(1, 7)] + [
    "http://files.example/share/a1b2", "https://forum.example/t/991"]


def _seed_review(users: object) -> int:
    """Queue grants for the demo analysts and supervisor, four eyes on illegal verdicts, a few reported URLs."""
    from reports.intake import ReportDetails, ReportedURL, file_public_report
    from reports.models import Case, ClassificationOption, PolicyClause, Queue, Verdict, VerdictMapping
    from reports.normalise import normalise
    from reports.scheme import load_scheme
    from reports.services import set_queue_access

    load_scheme(Verdict, ClassificationOption, PolicyClause, VerdictMapping)
    Verdict.objects.filter(outcome=Verdict.Outcome.ILLEGAL).update(four_eyes=True)
    queue = Queue.objects.get(pk=Queue.objects.default_id())
    by_name = {user.username: user for user in users}  # type: ignore[attr-defined]
    set_queue_access(queue, actor="system", perm="work_queue",
                     users=[by_name[n] for n in ("analyst", "analyst2", "supervisor")])
    set_queue_access(queue, actor="system", perm="supervise_queue", users=[by_name["supervisor"]])
    if Case.objects.exists():
        return 0
    filed = file_public_report(urls=[ReportedURL(u, normalise(u)) for u in DEMO_URLS],
                               details=ReportDetails(material_kind="images", encountered_via="website"),
                               contact_email=None)
    return len(filed.outcomes)
