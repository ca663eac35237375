from django.apps import AppConfig
from django.db.models.signals import post_migrate


class NtdConfig(AppConfig):
    name = "ntd"
    verbose_name = "ntd"

    def ready(self) -> None:
        from ntd import accounts, roles  # noqa: F401 - accounts connects the sign-in audit receivers
        from ntd.logging import configure_structlog

        configure_structlog()

        # Permissions exist only after post_migrate has created them; the roles follow them.
        post_migrate.connect(roles.sync_roles_after_migrate, dispatch_uid="ntd.sync_roles")
