"""The partner notice API, included under api/v1/ (takedown.api). The answers are POSTs to
/api/v1/notices/{reference}/{answer}, with or without a trailing slash."""

from django.urls import path, re_path

from takedown import api

REFERENCE = r"(?P<reference>[^/]+)"

urlpatterns = [
    path("notices/", api.NoticeListView.as_view(), name="api_notices"),
    path("notices/<str:reference>/", api.NoticeDetailView.as_view(), name="api_notice"),
    re_path(rf"^notices/{REFERENCE}/acknowledge(?:/)?$", api.AcknowledgeView.as_view(), name="api_notice_acknowledge"),
    re_path(rf"^notices/{REFERENCE}/removed(?:/)?$", api.RemovedView.as_view(), name="api_notice_removed"),
    re_path(rf"^notices/{REFERENCE}/dispute(?:/)?$", api.DisputeView.as_view(), name="api_notice_dispute"),
    re_path(rf"^notices/{REFERENCE}/authorise(?:/)?$", api.AuthoriseView.as_view(), name="api_notice_authorise"),
    re_path(rf"^notices/{REFERENCE}/hold(?:/)?$", api.HoldView.as_view(), name="api_notice_hold"),
]
