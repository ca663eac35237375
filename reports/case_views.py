"""The analysts' and supervisors' pages: the triage dashboard, the case page and its actions, the team view.

Thin views: check the permission, parse a form, call one service or selector, render. A case outside the
user's queues is a 404 (the selectors and services raise it). Pages work without JavaScript; with htmx
the list and the rows update in place (`request.htmx` gets the partial instead of the page).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRefresh

from reports import selectors, services
from reports.models import Case, Report
from reports.review_forms import AssessmentForm, DuplicatesForm, ReasonForm, ReassignForm, TriageFilterForm
from reports.services import ReviewError
from takedown.selectors import case_notice_context, notice_dashboard

VIEW, WORK, SUPERVISE = "reports.view_case", services.WORK, services.SUPERVISE


def _back(request: HttpRequest, case: Case | None = None) -> HttpResponse:
    return redirect(reverse("case_detail", args=[case.reference]) if case else reverse("triage"))


def _case_action(perm: str) -> Callable[..., Any]:
    """A POST on one case: the permission, the case (404 outside the user's queues), a ReviewError as a message."""

    def decorate(action: Callable[[HttpRequest, Case], HttpResponse | None]) -> Callable[..., HttpResponse]:
        @permission_required(perm, raise_exception=True)
        @require_POST
        def view(request: HttpRequest, reference: str) -> HttpResponse:
            case = selectors.case_for(request.user, reference)
            try:
                response = action(request, case)
            except ReviewError as error:
                messages.error(request, str(error))
                if request.htmx:
                    # htmx would follow a redirect and swap the page it leads to into its target (a table row):
                    # have it reload the page it is on instead, which shows the message.
                    return HttpResponseClientRefresh()
                response = None
            return response or _back(request, case)

        view.__name__ = action.__name__
        view.__doc__ = action.__doc__
        return view

    return decorate


# --- the triage dashboard ------------------------------------------------------------------------------------


@permission_required(VIEW, raise_exception=True)
@require_GET
def triage(request: HttpRequest) -> HttpResponse:
    """The user's queues in urgency order, filtered, a page at a time (keyset), with counts per status."""
    queue_ids = selectors.readable_queue_ids(request.user)
    form = TriageFilterForm(request.GET or None, queue_ids=queue_ids)
    if request.GET and not form.is_valid():
        template = "reports/triage.html#case-list" if request.htmx else "reports/triage.html"
        return render(request, template, {"form": form, "page": None, "counts": None}, status=400)
    filters = form.filters() if request.GET else selectors.TriageFilters()
    cursor = form.cleaned_data.get("cursor") if request.GET else None
    page = selectors.triage_page(request.user, filters, after=cursor)
    context = {"form": form, "page": page, "next_query": _next_query(request, page),
               "has_queues": bool(queue_ids), **_row_context(request)}
    if request.htmx:
        return render(request, "reports/triage.html#case-list", context)
    context["counts"] = [(Case.Status(s), n) for s, n in selectors.status_counts(request.user).items()]
    return render(request, "reports/triage.html", context)


def _next_query(request: HttpRequest, page: selectors.TriagePage) -> str:
    if page.next_cursor is None:
        return ""
    query = request.GET.copy()
    query["cursor"] = page.next_cursor.encode()
    return query.urlencode()


@permission_required(WORK, raise_exception=True)
@require_POST
def next_case(request: HttpRequest) -> HttpResponse:
    """Take the most urgent case no one holds, and open it."""
    case = services.take_next_case(actor=request.user)
    if case is None:
        messages.info(request, _("No case is waiting in your queues."))
        return redirect("triage")
    return redirect("case_detail", reference=case.reference)


@_case_action(WORK)
def claim(request: HttpRequest, case: Case) -> HttpResponse | None:
    services.claim_case(case.pk, actor=request.user)
    if request.htmx:
        return _row(request, case.reference)
    return None


def _row(request: HttpRequest, reference: str) -> HttpResponse:
    case = selectors.case_for(request.user, reference)
    rows = selectors.triage_rows(request.user, [case])
    return render(request, "reports/triage.html#case-row", {"row": rows[0], **_row_context(request)})


def _row_context(request: HttpRequest) -> dict[str, Any]:
    """What every row needs, worked out once per page rather than once per row."""
    return {"cases_url": reverse("triage"), "can_work": request.user.has_perm(WORK)}


@_case_action(WORK)
def release(request: HttpRequest, case: Case) -> HttpResponse | None:
    services.release_case(case.pk, actor=request.user)
    messages.success(request, _("The case is back in the queue."))
    return redirect("triage")


# --- the case page ---------------------------------------------------------------------------------------------


@permission_required(VIEW, raise_exception=True)
@require_GET
def case_detail(request: HttpRequest, reference: str) -> HttpResponse:
    case = selectors.case_for(request.user, reference)
    services.keep_claim_alive(case, actor=request.user)
    services.note_case_viewed(case, actor=request.user)
    return render(request, "reports/case.html", _case_context(request, case))


def _case_context(request: HttpRequest, case: Case, **forms: Any) -> dict[str, Any]:
    user = request.user
    holds = case.assignee_id == user.pk
    supervises = user.has_perm(SUPERVISE) and case.queue_id in selectors.supervised_queue_ids(user)
    can_assess = holds and case.status in (Case.Status.IN_REVIEW, Case.Status.AWAITING_SECOND_OPINION)
    return {
        "case": case,
        "holds": holds,
        "supervises": supervises,
        "can_claim": user.has_perm(WORK) and case.is_claimable and not (
            case.status == Case.Status.AWAITING_SECOND_OPINION and case.assessments.filter(assessor=user).exists()),
        "reports": selectors.case_reports(case),
        "assessments": selectors.case_assessments(case),
        "trace": selectors.latest_trace(case),
        "history": selectors.case_history(case),
        "assessment_form": forms.get("assessment_form") or (AssessmentForm() if can_assess else None),
        "decision_form": forms.get("decision_form") or (
            AssessmentForm(prefix="decision") if supervises and case.status == Case.Status.AWAITING_DECISION
            else None),
        "reopen_form": ReasonForm(prefix="reopen") if supervises and case.closed_at else None,
        "can_reveal": user.has_perm(services.REVEAL_CONTACT),
        "revealed": forms.get("revealed"),
        **case_notice_context(user, case),
    }


@permission_required(WORK, raise_exception=True)
@require_POST
def assess(request: HttpRequest, reference: str) -> HttpResponse:
    """Record the holder's assessment; a refusal re-renders the form with the reason, nothing changed."""
    case = selectors.case_for(request.user, reference)
    form = AssessmentForm(request.POST)
    if form.is_valid():
        try:
            services.assess_case(case.pk, actor=request.user, assessment=form.assessment())
        except ReviewError as error:
            form.add_error(None, str(error))
        else:
            case.refresh_from_db()
            messages.success(request, _("Assessment recorded: the case is now %(status)s.")
                             % {"status": case.get_status_display().lower()})
            return redirect("case_detail", reference=case.reference)
    return render(request, "reports/case.html", _case_context(request, case, assessment_form=form), status=400)


@permission_required(SUPERVISE, raise_exception=True)
@require_POST
def decide(request: HttpRequest, reference: str) -> HttpResponse:
    """A supervisor settles two assessments that disagree."""
    case = selectors.case_for(request.user, reference)
    form = AssessmentForm(request.POST, prefix="decision")
    if form.is_valid():
        try:
            services.decide_case(case.pk, actor=request.user, assessment=form.assessment())
        except ReviewError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("Decision recorded."))
            return redirect("case_detail", reference=case.reference)
    return render(request, "reports/case.html", _case_context(request, case, decision_form=form), status=400)


