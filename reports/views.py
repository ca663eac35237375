"""The public pages: report a URL, see the reference, check the status. Open to anyone, no JavaScript needed."""

from __future__ import annotations

import codecs

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core import signing
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from ntd import audit
from reports import abuse, intake, selectors
from reports.forms import PublicReportForm, StatusForm

RECEIPT_SALT = "ntd.reports.receipt"


def _form_context(form: PublicReportForm, *, challenge: bool) -> dict[str, object]:
    return {
        "form": form,
        "challenge": abuse.new_challenge() if challenge else None,
        "wait_seconds": settings.INTAKE_NOJS_WAIT_SECONDS,
        "emergency_number": settings.NTD_EMERGENCY_NUMBER,
    }


def _refused(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(request, "reports/refused.html", {"message": message}, status=status)


def _declared_length(request: HttpRequest) -> int | None:
    """The Content-Length the client declared, or None when it is not a number (Django reads no body then)."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


def _utf8(request: HttpRequest) -> bool:
    """Browsers post the form in the page's encoding, UTF-8. Django's multipart parser decodes with any codec
    the client names, and a codec that is not a text encoding (charset=base64) makes it raise, not refuse."""
    return request.encoding is None or codecs.lookup(request.encoding).name == "utf-8"


@login_not_required
@require_http_methods(["GET", "POST"])
def report(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        form = PublicReportForm(initial={"stamp": abuse.form_stamp()})
        gate = abuse.gate_for(abuse.peek(abuse.source_of(request)) + 1)
        if gate is abuse.Gate.LIMITED:
            return render(request, "reports/try_later.html", status=429)
        return render(request, "reports/report.html", _form_context(form, challenge=gate is abuse.Gate.CHALLENGE))

    # Refuse what ntd never takes: bodies larger than a report can be, other formats, and any file (Django
    # stops parsing at the first file, DATA_UPLOAD_MAX_NUMBER_FILES = 0; the page says why).
    length = _declared_length(request)
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data") \
            or not _utf8(request) or length is None:
        return _refused(request, _("This form takes web addresses typed as text only."), 400)
    if length > settings.INTAKE_FORM_MAX_BYTES:
        return _refused(request, _("The report is too large. Send at most 20 web addresses and a short "
                                   "description."), 413)
    try:
        post = request.POST
    except (RequestDataTooBig, TooManyFilesSent):
        return _refused(request, _("ntd never accepts files, images or videos. Report the web address only."), 400)

    source = abuse.source_of(request)
    gate = abuse.gate_for(abuse.count(source))
    if gate is abuse.Gate.LIMITED:
        return render(request, "reports/try_later.html", status=429)

    form = PublicReportForm(post)
    if not form.is_valid():
        form.data = form.data.copy()
        form.data["stamp"] = abuse.form_stamp()
        return render(request, "reports/report.html", _form_context(form, challenge=gate is abuse.Gate.CHALLENGE),
                      status=400)
    stamp = abuse.check_stamp(form.cleaned_data["stamp"])
    too_fast = stamp.age < settings.INTAKE_MIN_FORM_SECONDS
    if not stamp.valid:
        form.add_error(None, _("The form had expired. Please check your answers and send it again."))
    elif gate is abuse.Gate.CHALLENGE or too_fast:
        solved = abuse.solution_valid(form.cleaned_data.get("altcha", ""))
        waited = stamp.age >= settings.INTAKE_NOJS_WAIT_SECONDS
        if not (solved or waited):
            form.add_error(None, _("Many reports have come from your connection. Your browser solves a small "
                                   "puzzle to show you are a person; without JavaScript, wait %(s)d seconds and "
                                   "send the form again.") % {"s": settings.INTAKE_NOJS_WAIT_SECONDS})
    if form.errors:
        data = form.data.copy()
        if not stamp.valid:
            data["stamp"] = abuse.form_stamp()
        form.data = data
        return render(request, "reports/report.html", _form_context(form, challenge=True), status=400)

    filed = intake.file_public_report(
        urls=form.cleaned_data["urls"], details=form.details(), contact_email=form.cleaned_data.get("email") or None,
    )
    token = signing.dumps({"r": filed.report.reference, "i": filed.status_secret is not None}, salt=RECEIPT_SALT)
    return redirect(f"{reverse('report_received')}?t={token}")


@login_not_required
@require_http_methods(["GET"])
def received(request: HttpRequest) -> HttpResponse:
    try:
        receipt = signing.loads(request.GET.get("t", ""), salt=RECEIPT_SALT, max_age=24 * 3600)
    except signing.BadSignature:
        return redirect("report")
    return render(request, "reports/received.html", {
        "reference": receipt["r"], "identified": receipt["i"], "emergency_number": settings.NTD_EMERGENCY_NUMBER,
    })


@login_not_required
@require_http_methods(["GET", "POST"])
def status(request: HttpRequest) -> HttpResponse:
    form = StatusForm(request.POST or None)
    result = None
    if request.method == "POST":
        if abuse.gate_for(abuse.count(abuse.source_of(request), bucket="status")) is abuse.Gate.LIMITED:
            return render(request, "reports/try_later.html", status=429)
        if form.is_valid():
            found = selectors.identified_report(form.cleaned_data["reference"], form.cleaned_data["code"])
            if found is None:
                form.add_error(None, _("No report matches this reference and code. Check both and try again."))
            else:
                result = selectors.reporter_status(found)
                with transaction.atomic():
                    audit.record(actor="system", action=audit.Action.REPORT_STATUS_VIEWED, target=found)
    return render(request, "reports/status.html", {"form": form, "result": result,
                                                   "reference": form.cleaned_data.get("reference") if result else None},
                  status=400 if request.method == "POST" and result is None else 200)
