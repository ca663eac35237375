import secrets

from django.contrib.auth.models import AbstractUser
from django.db import models

from ntd.audit import AuditEvent

__all__ = ["AuditEvent", "User"]

# Crockford's base32 without the letters that read like digits: easy to say aloud, hard to mistake.
PSEUDONYM_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_pseudonym() -> str:
    return "A-" + "".join(secrets.choice(PSEUDONYM_ALPHABET) for _ in range(5))


class User(AbstractUser):
    """A member of staff. Outside the system a user is only ever named by `pseudonym`."""

    pseudonym = models.CharField(
        max_length=16, unique=True, default=new_pseudonym, editable=False,
        help_text="Stable pseudonymous id used in notices, referrals and third-party exports.",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        permissions = [("reveal_analyst_identity", "Can see which person is behind a pseudonym")]

    @property
    def roles(self) -> list[str]:
        from ntd.roles import roles_of

        return roles_of(self)
