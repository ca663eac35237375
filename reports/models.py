"""Reports (one submission from one source) and cases (one normalised URL while it is handled)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from reports.references import new_reference


def new_report_reference() -> str:
    return new_reference("R")


def new_case_reference() -> str:
    return new_reference("C")


class Priority(models.IntegerChoices):
    """Higher is more urgent. Partner reports come before the public's (DSA Art. 22)."""

    PUBLIC = 10, "Public report"
    PARTNER = 50, "Hotline, police or trusted flagger"
    KNOWN_URL = 80, "Known URL (confirmed elsewhere)"
    CHILD_AT_RISK = 100, "Child at immediate risk"


class MaterialKind(models.TextChoices):
    IMAGES = "images", "Images"
    VIDEOS = "videos", "Videos"
    TEXT = "text", "Text"
    LIVE_STREAM = "live_stream", "Live stream"
    OTHER = "other", "Other"


class EncounteredVia(models.TextChoices):
    WEBSITE = "website", "Website"
    SEARCH_ENGINE = "search_engine", "Search engine"
    EMAIL = "email", "E-mail"
    MESSAGING = "messaging", "Messaging app"
    SOCIAL_MEDIA = "social_media", "Social media"
    LIVE_STREAM = "live_stream", "Live stream"
    PEER_TO_PEER = "peer_to_peer", "Peer-to-peer"
    OTHER = "other", "Other"


class CaseStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    IN_REVIEW = "in_review", "In review"
    AWAITING_SECOND_OPINION = "awaiting_second_opinion", "Awaiting second opinion"
    CONFIRMED = "confirmed", "Confirmed"
    ACTIONING = "actioning", "Actioning"
    AWAITING_AUTHORISATION = "awaiting_authorisation", "Awaiting police authorisation"
    AWAITING_REMOVAL = "awaiting_removal", "Awaiting removal"
    REMOVAL_OBSERVED = "removal_observed", "Removal observed"
    REMOVED = "removed", "Removed"
    UNDER_DISPUTE = "under_dispute", "Under dispute"
    NOT_ILLEGAL = "not_illegal", "Closed: not illegal"
    UNAVAILABLE = "unavailable", "Closed: content no longer available"
    OUT_OF_REMIT = "out_of_remit", "Closed: outside remit"
    CLOSED = "closed", "Closed"


class Case(models.Model):
    Status = CaseStatus

    reference = models.CharField(max_length=16, unique=True, default=new_case_reference, editable=False)
    url = models.TextField(help_text="The canonical URL. Shown as text, never fetched by a page.")
    url_key = models.CharField(max_length=64, help_text="SHA-256 of the canonical URL: the dedup key.")
    host = models.CharField(max_length=255)
    registrable_domain = models.CharField(max_length=255, db_index=True)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.RECEIVED)
    priority = models.SmallIntegerField(choices=Priority.choices, default=Priority.PUBLIC)
    child_at_risk = models.BooleanField(default=False)
    police_referral = models.BooleanField(default=False, help_text="Flagged for a referral to the police.")
    known_url = models.BooleanField(default=False)
    report_count = models.PositiveIntegerField(default=1)
    first_reported_at = models.DateTimeField(default=timezone.now)
    last_reported_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    previous_case = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reappearances",
        help_text="The closed case of the same URL, when the URL came back.",
    )

    class Meta:
        constraints = [
            # One open case per URL: concurrent reports of one URL meet here, not in a check-then-insert.
            models.UniqueConstraint(fields=["url_key"], condition=Q(closed_at__isnull=True),
                                    name="case_one_open_per_url"),
            models.CheckConstraint(condition=Q(status__in=CaseStatus.values), name="case_status_valid"),
        ]
        indexes = [
            models.Index(fields=["url_key"], name="case_url_key_idx"),
            models.Index(fields=["-priority", "first_reported_at", "id"], name="case_urgency_idx",
                         condition=Q(closed_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class Report(models.Model):
    class Channel(models.TextChoices):
        WEB = "web", "Public web form"
        API = "api", "Partner API"
        EMAIL = "email", "Whitelisted e-mail"

    reference = models.CharField(max_length=16, unique=True, default=new_report_reference, editable=False)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    source_kind = models.CharField(max_length=32, help_text="'public', or the partner's kind.")
    partner = models.ForeignKey("takedown.Partner", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="reports")
    partner_reference = models.CharField(max_length=128, blank=True)
    request_digest = models.CharField(max_length=64, blank=True,
                                      help_text="SHA-256 of the partner's request, for idempotent retries.")
    material_kind = models.CharField(max_length=16, choices=MaterialKind.choices, blank=True)
    encountered_via = models.CharField(max_length=16, choices=EncounteredVia.choices, blank=True)
    encountered_at = models.DateTimeField(null=True, blank=True)
    description = models.TextField(max_length=2000, blank=True)
    child_at_risk = models.BooleanField(default=False)
    contact_sealed = models.BinaryField(null=True, blank=True, editable=False,
                                        help_text="The reporter's e-mail, encrypted (evidence.crypto).")
    status_secret_digest = models.CharField(max_length=64, blank=True, editable=False)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    content_hashes = models.JSONField(default=list, blank=True,
                                      help_text="Opaque hash values supplied by a partner (never media).")
    attachment_refused = models.BooleanField(default=False)
    url_count = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    cases = models.ManyToManyField(Case, through="ReportURL", related_name="reports")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["partner", "partner_reference"], condition=~Q(partner_reference=""),
                                    name="report_partner_reference_unique"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def is_identified(self) -> bool:
        return self.contact_sealed is not None


class ReportURL(models.Model):
    """One URL as a report named it, and the case it went into (new, or joined)."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="urls")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="report_urls")
    position = models.PositiveIntegerField()
    as_reported = models.CharField(max_length=2048)
    opened_case = models.BooleanField(help_text="True when this report opened the case, False when it joined it.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["report", "position"], name="reporturl_position_unique")]
        indexes = [models.Index(fields=["case", "report"], name="reporturl_case_idx")]

    def __str__(self) -> str:
        return f"{self.report_id}#{self.position}"


class KnownURL(models.Model):
    """A URL already confirmed elsewhere (e.g. a partner hotline's list): a match gets top priority."""

    url = models.TextField()
    url_key = models.CharField(max_length=64, unique=True)
    registrable_domain = models.CharField(max_length=255)
    source = models.CharField(max_length=200, help_text="Where the entry came from, e.g. the list's name.")
    active = models.BooleanField(default=True)
    added_at = models.DateTimeField(default=timezone.now)
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")

    class Meta:
        verbose_name = "known URL"

    def __str__(self) -> str:
        return self.url
