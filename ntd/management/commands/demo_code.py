from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ntd.demo import current_code, totp_secret_of
from ntd.models import User


class Command(BaseCommand):
    help = "Print a demo user's current TOTP code (DEBUG only: stands in for an authenticator app)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_code runs only with DEBUG on.")
        user = User.objects.filter(username=options["username"]).first()
        secret = totp_secret_of(user) if user else None
        if secret is None:
            raise CommandError(f"no user {options['username']!r} with a TOTP factor")
        self.stdout.write(current_code(secret))
