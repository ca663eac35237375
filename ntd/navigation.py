"""The staff navigation: each role sees only what it may use (the views check again, this only hides)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.urls import reverse

from ntd.roles import STAFF_ROLES, roles_of


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    permission: str | None = None  # None: every signed-in member of staff
    staff_site: bool = False  # the Django admin: needs is_staff as well
    needs_role: bool = False  # only for someone holding a staff role (what ntd.permissions.IsStaff lets in)

    @property
    def url(self) -> str:
        return reverse(self.url_name)


NAV_ITEMS = (
    NavItem("Home", "home"),
    NavItem("Cases", "triage", permission="reports.view_case"),
    NavItem("Team", "team", permission="reports.supervise_case"),
    NavItem("Audit log", "audit_log", permission="ntd.view_auditevent"),
    NavItem("API documentation", "api_docs", needs_role=True),
    NavItem("Administration", "admin:index", staff_site=True),
)


def navigation_for(user: Any) -> list[NavItem]:
    if not getattr(user, "is_authenticated", False):
        return []
    has_role = bool(set(roles_of(user)) & set(STAFF_ROLES)) or user.is_superuser
    return [
        item
        for item in NAV_ITEMS
        if (item.permission is None or user.has_perm(item.permission))
        and (not item.staff_site or user.is_staff)
        and (not item.needs_role or has_role)
    ]
