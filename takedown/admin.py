"""Partners in the admin: the partner with its contacts and whitelisted senders on one page, and API keys.

Every change made here writes one audit event (`AuditedAdmin`) naming the fields that changed, never their
values: contact and sender addresses are personal data and key material is secret.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import holidays
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from rest_framework_api_key.admin import APIKeyModelAdmin

from ntd import audit
from takedown import secrets
from takedown.models import (
    MATERIAL_KINDS,
    HostingNetwork,
    NoticeTemplate,
    Partner,
    PartnerAPIKey,
    PartnerContact,
    RoutingRule,
    WhitelistedSender,
)


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

    def audit_extra_fields(self, form: Any) -> list[str]:
        """Fields the form changed outside its model fields (a sealed key set through a write-only field)."""
        return []

    def save_related(self, request: HttpRequest, form: Any, formsets: Sequence[Any], change: bool) -> None:
        # Before saving: a deleted row has no primary key afterwards.
        deleted = {formset.prefix: sorted(f.instance.pk for f in formset.deleted_forms if f.instance.pk)
                   for formset in formsets}
        super().save_related(request, form, formsets, change)
        fields = sorted({*changed_fields(form, change), *self.audit_extra_fields(form)})
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


# --- validation shared by the forms ------------------------------------------------------------------------------
WORKING_DAYS = re.compile(r"[0-6](,[0-6])*")


def check_url(value: str, what: str) -> str:
    """An https:// address (http:// too when settings.NOTICE_ALLOW_HTTP, in development and tests)."""
    scheme = urlsplit(value).scheme.lower()
    if scheme != "https" and not (settings.NOTICE_ALLOW_HTTP and scheme == "http"):
        raise ValidationError(f"{what} must start with https://.", code="scheme")
    return value


def check_language(value: str) -> str:
    value = value.strip().lower()
    if value and not (len(value) == 2 and value.isascii() and value.isalpha()):
        raise ValidationError("Use a two-letter ISO 639-1 code, e.g. en.", code="language")
    return value


def check_country(value: str) -> str:
    value = value.strip().upper()
    if value and not (len(value) == 2 and value.isascii() and value.isalpha()):
        raise ValidationError("Use the two-letter ISO 3166-1 code, e.g. NL.", code="country")
    return value


@functools.cache
def time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def holiday_calendars() -> dict[str, tuple[str, ...]]:
    """Countries (two-letter codes) whose public holidays the `holidays` package knows, with their subdivisions."""
    return {country: tuple(subdivisions) for country, subdivisions in holidays.list_supported_countries().items()
            if len(country) == 2}


