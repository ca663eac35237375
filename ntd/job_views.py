"""Prepared exports: the job's page (its progress, then its download link) and the download, for its requester.

The page works without JavaScript (reload to see progress); with htmx its status block asks for itself every two
seconds while the job is queued or running, and stops once the block it gets back no longer asks.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ntd import export_jobs, exports
from ntd.models import ExportJob


def _context(job: ExportJob, **extra: Any) -> dict[str, Any]:
    return {"job": job, "active": job.status in export_jobs.ACTIVE, "keep_hours": settings.EXPORT_KEEP_HOURS,
            **extra}


@permission_required(export_jobs.PERMISSION, raise_exception=True)
@never_cache
@require_GET
def export_job(request: HttpRequest, pk: int) -> HttpResponse:
    job = export_jobs.job_for(request.user, pk)
    template = "ntd/export_job.html#job-status" if request.htmx else "ntd/export_job.html"  # type: ignore[attr-defined]
    return render(request, template, _context(job))


@permission_required(export_jobs.PERMISSION, raise_exception=True)
@never_cache
@require_GET
def export_job_download(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The file, to its requester only (anyone else: 404), each download recorded; 410 once it has expired."""
    try:
        download = export_jobs.open_download(pk, actor=request.user)  # type: ignore[arg-type]
    except export_jobs.ExportNotReady:
        return redirect("export_job", pk=pk)
    except export_jobs.ExportGone as gone:
        job = export_jobs.job_for(request.user, pk)
        return render(request, "ntd/export_job.html", _context(job, gone=str(gone)), status=410)
    job = download.job
    return FileResponse(download.file, as_attachment=True, filename=job.filename,
                        content_type=exports.CONTENT_TYPES.get(job.params.get("format", ""),
                                                               "application/octet-stream"))
