"""DRF permissions. The default is DenyAll: an endpoint opens only by naming who may use it."""

from typing import Any, cast

from rest_framework.permissions import BasePermission
from rest_framework_api_key.permissions import BaseHasAPIKey

from ntd.roles import STAFF_ROLES, roles_of
from takedown.models import PartnerAPIKey


class DenyAll(BasePermission):
    message = "This endpoint does not declare who may use it."

    def has_permission(self, request: Any, view: Any) -> bool:
        return False


class IsStaff(BasePermission):
    """A signed-in member of staff with a second factor (the middleware enforces the factor)."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(set(roles_of(request.user)) & set(STAFF_ROLES)) or bool(
            getattr(request.user, "is_superuser", False)
        )


class HasPartnerAPIKey(BaseHasAPIKey):
    """A valid, unrevoked, unexpired key of an active partner; the partner is put on `request.partner`."""

    model = PartnerAPIKey

    def has_permission(self, request: Any, view: Any) -> bool:
        key = self.get_key(request)
        if not key or "\x00" in key:  # PostgreSQL text cannot hold NUL: such a key is simply wrong
            return False
        try:
            # a manager method (a queryset has none): unrevoked keys only, and the hash must match
            api_key = cast(PartnerAPIKey, PartnerAPIKey.objects.get_from_key(key))
        except PartnerAPIKey.DoesNotExist:
            return False
        if api_key.has_expired or not api_key.partner.is_active:
            return False
        request.partner = api_key.partner
        return True


class IsStaffOrPartner(BasePermission):
    """The API's own description: signed-in staff, or a partner with a valid key."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return IsStaff().has_permission(request, view) or HasPartnerAPIKey().has_permission(request, view)
