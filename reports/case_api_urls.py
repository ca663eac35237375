"""The staff case API, included under api/v1/ (reports.case_api)."""

from django.urls import path

from reports import case_api

urlpatterns = [
    path("cases/", case_api.CaseListView.as_view(), name="api_cases"),
    path("cases/next/", case_api.NextCaseView.as_view(), name="api_case_next"),  # before <reference>: "next" is no case
    path("cases/<str:reference>/", case_api.CaseView.as_view(), name="api_case"),
    path("cases/<str:reference>/claim/", case_api.ClaimCaseView.as_view(), name="api_case_claim"),
    path("cases/<str:reference>/release/", case_api.ReleaseCaseView.as_view(), name="api_case_release"),
    path("cases/<str:reference>/assess/", case_api.AssessCaseView.as_view(), name="api_case_assess"),
]
