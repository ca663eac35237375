"""The partner notice API: a partner reads the notices ntd sent it and answers them (acknowledge, report
removal, dispute; the police: authorise or hold). Authenticated by the partner's API key (X-Api-Key).

A partner sees only its own notices: another partner's notice is a 404, as if it did not exist. Bad input is
a 400 with `detail` (and `fields`) and changes nothing; an answer the notice's state does not allow is a 409.
Each view parses, makes one call to takedown.responses (or takedown.services) and renders.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ntd.permissions import HasPartnerAPIKey
from reports.api import ASCIIJSONRenderer, PartnerJSONParser
from reports.case_api import invalid
from reports.case_serializers import ProblemOut
from reports.services import ReviewError
from takedown import responses, services
from takedown.models import Notice, NoticeCase, NoticeKind
from takedown.serializers import (
    PAGE_SIZE,
    DisputeIn,
    NoteIn,
    NoticeOut,
    NoticePageOut,
    NoticeQueryIn,
    RemovedIn,
)

TAG = ["notices"]
DENIED = OpenApiResponse(ProblemOut, description="No valid API key.")
NOT_FOUND = OpenApiResponse(ProblemOut, description="No such notice among those sent to you.")
REFUSED = OpenApiResponse(ProblemOut, description="The notice's state does not allow this; `detail` says why.")
BAD = OpenApiResponse(ProblemOut, description="The request is not valid; nothing was changed.")


def _with_items(notices: QuerySet[Notice]) -> QuerySet[Notice]:
    return notices.select_related("authorisation").prefetch_related(
        Prefetch("items", queryset=NoticeCase.objects.select_related("case").order_by("pk")))


def _detail(request: Request, reference: str) -> Response:
    notice = _with_items(responses.partner_notices(request.partner)).get(  # type: ignore[attr-defined]
        pk=responses.partner_notice(request.partner, reference).pk)  # type: ignore[attr-defined]
    return Response(NoticeOut(notice).data)


class NoticePages(CursorPagination):
    ordering = ("-created_at", "-pk")
    page_size = PAGE_SIZE
    page_size_query_param = "size"
    max_page_size = 200

    def decode_cursor(self, request: Any) -> Any:
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ParseError("This is not a cursor this API gave out: follow the `next` link.") from None


class PartnerNoticeView(APIView):
    permission_classes = [HasPartnerAPIKey]
    renderer_classes = [ASCIIJSONRenderer]
    parser_classes = [PartnerJSONParser]


class NoticeListView(PartnerNoticeView):
    @extend_schema(operation_id="notices_list", tags=TAG, parameters=[NoticeQueryIn],
                   responses={200: NoticePageOut, 400: BAD, 403: DENIED},
                   description="The notices sent to you, newest first, a page at a time (follow `next`).")
    def get(self, request: Request) -> Response:
        query = NoticeQueryIn(data=request.query_params)
        if not query.is_valid():
            return invalid(query)
        notices = responses.partner_notices(request.partner)  # type: ignore[attr-defined]
        if state := query.validated_data.get("state"):
            notices = notices.filter(state=state)
        pages = NoticePages()
        page = pages.paginate_queryset(_with_items(notices), request, view=self)
        return pages.get_paginated_response(NoticeOut(page, many=True, context={"listing": True}).data)


class NoticeDetailView(PartnerNoticeView):
    @extend_schema(operation_id="notices_retrieve", tags=TAG, responses={200: NoticeOut, 403: DENIED,
                                                                          404: NOT_FOUND})
    def get(self, request: Request, reference: str) -> Response:
        return _detail(request, reference)


class _AnswerView(PartnerNoticeView):
    """POST: parse the body with `incoming`, then make the one call; answer with the notice as it now is."""

    incoming: type[Any] | None = None

    def act(self, notice: Notice, partner: Any, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def post(self, request: Request, reference: str) -> Response:
        partner = request.partner  # type: ignore[attr-defined]
        notice = responses.partner_notice(partner, reference)
        data: dict[str, Any] = {}
        if self.incoming is not None:
            incoming = self.incoming(data=request.data if request.data else {})
            if not incoming.is_valid():
                return invalid(incoming)
            data = incoming.validated_data
        try:
            self.act(notice, partner, data)
        except responses.UnknownCases as error:
            return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)
        except (ReviewError, services.NoticeError) as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return _detail(request, notice.reference)


def _answer(operation: str, description: str, request: Any = None,
            **more: Any) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    return extend_schema(operation_id=f"notices_{operation}", tags=TAG, request=request, description=description,
                         responses={200: NoticeOut, 400: BAD, 403: DENIED, 404: NOT_FOUND, 409: REFUSED},
                         **more)


class AcknowledgeView(_AnswerView):
    @_answer("acknowledge", "You have received the notice. A repeat changes nothing.")
    def post(self, request: Request, reference: str) -> Response:
        return super().post(request, reference)

    def act(self, notice: Notice, partner: Any, data: dict[str, Any]) -> None:
        responses.acknowledge(notice, actor=partner)


class RemovedView(_AnswerView):
    incoming = RemovedIn

    @_answer("removed", "The material at these URLs (all the notice's, without `cases`) is removed. We check each "
                        "one. Reporting a URL again changes nothing; a case not in the notice is a 400.", RemovedIn)
    def post(self, request: Request, reference: str) -> Response:
        return super().post(request, reference)

    def act(self, notice: Notice, partner: Any, data: dict[str, Any]) -> None:
        responses.report_removed(notice, actor=partner, case_references=data.get("cases"))


class DisputeView(_AnswerView):
    incoming = DisputeIn

    @_answer("dispute", "The notice is wrong, and why. A senior member of staff decides; the outcome comes as a "
                        "notice of its own.", DisputeIn)
    def post(self, request: Request, reference: str) -> Response:
        return super().post(request, reference)

    def act(self, notice: Notice, partner: Any, data: dict[str, Any]) -> None:
        responses.dispute(notice, actor=partner, reason=data["reason"])


class _AuthorisationView(_AnswerView):
    incoming = NoteIn

    def act(self, notice: Notice, partner: Any, data: dict[str, Any]) -> None:
        if notice.kind != NoticeKind.AUTHORISATION_REQUEST or notice.authorisation_id is None:
            raise ReviewError("This notice asks for no authorisation.")
        self.decide(notice, partner, data["note"])

    def decide(self, notice: Notice, partner: Any, note: str) -> None:
        raise NotImplementedError


class AuthoriseView(_AuthorisationView):
    @_answer("authorise", "On a request for police authorisation: the notices about its cases may go out now.",
             NoteIn)
    def post(self, request: Request, reference: str) -> Response:
        return super().post(request, reference)

    def decide(self, notice: Notice, partner: Any, note: str) -> None:
        services.authorise(notice.authorisation, actor=partner, note=note)  # type: ignore[arg-type]


class HoldView(_AuthorisationView):
    @_answer("hold", "On a request for police authorisation: hold the notices (an investigation is running).",
             NoteIn)
    def post(self, request: Request, reference: str) -> Response:
        return super().post(request, reference)

    def decide(self, notice: Notice, partner: Any, note: str) -> None:
        services.hold(notice.authorisation, actor=partner, note=note)  # type: ignore[arg-type]
