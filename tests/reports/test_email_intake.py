"""E-mail intake: real messages, signed with a real DKIM key made here. The one stand-in is DNS: dkimpy's
`dnsfunc` answers the key's TXT record from this file instead of the internet."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from ntd.audit import AuditEvent
from reports import email_intake
from reports.models import Case, Report, ReportURL
from takedown.models import Partner, WhitelistedSender

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
HOTLINE = "hotline.example"
TRUSTED = "mx.ntd.test"


class Keys:
    """One RSA key pair per signing domain, published in a dictionary that stands in for DNS."""

    def __init__(self) -> None:
        self.private: dict[str, bytes] = {}
        self.txt: dict[bytes, bytes] = {}

    def publish(self, domain: str, selector: str = "s1") -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private[domain] = key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                                 serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        self.txt[f"{selector}._domainkey.{domain}.".encode()] = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(self, name: bytes, timeout: int = 5) -> bytes | None:
        return self.txt.get(name)


@pytest.fixture(scope="module")
def keys() -> Keys:
    keys = Keys()
    for domain in (HOTLINE, "example.org", "attacker.example", "elsewhere.example"):
        keys.publish(domain)
    return keys


@pytest.fixture
def partners(db: Any) -> dict[str, Partner]:
    hotline = Partner.objects.create(name="Hotline NL", kind=Partner.Kind.HOTLINE, country="NL")
    WhitelistedSender.objects.create(partner=hotline, address=f"reports@{HOTLINE}")
    flagger = Partner.objects.create(name="Example Org", kind=Partner.Kind.TRUSTED_FLAGGER)
    WhitelistedSender.objects.create(partner=flagger, address="@example.org")
    return {"hotline": hotline, "flagger": flagger}


def message(body: str = "Please remove https://bad.example/a\n", *, sender: str = f"reports@{HOTLINE}",
            message_id: str = "<m1@hotline.example>", html: str | None = None,
            attachments: list[tuple[bytes, str, str, str]] = (), headers: list[tuple[str, str]] = ()) -> bytes:
    msg = EmailMessage()
    for name, value in headers:
        msg[name] = value
    msg["From"] = sender
    msg["To"] = "intake@ntd.test"
    msg["Subject"] = "URLs for removal"
    msg["Message-ID"] = message_id
    if body is not None:
        msg.set_content(body)
    if html is not None:
        if body is None:
            msg.set_content(html, subtype="html")
        else:
            msg.add_alternative(html, subtype="html")
    for data, maintype, subtype, filename in attachments:
        if maintype == "text":
            msg.add_attachment(data.decode(), subtype=subtype, filename=filename)
        else:
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=SMTP)


def signed(raw: bytes, keys: Keys, domain: str = HOTLINE, **options: Any) -> bytes:
    return dkim.sign(raw, b"s1", domain.encode(), keys.private[domain],
                     include_headers=[b"from", b"to", b"subject", b"message-id"], **options) + raw


def ingest(raw: bytes, dnsfunc: Any) -> tuple[int, str, str]:
    """Run `manage.py ingest_email` with `raw` on standard input: (exit status, stdout, error message)."""
    out = io.StringIO()
    try:
        call_command("ingest_email", stdin=io.BytesIO(raw), dnsfunc=dnsfunc, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), str(exc)
    return 0, out.getvalue().strip(), ""


def today() -> str:
    return timezone.now().strftime("%Y%m%d")


def nothing_written() -> bool:
    return not (Report.objects.exists() or Case.objects.exists() or AuditEvent.objects.exists())


class TestAccepted:
    def test_a_whitelisted_sender_with_a_valid_dkim_signature_files_a_partner_report(self, keys, partners):
        body = ("Dear colleagues,\n\nplease act on https://bad.example/a and\nhxxp://other[.]example/b?x=1.\n"
                "Thanks, the hotline\n")

        status, reference, _ = ingest(signed(message(body), keys), keys.dns)

        assert status == 0
        report = Report.objects.get()
        assert reference == report.reference
        assert (report.channel, report.partner, report.source_kind) == ("email", partners["hotline"], "hotline")
        assert report.partner_reference == "<m1@hotline.example>"
        assert report.attachment_refused is False and report.description == ""
        assert list(ReportURL.objects.order_by("position").values_list("as_reported", "case__url")) == [
            ("https://bad.example/a", "https://bad.example/a"),
            ("hxxp://other[.]example/b?x=1", "http://other.example/b?x=1"),
        ]
        assert set(Case.objects.values_list("priority", flat=True)) == {50}  # a partner's report
        assert AuditEvent.objects.filter(action="report.received", actor_type="partner").count() == 1

    def test_attachments_are_refused_unread_and_stored_nowhere(self, keys, partners):
        marker = b"PNG-ATTACHMENT-BYTES-7f3a"
        raw = signed(message(attachments=[
            (marker, "image", "png", "photo.png"),
            (b"also https://in-an-attachment.example/x", "text", "plain", "list.txt"),
        ]), keys)

        status, _, _ = ingest(raw, keys.dns)

        assert status == 0
        report = Report.objects.get()
        assert report.attachment_refused is True
        assert list(Case.objects.values_list("url", flat=True)) == ["https://bad.example/a"]
        stored = repr([list(model.objects.values()) for model in (Report, Case, ReportURL, AuditEvent)])
        assert "in-an-attachment" not in stored
        assert marker.decode() not in stored and base64.b64encode(marker).decode() not in stored

    def test_html_only_mail_is_read_as_text_without_tags_scripts_or_link_targets(self, keys, partners):
        html = ('<p>Remove <a href="https://link-target.example/x">this</a>: https://shown.example/y</p>'
                "<script>var u = 'https://script.example/z';</script>")
        raw = signed(message(None, html=html), keys)

        assert ingest(raw, keys.dns)[0] == 0
        assert list(Case.objects.values_list("url", flat=True)) == ["https://shown.example/y"]

    def test_a_domain_whitelist_accepts_every_address_of_the_domain(self, keys, partners):
        raw = signed(message(sender="Anyone <Anyone@Example.org>"), keys, "example.org")

        assert ingest(raw, keys.dns)[0] == 0
        assert Report.objects.get().partner == partners["flagger"]

    def test_a_redelivered_message_files_nothing_new(self, keys, partners):
        raw = signed(message(), keys)
        first = ingest(raw, keys.dns)
        events = AuditEvent.objects.count()

        again = ingest(b"Received: from relay.example by mx.ntd.test\r\n" + raw, keys.dns)

        assert first[0] == again[0] == 0 and first[1] == again[1]
        assert Report.objects.count() == 1 and Case.objects.get().report_count == 1
        assert AuditEvent.objects.count() == events

    @pytest.mark.parametrize("result", [
        f"dkim=pass header.d={HOTLINE} header.s=s1",
        f"spf=fail smtp.mailfrom=x.example; dmarc=pass (p=reject) header.from={HOTLINE}",
    ])
    def test_a_pass_in_our_own_mail_servers_authentication_results_is_trusted(self, keys, partners, settings,
                                                                              result):
        settings.EMAIL_INTAKE_TRUSTED_AUTHSERV_ID = TRUSTED
        raw = message(headers=[("Authentication-Results", f"{TRUSTED}; {result}")])  # no DKIM signature

        assert ingest(raw, keys.dns)[0] == 0
        assert Report.objects.get().partner == partners["hotline"]


class TestRefused:
    def assert_refused(self, status: int, reason: email_intake.Reason) -> None:
        assert status == reason.exit_status
        assert nothing_written()
        assert email_intake.refusals_on(today()) == 1
        assert email_intake.refusals_on(today(), reason) == 1

    def test_an_unknown_sender_is_refused_and_counted(self, keys, partners):
        status, out, error = ingest(signed(message(sender="someone@elsewhere.example"), keys, "elsewhere.example"),
                                    keys.dns)

        self.assert_refused(status, email_intake.Reason.UNKNOWN_SENDER)
        assert status == 67 and out == ""
        assert error == "refused (unknown_sender): the sender is not whitelisted for any partner"

    def test_a_sender_of_an_inactive_partner_is_unknown(self, keys, partners):
        Partner.objects.filter(pk=partners["hotline"].pk).update(is_active=False)

        status, _, _ = ingest(signed(message(), keys), keys.dns)

        self.assert_refused(status, email_intake.Reason.UNKNOWN_SENDER)

    def test_a_message_changed_after_signing_is_refused(self, keys, partners):
        raw = signed(message(), keys).replace(b"https://bad.example/a", b"https://good.example/a")

        status, _, error = ingest(raw, keys.dns)

        self.assert_refused(status, email_intake.Reason.NOT_AUTHENTICATED)
        assert status == 77 and "DKIM" in error

    def test_an_unsigned_message_is_refused(self, keys, partners):
        status, _, _ = ingest(message(), keys.dns)

        self.assert_refused(status, email_intake.Reason.NOT_AUTHENTICATED)

    def test_a_valid_signature_of_another_domain_is_refused(self, keys, partners):
        raw = signed(message(), keys, "attacker.example")  # verifies, but does not speak for hotline.example

        status, _, _ = ingest(raw, keys.dns)

        self.assert_refused(status, email_intake.Reason.NOT_AUTHENTICATED)

    def test_a_signature_covering_only_part_of_the_body_is_refused(self, keys, partners):
        raw = signed(message("Nothing to see.\n"), keys, length=True) + b"https://appended.example/x\r\n"

        status, _, _ = ingest(raw, keys.dns)

        self.assert_refused(status, email_intake.Reason.NOT_AUTHENTICATED)

    def test_authentication_results_are_not_trusted_unless_configured(self, keys, partners, settings):
        settings.EMAIL_INTAKE_TRUSTED_AUTHSERV_ID = ""
        raw = message(headers=[("Authentication-Results", f"{TRUSTED}; dkim=pass header.d={HOTLINE}")])

        status, _, _ = ingest(raw, keys.dns)

        self.assert_refused(status, email_intake.Reason.NOT_AUTHENTICATED)

    @pytest.mark.parametrize("headers", [
        pytest.param([("Authentication-Results", f"mx.evil.example; dkim=pass header.d={HOTLINE}")],
                     id="another-server"),
        pytest.param([("Authentication-Results", f"{TRUSTED}; dkim=fail header.d={HOTLINE}"),
                      ("Authentication-Results", f"{TRUSTED}; dkim=pass header.d={HOTLINE}")],
                     id="a-pass-below-our-servers-topmost-fail"),
        pytest.param([("Authentication-Results", f"{TRUSTED}; dkim=pass header.d=attacker.example")],
                     id="pass-for-another-domain"),
        pytest.param([("Authentication-Results", f'{TRUSTED}; spf=pass reason="dkim=pass header.d={HOTLINE}"')],
                     id="pass-inside-a-quoted-reason"),
    ])
    def test_spoofed_authentication_results_are_refused(self, keys, partners, settings, headers):
        settings.EMAIL_INTAKE_TRUSTED_AUTHSERV_ID = TRUSTED

        status, _, _ = ingest(message(headers=headers), keys.dns)

        self.assert_refused(status, email_intake.Reason.NOT_AUTHENTICATED)

    def test_a_message_without_urls_is_refused(self, keys, partners):
        status, _, _ = ingest(signed(message("Please call us about the case.\n"), keys), keys.dns)

        self.assert_refused(status, email_intake.Reason.NO_URLS)
        assert status == 65

    def test_a_message_over_the_size_limit_is_refused_unread(self, keys, partners, settings):
        settings.EMAIL_INTAKE_MAX_BYTES = 2000
        raw = signed(message("https://bad.example/a\n" + "x" * 3000), keys)

        status, _, error = ingest(raw, keys.dns)

        self.assert_refused(status, email_intake.Reason.TOO_BIG)
        assert status == 73 and "2,000 bytes" in error

    def test_the_same_message_id_with_other_urls_is_refused(self, keys, partners):
        assert ingest(signed(message("https://bad.example/a"), keys), keys.dns)[0] == 0

        status, _, _ = ingest(signed(message("https://bad.example/other"), keys), keys.dns)

        assert status == email_intake.Reason.MESSAGE_ID_REUSED.exit_status
        assert Report.objects.count() == 1 and email_intake.refusals_on(today()) == 1

    def test_refusals_add_up_per_day(self, keys, partners):
        for _ in range(3):
            ingest(message(sender="x@elsewhere.example"), keys.dns)
        ingest(message(), keys.dns)

        assert email_intake.refusals_on(today()) == 4
        assert email_intake.refusals_on(today(), "unknown_sender") == 3
        assert email_intake.refusals_on(today(), "not_authenticated") == 1


class TestTemporaryFailure:
    def test_dns_that_does_not_answer_is_a_temporary_failure_not_a_refusal(self, keys, partners):
        def silent_dns(name: bytes, timeout: int = 5) -> bytes | None:
            raise dkim.DnsTimeoutError("no answer")

        status, _, error = ingest(signed(message(), keys), silent_dns)

        assert status == 75 and "try again later" in error
        assert nothing_written() and email_intake.refusals_on(today()) == 0


def test_a_mail_server_pipe_gets_an_exit_status_and_one_line_on_stderr(partners):
    """End to end: the command as a mail server runs it, the message on its standard input."""
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
    }
    raw = message(sender="stranger@elsewhere.example") + b"\r\n" + b"padding line\r\n" * 20_000  # > one pipe buffer

    done = subprocess.run([sys.executable, "manage.py", "ingest_email"], input=raw, capture_output=True, cwd=ROOT,
                          env=env, timeout=60)

    assert done.returncode == 67, done.stderr
    assert done.stdout == b""
    assert done.stderr.decode().splitlines() == [
        "CommandError: refused (unknown_sender): the sender is not whitelisted for any partner"]
    assert email_intake.refusals_on(today(), "unknown_sender") == 1
