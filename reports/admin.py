"""The known-URL list in the admin: search, filter, deactivate, add one URL, or import a CSV.

The import takes the CSV as text pasted into a form field (a file chosen in the browser is read into that
field by a few lines of script), never as an uploaded file: ntd accepts no file anywhere, and Django's limit on
uploaded files (DATA_UPLOAD_MAX_NUMBER_FILES = 0) is a global setting that one view cannot raise for itself.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from guardian.shortcuts import get_users_with_perms

from ntd import audit, roles
from ntd.models import User
from reports.known_urls import MAX_SOURCE_LENGTH, deactivate_known_urls, import_known_urls
from reports.models import ClassificationOption, KnownURL, PolicyClause, Queue, Verdict, VerdictMapping
from reports.normalise import InvalidURL, normalise
from reports.services import set_queue_access
from takedown.admin import AuditedAdmin

MAX_IMPORT_BYTES = 5 * 1024 * 1024
INVALID_LINES_SHOWN = 200


class KnownURLForm(forms.ModelForm):
    class Meta:
        model = KnownURL
        fields = ("url", "source", "active")
        widgets = {"url": forms.TextInput(attrs={"size": 100})}

    def clean_url(self) -> str:
        if self.instance.pk:
            return self.instance.url  # read-only once listed: another URL is another entry
        try:
            url = normalise(self.cleaned_data["url"])
        except InvalidURL as exc:
            raise ValidationError(exc.reason, code=exc.code) from None
        if KnownURL.objects.filter(url_key=url.key).exists():
            raise ValidationError("This URL is already on the list (perhaps spelled differently).", code="unique")
        return url.url


class KnownURLImportForm(forms.Form):
    source = forms.CharField(max_length=MAX_SOURCE_LENGTH, help_text="Where the list comes from, e.g. the hotline.")
    csv = forms.CharField(
        label="CSV", strip=False,
        widget=forms.Textarea(attrs={"rows": 16, "cols": 100, "spellcheck": "false", "wrap": "off"}),
        help_text="One URL per line, in the first column; a header row naming the column “url” is skipped. "
                  "At most 5 MB.",
    )

    def clean_csv(self) -> str:
        text = self.cleaned_data["csv"]
        if len(text.encode()) > MAX_IMPORT_BYTES:
            raise ValidationError("The list is larger than 5 MB: split it and import the parts one by one.")
        return text


@admin.register(KnownURL)
class KnownURLAdmin(AuditedAdmin):
    form = KnownURLForm
    list_display = ("url", "registrable_domain", "source", "active", "added_at")
    list_filter = ("active", "source")
    search_fields = ("url", "registrable_domain", "source")
    ordering = ("-added_at", "-id")
    actions = ["deactivate"]
    audit_created = audit.Action.KNOWN_URL_CREATED
    audit_changed = audit.Action.KNOWN_URL_CHANGED

    def get_fields(self, request: HttpRequest, obj: KnownURL | None = None) -> Any:
        if obj is None:
            return ("url", "source", "active")
        return ("url", "registrable_domain", "source", "active", "added_at", "added_by")

    def get_readonly_fields(self, request: HttpRequest, obj: KnownURL | None = None) -> Any:
        return () if obj is None else ("url", "registrable_domain", "added_at", "added_by")

    def has_delete_permission(self, request: HttpRequest, obj: KnownURL | None = None) -> bool:
        return False  # deactivate instead: the list keeps what it once said

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[KnownURL],
                           search_term: str) -> tuple[QuerySet[KnownURL], bool]:
        """Also find a URL in any spelling: its canonical form shares the entry's key."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        try:
            key = normalise(search_term).key
        except InvalidURL:
            return results, may_have_duplicates
        return results | queryset.filter(url_key=key), may_have_duplicates

    def save_model(self, request: HttpRequest, obj: KnownURL, form: Any, change: bool) -> None:
        if not change:
            url = normalise(obj.url)
            obj.url_key, obj.registrable_domain = url.key, url.registrable_domain
            obj.added_by = request.user  # type: ignore[assignment]  # signed in: the admin requires it
        super().save_model(request, obj, form, change)

    @admin.action(description="Deactivate the selected known URLs", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[KnownURL]) -> None:
        count = deactivate_known_urls(queryset.values_list("pk", flat=True), actor=request.user)
        self.message_user(request, f"{count} known URL(s) deactivated.", messages.SUCCESS)

    # --- Import ------------------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="reports_knownurl_import"),
            *super().get_urls(),
        ]

    def may_import(self, request: HttpRequest) -> bool:
        return self.has_add_permission(request) and self.has_change_permission(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {**(extra_context or {}), "may_import": self.may_import(request)})

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.may_import(request):
            raise PermissionDenied
        form = KnownURLImportForm(request.POST if request.method == "POST" else None)
        result = None
        if form.is_bound and form.is_valid():
            result = import_known_urls(form.cleaned_data["csv"], source=form.cleaned_data["source"],
                                       actor=request.user)
            self.message_user(
                request,
                f"{result.added} added, {result.updated} updated, {result.unchanged} already listed, "
                f"{result.duplicates} duplicate lines, {len(result.invalid)} invalid lines.",
                messages.WARNING if result.invalid else messages.SUCCESS,
            )
            if not result.invalid:
                return redirect("admin:reports_knownurl_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import known URLs",
            "form": form,
            "result": result,
            "invalid_shown": result.invalid[:INVALID_LINES_SHOWN] if result else [],
            "max_bytes": MAX_IMPORT_BYTES,
        }
        return TemplateResponse(request, "admin/reports/knownurl/import.html", context)


