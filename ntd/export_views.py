"""The auditor's exports: the export page (a case or a time range, a format, names or pseudonyms) and the direct
download links of the timeline page. Each streams the export, or hands a large one to a worker
(`ntd.export_jobs`); either way the export is in the audit log before a byte leaves.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods

from ntd import exports
from reports.selectors import case_for

TEMPLATE = "ntd/export.html"


class ExportForm(forms.Form):
    case = forms.CharField(label=_("Case reference"), required=False, max_length=32,
                           help_text=_("C-XXXX-XXXX: the case's whole timeline. Leave empty to export the audit log."))
    since = forms.DateField(label=_("From (UTC)"), required=False, widget=forms.DateInput(attrs={"type": "date"}),
                            help_text=_("For the audit log: the first day. Empty: from the first event."))
    until = forms.DateField(label=_("Until (UTC, inclusive)"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}),
                            help_text=_("For the audit log: the last day. Empty: up to now."))
    format = forms.ChoiceField(label=_("Format"), widget=forms.RadioSelect, initial="csv", choices=[
        ("csv", _("CSV (for a spreadsheet)")), ("jsonl", _("JSON Lines")), ("pdf", _("PDF")),
        ("bundle", _("Hashed bundle (ZIP): the timeline, the hashed events, a manifest and a script that checks "
                     "them")),
    ], error_messages={"required": _("Choose a format.")})
    name_analysts = forms.BooleanField(label=_("Name analysts (internal use only)"), required=False,
                                       help_text=_("Without this, analysts appear by pseudonym, as in anything "
                                                   "given to a third party. The choice is recorded."))

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.may_name = user.has_perm(exports.REVEAL)

    def clean_case(self) -> str:
        case = self.cleaned_data["case"].strip()
        if "\x00" in case:
            raise forms.ValidationError(_("Remove the control characters."))
        return case

    def clean_name_analysts(self) -> bool:
        if self.cleaned_data["name_analysts"] and not self.may_name:
            raise forms.ValidationError(_("You may not export analysts' names: that needs the permission to see "
                                          "who is behind a pseudonym. Export with pseudonyms."))
        return bool(self.cleaned_data["name_analysts"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if data.get("case") and (since or until):
            raise forms.ValidationError(_("Give a case reference or a time range, not both."))
        if since and until and since > until:
            raise forms.ValidationError(_("“From” is after “until”."))
        return data

    def export_request(self, user: Any) -> exports.ExportRequest:
        """The export asked for; a case the user may not read is a 404, as everywhere."""
        data = self.cleaned_data
        common = {"format": data["format"], "name_analysts": data["name_analysts"]}
        if data["case"]:
            return exports.ExportRequest(kind=exports.CASE, case_id=case_for(user, data["case"]).pk, **common)
        since, until = data.get("since"), data.get("until")
        return exports.ExportRequest(
            kind=exports.LOG, **common,
            since=datetime.combine(since, time.min, tzinfo=UTC) if since else None,
            until=datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC) if until else None,
        )


@permission_required(exports.EXPORT, raise_exception=True)
@require_http_methods(["GET", "POST"])
def audit_export(request: HttpRequest) -> HttpResponse:
    """The export form; its POST streams the export (or starts a job for a large one)."""
    if request.method == "GET":
        form = ExportForm(user=request.user, initial={"case": request.GET.get("case", "")[:32]})
        return render(request, TEMPLATE, {"form": form})
    form = ExportForm(request.POST, user=request.user)
    if not form.is_valid():
        return render(request, TEMPLATE, {"form": form}, status=400)
    try:
        export = form.export_request(request.user)
    except Http404:
        form.add_error("case", _("No case has this reference."))
        return render(request, TEMPLATE, {"form": form}, status=404)
    return _export(request, export, form)


@permission_required(exports.EXPORT, raise_exception=True)
@require_GET
def case_timeline_export(request: HttpRequest, reference: str, format: str) -> HttpResponse:
    """The timeline page's download links: one case, one format, analysts by pseudonym."""
    if format not in exports.FORMATS:
        raise Http404("No such format.")
    case = case_for(request.user, reference)
    export = exports.ExportRequest(kind=exports.CASE, case_id=case.pk, format=format)
    return _export(request, export, ExportForm(user=request.user, initial={"case": case.reference,
                                                                            "format": format}))


def _export(request: HttpRequest, export: exports.ExportRequest, form: ExportForm) -> HttpResponse:
    try:
        # A PDF is laid out whole (~120 events a second here): beyond a few hundred it is a job, not a request.
        limit = settings.EXPORT_PDF_SYNC_MAX if export.format == "pdf" else settings.EXPORT_ASYNC_ABOVE
        if export.count() > limit:
            from ntd.export_jobs import start_export_job

            job = start_export_job(export, actor=request.user)
            return redirect(reverse("export_job", args=[job.pk]))
        pinned = exports.record_export(export, actor=request.user)
        chunks = exports.export_chunks(pinned)  # a PDF is laid out here: a refusal still gets its page
    except exports.ExportError as error:
        form.add_error(None, str(error))
        return render(request, TEMPLATE, {"form": form}, status=400)
    response = StreamingHttpResponse(chunks, content_type=pinned.content_type)
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=pinned.filename())
    response["Cache-Control"] = "no-store"
    return response
