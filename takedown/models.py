import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey


class Partner(models.Model):
    """An organisation ntd deals with: a host, a hotline, police, a registrar, a platform team."""

    audit_actor_type = "partner"

    class Kind(models.TextChoices):
        HOSTING_PROVIDER = "hosting_provider", "Hosting provider"
        HOTLINE = "hotline", "Hotline"
        LAW_ENFORCEMENT = "law_enforcement", "Law enforcement"
        REGISTRAR = "registrar", "Registrar"
        PLATFORM_TEAM = "platform_team", "Internal platform team"
        TRUSTED_FLAGGER = "trusted_flagger", "Trusted flagger"
        INTERNATIONAL_POLICE = "international_police", "International police liaison"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2, upper case.")
    inhope_member = models.BooleanField(default=False, verbose_name="INHOPE member")
    languages = models.CharField(max_length=64, blank=True,
                                 help_text="Languages for notices, as ISO 639-1 codes separated by commas.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Hotline-to-hotline exchange: a partner hotline that runs ntd gets our referrals as reports in its own ntd.
    runs_ntd = models.BooleanField(default=False, verbose_name="runs ntd",
                                   help_text="Referrals go to their ntd's partner API instead of e-mail or webhook.")
    ntd_url = models.URLField(blank=True, verbose_name="their ntd address",
                              help_text="The address of their ntd, e.g. https://ntd.hotline.example")
    ntd_api_key_sealed = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["hosting_provider", "hotline", "law_enforcement", "registrar",
                                             "platform_team", "trusted_flagger", "international_police"]),
                name="partner_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        self.country = self.country.upper()
        if self.country and not (len(self.country) == 2 and self.country.isalpha()):
            raise ValidationError({"country": "Use the two-letter ISO 3166-1 code, e.g. NL."})
        codes = [c.strip().lower() for c in self.languages.split(",") if c.strip()]
        if any(len(c) != 2 or not c.isalpha() for c in codes):
            raise ValidationError({"languages": "Use two-letter ISO 639-1 codes separated by commas, e.g. en,nl."})
        self.languages = ",".join(codes)


class PartnerContact(models.Model):
    """Where a partner receives notices: by e-mail, by signed webhook or both, in a language, at some hours."""

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"
        BOTH = "both", "E-mail and webhook"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="contacts")
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    email = models.EmailField(blank=True, verbose_name="e-mail address")
    webhook_url = models.URLField(blank=True, max_length=500, verbose_name="webhook URL",
                                  help_text="An https:// address; ntd signs every request (Standard Webhooks).")
    # The signing secret, sealed with the deployment keys; shown once, when it is made.
    webhook_secret_sealed = models.BinaryField(null=True, blank=True, editable=False)
    language = models.CharField(max_length=2, blank=True, help_text="ISO 639-1, e.g. en. Empty: the partner's first.")
    around_the_clock = models.BooleanField(default=True, help_text="Reachable at any hour, any day.")
    hours_start = models.TimeField(null=True, blank=True, verbose_name="business hours from")
    hours_end = models.TimeField(null=True, blank=True, verbose_name="business hours until")
    working_days = models.CharField(max_length=20, default="0,1,2,3,4",
                                    help_text="Days of the week, 0 = Monday, separated by commas.")
    time_zone = models.CharField(max_length=64, default="UTC", help_text="An IANA time zone, e.g. Europe/Amsterdam.")
    holidays_country = models.CharField(max_length=2, blank=True,
                                        help_text="Public holidays of this country are not business days.")
    holidays_subdivision = models.CharField(max_length=10, blank=True)
    out_of_hours = models.BooleanField(default=False, help_text="The contact for outside business hours.")
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(channel__in=["email", "webhook", "both"]),
                                   name="partnercontact_channel_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.partner}: {self.email or self.webhook_url}"

    @property
    def sends_email(self) -> bool:
        return self.channel in (self.Channel.EMAIL, self.Channel.BOTH)

    @property
    def sends_webhook(self) -> bool:
        return self.channel in (self.Channel.WEBHOOK, self.Channel.BOTH)


class WhitelistedSender(models.Model):
    """An address (abuse@example.org) or a whole domain (@example.org) a partner sends reports from."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="senders")
    address = models.CharField(max_length=254, unique=True,
                               help_text="A full address, or @domain for every address of that domain.")

    def __str__(self) -> str:
        return self.address

    def clean(self) -> None:
        from django.core.exceptions import ValidationError
        from django.core.validators import validate_email

        self.address = self.address.strip().lower()
        if self.address.startswith("@"):
            validate_email("x" + self.address)
        else:
            try:
                validate_email(self.address)
            except ValidationError:
                raise ValidationError({"address": "Enter an e-mail address, or @domain for a whole domain."}) from None


class PartnerAPIKey(AbstractAPIKey):
    """A hashed API key that lets one partner use the partner API (only the prefix is stored in clear)."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="api_keys")

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "partner API key"