# --- review: queues and who may work them, the classification scheme, policy clauses ---------------------------


class QueueForm(forms.ModelForm):
    workers = forms.ModelMultipleChoiceField(
        queryset=User.objects.none(), required=False, widget=admin.widgets.FilteredSelectMultiple("analysts", False),
        help_text="Who may see and work the cases of this queue (analysts and supervisors).")
    supervisors = forms.ModelMultipleChoiceField(
        queryset=User.objects.none(), required=False, widget=admin.widgets.FilteredSelectMultiple("supervisors", False),
        help_text="Who may reassign, decide disagreements, close duplicates and reopen cases here.")

    class Meta:
        model = Queue
        fields = ("name", "slug", "description", "hosting_countries", "is_default")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        staff = User.objects.filter(is_active=True, groups__name__in=[roles.ANALYST, roles.SUPERVISOR]).distinct()
        self.fields["workers"].queryset = staff  # type: ignore[attr-defined]
        self.fields["supervisors"].queryset = staff.filter(groups__name=roles.SUPERVISOR)  # type: ignore[attr-defined]
        if self.instance.pk:
            for name, perm in (("workers", "work_queue"), ("supervisors", "supervise_queue")):
                self.fields[name].initial = list(get_users_with_perms(
                    self.instance, only_with_perms_in=[perm], with_group_users=False))

    def clean_hosting_countries(self) -> list[str]:
        value = self.cleaned_data["hosting_countries"] or []
        if not isinstance(value, list) or not all(isinstance(c, str) and len(c) == 2 and c.isalpha() for c in value):
            raise ValidationError('A list of two-letter country codes, e.g. ["NL", "BE"].')
        return [c.upper() for c in value]


@admin.register(Queue)
class QueueAdmin(AuditedAdmin):
    form = QueueForm
    list_display = ("name", "slug", "is_default", "open_cases")
    search_fields = ("name", "slug")
    audit_created, audit_changed, audit_deleted = (audit.Action.QUEUE_CREATED, audit.Action.QUEUE_CHANGED,
                                                   audit.Action.QUEUE_CHANGED)

    @admin.display(description="open cases")
    def open_cases(self, obj: Queue) -> int:
        return obj.cases.filter(closed_at__isnull=True).count()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a queue holds the history of its cases; rename it instead

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        for name, perm in (("workers", "work_queue"), ("supervisors", "supervise_queue")):
            set_queue_access(form.instance, actor=request.user, perm=perm, users=form.cleaned_data[name])


class SchemeAdmin(AuditedAdmin):
    audit_created = audit_changed = audit_deleted = audit.Action.SCHEME_CHANGED

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # assessments keep pointing at it: retire a value by unticking "active"


class VerdictMappingInline(admin.TabularInline):
    model = VerdictMapping
    extra = 0


@admin.register(Verdict)
class VerdictAdmin(SchemeAdmin):
    list_display = ("label", "code", "outcome", "jurisdiction", "four_eyes", "active", "order")
    list_editable = ("four_eyes", "active", "order")
    inlines = [VerdictMappingInline]


@admin.register(ClassificationOption)
class ClassificationOptionAdmin(SchemeAdmin):
    list_display = ("label", "field", "code", "active", "order")
    list_filter = ("field", "active")
    list_editable = ("active", "order")


@admin.register(PolicyClause)
class PolicyClauseAdmin(SchemeAdmin):
    list_display = ("jurisdiction", "code", "title", "active")
    list_filter = ("jurisdiction", "active")
    search_fields = ("code", "title", "text")
