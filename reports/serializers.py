from __future__ import annotations

from typing import Any

from rest_framework import serializers

from reports.models import EncounteredVia, MaterialKind

MAX_BATCH = 10_000
HASH_TYPES = ("md5", "sha1", "sha256", "pdq", "photodna")


class ContentHashSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=HASH_TYPES)
    value = serializers.CharField(max_length=1024, help_text="The hash as an opaque string. Never media.")


class PartnerReportIn(serializers.Serializer):
    partner_reference = serializers.CharField(max_length=128, required=False, allow_blank=True, default="",
                                              help_text="Your own reference. A retry with the same reference and "
                                                        "body creates nothing new.")
    urls = serializers.ListField(child=serializers.CharField(max_length=4096, trim_whitespace=True),
                                 min_length=1, max_length=MAX_BATCH)
    material_kind = serializers.ChoiceField(choices=MaterialKind.choices, required=False, default="")
    encountered_via = serializers.ChoiceField(choices=EncounteredVia.choices, required=False, default="")
    encountered_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    child_at_risk = serializers.BooleanField(required=False, default=False)
    content_hashes = ContentHashSerializer(many=True, required=False, default=list, max_length=1000)

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["The body must be a JSON object."]})
        return super().to_internal_value(data)


class URLOutcomeOut(serializers.Serializer):
    position = serializers.IntegerField()
    url = serializers.CharField(help_text="The URL as you sent it.")
    case = serializers.CharField(help_text="The case reference.")
    outcome = serializers.ChoiceField(
        choices=["new", "joined", "duplicate"],
        help_text="new: this report opened the case; joined: the case was open already; duplicate: an earlier "
                  "position of this report named the same URL.")


class PartnerReportOut(serializers.Serializer):
    reference = serializers.CharField()
    partner_reference = serializers.CharField()
    received_at = serializers.DateTimeField()
    created = serializers.BooleanField(help_text="False when this was a retry of a report already filed.")
    urls = URLOutcomeOut(many=True)


class URLErrorOut(serializers.Serializer):
    position = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()


class ValidationErrorOut(serializers.Serializer):
    errors = URLErrorOut(many=True, required=False)
    detail = serializers.CharField(required=False)
