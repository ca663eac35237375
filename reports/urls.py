from django.urls import path

from reports import case_views, views

urlpatterns = [
    path("report/", views.report, name="report"),
    path("report/received/", views.received, name="report_received"),
    path("report/status/", views.status, name="report_status"),
    path("cases/", case_views.triage, name="triage"),
    path("cases/next/", case_views.next_case, name="case_next"),
    path("cases/team/", case_views.team, name="team"),
    path("cases/team/duplicates/", case_views.close_duplicates, name="close_duplicates"),
    path("cases/<str:reference>/", case_views.case_detail, name="case_detail"),
    path("cases/<str:reference>/claim/", case_views.claim, name="case_claim"),
    path("cases/<str:reference>/release/", case_views.release, name="case_release"),
    path("cases/<str:reference>/assess/", case_views.assess, name="case_assess"),
    path("cases/<str:reference>/decide/", case_views.decide, name="case_decide"),
    path("cases/<str:reference>/reopen/", case_views.reopen, name="case_reopen"),
    path("cases/<str:reference>/trace/", case_views.trace, name="case_trace"),
    path("cases/<str:reference>/reveal/", case_views.reveal_contact, name="case_reveal_contact"),
    path("cases/<str:reference>/reassign/", case_views.reassign, name="case_reassign"),
]
