from django.urls import path

from reports import views

urlpatterns = [
    path("report/", views.report, name="report"),
    path("report/received/", views.received, name="report_received"),
    path("report/status/", views.status, name="report_status"),
]
