"""Forms of the staff actions about notices: a note or reason, and a notice sent by hand."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from takedown import selectors
from takedown.models import MATERIAL_KINDS, NoticeKind, Partner


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise forms.ValidationError(_("Remove the control characters from the text."))
    return value


class NoteForm(forms.Form):
    """A note that goes into the audit log with the action (required unless `required=False`)."""

    note = forms.CharField(label=_("Note"), max_length=2000, widget=forms.Textarea(attrs={"rows": 2}),
                           validators=[_no_nul])

    def __init__(self, *args: Any, required: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["note"].required = required

    def error_text(self) -> str:
        return " ".join(str(e) for errors in self.errors.values() for e in errors)


class PartnerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Partner) -> str:
        return f"{obj.name} ({obj.get_kind_display()}{', ' + obj.country if obj.country else ''})"


class SendNoticeForm(forms.Form):
    """A supervisor names the recipient routing could not find, and the kind of notice it gets."""

    partner = PartnerChoiceField(label=_("Recipient"), queryset=Partner.objects.none(),
                                 empty_label=_("Choose a partner"))
    kind = forms.ChoiceField(label=_("Kind of notice"),
                             choices=[("", _("Choose a kind"))] + [(k.value, k.label) for k in map(NoticeKind,
                                                                                                    MATERIAL_KINDS)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["partner"].queryset = selectors.hand_partners()

    def error_text(self) -> str:
        return " ".join(str(e) for errors in self.errors.values() for e in errors)