@_case_action(SUPERVISE)
def reopen(request: HttpRequest, case: Case) -> HttpResponse | None:
    form = ReasonForm(request.POST, prefix="reopen")
    if not form.is_valid():
        raise ReviewError(" ".join(form.errors["reason"]))
    services.reopen_case(case.pk, actor=request.user, reason=form.cleaned_data["reason"])
    messages.success(request, _("The case is open again and back in the queue."))
    return None


@_case_action(WORK)
def trace(request: HttpRequest, case: Case) -> HttpResponse | None:
    services.request_trace(case.pk, actor=request.user)
    messages.info(request, _("The hosting trace is running; reload the page in a moment."))
    return None


@_case_action(services.REVEAL_CONTACT)
def reveal_contact(request: HttpRequest, case: Case) -> HttpResponse | None:
    """Show a reporter's contact once, on this response only; the reveal and its reason are audited."""
    form = ReasonForm(request.POST)
    if not form.is_valid():
        raise ReviewError(_("Give a reason for revealing the reporter's contact."))
    reference = request.POST.get("report", "")
    # PostgreSQL text cannot hold NUL: a reference with one names no report (and must not reach the query).
    report = None if "\x00" in reference else Report.objects.filter(cases=case, reference=reference).first()
    if report is None:
        raise Http404("No such report.")
    contact = services.reveal_reporter_contact(report.pk, actor=request.user, reason=form.cleaned_data["reason"],
                                               case_id=case.pk)
    response = render(request, "reports/case.html",
                      _case_context(request, case, revealed={"report": report.reference, "contact": contact}))
    response["Cache-Control"] = "no-store"
    return response


