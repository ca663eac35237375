from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from ntd.models import User


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    list_display = ("username", "pseudonym", "is_active", "is_staff", "last_login")
    readonly_fields = ("pseudonym", "last_login", "date_joined")
    fieldsets = (*UserAdmin.fieldsets, ("Pseudonym", {"fields": ("pseudonym",)}))
