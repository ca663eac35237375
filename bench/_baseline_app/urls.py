"""One view: a form with one URL field (CSRF on). POST validates it as an http(s) URL, inserts one row, 302."""

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.urls import path
from django.views.decorators.http import require_http_methods

TABLE = "bench_baseline"  # created by bench/intake.py
_validate_url = URLValidator(schemes=["http", "https"])


@login_not_required
@require_http_methods(["GET", "POST"])
def minimal(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        token = get_token(request)
        return HttpResponse(
            '<form method="post"><input type="hidden" name="csrfmiddlewaretoken" value="' + token + '">'
            '<input name="url"><button>Send</button></form>'
        )
    url = request.POST.get("url", "").strip()
    try:
        _validate_url(url)
    except ValidationError:
        return HttpResponseBadRequest("not an http(s) URL")
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (url) VALUES (%s)", [url])  # noqa: S608 - a constant table name
    return HttpResponseRedirect("/minimal/done/")


urlpatterns = [path("minimal/", minimal)]
