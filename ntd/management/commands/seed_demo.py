from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ntd.demo import DemoRefused, current_code, seed_demo


class Command(BaseCommand):
    help = "Load the demo data (users for every role with TOTP, partners). Refuses unless DEBUG is on."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            logins, key = seed_demo()
        except DemoRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("Demo users (sign in at /accounts/login/, then enter the code from an authenticator app")
        self.stdout.write("set up with the TOTP secret, or run: python manage.py demo_code USERNAME)")
        self.stdout.write(f"  {'login':<12} {'role':<18} {'password':<24} {'TOTP secret':<34} code now")
        for login in logins:
            self.stdout.write(
                f"  {login.username:<12} {login.role:<18} {login.password:<24} {login.totp_secret:<34} "
                f"{current_code(login.totp_secret)}"
            )
        if key:
            self.stdout.write(f"Partner API key for 'Partner Hotline NL' (shown once): {key}")
