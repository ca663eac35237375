"""The pages behind a notice's signed links: acknowledge, report removal, dispute, and (on a request for
police authorisation) authorise or hold.

A GET only shows the notice and what the button will do: mail scanners and link previews open links, and
nothing may happen because of that. The POST (CSRF-protected, from that page) acts as the partner the notice
was sent to: the link is bound to its notice and purpose, so it can act on nothing else. A forged or damaged
link gets 400, an expired one 410, and neither says anything about any notice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from ntd import audit
from reports.services import ReviewError
from takedown import links, responses, services
from takedown.models import MATERIAL_KINDS, Notice, NoticeKind, PoliceAuthorisation


class ConfirmForm(forms.Form):
    """Only the button (and the CSRF token)."""


class NoteForm(forms.Form):
    note = forms.CharField(label=gettext_lazy("Note (optional)"), required=False, max_length=responses.NOTE_MAX,
                           widget=forms.Textarea(attrs={"rows": 3}),
                           error_messages={"max_length": gettext_lazy("Keep the note to 2,000 characters or fewer.")})


class DisputeForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Why do you dispute this notice?"), max_length=responses.REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=gettext_lazy("At most 2,000 characters. A senior member of our team decides, and we tell you "
                               "the outcome."),
        error_messages={"required": gettext_lazy("Give the reason for the dispute."),
                        "max_length": gettext_lazy("Keep the reason to 2,000 characters or fewer.")})


class RemovedForm(forms.Form):
    cases = forms.MultipleChoiceField(
        label=gettext_lazy("Removed"), widget=forms.CheckboxSelectMultiple,
        error_messages={"required": gettext_lazy("Tick at least one web address."),
                        "invalid_choice": gettext_lazy("That web address is not in this notice, or was reported "
                                                       "removed already.")})

    def __init__(self, *args: Any, items: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        waiting = [item for item in items if item.removal_reported_at is None]
        cases = self.fields["cases"]
        assert isinstance(cases, forms.MultipleChoiceField)
        cases.choices = [(item.case.reference, item.case.url) for item in waiting]
        cases.initial = [item.case.reference for item in waiting]


# What each purpose's page says the button does, and what the confirmation says it did.
PAGES: dict[str, dict[str, Any]] = {
    "acknowledge": {
        "title": gettext_lazy("Acknowledge the notice"),
        "explains": gettext_lazy("Pressing the button tells us you have received this notice. It does not report "
                                 "removal."),
        "button": gettext_lazy("Acknowledge"),
        "done": gettext_lazy("Thank you: we have recorded that you received the notice."),
    },
    "removed": {
        "title": gettext_lazy("Report removal"),
        "explains": gettext_lazy("Tick the web addresses whose material you have removed and press the button. "
                                 "We check each one ourselves."),
        "button": gettext_lazy("Report these as removed"),
        "done": gettext_lazy("Thank you: we have recorded the removal. We will check each web address."),
    },
    "dispute": {
        "title": gettext_lazy("Dispute the notice"),
        "explains": gettext_lazy("If you believe this notice is wrong, tell us why. A senior member of our team "
                                 "decides and we tell you the outcome. Until then the notice is on hold."),
        "button": gettext_lazy("Send the dispute"),
        "done": gettext_lazy("We have received your dispute. A senior member of our team will decide and tell you "
                             "the outcome."),
    },
    "authorise": {
        "title": gettext_lazy("Authorise the notices"),
        "explains": gettext_lazy("Pressing the button lets the notices about these web addresses go to the hosting "
                                 "providers now."),
        "button": gettext_lazy("Authorise"),
        "done": gettext_lazy("Thank you: the notices are going out now."),
    },
    "hold": {
        "title": gettext_lazy("Ask us to hold"),
        "explains": gettext_lazy("Pressing the button keeps the notices about these web addresses from going to the "
                                 "hosting providers (for example, while an investigation runs). A supervisor of ours "
                                 "is told and will contact you."),
        "button": gettext_lazy("Hold the notices"),
        "done": gettext_lazy("We will hold the notices. A supervisor will contact you."),
    },
}


def _form(purpose: str, items: list[Any], data: Any = None) -> forms.Form:
    if purpose == "removed":
        return RemovedForm(data, items=items)
    if purpose == "dispute":
        return DisputeForm(data)
    if purpose in ("authorise", "hold"):
        return NoteForm(data)
    return ConfirmForm(data)


def _refused(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(request, "takedown/link_refused.html", {"message": message}, status=status)


def _expired_link_notice(error: links.BadLink) -> Notice | None:
    """The notice an expired (but genuine) link was made for, to put the refusal on its record."""
    if not isinstance(error, links.LinkExpired):
        return None
    return Notice.objects.select_related("partner").filter(reference=error.reference).first()


def _record_refusal(notice: Notice, purpose: str, reason: str) -> None:
    with transaction.atomic():
        audit.record(actor=notice.partner, action=audit.Action.NOTICE_LINK_REFUSED, target=notice,
                     data={"notice": notice.reference, "purpose": purpose, "reason": reason[:500]})


def _unsuitable(notice: Notice, purpose: str) -> str | None:
    """Why this notice has no such action (links are only made for the actions a notice has)."""
    if purpose in ("authorise", "hold"):
        if notice.kind != NoticeKind.AUTHORISATION_REQUEST or notice.authorisation_id is None:
            return _("This notice asks for no authorisation.")
    elif purpose in ("removed", "dispute") and notice.kind not in MATERIAL_KINDS:
        return _("This notice asks for no removal.") if purpose == "removed" else _("This notice cannot be disputed.")
    return None


def _settled(notice: Notice, purpose: str, items: list[Any]) -> str | None:
    """What the page says instead of offering the button, when there is nothing left to do."""
    if notice.state == Notice.State.WITHDRAWN:
        return _("This notice was withdrawn: nothing more is needed from you.")
    if purpose == "acknowledge" and notice.acknowledged_at is not None:
        return _("You acknowledged this notice on %(date)s.") % {"date": _when(notice.acknowledged_at)}
    if purpose == "removed":
        if notice.state == Notice.State.DISPUTED:
            return _("You disputed this notice: we will tell you our decision.")
        if all(item.removal_reported_at is not None for item in items):
            return _("You reported every web address of this notice removed. Thank you.")
    if purpose == "dispute" and notice.disputed_at is not None:
        if notice.state == Notice.State.DISPUTED:
            return _("You disputed this notice on %(date)s; we will tell you our decision.") % {
                "date": _when(notice.disputed_at)}
        return _("Your dispute of this notice was decided and the notice stands.")
    if purpose in ("authorise", "hold") and notice.authorisation is not None:
        state = notice.authorisation.state
        if state in (PoliceAuthorisation.State.AUTHORISED, PoliceAuthorisation.State.SENT_WITHOUT):
            return _("The notices have gone out already.")
        if purpose == "hold" and state == PoliceAuthorisation.State.HELD:
            return _("You asked us to hold these notices; they are held.")
    return None


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _act(notice: Notice, purpose: str, form: forms.Form) -> None:
    partner = notice.partner
    data = form.cleaned_data
    if purpose == "acknowledge":
        responses.acknowledge(notice, actor=partner)
    elif purpose == "removed":
        responses.report_removed(notice, actor=partner, case_references=data["cases"])
    elif purpose == "dispute":
        responses.dispute(notice, actor=partner, reason=data["reason"])
    elif purpose == "authorise":
        services.authorise(notice.authorisation, actor=partner, note=data["note"])  # type: ignore[arg-type]
    else:
        services.hold(notice.authorisation, actor=partner, note=data["note"])  # type: ignore[arg-type]


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def notice_link(request: HttpRequest, purpose: str, token: str) -> HttpResponse:
    if purpose not in links.PURPOSES:
        raise Http404
    try:
        reference = links.notice_reference_from(token, purpose)
    except links.BadLink as error:
        expired = isinstance(error, links.LinkExpired)
        if expired and request.method == "POST" and (old := _expired_link_notice(error)) is not None:
            _record_refusal(old, purpose, "expired")
        return _refused(request, str(error), 410 if expired else 400)
    notice = Notice.objects.select_related("partner", "authorisation").filter(reference=reference).first()
    if notice is None or not notice.partner.is_active or notice.state in (Notice.State.QUEUED, Notice.State.FAILED):
        return _refused(request, _("This link is no longer valid. Use the API, or contact us."), 410)
    if (reason := _unsuitable(notice, purpose)) is not None:
        return _refused(request, reason, 400)

    items = responses.notice_items(notice)
    form = _form(purpose, items, request.POST if request.method == "POST" else None)
    page = {"notice": notice, "items": items, "purpose": purpose, "page": PAGES[purpose], "form": form,
            "settled": _settled(notice, purpose, items)}
    if request.method == "GET":
        return render(request, "takedown/link_action.html", page)
    if not form.is_valid():
        return render(request, "takedown/link_action.html", page, status=400)
    try:
        _act(notice, purpose, form)
    except (ReviewError, services.NoticeError) as error:
        message = str(error)
        _record_refusal(notice, purpose, message)
        return _refused(request, message, 409)
    except (PermissionDenied, Http404):
        message = _("This link cannot do that.")
        _record_refusal(notice, purpose, message)
        return _refused(request, message, 409)
    return render(request, "takedown/link_done.html", {"notice": notice, "page": PAGES[purpose]})
