from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from ntd import audit, verification


class Command(BaseCommand):
    help = "Walk the audit hash chain and the signed checkpoints; exit non-zero at the first bad row."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-record", action="store_true", help="do not append an audit.verified event")

    def handle(self, *args: Any, **options: Any) -> None:
        result = audit.verify_chain()
        if not result.ok:
            raise CommandError(result.describe())
        self.stdout.write(result.describe())
        if not options["no_record"]:
            with transaction.atomic():
                verification.record_verified(result)
