from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import include, path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from ntd import export_views, job_views, verify_views, views
from reports.api import PartnerReportDetailView, PartnerReportsView


@login_not_required
def admin_login(request: HttpRequest, extra_context: object = None) -> HttpResponse:
    """The admin signs in through the same path as everyone: password, then the second factor.

    The admin sends a signed-in user it refuses here too: that user gets a 403, not a trip to a sign-in
    page that would send them straight back. The admin's own password form is never served.
    """
    next_url = request.GET.get(REDIRECT_FIELD_NAME, "")
    if not request.user.is_authenticated:
        return redirect_to_login(next_url or reverse("admin:index"))
    if not admin.site.has_permission(request):
        raise PermissionDenied
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, require_https=request.is_secure()):
        next_url = reverse("admin:index")
    return redirect(next_url)


admin.site.login = admin_login  # type: ignore[method-assign]
admin.site.site_header = "ntd administration"
admin.site.site_title = "ntd"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("audit/", views.audit_log, name="audit_log"),
    path("audit/export/", export_views.audit_export, name="audit_export"),
    path("audit/exports/<int:pk>/", job_views.export_job, name="export_job"),
    path("audit/exports/<int:pk>/download/", job_views.export_job_download, name="export_job_download"),
    path("audit/cases/<str:reference>/export/<str:format>/", export_views.case_timeline_export,
         name="case_timeline_export"),
    path("audit/verify/", verify_views.verify_page, name="audit_verify"),
    path("audit/verify/start/", verify_views.verify_start, name="audit_verify_start"),
    path("audit/verify/progress/", verify_views.verify_progress, name="audit_verify_progress"),
    path("audit/cases/<str:reference>/", views.case_timeline, name="case_timeline"),
    path("", include("reports.urls")),
    path("", include("takedown.urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/partner/whoami/", views.partner_whoami, name="api_partner_whoami"),
    path("api/v1/reports/", PartnerReportsView.as_view(), name="api_reports"),
    path("api/v1/reports/<str:reference>", PartnerReportDetailView.as_view(), name="api_report_detail"),
    path("api/v1/", include("reports.case_api_urls")),
    path("api/v1/", include("takedown.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api_schema"), name="api_docs"),
]
