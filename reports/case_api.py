"""The staff case API: the triage queue, one case, and the case's life cycle as explicit actions.

For staff integrations signed in with a session (and its second factor), with exactly the permissions of the
pages: `reports.view_case` to read, `reports.work_case` to act, and only in the queues granted to the user
(a case elsewhere is a 404, as if it did not exist). The life cycle is reports.services, the reads are
reports.selectors: each view checks the permission, parses, makes its one call and renders.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from reports import selectors, services
from reports.api import PartnerJSONParser
from reports.case_serializers import AssessIn, CaseDetail, CaseOut, CasePageOut, ProblemOut, TriageQueryIn
from reports.models import Case


class _HoldsPermission(BasePermission):
    perm = ""

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user  # None without a session: a partner's API key opens nothing here
        return bool(user is not None and user.is_authenticated and user.has_perm(self.perm))


class CanViewCases(_HoldsPermission):
    perm = "reports.view_case"
    message = "You may not see cases."


class CanWorkCases(_HoldsPermission):
    perm = services.WORK
    message = "You may not work cases."


def invalid(incoming: serializers.Serializer) -> Response:
    """400: what is wrong, as a list of messages per parameter or field (a list's items folded into it)."""
    fields = {name: list(_messages(errors)) for name, errors in incoming.errors.items()}
    return Response({"detail": f"The request is not valid ({', '.join(fields)}).",
                     "fields": fields}, status=status.HTTP_400_BAD_REQUEST)


def _messages(errors: Any) -> Iterator[str]:
    if isinstance(errors, dict):
        errors = list(errors.values())
    if isinstance(errors, list):
        for error in errors:
            yield from _messages(error)
    else:
        yield str(errors)


def conflict(error: services.ReviewError) -> Response:
    return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)


def case_detail(case: Case) -> CaseDetail:
    """Everything CaseOut shows, in four queries (plus the queue and holder when `case` came without them)."""
    reports = list(selectors.case_reports(case))
    return CaseDetail(case, tuple(sorted({r.source_kind for r in reports})), list(selectors.case_assessments(case)),
                      reports, selectors.latest_trace(case))


def rendered(case: Case) -> Response:
    return Response(CaseOut(case_detail(case)).data)


DENIED = OpenApiResponse(ProblemOut, description="No session, or the user lacks the permission.")
NOT_FOUND = OpenApiResponse(ProblemOut, description="No such case in the queues granted to you.")
REFUSED = OpenApiResponse(ProblemOut, description="The case is not in a state that allows this; `detail` says why.")
TAG = ["cases"]


class CaseListView(APIView):
    permission_classes = [CanViewCases]

    @extend_schema(operation_id="cases_list", tags=TAG, parameters=[TriageQueryIn],
                   responses={200: CasePageOut, 400: ProblemOut, 403: DENIED},
                   description="Your triage queue, most urgent first, a page at a time (follow `next`).")
    def get(self, request: Request) -> Response:
        query = TriageQueryIn(data=request.query_params, context={"user": request.user})
        if not query.is_valid():
            return invalid(query)
        page = selectors.triage_page(request.user, query.filters, after=query.validated_data["cursor"],
                                     size=query.validated_data["size"])
        following = None
        if page.next_cursor is not None:
            following = replace_query_param(request.build_absolute_uri(), "cursor", page.next_cursor.encode())
        return Response(CasePageOut({"results": page.rows, "next": following}).data)


class CaseView(APIView):
    permission_classes = [CanViewCases]

    @extend_schema(operation_id="cases_retrieve", tags=TAG, responses={200: CaseOut, 403: DENIED, 404: NOT_FOUND})
    def get(self, request: Request, reference: str) -> Response:
        case = selectors.case_for(request.user, reference)
        services.note_case_viewed(case, actor=request.user)  # an auditor's reading is on the record
        return rendered(case)


class NextCaseView(APIView):
    permission_classes = [CanWorkCases]

    @extend_schema(operation_id="cases_next", tags=TAG, request=None,
                   responses={200: CaseOut, 204: OpenApiResponse(description="No case is waiting for you."),
                              403: DENIED},
                   description="The case you hold, or else the most urgent one waiting in your queues, claimed "
                               "for you.")
    def post(self, request: Request) -> Response:
        case = services.take_next_case(actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT) if case is None else rendered(case)


class ClaimCaseView(APIView):
    permission_classes = [CanWorkCases]

    @extend_schema(operation_id="cases_claim", tags=TAG, request=None,
                   responses={200: CaseOut, 403: DENIED, 404: NOT_FOUND, 409: REFUSED})
    def post(self, request: Request, reference: str) -> Response:
        case = selectors.case_for(request.user, reference)
        try:
            case = services.claim_case(case.pk, actor=request.user)
        except services.ReviewError as error:
            return conflict(error)
        return rendered(case)


class ReleaseCaseView(APIView):
    permission_classes = [CanWorkCases]

    @extend_schema(operation_id="cases_release", tags=TAG, request=None,
                   responses={200: CaseOut, 403: DENIED, 404: NOT_FOUND, 409: REFUSED},
                   description="Give the case back to the queue (its holder, or a supervisor of the queue).")
    def post(self, request: Request, reference: str) -> Response:
        case = selectors.case_for(request.user, reference)
        try:
            case = services.release_case(case.pk, actor=request.user)
        except services.ReviewError as error:
            return conflict(error)
        return rendered(case)


class AssessCaseView(APIView):
    permission_classes = [CanWorkCases]
    parser_classes = [PartnerJSONParser]

    @extend_schema(operation_id="cases_assess", tags=TAG, request=AssessIn,
                   responses={200: CaseOut, 400: ProblemOut, 403: DENIED, 404: NOT_FOUND, 409: REFUSED},
                   description="Record your assessment of the case you hold. A verdict that needs four eyes "
                               "sends the case to a second analyst; otherwise it concludes the review.")
    def post(self, request: Request, reference: str) -> Response:
        case = selectors.case_for(request.user, reference)
        incoming = AssessIn(data=request.data)
        if not incoming.is_valid():
            return invalid(incoming)
        try:
            recorded = services.assess_case(case.pk, actor=request.user, assessment=incoming.assessment)
        except services.ReviewError as error:
            return conflict(error)
        return rendered(recorded.case)
