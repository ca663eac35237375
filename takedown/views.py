"""Staff actions about notices, from the case page and the notice dashboard (team page, staff home).

Thin views, as in `reports.case_views`: the permission, the case (404 outside the user's queues), a form, one
service call, a message and a redirect back (POST, redirect, GET). A refusal of the service (ReviewError,
NoticeError) or bad input is a message and changes nothing; a permission the service refuses is a 403.
Auditors read the notices on the case page and may do none of this.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRefresh

from reports import selectors as case_selectors
from reports.models import Case
from reports.services import ReviewError
from takedown import responses, selectors, services
from takedown.forms import NoteForm, SendNoticeForm
from takedown.services import NoticeError

WORK, SUPERVISE = "reports.work_case", "reports.supervise_case"


class BadInput(ReviewError):
    """A form that did not validate: shown as a message, nothing changed."""


def _back(case: Case) -> HttpResponse:
    return redirect(reverse("case_detail", args=[case.reference]) + "#notices")


def _case_action(perm: str) -> Callable[..., Any]:
    """A POST on one case: the permission, the case (404 outside the user's queues), a refusal as a message."""

    def decorate(action: Callable[..., HttpResponse | None]) -> Callable[..., HttpResponse]:
        @permission_required(perm, raise_exception=True)
        @require_POST
        def view(request: HttpRequest, reference: str, **kwargs: Any) -> HttpResponse:
            case = case_selectors.case_for(request.user, reference)
            try:
                response = action(request, case, **kwargs)
            except (ReviewError, NoticeError) as error:
                messages.error(request, str(error))
                if request.htmx:
                    return HttpResponseClientRefresh()
                response = None
            return response or _back(case)

        view.__name__ = action.__name__
        view.__doc__ = action.__doc__
        return view

    return decorate


def _required_note(request: HttpRequest, missing: str) -> str:
    """The note of the form, or BadInput: `missing` when there is none, else what is wrong with it."""
    form = NoteForm(request.POST)
    if not form.is_valid():
        raise BadInput(missing if not request.POST.get("note", "").strip() else form.error_text())
    return form.cleaned_data["note"].strip()


# --- removal: the analyst's check --------------------------------------------------------------------------


@_case_action(WORK)
def removal_verified(request: HttpRequest, case: Case) -> HttpResponse | None:
    """The analyst checked for themselves: the material is gone."""
    responses.record_removal_verified(case, actor=request.user)
    messages.success(request, _("Recorded: the material is gone. Confirm the removal to close the case."))
    return None


@_case_action(WORK)
def removal_confirm(request: HttpRequest, case: Case) -> HttpResponse | None:
    """The removal reported (or seen) is confirmed: the case is removed and closed."""
    responses.confirm_removal(case, actor=request.user)
    messages.success(request, _("Removal confirmed: the case is closed."))
    return None


@_case_action(WORK)
def removal_reject(request: HttpRequest, case: Case) -> HttpResponse | None:
    """The material is still there: the case waits for removal again."""
    note = _required_note(request, _("Say what you saw: a reason is required."))
    responses.reject_removal(case, actor=request.user, note=note)
    messages.success(request, _("Recorded: the material is still there. The case waits for removal again."))
    return None


# --- disputes: the senior decision --------------------------------------------------------------------------


def _decision(request: HttpRequest, case: Case, notice_reference: str,
              decide: Callable[..., Any], done: str) -> HttpResponse | None:
    notice = selectors.case_notice(case, notice_reference)
    note = _required_note(request, _("Write a note for the recipient: it goes to them with the decision."))
    decide(notice, actor=request.user, note=note)
    messages.success(request, done % {"notice": notice.reference})
    return None


@_case_action(SUPERVISE)
def notice_uphold(request: HttpRequest, case: Case, notice: str) -> HttpResponse | None:
    """The disputed notice stands; the recipient is told, with the note."""
    return _decision(request, case, notice, responses.uphold, _("Notice %(notice)s upheld; the recipient is told."))


@_case_action(SUPERVISE)
def notice_withdraw(request: HttpRequest, case: Case, notice: str) -> HttpResponse | None:
    """The dispute is right: the notice is withdrawn; the recipient is told, with the note."""
    return _decision(request, case, notice, responses.withdraw,
                     _("Notice %(notice)s withdrawn; the recipient is told."))


# --- a notice by hand, supervisor tasks, police consent by phone -------------------------------------------------


@_case_action(SUPERVISE)
def notice_send(request: HttpRequest, case: Case) -> HttpResponse | None:
    """A supervisor names the recipient routing could not find (or one more)."""
    form = SendNoticeForm(request.POST)
    if not form.is_valid():
        raise BadInput(_("Choose a recipient and a kind of notice.") + " " + form.error_text())
    notice = services.send_notice_by_hand(case.pk, partner=form.cleaned_data["partner"],
                                          kind=form.cleaned_data["kind"], actor=request.user)
    messages.success(request, _("Notice %(notice)s to %(partner)s is on its way.")
                     % {"notice": notice.reference, "partner": notice.partner.name})
    return None


def _authorisation_answer(request: HttpRequest, case: Case, pk: int, answer: Callable[..., Any],
                          done: str) -> HttpResponse | None:
    authorisation = selectors.case_authorisation(case, pk)
    note = _required_note(request, _("Note who at the police answered, and when."))
    answer(authorisation, actor=request.user, note=note)
    messages.success(request, done)
    return None


@_case_action(SUPERVISE)
def authorisation_authorise(request: HttpRequest, case: Case, pk: int) -> HttpResponse | None:
    """The police authorised the notices by phone: they go out now."""
    return _authorisation_answer(request, case, pk, services.authorise,
                                 _("Police authorisation recorded: the notices go out now."))


@_case_action(SUPERVISE)
def authorisation_hold(request: HttpRequest, case: Case, pk: int) -> HttpResponse | None:
    """The police asked by phone to hold the notices: nothing goes to the host."""
    return _authorisation_answer(request, case, pk, services.hold,
                                 _("Recorded: the police asked to hold. Nothing goes to the host."))


@permission_required(SUPERVISE, raise_exception=True)
@require_POST
def task_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    """A supervisor marks a task done, with an optional note; back to the page they came from."""
    task = selectors.task_for(request.user, pk)
    form = NoteForm(request.POST, required=False)
    if not form.is_valid():
        messages.error(request, form.error_text())
    elif task.resolved_at is not None:
        messages.info(request, _("That task was resolved already."))
    else:
        services.resolve_supervisor_task(task.pk, actor=request.user, note=form.cleaned_data["note"].strip())
        messages.success(request, _("Task resolved."))
    return _back_to(request, task.case)


def _back_to(request: HttpRequest, case: Case | None) -> HttpResponse:
    """To `next` when it is a page of this site, else the case page (or the team page for a task without one)."""
    target = request.POST.get("next", "")
    if target.startswith("/") and "\x00" not in target and url_has_allowed_host_and_scheme(
            target, {request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return _back(case) if case is not None else redirect("team")