class HostingNetwork(models.Model):
    """A network (autonomous system) mapped to the hosting provider that answers for it."""

    asn = models.BigIntegerField(unique=True, verbose_name="AS number")
    name = models.CharField(max_length=200, blank=True)
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="networks",
                                limit_choices_to={"kind": "hosting_provider"})

    class Meta:
        ordering = ["asn"]

    def __str__(self) -> str:
        return f"AS{self.asn} {self.name}".strip()


class NoticeKind(models.TextChoices):
    TAKEDOWN = "takedown", "Takedown notice"
    HOTLINE_REFERRAL = "hotline_referral", "Referral to a hotline"
    POLICE_REFERRAL = "police_referral", "Referral to police"
    POLICE_INFORMATION = "police_information", "Information to police"
    AUTHORISATION_REQUEST = "authorisation_request", "Request for police authorisation"
    DISPUTE_OUTCOME = "dispute_outcome", "Outcome of a dispute"
    STATUS_UPDATE = "status_update", "Status update to a referring ntd"


# Kinds that concern the material itself: a case gets at most one of each kind per partner.
MATERIAL_KINDS = (NoticeKind.TAKEDOWN, NoticeKind.HOTLINE_REFERRAL, NoticeKind.POLICE_REFERRAL,
                  NoticeKind.POLICE_INFORMATION)


class RoutingRule(models.Model):
    """Who hears about a confirmed case, and how: evaluated in order by `takedown.routing.route`."""

    class Situation(models.TextChoices):
        CHILD_AT_RISK = "child_at_risk", "A child is at immediate risk (always first)"
        DOMESTIC = "domestic", "Hosted in our country"
        HOTLINE_ABROAD = "hotline_abroad", "Hosted abroad, in a country with a partner hotline"
        NO_HOTLINE_ABROAD = "no_hotline_abroad", "Hosted abroad, in a country without a partner hotline"
        UNKNOWN = "unknown", "Hosting unknown"

    class Target(models.TextChoices):
        HOSTING_PROVIDER = "hosting_provider", "The hosting provider of the network"
        NATIONAL_POLICE = "national_police", "Our national police"
        COUNTRY_HOTLINE = "country_hotline", "The partner hotline of the hosting country"
        COUNTRY_POLICE = "country_police", "The police of the hosting country, else the international liaison"
        INTERNATIONAL_POLICE = "international_police", "The international police liaison"
        PARTNER = "partner", "A named partner"
        SUPERVISOR = "supervisor", "A supervisor decides (a task)"

    class Fallback(models.TextChoices):
        SEND = "send", "Send anyway"
        WAIT = "wait", "Keep waiting and alert a supervisor"

    position = models.PositiveIntegerField(default=100, help_text="Rules are applied in this order.")
    situation = models.CharField(max_length=32, choices=Situation.choices)
    country = models.CharField(max_length=2, blank=True, help_text="Only for this hosting country (empty: any).")
    asn = models.BigIntegerField(null=True, blank=True, verbose_name="AS number",
                                 help_text="Only for this hosting network (empty: any).")
    send_to = models.CharField(max_length=32, choices=Target.choices)
    partner = models.ForeignKey(Partner, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                help_text="The partner, when the rule sends to a named partner.")
    notice_kind = models.CharField(max_length=32, choices=NoticeKind.choices, blank=True)
    needs_authorisation = models.BooleanField(
        default=False, help_text="Our national police must authorise this notice before it is sent.")
    authorisation_wait_minutes = models.PositiveIntegerField(default=240)
    authorisation_fallback = models.CharField(max_length=8, choices=Fallback.choices, default=Fallback.WAIT)
    escalate_to = models.ForeignKey(Partner, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                    help_text="The next recipient when this one does not act (an upstream network "
                                              "or registrar).")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return f"{self.get_situation_display()} → {self.get_send_to_display()}"


class NoticeTemplate(models.Model):
    """The words of a notice of one kind in one language: Django template syntax over a fixed context."""

    kind = models.CharField(max_length=32, choices=NoticeKind.choices)
    language = models.CharField(max_length=2, default="en")
    subject = models.CharField(max_length=300)
    body = models.TextField()
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "language"]
        constraints = [models.UniqueConstraint(fields=["kind", "language"], name="noticetemplate_kind_language")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.language})"


def new_notice_reference() -> str:
    from reports.references import new_reference

    return new_reference("N")


