"""Forms of the analysts' and supervisors' pages: triage filters, assessment, reasons, reassignment, duplicates."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from ntd.models import User
from reports.models import Case, ClassificationOption, PolicyClause, Queue, Verdict
from reports.references import clean_reference
from reports.selectors import Cursor, TriageFilters
from reports.services import AssessmentInput

YES_NO = [("", _("Any")), ("yes", _("Yes")), ("no", _("No"))]


class TriageFilterForm(forms.Form):
    status = forms.MultipleChoiceField(label=_("Status"), choices=Case.Status.choices, required=False)
    queue = forms.ModelChoiceField(label=_("Queue"), queryset=Queue.objects.none(), required=False,
                                   empty_label=_("All my queues"))
    source_kind = forms.ChoiceField(label=_("Source"), required=False, choices=[
        ("", _("Any")), ("public", _("Public")), ("hotline", _("Hotline")), ("law_enforcement", _("Police")),
        ("trusted_flagger", _("Trusted flagger")), ("hosting_provider", _("Hosting provider")),
        ("platform_team", _("Platform team")), ("registrar", _("Registrar"))])
    reported_country = forms.CharField(label=_("Reported from (country)"), required=False, max_length=2)
    hosting_country = forms.CharField(label=_("Hosted in (country)"), required=False, max_length=2)
    hosting_asn = forms.IntegerField(label=_("Network (AS number)"), required=False, min_value=0,
                                     max_value=2**32 - 1)
    known_url = forms.ChoiceField(label=_("Known URL"), choices=YES_NO, required=False)
    child_at_risk = forms.ChoiceField(label=_("Child at risk"), choices=YES_NO, required=False)
    mine = forms.BooleanField(label=_("Only cases I hold"), required=False)
    cursor = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, queue_ids: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["queue"].queryset = Queue.objects.filter(pk__in=queue_ids)  # type: ignore[attr-defined]

    def clean_reported_country(self) -> str:
        return _country(self.cleaned_data["reported_country"])

    def clean_hosting_country(self) -> str:
        return _country(self.cleaned_data["hosting_country"])

    def clean_cursor(self) -> Cursor | None:
        text = self.cleaned_data["cursor"]
        if not text:
            return None
        try:
            return Cursor.decode(text)
        except ValueError:
            raise forms.ValidationError(_("That page link is not valid: start again from the first page.")) from None

    def filters(self) -> TriageFilters:
        data = self.cleaned_data
        queue = data.get("queue")
        return TriageFilters(
            statuses=tuple(data.get("status") or ()), source_kind=data.get("source_kind") or "",
            reported_country=data.get("reported_country") or "", hosting_country=data.get("hosting_country") or "",
            hosting_asn=data.get("hosting_asn"), known_url=_yes_no(data.get("known_url")),
            child_at_risk=_yes_no(data.get("child_at_risk")), queue=queue.pk if queue else None,
            mine=bool(data.get("mine")),
        )


def _country(value: str) -> str:
    value = value.strip().upper()
    if value and not (len(value) == 2 and value.isalpha()):
        raise forms.ValidationError(_("Use the two-letter country code, e.g. NL."))
    return value


def _yes_no(value: str | None) -> bool | None:
    return {"yes": True, "no": False}.get(value or "")


class OptionField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.label


class ClauseField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.code} · {obj.title}"


def _options(field: str) -> Any:
    return ClassificationOption.objects.filter(field=field, active=True)


class AssessmentForm(forms.Form):
    verdict = OptionField(label=_("Verdict"), queryset=Verdict.objects.filter(active=True), to_field_name="code",
                          widget=forms.RadioSelect, empty_label=None,
                          error_messages={"required": _("Choose a verdict.")})
    clause = ClauseField(label=_("Clause or law relied on"), required=False,
                         queryset=PolicyClause.objects.filter(active=True), empty_label=_("None"),
                         help_text=_("Needed for an illegal verdict: the clause of the baseline or of national law."))
    media_type = OptionField(label=_("Media type"), queryset=_options("media_type"), to_field_name="code",
                             required=False, empty_label=_("Not recorded"))
    age_group = OptionField(label=_("Apparent age group"), queryset=_options("age_group"), to_field_name="code",
                            required=False, empty_label=_("Not recorded"))
    gender = OptionField(label=_("Gender"), queryset=_options("gender"), to_field_name="code", required=False,
                         empty_label=_("Not recorded"))
    site_type = OptionField(label=_("Site type"), queryset=_options("site_type"), to_field_name="code",
                            required=False, empty_label=_("Not recorded"))
    commercial = forms.NullBooleanField(label=_("Commercial"), required=False, widget=forms.Select(choices=[
        ("unknown", _("Not recorded")), ("true", _("Commercial")), ("false", _("Not commercial"))]))
    rationale = forms.CharField(label=_("Rationale"), required=False, max_length=1000,
                                widget=forms.Textarea(attrs={"rows": 3}),
                                help_text=_("A short reason, in words a colleague or an auditor will follow."))

    def assessment(self) -> AssessmentInput:
        data = self.cleaned_data
        return AssessmentInput(
            verdict=data["verdict"], clause=data.get("clause"), media_type=data.get("media_type"),
            age_group=data.get("age_group"), gender=data.get("gender"), site_type=data.get("site_type"),
            commercial=data.get("commercial"), rationale=data.get("rationale") or "",
        )


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}),
                             error_messages={"required": _("Give a reason: it goes into the case's history.")})


class ReassignForm(ReasonForm):
    to_user = forms.ModelChoiceField(label=_("Give to"), queryset=User.objects.filter(is_active=True),
                                     to_field_name="username",
                                     error_messages={"invalid_choice": _("Choose an analyst from the list.")})


class DuplicatesForm(forms.Form):
    duplicate_of = forms.CharField(label=_("The case they duplicate"), max_length=32,
                                   help_text=_("Its reference, e.g. C-ABCD-EFGH."))
    references = forms.CharField(label=_("Cases to close as duplicates"), widget=forms.Textarea(attrs={"rows": 4}),
                                 help_text=_("References, one per line or separated by spaces."))
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)

    def clean_duplicate_of(self) -> str:
        return clean_reference(self.cleaned_data["duplicate_of"])

    def clean_references(self) -> list[str]:
        refs = [clean_reference(r) for r in self.cleaned_data["references"].replace(",", " ").split()]
        if not refs:
            raise forms.ValidationError(_("Enter at least one reference."))
        if len(refs) > 500:
            raise forms.ValidationError(_("Close at most 500 cases at once."))
        return list(dict.fromkeys(refs))
