"""The auditor's verification page: the latest verification of the audit chain, its history, a new run.

The page works without JavaScript (reload to see progress); with htmx the running run's progress updates in
place every two seconds, and the page reloads once the run has its verdict.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRefresh
from django_htmx.middleware import HtmxDetails

from ntd import selectors, verification

HISTORY = 20


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@permission_required(verification.PERMISSION, raise_exception=True)
@require_GET
def verify_page(request: HttpRequest) -> HttpResponse:
    runs = selectors.verification_runs(limit=HISTORY)
    return render(request, "ntd/verify.html", {
        "run": runs[0] if runs else None, "runs": runs, "failed": selectors.failed_verification(),
    })


@permission_required(verification.PERMISSION, raise_exception=True)
@require_GET
def verify_progress(request: HtmxHttpRequest) -> HttpResponse:
    """The latest run's progress (htmx polls it while the run is under way)."""
    runs = selectors.verification_runs(limit=1)
    run = runs[0] if runs else None
    if request.htmx and (run is None or not run.is_active):
        return HttpResponseClientRefresh()  # the verdict: the whole page changes (alert, history)
    return render(request, "ntd/verify.html#latest-run", {"run": run})


@permission_required(verification.PERMISSION, raise_exception=True)
@require_POST
def verify_start(request: HttpRequest) -> HttpResponse:
    run = verification.start_verification(actor=request.user)
    messages.info(request, _("Verification %(number)s is under way.") % {"number": run.pk})
    return redirect("audit_verify")
