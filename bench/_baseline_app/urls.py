"""The baselines' views.

`minimal/` (bench/intake.py): a form with one URL field (CSRF on). POST validates it as an http(s) URL, inserts one
row, 302.

`minimal/cases/?queue=1,2` (bench/triage.py): the 50 most urgent open cases of the given queues, by one hand-written
query in the triage order (the same rows as the first page of /cases/), rendered by a plain template. No session,
no user, no counts, no sources: Django's own cost of a page of 50 rows from this table. With ntd's middleware
(BENCH_BASELINE_MIDDLEWARE=ntd) the page needs a signed-in user, as /cases/ does.
"""

import functools
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.template import engines
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


# The same rows as the first page of the triage queue (reports.selectors.triage_page): open cases of the queues,
# most urgent first, with the holder's name. One statement; the queue ids are the only parameter.
CASES_SQL = """
SELECT c.id, c.reference, c.url, c.host, c.registrable_domain, c.status, c.priority, c.child_at_risk, c.known_url,
       c.report_count, c.first_reported_at, c.hosting_country, c.hosting_asn, c.assignee_id, u.username
FROM reports_case c LEFT OUTER JOIN ntd_user u ON u.id = c.assignee_id
WHERE c.closed_at IS NULL AND c.queue_id = ANY(%s)
ORDER BY c.priority DESC, c.first_reported_at ASC, c.id ASC
LIMIT 50
"""
CASES_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cases</title></head><body>
<h1>Cases</h1>
<table>
<thead><tr><th>Case</th><th>URL</th><th>Reports</th><th>Hosted in</th><th>Reported</th><th>Status</th></tr></thead>
<tbody>
{% for c in rows %}<tr id="row-{{ c.reference }}">
<td><a href="/cases/{{ c.reference }}/">{{ c.reference }}</a>
{% if c.child_at_risk %}child at risk{% endif %} {% if c.known_url %}known URL{% endif %}</td>
<td><code>{{ c.url }}</code>
<div>{{ c.registrable_domain }}{% if c.host != c.registrable_domain %} · {{ c.host }}{% endif %}</div></td>
<td>{{ c.report_count }}</td>
<td>{{ c.hosting_country|default:"—" }}{% if c.hosting_asn %} AS{{ c.hosting_asn }}{% endif %}</td>
<td><time datetime="{{ c.first_reported_at|date:'c' }}">{{ c.first_reported_at|date:'Y-m-d H:i' }}</time></td>
<td>{{ c.status }}{% if c.username %} (held by {{ c.username }}){% endif %}</td>
</tr>
{% endfor %}</tbody>
</table>
</body></html>
"""


@functools.cache
def _cases_template() -> Any:
    return engines["django"].from_string(CASES_TEMPLATE)  # compiled once per process, as the cached loader does


@require_http_methods(["GET"])
def cases(request: HttpRequest) -> HttpResponse:
    try:
        queue_ids = [int(q) for q in request.GET.get("queue", "").split(",") if q]
    except ValueError:
        return HttpResponseBadRequest("queue=1,2")
    with connection.cursor() as cursor:
        cursor.execute(CASES_SQL, [queue_ids])
        names = [col[0] for col in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return HttpResponse(_cases_template().render({"rows": rows}))


urlpatterns = [path("minimal/", minimal), path("minimal/cases/", cases)]
