"""Partners in the admin: the partner with its contacts and whitelisted senders on one page, and API keys.

Every change made here writes one audit event (`AuditedAdmin`) naming the fields that changed, never their
values: contact and sender addresses are personal data and key material is secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from rest_framework_api_key.admin import APIKeyModelAdmin

from ntd import audit
from takedown.models import HostingNetwork, Partner, PartnerAPIKey, PartnerContact, WhitelistedSender


class AuditedAdmin(admin.ModelAdmin):
    """Audit every save and delete of the admin page: one event per save, the form's and inlines' changed fields.

    Model forms already run the models' `full_clean()` (and so their `clean()`) before anything is saved.
    The admin runs a save and its event in one transaction (`changeform_view`, `delete_view`).
    """

    audit_created: str
    audit_changed: str
    audit_deleted: str

    def audit_action(self, obj: Any, change: bool, fields: Sequence[str]) -> str:
        return self.audit_changed if change else self.audit_created

    def audit_target(self, obj: Any) -> tuple[str, Any]:
        return (obj._meta.label_lower, obj.pk)  # resolved now: a deleted object has no primary key afterwards

    def save_related(self, request: HttpRequest, form: Any, formsets: Sequence[Any], change: bool) -> None:
        # Before saving: a deleted row has no primary key afterwards.
        deleted = {formset.prefix: sorted(f.instance.pk for f in formset.deleted_forms if f.instance.pk)
                   for formset in formsets}
        super().save_related(request, form, formsets, change)
        fields = changed_fields(form, change)
        inlines = {}
        for formset in formsets:
            gone = set(deleted[formset.prefix])
            summary = {
                "added": sorted(obj.pk for obj in formset.new_objects),
                "changed": [[f.instance.pk, names] for f in formset.initial_forms
                            if f.instance.pk not in gone and (names := changed_fields(f, True))],
                "deleted": deleted[formset.prefix],
            }
            if any(summary.values()):
                inlines[formset.prefix] = summary
        if change and not fields and not inlines:
            return  # saved without a change: nothing happened
        data: dict[str, Any] = {"fields": fields}
        if inlines:
            data["inlines"] = inlines
        with transaction.atomic():
            audit.record(actor=request.user, action=self.audit_action(form.instance, change, fields),
                         target=self.audit_target(form.instance), data=data)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        target = self.audit_target(obj)
        with transaction.atomic():
            super().delete_model(request, obj)
            audit.record(actor=request.user, action=self.audit_deleted, target=target)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic():
            targets = [self.audit_target(obj) for obj in queryset.select_for_update()]
            super().delete_queryset(request, queryset)
            audit.record_many([audit.Entry(request.user, self.audit_deleted, target=target) for target in targets])


def changed_fields(form: Any, change: bool) -> list[str]:
    """The model fields a saved form changed. On a change, a field counts only when the value saved differs
    from the one before: "NL, fr" typed over "nl,fr" is saved as "nl,fr" by the model's clean()."""
    names = []
    for name in form.changed_data:
        try:
            field = form.instance._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if not change or name not in form.initial or field.value_from_object(form.instance) != form.initial[name]:
            names.append(name)
    return sorted(names)


class PartnerContactForm(forms.ModelForm):
    class Meta:
        model = PartnerContact
        fields = ("channel", "email", "webhook_url", "language", "around_the_clock", "hours_start", "hours_end",
                  "working_days", "time_zone", "holidays_country", "holidays_subdivision", "out_of_hours",
                  "is_active")


class WhitelistedSenderForm(forms.ModelForm):
    class Meta:
        model = WhitelistedSender
        fields = ("address",)

    def clean_address(self) -> str:
        # As the model's clean() does, but before the inline formset compares its rows for duplicates.
        return self.cleaned_data["address"].strip().lower()


class PartnerPartInline(admin.TabularInline):
    """Contacts and senders are part of the partner: editing them takes the partner's own permissions."""

    extra = 0

    def _may_edit(self, request: HttpRequest, obj: Model | None) -> bool:
        return request.user.has_perm("takedown.change_partner" if obj else "takedown.add_partner")

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.has_perm("takedown.view_partner") or self._may_edit(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Model | None) -> bool:  # type: ignore[override]
        return self._may_edit(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._may_edit(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._may_edit(request, obj)


class PartnerContactInline(PartnerPartInline):
    model = PartnerContact
    form = PartnerContactForm


class WhitelistedSenderInline(PartnerPartInline):
    model = WhitelistedSender
    form = WhitelistedSenderForm
    verbose_name = "whitelisted e-mail sender"
    verbose_name_plural = "whitelisted e-mail senders (an address, or @domain for a whole domain)"


@admin.register(Partner)
class PartnerAdmin(AuditedAdmin):
    list_display = ("name", "kind", "country", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("name",)
    inlines = [PartnerContactInline, WhitelistedSenderInline]
    audit_created = audit.Action.PARTNER_CREATED
    audit_changed = audit.Action.PARTNER_CHANGED
    audit_deleted = audit.Action.PARTNER_DELETED


@admin.register(PartnerAPIKey)
class PartnerAPIKeyAdmin(AuditedAdmin, APIKeyModelAdmin):
    """The library's admin: the key is shown once, on creation; `expiry_date` and `revoked` end its use."""

    list_display = (*APIKeyModelAdmin.list_display, "partner")  # type: ignore[assignment]
    list_select_related = ("partner",)
    search_fields = (*APIKeyModelAdmin.search_fields, "partner__name")  # type: ignore[assignment]
    audit_created = audit.Action.PARTNER_API_KEY_CREATED
    audit_changed = audit.Action.PARTNER_API_KEY_CHANGED
    audit_deleted = audit.Action.PARTNER_API_KEY_DELETED

    def audit_target(self, obj: Any) -> tuple[str, Any]:
        return (obj._meta.label_lower, obj.prefix)  # the primary key holds the key's hash: never in the log

    def audit_action(self, obj: Any, change: bool, fields: Sequence[str]) -> str:
        if change and "revoked" in fields and obj.revoked:
            return audit.Action.PARTNER_API_KEY_REVOKED
        return super().audit_action(obj, change, fields)


@admin.register(HostingNetwork)
class HostingNetworkAdmin(AuditedAdmin):
    """Which hosting provider answers for a network: the hosting trace files cases under that partner."""

    list_display = ("asn", "name", "partner")
    search_fields = ("asn", "name", "partner__name")
    autocomplete_fields = ("partner",)
    audit_created = audit_changed = audit_deleted = audit.Action.HOSTING_NETWORK_CHANGED