# --- the supervisor's view -------------------------------------------------------------------------------------


@permission_required(SUPERVISE, raise_exception=True)
@require_GET
def team(request: HttpRequest) -> HttpResponse:
    """Who holds what and for how long, second opinions and disagreements, reassignment and duplicates."""
    return render(request, "reports/team.html", _team_context(request))


def _team_context(request: HttpRequest, **forms: Any) -> dict[str, Any]:
    return {
        "held": selectors.team_load(request.user),
        "waiting": selectors.awaiting_supervisor(request.user),
        "analysts": selectors.team_analysts(request.user),
        "reassign_form": forms.get("reassign_form") or ReassignForm(),
        "duplicates_form": forms.get("duplicates_form") or DuplicatesForm(),
        "notice_dashboard": notice_dashboard(request.user),
    }


@_case_action(SUPERVISE)
def reassign(request: HttpRequest, case: Case) -> HttpResponse | None:
    form = ReassignForm(request.POST)
    try:
        if not form.is_valid():
            raise ReviewError(" ".join(str(e) for errors in form.errors.values() for e in errors))
        services.reassign_case(case.pk, actor=request.user, to_user=form.cleaned_data["to_user"],
                               reason=form.cleaned_data["reason"])
    except ReviewError as error:
        messages.error(request, str(error))
        return redirect("team")  # back where the supervisor was
    messages.success(request, _("%(case)s now belongs to %(user)s.")
                     % {"case": case.reference, "user": form.cleaned_data["to_user"]})
    return redirect("team")


@permission_required(SUPERVISE, raise_exception=True)
@require_POST
def close_duplicates(request: HttpRequest) -> HttpResponse:
    form = DuplicatesForm(request.POST)
    if form.is_valid():
        try:
            original = selectors.case_for(request.user, form.cleaned_data["duplicate_of"])
            cases = [selectors.case_for(request.user, ref) for ref in form.cleaned_data["references"]]
            closed = services.close_duplicates([c.pk for c in cases], actor=request.user, duplicate_of=original,
                                               reason=form.cleaned_data["reason"])
        except Http404:
            form.add_error(None, _("One of those references is not a case in your queues; nothing was closed."))
        except (ReviewError, PermissionDenied) as error:
            form.add_error(None, str(error) or _("You may not close those cases."))
        else:
            messages.success(request, _("Closed %(n)d cases as duplicates of %(case)s.")
                             % {"n": len(closed), "case": original.reference})
            return redirect("team")
    return render(request, "reports/team.html", _team_context(request, duplicates_form=form), status=400)
