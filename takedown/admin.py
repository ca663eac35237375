from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin

from takedown.models import Partner, PartnerAPIKey


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "country", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("name",)


@admin.register(PartnerAPIKey)
class PartnerAPIKeyAdmin(APIKeyModelAdmin):
    list_display = (*APIKeyModelAdmin.list_display, "partner")
    search_fields = (*APIKeyModelAdmin.search_fields, "partner__name")
