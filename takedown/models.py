from django.db import models
from rest_framework_api_key.models import AbstractAPIKey


class Partner(models.Model):
    """An organisation ntd deals with: a host, a hotline, police, a registrar, a platform team."""

    audit_actor_type = "partner"

    class Kind(models.TextChoices):
        HOSTING_PROVIDER = "hosting_provider", "Hosting provider"
        HOTLINE = "hotline", "Hotline"
        LAW_ENFORCEMENT = "law_enforcement", "Law enforcement"
        REGISTRAR = "registrar", "Registrar"
        PLATFORM_TEAM = "platform_team", "Internal platform team"
        TRUSTED_FLAGGER = "trusted_flagger", "Trusted flagger"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2, upper case.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["hosting_provider", "hotline", "law_enforcement", "registrar",
                                             "platform_team", "trusted_flagger"]),
                name="partner_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class PartnerAPIKey(AbstractAPIKey):
    """A hashed API key that lets one partner use the partner API (only the prefix is stored in clear)."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="api_keys")

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "partner API key"
