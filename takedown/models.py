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
    inhope_member = models.BooleanField(default=False, verbose_name="INHOPE member")
    languages = models.CharField(max_length=64, blank=True,
                                 help_text="Languages for notices, as ISO 639-1 codes separated by commas.")
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

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        self.country = self.country.upper()
        if self.country and not (len(self.country) == 2 and self.country.isalpha()):
            raise ValidationError({"country": "Use the two-letter ISO 3166-1 code, e.g. NL."})
        codes = [c.strip().lower() for c in self.languages.split(",") if c.strip()]
        if any(len(c) != 2 or not c.isalpha() for c in codes):
            raise ValidationError({"languages": "Use two-letter ISO 639-1 codes separated by commas, e.g. en,nl."})
        self.languages = ",".join(codes)


class PartnerContact(models.Model):
    """Where a partner receives notices (the notices issue adds business hours and webhooks)."""

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="contacts")
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    address = models.CharField(max_length=500, help_text="An e-mail address or an https:// webhook URL.")
    language = models.CharField(max_length=2, blank=True)
    out_of_hours = models.BooleanField(default=False, help_text="The contact for outside business hours.")

    def __str__(self) -> str:
        return f"{self.partner}: {self.address}"


class WhitelistedSender(models.Model):
    """An address (abuse@example.org) or a whole domain (@example.org) a partner sends reports from."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="senders")
    address = models.CharField(max_length=254, unique=True,
                               help_text="A full address, or @domain for every address of that domain.")

    def __str__(self) -> str:
        return self.address

    def clean(self) -> None:
        from django.core.exceptions import ValidationError
        from django.core.validators import validate_email

        self.address = self.address.strip().lower()
        if self.address.startswith("@"):
            validate_email("x" + self.address)
        else:
            try:
                validate_email(self.address)
            except ValidationError:
                raise ValidationError({"address": "Enter an e-mail address, or @domain for a whole domain."}) from None


class PartnerAPIKey(AbstractAPIKey):
    """A hashed API key that lets one partner use the partner API (only the prefix is stored in clear)."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="api_keys")

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "partner API key"


class HostingNetwork(models.Model):
    """A network (autonomous system) mapped to the hosting provider that answers for it."""

    asn = models.BigIntegerField(unique=True, verbose_name="AS number")
    name = models.CharField(max_length=200, blank=True)
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="networks",
                                limit_choices_to={"kind": "hosting_provider"})

    class Meta:
        ordering = ["asn"]

    def __str__(self) -> str:
        return f"AS{self.asn} {self.name}".strip()
