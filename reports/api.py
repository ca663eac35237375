"""The partner API: report URLs in bulk, read back your own reports. Authenticated by a partner API key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ntd.permissions import HasPartnerAPIKey
from reports import intake, selectors
from reports.models import Report
from reports.normalise import InvalidURL, normalise
from reports.references import clean_reference
from reports.serializers import PartnerReportIn, PartnerReportOut, ValidationErrorOut


def _report_out(filed: intake.Filed) -> dict[str, Any]:
    return {
        "reference": filed.report.reference,
        "partner_reference": filed.report.partner_reference,
        "received_at": filed.report.received_at,
        "created": filed.created,
        "urls": [{"position": o.position, "url": o.as_reported, "case": o.case_reference,
                  "outcome": "duplicate" if o.duplicate else "new" if o.opened else "joined"} for o in filed.outcomes],
    }


class PartnerJSONParser(JSONParser):
    """DRF's JSON parser, except that a body nested deeper than Python's parser goes ("[[[[…") is a 400:
    json.load raises RecursionError, which DRF does not catch (it would be a 500)."""

    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None


class ASCIIJSONRenderer(JSONRenderer):
    """JSON with every non-ASCII character escaped. An error message may quote the input ('"\\ud800" is not a
    valid choice.'), and JSON can carry a lone surrogate that UTF-8 cannot encode: escaped, it is a 400, not
    a 500."""

    ensure_ascii = True


class PartnerReportsView(APIView):
    permission_classes = [HasPartnerAPIKey]
    parser_classes = [PartnerJSONParser]
    renderer_classes = [ASCIIJSONRenderer]

    @extend_schema(request=PartnerReportIn, responses={
        201: PartnerReportOut, 200: OpenApiResponse(PartnerReportOut, description="A retry: already filed."),
        400: ValidationErrorOut, 409: ValidationErrorOut,
    })
    def post(self, request: Request) -> Response:
        incoming = PartnerReportIn(data=request.data)
        if not incoming.is_valid():
            return Response({"detail": "The request is not valid.", "fields": incoming.errors}, status=400)
        data = incoming.validated_data
        reported, errors = [], []
        for position, raw in enumerate(data["urls"]):
            try:
                reported.append(intake.ReportedURL(raw, normalise(raw)))
            except InvalidURL as exc:
                errors.append({"position": position, "code": exc.code, "message": exc.reason})
        if errors:
            return Response({"detail": f"{len(errors)} of {len(data['urls'])} URLs are not valid; nothing was filed.",
                             "errors": errors}, status=400)
        details = intake.ReportDetails(
            material_kind=data["material_kind"], encountered_via=data["encountered_via"],
            encountered_at=data["encountered_at"], description=data["description"],
            child_at_risk=data["child_at_risk"],
            content_hashes=[{"type": h["type"], "value": h["value"]} for h in data["content_hashes"]],
        )
        try:
            filed = intake.file_partner_report(
                partner=request.partner, urls=reported, details=details, channel=Report.Channel.API,  # type: ignore[attr-defined]
                partner_reference=data["partner_reference"],
                request_digest=intake.partner_request_digest(request.data),
            )
        except intake.ReferenceConflict:
            return Response({"detail": "This partner_reference was already used for a different report."},
                            status=status.HTTP_409_CONFLICT)
        return Response(_report_out(filed), status=201 if filed.created else 200)


class PartnerReportDetailView(APIView):
    permission_classes = [HasPartnerAPIKey]

    @extend_schema(responses={200: PartnerReportOut, 404: ValidationErrorOut})
    def get(self, request: Request, reference: str) -> Response:
        reference = clean_reference(reference)
        report = None if "\x00" in reference else Report.objects.filter(  # PostgreSQL text holds no NUL
            reference=reference, partner=request.partner).first()  # type: ignore[attr-defined]
        if report is None:
            return Response({"detail": "No such report."}, status=404)
        return Response(_report_out(intake.Filed(report, selectors.report_outcomes(report), created=False)))
