from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from ntd import views


@login_not_required
def admin_login(request: HttpRequest, extra_context: object = None) -> HttpResponse:
    """The admin signs in through the same path as everyone: password, then the second factor."""
    return redirect_to_login(request.GET.get("next", "/admin/"))


admin.site.login = admin_login  # type: ignore[method-assign]
admin.site.site_header = "ntd administration"
admin.site.site_title = "ntd"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("audit/", views.audit_log, name="audit_log"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/partner/whoami/", views.partner_whoami, name="api_partner_whoami"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/v1/docs/", SpectacularSwaggerSplitView.as_view(url_name="api_schema"), name="api_docs"),
]