class Notice(models.Model):
    """One message to one partner about one or more cases."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"            # open for grouping until sealed_at, then waiting for delivery
        SENT = "sent", "Sent"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        ACTIONED = "actioned", "Removal reported"
        DISPUTED = "disputed", "Disputed"
        FAILED = "failed", "Failed"
        WITHDRAWN = "withdrawn", "Withdrawn"

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"
        BOTH = "both", "E-mail and webhook"
        NTD = "ntd", "Their ntd's partner API"

    reference = models.CharField(max_length=32, unique=True, default=new_notice_reference)
    idempotency_key = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="notices")
    contact = models.ForeignKey(PartnerContact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=32, choices=NoticeKind.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    language = models.CharField(max_length=2, default="en")
    immediate = models.BooleanField(default=False, help_text="Not grouped with later cases (a child at risk).")
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+")  # internal only: never rendered into the notice
    created_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField(help_text="When the grouping window closes and delivery starts.")
    sealed_at = models.DateTimeField(null=True, blank=True)
    # What was sent, exactly (rendered once, when sealed; a retry sends the same bytes with the same ids).
    subject = models.CharField(max_length=300, blank=True)
    body = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    email_to = models.CharField(max_length=254, blank=True)
    webhook_url = models.CharField(max_length=500, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    actioned_at = models.DateTimeField(null=True, blank=True)
    disputed_at = models.DateTimeField(null=True, blank=True)
    dispute_reason = models.TextField(blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    recipient_reference = models.CharField(max_length=128, blank=True,
                                           help_text="The recipient's own reference (their ntd's report).")
    authorisation = models.ForeignKey("PoliceAuthorisation", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="requests")
    cases = models.ManyToManyField("reports.Case", through="NoticeCase", related_name="notices")

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=["queued", "sent", "acknowledged", "actioned", "disputed", "failed",
                                              "withdrawn"]),
                name="notice_state_valid"),
        ]
        indexes = [
            models.Index(fields=["partner", "kind", "state"], name="notice_open_idx",
                         condition=models.Q(state="queued", sealed_at__isnull=True)),
            models.Index(fields=["sent_at"], name="notice_unacknowledged_idx",
                         condition=models.Q(state="sent")),
            models.Index(fields=["state", "created_at"], name="notice_state_idx"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def message_id(self) -> str:
        """The same Message-ID on every delivery attempt, so a repeated e-mail is recognisably one notice."""
        from urllib.parse import urlsplit

        domain = urlsplit(settings.NTD_PUBLIC_URL).hostname or "ntd.invalid"
        return f"<{self.idempotency_key}@{domain}>"

    @property
    def is_open_for_cases(self) -> bool:
        return self.state == self.State.QUEUED and self.sealed_at is None


class NoticeCase(models.Model):
    """A case (its URL) in a notice."""

    notice = models.ForeignKey(Notice, on_delete=models.CASCADE, related_name="items")
    case = models.ForeignKey("reports.Case", on_delete=models.PROTECT, related_name="notice_items")
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=32, choices=NoticeKind.choices)
    added_at = models.DateTimeField(default=timezone.now)
    removal_reported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["notice", "case"], name="noticecase_once"),
            # A case is in at most one notice of a kind to a partner: issuing twice does not notify twice.
            models.UniqueConstraint(fields=["case", "partner", "kind"], name="noticecase_one_per_recipient",
                                    condition=models.Q(kind__in=["takedown", "hotline_referral", "police_referral",
                                                                 "police_information", "authorisation_request"])),
        ]

    def __str__(self) -> str:
        return f"{self.notice_id}: case {self.case_id}"


class OutboxEntry(models.Model):
    """A delivery to do, written in the same transaction as its notice; the relay re-publishes lost ones."""

    notice = models.OneToOneField(Notice, on_delete=models.CASCADE, related_name="outbox")
    due_at = models.DateTimeField()
    published_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["due_at"], name="outbox_pending_idx", condition=models.Q(done_at=None))]

    def __str__(self) -> str:
        return f"delivery of notice {self.notice_id}"


class PoliceAuthorisation(models.Model):
    """Police consent asked for before domestic notices about a case go out."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for the police"
        AUTHORISED = "authorised", "Authorised"
        HELD = "held", "Police asked to hold"
        SENT_WITHOUT = "sent_without", "No answer in time: sent anyway"
        OVERDUE = "overdue", "No answer in time: still waiting"

    case = models.ForeignKey("reports.Case", on_delete=models.PROTECT, related_name="authorisations")
    police = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    # The notices waiting for consent: [{"partner": id, "kind": kind}, ...], issued when it comes.
    pending = models.JSONField(default=list)
    fallback = models.CharField(max_length=8, choices=RoutingRule.Fallback.choices)
    requested_at = models.DateTimeField(default=timezone.now)
    answer_by = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at"]
        indexes = [models.Index(fields=["answer_by"], name="authorisation_due_idx",
                                condition=models.Q(state__in=["pending", "held"]))]

    def __str__(self) -> str:
        return f"police authorisation for case {self.case_id}: {self.state}"


class SupervisorTask(models.Model):
    """Something a supervisor must decide or know: no route, a failed notice, an unanswered authorisation."""

    class Kind(models.TextChoices):
        NO_ROUTE = "no_route", "No recipient found"
        NOTICE_FAILED = "notice_failed", "Notice could not be delivered"
        AUTHORISATION_OVERDUE = "authorisation_overdue", "Police did not answer in time"
        AUTHORISATION_HELD = "authorisation_held", "Police asked to hold"
        DISPUTE = "dispute", "Recipient disputes a notice"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    case = models.ForeignKey("reports.Case", null=True, blank=True, on_delete=models.PROTECT,
                             related_name="supervisor_tasks")
    notice = models.ForeignKey(Notice, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    detail = models.CharField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["created_at"], name="supervisortask_open_idx",
                                condition=models.Q(resolved_at=None))]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.detail}"
