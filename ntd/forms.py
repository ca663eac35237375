"""The auditor's search of the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from ntd.audit import Action
from ntd.selectors import AuditFilters


class AuditSearchForm(forms.Form):
    since = forms.DateField(label=_("From (UTC)"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("Until (UTC, inclusive)"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))
    actor = forms.CharField(label=_("Actor"), required=False, max_length=150,
                            help_text=_("A username, a pseudonym (A-…), a partner's name, or “system”."))
    action = forms.ChoiceField(label=_("Action"), required=False, choices=[("", _("Any")), *Action.choices])
    case = forms.CharField(label=_("Case"), required=False, max_length=32, help_text=_("A reference, C-…"))
    target = forms.CharField(label=_("Target"), required=False, max_length=130,
                             help_text=_("A kind, or kind:id — e.g. reports.report or reports.report:12."))
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError(_("“From” is after “until”."))
        for name in ("actor", "case", "target"):
            if "\x00" in (data.get(name) or ""):
                self.add_error(name, _("Remove the control characters."))
        return data

    def filters(self) -> AuditFilters:
        data = self.cleaned_data
        since, until = data.get("since"), data.get("until")
        kind, _sep, ident = (data.get("target") or "").strip().partition(":")
        return AuditFilters(
            since=datetime.combine(since, time.min, tzinfo=UTC) if since else None,
            until=datetime.combine(until, time.max, tzinfo=UTC) if until else None,
            actor=(data.get("actor") or "").strip(), action=data.get("action") or "",
            case=(data.get("case") or "").strip(), target_type=kind.strip(), target_id=ident.strip(),
            before=data.get("before"),
        )
