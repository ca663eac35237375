from __future__ import annotations

from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from reports.intake import ReportDetails, ReportedURL
from reports.models import EncounteredVia, MaterialKind
from reports.normalise import MAX_URL_LENGTH, InvalidURL, normalise

MAX_URLS = 20
MAX_DESCRIPTION = 2000


class PublicReportForm(forms.Form):
    urls = forms.CharField(
        label=_("Web addresses (URLs)"),
        help_text=_("One per line, up to 20. Copy them from the address bar. Do not send images or videos."),
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "autocapitalize": "off",
                                     "autocomplete": "off"}),
        max_length=MAX_URLS * (MAX_URL_LENGTH + 2),
        error_messages={"required": _("Enter at least one web address."),
                        "max_length": _("That is too much text: enter at most 20 web addresses.")},
    )
    material_kind = forms.ChoiceField(
        label=_("What kind of material is it?"), choices=MaterialKind.choices, widget=forms.RadioSelect,
        error_messages={"required": _("Choose the kind of material.")},
    )
    encountered_via = forms.ChoiceField(
        label=_("How did you come across it?"), choices=[("", _("Choose one")), *EncounteredVia.choices],
        error_messages={"required": _("Choose how you came across it.")},
    )
    encountered_at = forms.DateTimeField(
        label=_("When did you see it? (optional)"), required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        error_messages={"invalid": _("Enter a date and time like 2026-11-25 14:30, or leave it empty.")},
    )
    description = forms.CharField(
        label=_("Anything else we should know? (optional)"), required=False, max_length=MAX_DESCRIPTION,
        help_text=_("At most 2,000 characters. Please do not describe the images in detail."),
        widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={"max_length": _("Keep the description to 2,000 characters or fewer.")},
    )
    child_at_risk = forms.BooleanField(
        label=_("I believe a child is at immediate risk"), required=False,
        help_text=_("We treat the report first and pass it to the police. If a child is in danger right now, "
                    "also call the emergency number."),
    )
    contact = forms.ChoiceField(
        label=_("Do you want an acknowledgement?"),
        choices=[("anonymous", _("No, stay anonymous")), ("email", _("Yes, send it to my e-mail address"))],
        initial="anonymous", widget=forms.RadioSelect,
    )
    email = forms.EmailField(
        label=_("Your e-mail address"), required=False, max_length=254,
        help_text=_("Used only to send the acknowledgement and a code to check the status. Stored encrypted."),
        error_messages={"invalid": _("Enter a valid e-mail address, or choose to stay anonymous.")},
    )
    # Abuse resistance that needs nothing personal: a field people never see, and when the form was shown.
    website = forms.CharField(label=_("Leave this field empty"), required=False)
    stamp = forms.CharField(widget=forms.HiddenInput)
    altcha = forms.CharField(required=False, widget=forms.HiddenInput, max_length=2000)

    def clean_urls(self) -> list[ReportedURL]:
        lines = [line.strip() for line in self.cleaned_data["urls"].splitlines() if line.strip()]
        if not lines:
            raise forms.ValidationError(_("Enter at least one web address."))
        if len(lines) > MAX_URLS:
            raise forms.ValidationError(
                _("You entered %(count)d web addresses; one report takes at most 20. Send the rest in another "
                  "report.") % {"count": len(lines)}
            )
        reported, problems = [], []
        for number, line in enumerate(lines, start=1):
            try:
                reported.append(ReportedURL(line, normalise(line)))
            except InvalidURL as exc:
                problems.append(_("Line %(n)d: %(reason)s") % {"n": number, "reason": exc.reason})
        if problems:
            raise forms.ValidationError(problems)
        return reported

    def clean_encountered_at(self) -> Any:
        value = self.cleaned_data.get("encountered_at")
        if value and value > timezone.now() + timezone.timedelta(minutes=5):
            raise forms.ValidationError(_("That date is in the future."))
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("contact") == "email" and not data.get("email") and "email" not in self.errors:
            self.add_error("email", _("Enter your e-mail address, or choose to stay anonymous."))
        if data.get("contact") == "anonymous":
            data["email"] = ""  # an address typed and then un-chosen is not kept
        if data.get("website"):
            raise forms.ValidationError(_("Your report could not be accepted. Please try again."))
        return data

    def details(self) -> ReportDetails:
        data = self.cleaned_data
        return ReportDetails(
            material_kind=data["material_kind"], encountered_via=data["encountered_via"],
            encountered_at=data.get("encountered_at"), description=data.get("description", ""),
            child_at_risk=bool(data.get("child_at_risk")),
        )


class StatusForm(forms.Form):
    reference = forms.CharField(label=_("Report reference"), max_length=20,
                                help_text=_("For example R-7K3M-QX9P, from the acknowledgement."))
    code = forms.CharField(label=_("Status code"), max_length=64, help_text=_("The code in the acknowledgement."))
