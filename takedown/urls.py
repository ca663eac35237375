"""Staff pages about notices, and the pages behind the signed links that recipients open."""

from django.urls import path

from takedown import link_views, views

urlpatterns = [
    path("n/<str:purpose>/<str:token>/", link_views.notice_link, name="notice_link"),
    # Staff actions about notices (takedown.views): POST only, each with its permission.
    path("cases/tasks/<int:pk>/resolve/", views.task_resolve, name="supervisor_task_resolve"),
    path("cases/<str:reference>/removal/verified/", views.removal_verified, name="case_removal_verified"),
    path("cases/<str:reference>/removal/confirm/", views.removal_confirm, name="case_removal_confirm"),
    path("cases/<str:reference>/removal/reject/", views.removal_reject, name="case_removal_reject"),
    path("cases/<str:reference>/notices/send/", views.notice_send, name="case_notice_send"),
    path("cases/<str:reference>/notices/<str:notice>/uphold/", views.notice_uphold, name="case_notice_uphold"),
    path("cases/<str:reference>/notices/<str:notice>/withdraw/", views.notice_withdraw, name="case_notice_withdraw"),
    path("cases/<str:reference>/authorisations/<int:pk>/authorise/", views.authorisation_authorise,
         name="case_authorisation_authorise"),
    path("cases/<str:reference>/authorisations/<int:pk>/hold/", views.authorisation_hold,
         name="case_authorisation_hold"),
]
