from django.db.models import QuerySet

from ntd.audit import AuditEvent


def recent_audit_events(*, limit: int = 50) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.order_by("-seq")[:limit]