# --- partners, their contacts and senders --------------------------------------------------------------------
class PartnerContactForm(forms.ModelForm):
    new_webhook_secret = forms.BooleanField(
        required=False, label="make a new signing secret",
        help_text="The current secret stops working at once; the new one is shown once, after saving.")

    class Meta:
        model = PartnerContact
        fields = ("channel", "email", "webhook_url", "language", "around_the_clock", "hours_start", "hours_end",
                  "working_days", "time_zone", "holidays_country", "holidays_subdivision", "out_of_hours",
                  "is_active")
        error_messages = {
            "email": {"invalid": "Enter a valid e-mail address, e.g. abuse@hosting.example."},
            "working_days": {"required": "Name at least one working day, e.g. 0,1,2,3,4 (0 = Monday)."},
        }

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data["webhook_url"].strip()
        return check_url(url, "The webhook URL") if url else url

    def clean_language(self) -> str:
        return check_language(self.cleaned_data["language"])

    def clean_working_days(self) -> str:
        text = re.sub(r"\s+", "", self.cleaned_data["working_days"])
        if not WORKING_DAYS.fullmatch(text):
            raise ValidationError("Give the working days as digits from 0 (Monday) to 6 (Sunday) separated by "
                                  "commas, e.g. 0,1,2,3,4.", code="working_days")
        return ",".join(sorted(set(text.split(","))))

    def clean_time_zone(self) -> str:
        zone = self.cleaned_data["time_zone"].strip()
        if zone not in time_zones():
            raise ValidationError("Unknown time zone: use an IANA name such as Europe/Amsterdam or UTC.",
                                  code="time_zone")
        return zone

    def clean_holidays_country(self) -> str:
        country = check_country(self.cleaned_data["holidays_country"])
        if country and country not in holiday_calendars():
            raise ValidationError(f"The public holidays of {country} are not known to ntd.", code="holidays")
        return country

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        channel = data.get("channel")
        sends_email = channel in (PartnerContact.Channel.EMAIL, PartnerContact.Channel.BOTH)
        sends_webhook = channel in (PartnerContact.Channel.WEBHOOK, PartnerContact.Channel.BOTH)
        if channel and "email" in data:
            if sends_email and not data["email"]:
                self.add_error("email", "A contact that receives e-mail needs an e-mail address.")
            elif not sends_email and data["email"]:
                self.add_error("email", "This contact receives webhooks only: leave the e-mail address empty, or "
                                        "choose “E-mail and webhook”.")
        if channel and "webhook_url" in data:
            if sends_webhook and not data["webhook_url"]:
                self.add_error("webhook_url", "A contact that receives webhooks needs a webhook URL.")
            elif not sends_webhook and data["webhook_url"]:
                self.add_error("webhook_url", "This contact receives e-mail only: leave the webhook URL empty, or "
                                              "choose “E-mail and webhook”.")
        if channel and not sends_webhook and data.get("new_webhook_secret"):
            self.add_error("new_webhook_secret", "This contact receives no webhooks: it has no signing secret.")
        self._clean_hours(data)
        subdivision = data.get("holidays_subdivision", "").strip()
        if subdivision and "holidays_country" in data:
            country = data["holidays_country"]
            known = {code.upper(): code for code in holiday_calendars().get(country, ())}
            if not country:
                self.add_error("holidays_subdivision", "Choose the country of the subdivision too.")
            elif subdivision.upper() not in known:
                self.add_error("holidays_subdivision",
                               f"{country} has no subdivision {subdivision} in ntd's holiday calendars"
                               + (f"; known: {', '.join(sorted(known.values()))}." if known else "."))
            else:
                data["holidays_subdivision"] = known[subdivision.upper()]
        return data

    def _clean_hours(self, data: dict[str, Any]) -> None:
        if self.has_error("hours_start") or self.has_error("hours_end"):
            return
        start, end = data.get("hours_start"), data.get("hours_end")
        if (start is None) != (end is None):
            self.add_error("hours_end" if end is None else "hours_start",
                           "Give both the start and the end of business hours, or neither.")
        elif start is None and not data.get("around_the_clock"):
            self.add_error("hours_start", "Give the business hours, or tick “around the clock”.")
        elif start is not None and end <= start:
            self.add_error("hours_end", "Business hours must end after they start, on the same day.")


class WhitelistedSenderForm(forms.ModelForm):
    class Meta:
        model = WhitelistedSender
        fields = ("address",)

    def clean_address(self) -> str:
        # As the model's clean() does, but before the inline formset compares its rows for duplicates.
        return self.cleaned_data["address"].strip().lower()


