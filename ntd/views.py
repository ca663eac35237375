from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_not_required, permission_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from ntd import selectors
from ntd.celery import app as celery_app
from ntd.forms import AuditSearchForm
from ntd.permissions import HasPartnerAPIKey
from ntd.roles import ADMIN, AUDITOR, ROLE_LABELS, roles_of


@login_not_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The public landing page for visitors; the staff home, by role, for signed-in staff."""
    if not request.user.is_authenticated:
        return render(request, "ntd/landing.html")
    roles = roles_of(request.user)
    from reports.selectors import home_summary
    from takedown.selectors import notice_dashboard

    context: dict[str, Any] = {
        "roles": roles,
        "review": home_summary(request.user),
        "role_labels": [ROLE_LABELS[r] for r in roles],
        "recent_events": selectors.recent_audit_events(limit=10)
        if request.user.has_perm("ntd.view_auditevent")
        else None,
        "failed_verification": selectors.failed_verification() if {ADMIN, AUDITOR} & set(roles) else None,
        "notice_dashboard": notice_dashboard(request.user),
    }
    return render(request, "ntd/home.html", context)


@permission_required("ntd.view_auditevent", raise_exception=True)
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    """The audit log, newest first, searched by time range, actor, action, case and target."""
    form = AuditSearchForm(request.GET or None)
    if request.GET and not form.is_valid():
        return render(request, "ntd/audit_log.html", {"form": form, "page": None}, status=400)
    page = selectors.search_audit_log(form.filters() if request.GET else selectors.AuditFilters())
    older = None
    if page.older is not None:
        query = request.GET.copy()
        query["before"] = str(page.older)
        older = query.urlencode()
    entries = selectors.describe(page.events, with_names=request.user.has_perm("ntd.reveal_analyst_identity"))
    return render(request, "ntd/audit_log.html", {"form": form, "page": page, "entries": entries, "older": older})


TIMELINE_PAGE_LIMIT = 1000


@permission_required("ntd.view_auditevent", raise_exception=True)
@require_GET
def case_timeline(request: HttpRequest, reference: str) -> HttpResponse:
    """Everything that happened to one case, in order and in words (an auditor's reading is recorded too)."""
    from itertools import islice

    from ntd.timeline import case_timeline as timeline
    from reports import selectors as cases
    from reports.services import note_case_viewed

    case = cases.case_for(request.user, reference)
    note_case_viewed(case, actor=request.user)
    entries = list(islice(timeline(case, name_analysts=request.user.has_perm("ntd.reveal_analyst_identity")),
                          TIMELINE_PAGE_LIMIT + 1))
    return render(request, "ntd/timeline.html", {
        "case": case, "entries": entries[:TIMELINE_PAGE_LIMIT], "truncated": len(entries) > TIMELINE_PAGE_LIMIT,
        "formats": [("csv", "CSV"), ("jsonl", "JSON Lines"), ("pdf", "PDF"), ("bundle", "Hashed bundle (ZIP)")],
    })


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """The process is alive. Says nothing else."""
    return JsonResponse({"status": "ok"})


@login_not_required
@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """The database and the broker answer. Names which one fails, nothing more."""
    checks = {"database": _database_ready(), "broker": _broker_ready()}
    ready = all(checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": {k: "ok" if v else "fail" for k, v in checks.items()}},
        status=200 if ready else 503,
    )


def _database_ready() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


def _broker_ready() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:  # noqa: BLE001
        return False


@extend_schema(
    responses=inline_serializer(
        "PartnerWhoAmI",
        {"partner": serializers.CharField(), "kind": serializers.CharField(), "country": serializers.CharField()},
    )
)
@api_view(["GET"])
@permission_classes([HasPartnerAPIKey])
def partner_whoami(request: Request) -> Response:
    """Which partner this API key belongs to: a partner's first call, to check its key works."""
    partner = request.partner  # type: ignore[attr-defined]
    return Response({"partner": partner.name, "kind": partner.kind, "country": partner.country})
