import secrets

from django.contrib.auth.models import AbstractUser
from django.db import models

from ntd.audit import AuditEvent, Fault

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


class ExportJob(models.Model):
    """An export too large to stream in one request: a worker writes it to EXPORT_DIR; only its requester may
    download it, until it expires."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    requested_by = models.ForeignKey("ntd.User", on_delete=models.PROTECT, related_name="export_jobs")
    requested_at = models.DateTimeField(auto_now_add=True)
    params = models.JSONField(help_text="What to export: kind, case or time range, format, names or pseudonyms.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveBigIntegerField(default=0, help_text="Events to export.")
    done = models.PositiveBigIntegerField(default=0, help_text="Events exported so far.")
    filename = models.CharField(max_length=200, blank=True)
    path = models.CharField(max_length=500, blank=True, editable=False)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [models.CheckConstraint(condition=models.Q(status__in=["queued", "running", "ready", "failed",
                                                                              "expired"]),
                                              name="exportjob_status_valid")]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        return 100 if self.status == self.Status.READY else int(100 * self.done / self.total) if self.total else 0


class VerificationRun(models.Model):
    """One verification of the audit chain (the same code as `manage.py verify_audit_log`), with its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PASSED = "passed", "Intact"
        FAILED = "failed", "Broken"
        ERROR = "error", "Could not finish"

    started_by = models.ForeignKey("ntd.User", null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+", help_text="Empty: started by the schedule.")
    requested_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveBigIntegerField(default=0, help_text="Events in the chain when the run started.")
    checked = models.PositiveBigIntegerField(default=0)
    last_seq = models.BigIntegerField(null=True, blank=True, help_text="Verified up to this sequence number.")
    first_bad_seq = models.BigIntegerField(null=True, blank=True)
    fault = models.CharField(max_length=32, blank=True)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [models.CheckConstraint(condition=models.Q(status__in=["queued", "running", "passed", "failed",
                                                                              "error"]),
                                              name="verificationrun_status_valid")]

    def __str__(self) -> str:
        return f"verification {self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        if self.status in (self.Status.PASSED, self.Status.FAILED):
            return 100
        return int(100 * self.checked / self.total) if self.total else 0

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def seconds(self) -> float | None:
        """From the request to the verdict."""
        return (self.finished_at - self.requested_at).total_seconds() if self.finished_at else None

    @property
    def fault_label(self) -> str:
        return Fault(self.fault).label if self.fault in Fault.values else self.fault
