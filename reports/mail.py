"""The acknowledgement to an identified reporter: the only use ever made of their address."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string

from evidence.crypto import open_sealed
from evidence.keys import keyring_from_settings
from reports import intake
from reports.models import Report


def send_acknowledgement(report_id: int, status_code: str) -> bool:
    report = Report.objects.filter(pk=report_id, acknowledged_at__isnull=True).first()
    if report is None or report.contact_sealed is None:
        return False
    address = open_sealed(bytes(report.contact_sealed), aad=intake.contact_aad(report.reference),
                          keyring=keyring_from_settings()).decode()
    body = render_to_string("reports/acknowledgement.txt", {
        "reference": report.reference, "code": status_code, "status_url": settings.NTD_PUBLIC_URL + "/report/status/",
        "deployment_name": settings.NTD_DEPLOYMENT_NAME, "emergency_number": settings.NTD_EMERGENCY_NUMBER,
    })
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "ntd.invalid"
    message = EmailMessage(
        subject=f"Your report {report.reference} was received",
        body=body,
        to=[address],
        # A stable Message-ID: if the task runs twice, mail systems can tell it is the same message.
        headers={"Message-ID": f"<ack.{report.reference}@{domain}>", "Auto-Submitted": "auto-generated"},
    )
    message.send()
    return intake.mark_acknowledged(report.pk)
