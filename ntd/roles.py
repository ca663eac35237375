"""Roles are Django groups with their model permissions; this table is the single source of truth.

`sync_roles()` makes the database match it, idempotently: it runs after every migrate and as
`manage.py bootstrap_roles`. Later issues add their permissions here as their models arrive.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.db import transaction

ANALYST = "analyst"
SUPERVISOR = "supervisor"
WELFARE_OFFICER = "welfare_officer"
ADMIN = "admin"
AUDITOR = "auditor"
PARTNER = "partner"

ROLE_LABELS = {
    ANALYST: "Analyst",
    SUPERVISOR: "Supervisor",
    WELFARE_OFFICER: "Welfare officer",
    ADMIN: "Administrator",
    AUDITOR: "Auditor",
    PARTNER: "Partner (API client)",
}
STAFF_ROLES = (ANALYST, SUPERVISOR, WELFARE_OFFICER, ADMIN, AUDITOR)

_REVIEW = ["reports.view_case", "reports.work_case"]
_SCHEME = [f"reports.{verb}_{model}" for model in ("queue", "verdict", "classificationoption", "policyclause",
                                                    "verdictmapping") for verb in ("view", "add", "change")]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    ANALYST: [*_REVIEW],
    SUPERVISOR: [*_REVIEW, "reports.supervise_case", "reports.reveal_reporter_contact"],
    WELFARE_OFFICER: [],
    ADMIN: [
        "ntd.add_user", "ntd.change_user", "ntd.view_user",
        "auth.view_group",
        "takedown.add_partner", "takedown.change_partner", "takedown.view_partner",
        "takedown.add_partnerapikey", "takedown.change_partnerapikey", "takedown.view_partnerapikey",
        "reports.view_knownurl", "reports.add_knownurl", "reports.change_knownurl",
        *_SCHEME, "reports.delete_verdictmapping",
        "takedown.view_hostingnetwork", "takedown.add_hostingnetwork", "takedown.change_hostingnetwork",
        "takedown.delete_hostingnetwork",
        *[f"takedown.{verb}_routingrule" for verb in ("view", "add", "change", "delete")],
        *[f"takedown.{verb}_noticetemplate" for verb in ("view", "add", "change")],
    ],
    AUDITOR: [
        "reports.view_case", "reports.view_all_cases",
        "ntd.view_auditevent", "ntd.verify_audit_log", "ntd.export_audit_log",
        "ntd.reveal_analyst_identity", "takedown.view_partner",
    ],
    PARTNER: [],
}
# Roles whose members may use the Django admin (it still needs the model permission per page).
ADMIN_SITE_ROLES = (ADMIN,)


def _permission(label: str) -> Permission:
    app_label, codename = label.split(".", 1)
    try:
        return Permission.objects.get(content_type__app_label=app_label, codename=codename)
    except Permission.DoesNotExist:
        raise LookupError(f"roles.py names {label}, which no model defines") from None


@transaction.atomic
def sync_roles() -> dict[str, int]:
    """Create the role groups and give each exactly the permissions of ROLE_PERMISSIONS."""
    counts = {}
    for role, labels in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set([_permission(label) for label in labels])
        counts[role] = len(labels)
    return counts


def sync_roles_after_migrate(sender: Any, **kwargs: Any) -> None:
    # post_migrate is sent once per app, and each app's permissions are created on its own turn:
    # sync once the last app has had its turn, when every permission exists.
    with_models = [config.name for config in apps.get_app_configs() if config.models_module is not None]
    if sender.name == with_models[-1]:
        sync_roles()


def roles_of(user: Any) -> list[str]:
    if not getattr(user, "is_authenticated", False):
        return []
    cached = getattr(user, "_ntd_roles", None)
    if cached is None:
        cached = sorted(user.groups.filter(name__in=ROLE_LABELS).values_list("name", flat=True))
        user._ntd_roles = cached
    return cached


def has_role(user: Any, role: str) -> bool:
    return role in roles_of(user)


@transaction.atomic
def assign_role(user: Any, role: str) -> None:
    if role not in ROLE_LABELS:
        raise ValueError(f"unknown role {role!r}")
    user.groups.add(Group.objects.get(name=role))
    if role in ADMIN_SITE_ROLES and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    user.__dict__.pop("_ntd_roles", None)
