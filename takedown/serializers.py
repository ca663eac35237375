"""Input and output serializers of the partner notice API (takedown.api).

A notice is shown to the partner it was sent to, as it was sent: never who in ntd issued it.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from reports.case_serializers import StrictInput
from takedown.models import Notice, NoticeKind, PoliceAuthorisation
from takedown.responses import NOTE_MAX, REASON_MAX

PAGE_SIZE, MAX_PAGE_SIZE = 50, 200
MAX_CASES = 10_000
VISIBLE_STATES = [state for state in Notice.State.values if state not in (Notice.State.QUEUED, Notice.State.FAILED)]


class NoticeQueryIn(StrictInput):
    state = serializers.ChoiceField(choices=VISIBLE_STATES, required=False,
                                    help_text="Only notices in this state, e.g. sent (not yet acknowledged).")
    cursor = serializers.CharField(required=False, max_length=500, help_text="From the `next` or `previous` link.")
    size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE,
                                    help_text=f"Notices per page (default {PAGE_SIZE}, at most {MAX_PAGE_SIZE}).")


class RemovedIn(StrictInput):
    cases = serializers.ListField(
        child=serializers.CharField(max_length=64), min_length=1, max_length=MAX_CASES, required=False,
        help_text="The case references (as in the notice) whose material you removed. Leave out for all of them.")


class DisputeIn(StrictInput):
    reason = serializers.CharField(max_length=REASON_MAX, help_text="Why the notice is wrong, in at most 2,000 "
                                                                     "characters. A senior member of staff decides.")


class NoteIn(StrictInput):
    note = serializers.CharField(max_length=NOTE_MAX, required=False, allow_blank=True, default="")


class NoticeItemOut(serializers.Serializer):
    case = serializers.CharField(source="case.reference", help_text="The case reference of this URL.")
    url = serializers.CharField(source="case.url")
    removal_reported_at = serializers.DateTimeField(allow_null=True,
                                                    help_text="When you reported this URL's material removed.")


class AuthorisationOut(serializers.Serializer):
    state = serializers.ChoiceField(choices=PoliceAuthorisation.State.choices)
    answer_by = serializers.DateTimeField()
    answered_at = serializers.DateTimeField(allow_null=True)


class NoticeOut(serializers.Serializer):
    reference = serializers.CharField()
    kind = serializers.ChoiceField(choices=NoticeKind.choices)
    state = serializers.ChoiceField(choices=VISIBLE_STATES)
    subject = serializers.CharField()
    sent_at = serializers.DateTimeField(allow_null=True)
    deadline_at = serializers.DateTimeField(allow_null=True, help_text="Please act by then.")
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    actioned_at = serializers.DateTimeField(allow_null=True, help_text="When every URL was reported removed.")
    disputed_at = serializers.DateTimeField(allow_null=True)
    dispute_reason = serializers.CharField()
    withdrawn_at = serializers.DateTimeField(allow_null=True)
    your_reference = serializers.CharField(source="recipient_reference",
                                           help_text="Your own reference for it, when your system gave one.")
    authorisation = AuthorisationOut(allow_null=True, help_text="On a request for police authorisation: its state.")
    items = NoticeItemOut(many=True, source="items.all")
    body = serializers.CharField(required=False, help_text="The text of the notice, as sent (only on one notice, "
                                                           "not in the list).")

    def to_representation(self, instance: Any) -> Any:
        data = super().to_representation(instance)
        if instance.kind != NoticeKind.AUTHORISATION_REQUEST:
            data["authorisation"] = None
        if self.context.get("listing"):
            del data["body"]
        return data


class NoticePageOut(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = NoticeOut(many=True)
