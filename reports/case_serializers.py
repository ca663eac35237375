"""Input and output serializers of the staff case API (reports.case_api).

Input serializers parse into what the selectors and services take (TriageFilters, Cursor, AssessmentInput);
output serializers say what a response holds. A person is only ever named by their pseudonym, and a
report never shows its reporter's contact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from reports import selectors
from reports.models import Assessment, Case, ClassificationOption, HostingTrace, PolicyClause, Report, Verdict
from reports.selectors import Cursor, TriageFilters
from reports.services import AssessmentInput
from takedown.models import Partner

PAGE_SIZE, MAX_PAGE_SIZE = 50, 200
SOURCE_KINDS = ("public", *Partner.Kind.values)
COUNTRY = r"^[A-Za-z]{2}$"
COUNTRY_MESSAGE = "Give a two-letter country code (ISO 3166-1 alpha-2), such as NL."
MAX_ID = 2**63 - 1  # a bigint: anything larger could only fail in the database


class StrictInput(serializers.Serializer):
    """An input that refuses names it does not know: a misspelt filter or field is an error, not ignored."""

    repeatable: tuple[str, ...] = ()

    def to_internal_value(self, data: Any) -> Any:
        if not hasattr(data, "keys"):
            raise serializers.ValidationError({"non_field_errors": ["The body must be a JSON object."]})
        errors: dict[str, list[str]] = {}
        for name in data.keys():
            if name not in self.fields:
                errors[name] = ["Unknown parameter." if hasattr(data, "getlist") else "Unknown field."]
            elif hasattr(data, "getlist") and name not in self.repeatable and len(data.getlist(name)) > 1:
                errors[name] = ["Give this parameter once."]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as invalid:
            raise serializers.ValidationError({**invalid.detail, **errors}) from None  # type: ignore[dict-item]
        if errors:
            raise serializers.ValidationError(errors)
        return value


# --- the triage queue: query parameters in, a page out ------------------------------------------------------


@extend_schema_field(OpenApiTypes.STR)
class CursorField(serializers.Field):
    """The `next` link's cursor, opaque to the caller; anything this API did not give out is refused."""

    default_error_messages = {"invalid": "This is not a cursor this API gave out: follow the `next` link."}

    def to_internal_value(self, data: Any) -> Cursor:
        try:
            cursor = Cursor.decode(str(data))
        except ValueError:
            self.fail("invalid")
        if not (-(2**15) <= cursor.priority < 2**15 and 0 < cursor.id <= MAX_ID):
            self.fail("invalid")
        return cursor

    def to_representation(self, value: Cursor) -> str:
        return value.encode()


def _boolean(help_text: str) -> serializers.BooleanField:
    # allow_null: an absent parameter is None ("either"), not False as a form's unticked box would be.
    return serializers.BooleanField(required=False, allow_null=True, default=None, help_text=help_text)


class TriageQueryIn(StrictInput):
    repeatable = ("status",)

    status = serializers.ListField(
        child=serializers.ChoiceField(choices=Case.Status.choices,
                                      error_messages={"invalid_choice": "“{input}” is not a case status."}),
        required=False, default=list, max_length=len(Case.Status.values),
        help_text="Repeat for several. Without it: every open case.")
    source_kind = serializers.ChoiceField(
        choices=SOURCE_KINDS, required=False, default="",
        error_messages={"invalid_choice": "“{input}” is not a source kind."},
        help_text="Cases with a report from this kind of source.")
    reported_country = serializers.RegexField(COUNTRY, required=False, default="",
                                              error_messages={"invalid": COUNTRY_MESSAGE},
                                              help_text="Cases reported by a partner in this country.")
    hosting_country = serializers.RegexField(COUNTRY, required=False, default="",
                                             error_messages={"invalid": COUNTRY_MESSAGE})
    hosting_asn = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0,
                                           max_value=2**32 - 1)
    known_url = _boolean("true: only URLs confirmed elsewhere; false: only the others.")
    child_at_risk = _boolean("true: only cases with a child at immediate risk; false: only the others.")
    queue = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=MAX_ID,
                                     help_text="The id of a queue granted to you.")
    mine = serializers.BooleanField(required=False, default=False, help_text="Only the cases you hold.")
    cursor = CursorField(required=False, allow_null=True, default=None, help_text="From the `next` link.")
    size = serializers.IntegerField(required=False, default=PAGE_SIZE, min_value=1, max_value=MAX_PAGE_SIZE)

    def validate_queue(self, value: int | None) -> int | None:
        """As on the triage page: only a queue granted to the user (context["user"]) is a choice."""
        if value is not None and value not in selectors.readable_queue_ids(self.context["user"]):
            raise serializers.ValidationError("You are not granted a queue with this id.")
        return value

    @property
    def filters(self) -> TriageFilters:
        data = self.validated_data
        return TriageFilters(
            statuses=tuple(data["status"]), source_kind=data["source_kind"],
            reported_country=data["reported_country"].upper(), hosting_country=data["hosting_country"].upper(),
            hosting_asn=data["hosting_asn"], known_url=data["known_url"], child_at_risk=data["child_at_risk"],
            queue=data["queue"], mine=data["mine"],
        )


