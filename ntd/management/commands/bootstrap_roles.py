from typing import Any

from django.core.management.base import BaseCommand

from ntd.roles import ROLE_LABELS, sync_roles


class Command(BaseCommand):
    help = "Create the role groups and give each its permissions (idempotent; migrate also does this)."

    def handle(self, *args: Any, **options: Any) -> None:
        counts = sync_roles()
        for role, count in counts.items():
            self.stdout.write(f"{ROLE_LABELS[role]:<22} {count} permissions")