class PartnerPartPermissions:
    """Contacts and senders are part of the partner: editing them takes the partner's own permissions."""

    extra = 0

    def _may_edit(self, request: HttpRequest, obj: Model | None) -> bool:
        return request.user.has_perm("takedown.change_partner" if obj else "takedown.add_partner")

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.has_perm("takedown.view_partner") or self._may_edit(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Model | None) -> bool:
        return self._may_edit(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._may_edit(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._may_edit(request, obj)


class PartnerContactInline(PartnerPartPermissions, admin.StackedInline):
    model = PartnerContact
    form = PartnerContactForm
    readonly_fields = ("signing_secret",)
    fieldsets = [
        (None, {"fields": ["channel", "email", "webhook_url", "signing_secret", "new_webhook_secret", "language",
                           "is_active"]}),
        ("When they can be reached", {"fields": [
            "around_the_clock", ("hours_start", "hours_end"), "working_days", "time_zone",
            ("holidays_country", "holidays_subdivision"), "out_of_hours"]}),
    ]

    @admin.display(description="signing secret")
    def signing_secret(self, contact: PartnerContact) -> str:
        if contact.webhook_secret_sealed is not None:
            return "Set. It was shown once, when it was made; tick below to replace it."
        return "None yet: made, and shown once, when the contact is saved with a webhook."


class WhitelistedSenderInline(PartnerPartPermissions, admin.TabularInline):
    model = WhitelistedSender
    form = WhitelistedSenderForm
    verbose_name = "whitelisted e-mail sender"
    verbose_name_plural = "whitelisted e-mail senders (an address, or @domain for a whole domain)"


class PartnerForm(forms.ModelForm):
    ntd_api_key = forms.CharField(
        required=False, max_length=500, label="their API key for us",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The API key their ntd issued to us. Stored sealed and never shown; leave empty to keep the key "
                  "stored.")

    class Meta:
        model = Partner
        fields = ("name", "kind", "country", "inhope_member", "languages", "is_active", "runs_ntd", "ntd_url")

    def clean_ntd_url(self) -> str:
        url = self.cleaned_data["ntd_url"].strip()
        if not url:
            return url
        check_url(url, "The address of their ntd")
        parts = urlsplit(url)
        if parts.query or parts.fragment:
            raise ValidationError("Give the address of their ntd without ? or #, e.g. https://ntd.hotline.example",
                                  code="ntd_url")
        return url.rstrip("/")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("runs_ntd"):
            if "ntd_url" in data and not data["ntd_url"]:
                self.add_error("ntd_url", "A partner that runs ntd needs the address of their ntd.")
            if not data.get("ntd_api_key") and self.instance.ntd_api_key_sealed is None:
                self.add_error("ntd_api_key", "A partner that runs ntd needs the API key their ntd issued to us.")
        elif data.get("ntd_api_key"):
            self.add_error("ntd_api_key", "Only a partner that runs ntd has an API key for us: tick “runs ntd”.")
        return data


@admin.register(Partner)
class PartnerAdmin(AuditedAdmin):
    """A partner with its contacts and senders. Secrets never reach the page twice, nor the audit log:
    a webhook signing secret is made when a contact with a webhook is saved, and shown once; their ntd's API key
    for us is write-only."""

    form = PartnerForm
    list_display = ("name", "kind", "country", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("name",)
    readonly_fields = ("ntd_api_key_stored",)
    fieldsets = [
        (None, {"fields": ["name", "kind", "country", "inhope_member", "languages", "is_active"]}),
        ("Hotline-to-hotline exchange", {"fields": ["runs_ntd", "ntd_url", "ntd_api_key_stored", "ntd_api_key"]}),
    ]
    inlines = [PartnerContactInline, WhitelistedSenderInline]
    audit_created = audit.Action.PARTNER_CREATED
    audit_changed = audit.Action.PARTNER_CHANGED
    audit_deleted = audit.Action.PARTNER_DELETED

    @admin.display(description="API key stored")
    def ntd_api_key_stored(self, partner: Partner) -> str:
        return "Yes (sealed, never shown)" if partner.ntd_api_key_sealed is not None else "No"

    def save_model(self, request: HttpRequest, obj: Partner, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)  # first: the sealed key is bound to the partner's id
        key = form.cleaned_data.get("ntd_api_key")
        forget = not obj.runs_ntd and obj.ntd_api_key_sealed is not None
        if key or forget:
            secrets.seal_ntd_api_key(obj, key or None)
            obj.save(update_fields=["ntd_api_key_sealed"])
            form.ntd_api_key_changed = True

    def audit_extra_fields(self, form: Any) -> list[str]:
        return ["ntd_api_key_sealed"] if getattr(form, "ntd_api_key_changed", False) else []

    def save_related(self, request: HttpRequest, form: Any, formsets: Sequence[Any], change: bool) -> None:
        super().save_related(request, form, formsets, change)
        renew = {f.instance.pk for formset in formsets if formset.model is PartnerContact
                 for f in formset.forms
                 if f.instance.pk and f not in formset.deleted_forms and f.cleaned_data.get("new_webhook_secret")}
        contacts = form.instance.contacts.filter(
            channel__in=[PartnerContact.Channel.WEBHOOK, PartnerContact.Channel.BOTH]).order_by("pk")
        for contact in contacts:
            if contact.webhook_secret_sealed is None or contact.pk in renew:
                secret = secrets.new_webhook_secret(contact, actor=request.user)
                self.message_user(request, f"The signing secret for the webhook {contact.webhook_url} is {secret} "
                                           f"— copy it now and give it to the partner: it is not shown again.",
                                  messages.WARNING)


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


# --- routing rules and notice templates --------------------------------------------------------------------------
class RoutingRuleForm(forms.ModelForm):
    notice_kind = forms.ChoiceField(
        required=False, label="notice",
        choices=[("", "As the target implies"), *((kind.value, kind.label) for kind in MATERIAL_KINDS)],
        help_text="Empty: a takedown notice to a host, a referral to a hotline or foreign police, information to "
                  "our police (a referral when a child is at risk).")

    class Meta:
        model = RoutingRule
        fields = ("position", "active", "situation", "country", "asn", "send_to", "partner", "notice_kind",
                  "needs_authorisation", "authorisation_wait_minutes", "authorisation_fallback", "escalate_to")

    def clean_country(self) -> str:
        return check_country(self.cleaned_data["country"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        send_to, situation = data.get("send_to"), data.get("situation")
        if send_to == RoutingRule.Target.PARTNER:
            if "partner" in data and data["partner"] is None:
                self.add_error("partner", "Choose the partner this rule sends to.")
            if "notice_kind" in data and not data["notice_kind"]:
                self.add_error("notice_kind", "Choose the notice the partner gets.")
        elif send_to and data.get("partner") is not None:
            self.add_error("partner", "Only a rule that sends to a named partner names one: leave it empty.")
        if send_to == RoutingRule.Target.SUPERVISOR and data.get("notice_kind"):
            self.add_error("notice_kind", "A supervisor decides: this rule sends no notice. Leave it empty.")
        country = data.get("country")
        if country and situation == RoutingRule.Situation.UNKNOWN:
            self.add_error("country", "This rule is for cases whose hosting country is not known: it cannot name "
                                      "a country.")
        elif country and situation == RoutingRule.Situation.DOMESTIC and country != settings.NTD_COUNTRY:
            self.add_error("country", f"A domestic rule applies to cases hosted in {settings.NTD_COUNTRY} only: "
                                      f"leave the country empty.")
        return data


@admin.register(RoutingRule)
class RoutingRuleAdmin(AuditedAdmin):
    """Who hears about a confirmed case (takedown.routing): rules applied in order of position, those for a
    child at risk first. A rule that finds no recipient leaves the decision to a supervisor."""

    form = RoutingRuleForm
    list_display = ("position", "situation", "country", "asn", "send_to", "partner", "notice_kind",
                    "needs_authorisation", "active")
    list_display_links = ("position", "situation")
    list_filter = ("situation", "send_to", "active")
    list_select_related = ("partner",)
    ordering = ("position", "pk")
    autocomplete_fields = ("partner", "escalate_to")
    fieldsets = [
        (None, {"fields": ["position", "active", "situation", "country", "asn"]}),
        ("Recipient", {"fields": ["send_to", "partner", "notice_kind", "escalate_to"]}),
        ("Police authorisation", {"fields": ["needs_authorisation", "authorisation_wait_minutes",
                                             "authorisation_fallback"]}),
    ]
    audit_created = audit_changed = audit_deleted = audit.Action.ROUTING_RULE_CHANGED


class NoticeTemplateForm(forms.ModelForm):
    class Meta:
        model = NoticeTemplate
        fields = ("kind", "language", "subject", "body", "active")
        widgets = {"subject": forms.TextInput(attrs={"size": 100}),
                   "body": forms.Textarea(attrs={"rows": 28, "cols": 100, "spellcheck": "false"})}

    def clean_language(self) -> str:
        language = check_language(self.cleaned_data["language"])
        if not language:
            raise ValidationError("Give the language of the template, e.g. en.", code="required")
        return language

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if all(data.get(name) for name in ("kind", "subject", "body")):
            from takedown.rendering import validate_template  # noqa: PLC0415 (imports the template machinery)

            try:
                validate_template(data["kind"], data["subject"], data["body"])
            except ValidationError as error:
                self.add_error(None, error)
        return data


@admin.register(NoticeTemplate)
class NoticeTemplateAdmin(AuditedAdmin):
    """The words of each notice, per kind and language: Django template syntax over a fixed context, checked
    (takedown.rendering.validate_template) before it is saved."""

    form = NoticeTemplateForm
    list_display = ("kind", "language", "subject", "active", "updated_at")
    list_filter = ("kind", "language", "active")
    search_fields = ("subject", "body")
    audit_created = audit_changed = audit_deleted = audit.Action.NOTICE_TEMPLATE_CHANGED