class CaseItemOut(serializers.Serializer):
    """One case as the triage queue shows it. Reads a row with `.case` and `.sources` (selectors.TriageRow)."""

    reference = serializers.CharField(source="case.reference")
    url = serializers.CharField(source="case.url", help_text="As text: never fetch it.")
    host = serializers.CharField(source="case.host")
    registrable_domain = serializers.CharField(source="case.registrable_domain")
    status = serializers.ChoiceField(source="case.status", choices=Case.Status.choices)
    priority = serializers.IntegerField(source="case.priority", help_text="Higher is more urgent.")
    flags = serializers.SerializerMethodField()
    report_count = serializers.IntegerField(source="case.report_count")
    sources = serializers.ListField(child=serializers.CharField(), help_text="The kinds of source that reported it.")
    first_reported_at = serializers.DateTimeField(source="case.first_reported_at")
    hosting_country = serializers.CharField(source="case.hosting_country")
    holder = serializers.CharField(source="case.assignee.pseudonym", allow_null=True,
                                   help_text="The pseudonym of the analyst who holds the case; null when no one.")

    def get_flags(self, row: Any) -> list[str]:
        """child_at_risk, known_url: whichever apply."""
        return [name for name in ("child_at_risk", "known_url") if getattr(row.case, name)]


class CasePageOut(serializers.Serializer):
    results = CaseItemOut(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next page; null on the last.")


# --- one case: its assessments, reports and latest hosting trace ---------------------------------------------


@dataclass(frozen=True)
class CaseDetail:
    case: Case
    sources: tuple[str, ...]
    assessments: list[Assessment]
    reports: list[Report]
    trace: HostingTrace | None


class QueueOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class VerdictOut(serializers.Serializer):
    code = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label: the metaclass moves it


class AssessmentOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Assessment.Kind.choices)
    verdict = VerdictOut()
    media_type = serializers.CharField(source="media_type.code", allow_null=True)
    age_group = serializers.CharField(source="age_group.code", allow_null=True)
    gender = serializers.CharField(source="gender.code", allow_null=True)
    site_type = serializers.CharField(source="site_type.code", allow_null=True)
    commercial = serializers.BooleanField(allow_null=True)
    clause = serializers.CharField(source="clause.code", allow_null=True)
    rationale = serializers.CharField()
    assessor = serializers.CharField(source="assessor.pseudonym", help_text="The assessor's pseudonym.")
    created_at = serializers.DateTimeField()


class ReportOut(serializers.Serializer):
    reference = serializers.CharField()
    channel = serializers.ChoiceField(choices=Report.Channel.choices)
    source_kind = serializers.CharField()
    received_at = serializers.DateTimeField()


class AddressOut(serializers.Serializer):
    ip = serializers.CharField()
    version = serializers.IntegerField()
    country = serializers.CharField()
    asn = serializers.IntegerField(allow_null=True)
    network = serializers.CharField()
    abuse_contact = serializers.CharField()


class HostingTraceOut(serializers.Serializer):
    traced_at = serializers.DateTimeField()
    host = serializers.CharField()
    outcome = serializers.CharField()
    detail = serializers.CharField()
    cname_chain = serializers.ListField(child=serializers.CharField())
    addresses = AddressOut(many=True)
    source = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.source (see VerdictOut)
    data_date = serializers.CharField()


class CaseOut(CaseItemOut):
    """A case with its history of decisions. Reads a CaseDetail."""

    queue = QueueOut(source="case.queue")
    assessments = AssessmentOut(many=True)
    reports = ReportOut(many=True, help_text="The reports that named the URL (never the reporter's contact).")
    hosting_trace = HostingTraceOut(source="trace", allow_null=True, help_text="The latest; null if never traced.")


# --- an assessment in ---------------------------------------------------------------------------------------


def _code_of(queryset: Any, what: str) -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(
        slug_field="code", queryset=queryset, required=False, allow_null=True, default=None,
        error_messages={"does_not_exist": f"“{{value}}” is not {what} in use.", "invalid": "Give a code."},
    )


class AssessIn(StrictInput):
    verdict = serializers.SlugRelatedField(
        slug_field="code", queryset=Verdict.objects.filter(active=True),
        error_messages={"does_not_exist": "“{value}” is not a verdict in use.", "invalid": "Give a code."},
    )
    media_type = _code_of(ClassificationOption.objects.filter(field="media_type", active=True), "a media type")
    age_group = _code_of(ClassificationOption.objects.filter(field="age_group", active=True), "an age group")
    gender = _code_of(ClassificationOption.objects.filter(field="gender", active=True), "a gender")
    site_type = _code_of(ClassificationOption.objects.filter(field="site_type", active=True), "a site type")
    commercial = serializers.BooleanField(required=False, allow_null=True, default=None)
    clause = serializers.CharField(required=False, allow_null=True, default=None, max_length=32,
                                   help_text="The code of a clause of the verdict's jurisdiction, e.g. BL-1.")
    rationale = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        verdict, code = data["verdict"], data["clause"]
        if code:
            if not verdict.jurisdiction:
                raise serializers.ValidationError({"clause": [f"The verdict “{verdict.label}” relies on no clause."]})
            clause = PolicyClause.objects.filter(jurisdiction=verdict.jurisdiction, code=code, active=True).first()
            if clause is None:
                raise serializers.ValidationError(
                    {"clause": [f"“{code}” is not a clause in use for the verdict “{verdict.label}”."]})
            data["clause"] = clause
        else:
            data["clause"] = None
        return data

    @property
    def assessment(self) -> AssessmentInput:
        return AssessmentInput(**self.validated_data)


class ProblemOut(serializers.Serializer):
    detail = serializers.CharField()
    fields = serializers.DictField(  # type: ignore[assignment]  # a field, not Serializer.fields (see VerdictOut)
        child=serializers.ListField(child=serializers.CharField()), required=False,
        help_text="For a 400: what is wrong, by parameter or field.")
