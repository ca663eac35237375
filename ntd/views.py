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
from ntd.permissions import HasPartnerAPIKey
from ntd.roles import ROLE_LABELS, roles_of


@login_not_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The public landing page for visitors; the staff home, by role, for signed-in staff."""
    if not request.user.is_authenticated:
        return render(request, "ntd/landing.html")
    roles = roles_of(request.user)
    from reports.selectors import home_summary

    context: dict[str, Any] = {
        "roles": roles,
        "review": home_summary(request.user),
        "role_labels": [ROLE_LABELS[r] for r in roles],
        "recent_events": selectors.recent_audit_events(limit=10)
        if request.user.has_perm("ntd.view_auditevent")
        else None,
    }
    return render(request, "ntd/home.html", context)


@permission_required("ntd.view_auditevent", raise_exception=True)
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    events = selectors.recent_audit_events(limit=100)
    return render(request, "ntd/audit_log.html", {"events": events})


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
