"""Staff pages about notices, and the pages behind the signed links that recipients open."""

from django.urls import path

from takedown import link_views

urlpatterns = [
    path("n/<str:purpose>/<str:token>/", link_views.notice_link, name="notice_link"),
]
