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
    AWAITING_DECISION = "awaiting_decision", "Assessments disagree: supervisor decides"
    OUT_OF_REMIT = "out_of_remit", "Closed: outside remit"
    CLOSED = "closed", "Closed"


CLOSED_STATUSES = frozenset({CaseStatus.NOT_ILLEGAL, CaseStatus.UNAVAILABLE, CaseStatus.OUT_OF_REMIT,
                             CaseStatus.CLOSED})
# What "next case" hands out: new cases, and cases waiting for a second analyst.
CLAIMABLE_STATUSES = (CaseStatus.RECEIVED, CaseStatus.AWAITING_SECOND_OPINION)


class QueueManager(models.Manager["Queue"]):
    def default_id(self) -> int:
        """The queue new cases start in; recreated as "General" if an admin left none marked default."""
        found = self.filter(is_default=True).values_list("id", flat=True).first()
        if found is None:
            found = self.get_or_create(slug="general", defaults={"name": "General", "is_default": True})[0].pk
        return found


def default_queue_id() -> int:
    return Queue.objects.default_id()


class Queue(models.Model):
    """A team's or a jurisdiction's share of the cases. Analysts see the queues they are granted (guardian)."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    description = models.TextField(blank=True)
    hosting_countries = models.JSONField(
        default=list, blank=True,
        help_text="ISO 3166 codes. A traced case hosted in one of them moves here from the default queue.",
    )
    is_default = models.BooleanField(default=False, help_text="New cases start here.")

    objects = QueueManager()

    class Meta:
        ordering = ["name"]
        permissions = [
            ("work_queue", "Can work the cases of this queue"),
            ("supervise_queue", "Can supervise this queue"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="queue_one_default"),
        ]

    def __str__(self) -> str:
        return self.name


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
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="cases", default=default_queue_id)
    # The claim: who works the case, and until when it is theirs without activity.
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="claimed_cases")
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=200, blank=True, db_default="")
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="duplicates")
    # Where it is hosted, from the latest hosting trace (the trace itself is a HostingTrace row).
    traced_at = models.DateTimeField(null=True, blank=True)
    hosting_country = models.CharField(max_length=2, blank=True, db_default="")
    hosting_asn = models.BigIntegerField(null=True, blank=True)
    hosting_network = models.CharField(max_length=200, blank=True, db_default="")
    hosting_partner = models.ForeignKey("takedown.Partner", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="hosted_cases")

    class Meta:
        permissions = [
            ("work_case", "Can take, claim, release and assess cases in granted queues"),
            ("supervise_case", "Can reassign, decide disagreements, close duplicates and reopen cases"),
            ("reveal_reporter_contact", "Can reveal a reporter's contact (audited, with a reason)"),
            ("view_all_cases", "Can read every case in every queue, changing nothing (auditors; each view audited)"),
        ]
        constraints = [
            # One open case per URL: concurrent reports of one URL meet here, not in a check-then-insert.
            models.UniqueConstraint(fields=["url_key"], condition=Q(closed_at__isnull=True),
                                    name="case_one_open_per_url"),
            models.CheckConstraint(condition=Q(status__in=CaseStatus.values), name="case_status_valid"),
        ]
        indexes = [
            models.Index(fields=["url_key"], name="case_url_key_idx"),
            # The triage list in urgency order; the queue is checked in the index (a small queue reads few rows).
            models.Index(fields=["-priority", "first_reported_at", "id", "queue"], name="case_urgency_idx",
                         condition=Q(closed_at__isnull=True)),
            # "Next case": the most urgent unclaimed case in urgency order; the queue is checked in the index.
            models.Index(fields=["-priority", "first_reported_at", "id", "queue"], name="case_claimable_idx",
                         condition=Q(assignee__isnull=True, status__in=CLAIMABLE_STATUSES)),
            # Counts per status on the dashboard (capped, so each is a short index range).
            models.Index(fields=["status", "queue"], name="case_open_status_idx", condition=Q(closed_at__isnull=True)),
            models.Index(fields=["claim_expires_at"], name="case_claim_expiry_idx",
                         condition=Q(assignee__isnull=False)),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def is_claimable(self) -> bool:
        """Waiting for an analyst and held by no one."""
        return self.assignee_id is None and self.status in CLAIMABLE_STATUSES


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


# --- The classification scheme: data that admins edit (seeded with INHOPE-style values) ---------------------


class Verdict(models.Model):
    """A decision an assessment can reach. Its outcome (in code) drives the life cycle; the rest is policy."""

    class Outcome(models.TextChoices):
        ILLEGAL = "illegal", "Illegal: act on it"
        NOT_ILLEGAL = "not_illegal", "Not illegal: close"
        UNAVAILABLE = "unavailable", "Content no longer available: close"
        OUT_OF_REMIT = "out_of_remit", "Outside remit: close"

    code = models.SlugField(max_length=50, unique=True)
    label = models.CharField(max_length=200)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    jurisdiction = models.CharField(
        max_length=8, blank=True,
        help_text="Whose policy clauses an illegal verdict relies on: INT for the international baseline, "
                  "a country code for national law. Blank: no clause.",
    )
    four_eyes = models.BooleanField(default=False, help_text="A second analyst or a supervisor must agree.")
    order = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["order", "code"]
        constraints = [models.CheckConstraint(condition=Q(outcome__in=["illegal", "not_illegal", "unavailable",
                                                                        "out_of_remit"]),
                                              name="verdict_outcome_valid")]

    def __str__(self) -> str:
        return self.label

    @property
    def needs_clause(self) -> bool:
        return self.outcome == self.Outcome.ILLEGAL and bool(self.jurisdiction)


class ClassificationOption(models.Model):
    """One value of one classification field (media type, apparent age group, gender, site type)."""

    class Field(models.TextChoices):
        MEDIA_TYPE = "media_type", "Media type"
        AGE_GROUP = "age_group", "Apparent age group"
        GENDER = "gender", "Gender"
        SITE_TYPE = "site_type", "Site type"

    field = models.CharField(max_length=16, choices=Field.choices)
    code = models.SlugField(max_length=50)
    label = models.CharField(max_length=200)
    order = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["field", "order", "code"]
        constraints = [models.UniqueConstraint(fields=["field", "code"], name="classification_option_unique")]

    def __str__(self) -> str:
        return self.label


class PolicyClause(models.Model):
    """A clause of policy or law an illegal verdict relies on, kept per jurisdiction."""

    jurisdiction = models.CharField(max_length=8, help_text="INT for the international baseline, or a country code.")
    code = models.CharField(max_length=32, help_text="e.g. 3.1, or § 184b StGB")
    title = models.CharField(max_length=200)
    text = models.TextField(blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["jurisdiction", "code"]
        constraints = [models.UniqueConstraint(fields=["jurisdiction", "code"], name="policy_clause_unique")]

    def __str__(self) -> str:
        return f"{self.jurisdiction} {self.code}: {self.title}"


class VerdictMapping(models.Model):
    """What one verdict means in another scheme, so one assessment feeds several legal outputs."""

    class Scheme(models.TextChoices):
        UK_GRADING = "uk_grading", "UK grading (A/B/C)"
        INDUSTRY = "industry", "Industry classes (A1–B2)"

    verdict = models.ForeignKey(Verdict, on_delete=models.CASCADE, related_name="mappings")
    scheme = models.CharField(max_length=16, choices=Scheme.choices)
    value = models.CharField(max_length=16)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["verdict", "scheme"], name="verdict_mapping_unique")]

    def __str__(self) -> str:
        return f"{self.verdict.code} → {self.get_scheme_display()} {self.value}"


class Assessment(models.Model):
    """One analyst's decision on a case against policy."""

    class Kind(models.TextChoices):
        FIRST = "first", "Assessment"
        SECOND = "second", "Second opinion"
        DECISION = "decision", "Supervisor's decision"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="assessments")
    assessor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assessments")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    verdict = models.ForeignKey(Verdict, on_delete=models.PROTECT, related_name="+")
    media_type = models.ForeignKey(ClassificationOption, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+", limit_choices_to={"field": "media_type"})
    age_group = models.ForeignKey(ClassificationOption, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+", limit_choices_to={"field": "age_group"})
    gender = models.ForeignKey(ClassificationOption, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="+", limit_choices_to={"field": "gender"})
    site_type = models.ForeignKey(ClassificationOption, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+", limit_choices_to={"field": "site_type"})
    commercial = models.BooleanField(null=True, blank=True)
    clause = models.ForeignKey(PolicyClause, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    rationale = models.TextField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.CheckConstraint(condition=Q(kind__in=["first", "second", "decision"]),
                                              name="assessment_kind_valid")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.case_id}: {self.verdict_id}"


class HostingTrace(models.Model):
    """Where a case's host resolved to, and whose networks those are, at one moment."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="traces")
    traced_at = models.DateTimeField(default=timezone.now)
    host = models.CharField(max_length=255)
    outcome = models.CharField(max_length=16, help_text="resolved or unresolvable")
    detail = models.CharField(max_length=200, blank=True)
    cname_chain = models.JSONField(default=list)
    addresses = models.JSONField(default=list, help_text="ip, version, country, asn, network, abuse contact")
    source = models.CharField(max_length=200, help_text="The lookup used and its data.")
    data_date = models.CharField(max_length=32, blank=True, help_text="The date of the lookup's data.")

    class Meta:
        ordering = ["-traced_at", "-id"]
        indexes = [models.Index(fields=["case", "-traced_at"], name="hostingtrace_case_idx")]

    def __str__(self) -> str:
        return f"{self.host} ({self.outcome})"
