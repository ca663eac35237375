"""The words of notices: a strict template engine over whitelisted facts, and no analyst's identity in anything
that leaves the system."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from ntd import roles
from reports.models import Assessment
from takedown import delivery, rendering, services
from takedown.models import Notice, NoticeKind, NoticeTemplate, Partner, PoliceAuthorisation
from tests.reports.factories import CaseFactory

pytestmark = pytest.mark.django_db

CANARY = "Canarywood"


@pytest.fixture
def templates(db: Any) -> None:
    rendering.install_default_templates()  # a transactional test before this one may have emptied the table


@pytest.fixture
def canaries(make_staff: Any) -> dict[str, Any]:
    """An analyst and a supervisor whose names, usernames and addresses are canaries."""
    analyst = make_staff(roles.ANALYST, username="zebediah.canarywood", first_name="Zebediah", last_name=CANARY,
                         email="zebediah.canarywood@hotline.test").user
    second = make_staff(roles.ANALYST, username="ottoline.canarywood", first_name="Ottoline", last_name=CANARY,
                        email="ottoline.canarywood@hotline.test").user
    supervisor = make_staff(roles.SUPERVISOR, username="ambrose.canarywood", first_name="Ambrose", last_name=CANARY,
                            email="ambrose.canarywood@hotline.test").user
    return {"analyst": analyst, "second": second, "supervisor": supervisor}


def assessed_case(scheme: Any, assessors: list[tuple[Any, str]], **fields: Any) -> Any:
    """A case in actioning with assessments in order ((user, kind) pairs), all illegal under BL-1."""
    case = CaseFactory(status="actioning", **fields)
    for user, kind in assessors:
        Assessment.objects.create(case=case, assessor=user, kind=kind, verdict=scheme.verdict("illegal_baseline"),
                                  clause=scheme.clause("INT", "BL-1"), media_type=scheme.option("media_type", "images"),
                                  age_group=scheme.option("age_group", "prepubescent"))
    return case


def notice_of(kind: str, language: str, cases: list[Any], *, partner: Partner | None = None) -> Notice:
    """A notice as the services issue it (not yet sealed), for rendering."""
    partner = partner or Partner.objects.create(name=f"Recipient {kind} {language} {cases[0].pk}",
                                                kind="hosting_provider", country="GB")
    authorisation = None
    if kind == NoticeKind.AUTHORISATION_REQUEST:
        host = Partner.objects.create(name=f"Waiting host {cases[0].pk}", kind="hosting_provider", country="GB")
        authorisation = PoliceAuthorisation.objects.create(
            case=cases[0], police=partner, fallback="send", answer_by=timezone.now() + timedelta(hours=4),
            pending=[{"partner": host.pk, "kind": "takedown"}])
    if kind == NoticeKind.DISPUTE_OUTCOME:
        disputed = services.issue_notice(partner=partner, kind=NoticeKind.TAKEDOWN, cases=cases, actor=None,
                                         immediate=True)
        Notice.objects.filter(pk=disputed.pk).update(state=Notice.State.WITHDRAWN, disputed_at=timezone.now(),
                                                     withdrawn_at=timezone.now())
    notice = services.issue_notice(partner=partner, kind=kind, cases=cases, actor=None, immediate=True,
                                   authorisation=authorisation)
    notice.language = language
    return notice


def rendered_everything(notice: Notice) -> str:
    """Every byte of the notice that leaves the system: subject, body, webhook payload, and the e-mail with
    its headers as a mail server receives it."""
    rendered = rendering.render(notice)
    notice.subject, notice.body, notice.payload = rendered.subject, rendered.body, rendered.payload
    notice.email_to = "abuse@host.example"
    message = delivery.email_message(notice).message()
    return "\n".join([rendered.subject, rendered.body, json.dumps(rendered.payload, ensure_ascii=False),
                      message.as_string()])


class TestNoAnalystIdentity:
    def test_no_template_of_any_kind_or_language_names_an_analyst(self, scheme, templates, canaries):
        shipped = list(NoticeTemplate.objects.filter(active=True).order_by("kind", "language"))
        kinds = {template.kind for template in shipped}
        assert kinds == set(NoticeKind.values) - {NoticeKind.STATUS_UPDATE}
        assert {("takedown", "nl"), ("takedown", "de")} <= {(t.kind, t.language) for t in shipped}
        people = list(canaries.values())
        for template in shipped:
            first = assessed_case(scheme, [(canaries["analyst"], "first")], child_at_risk=True)
            decided = assessed_case(scheme, [(canaries["analyst"], "first"), (canaries["second"], "second"),
                                             (canaries["supervisor"], "decision")])
            notice = notice_of(template.kind, template.language, [first, decided])
            text = rendered_everything(notice)
            where = f"{template.kind}/{template.language}"
            for person in people:
                for identity in (person.first_name, person.last_name, person.username, person.email,
                                 person.get_full_name()):
                    assert identity.lower() not in text.lower(), f"{identity!r} in {where}"
            assert CANARY.lower() not in text.lower(), where
            # What should be there is there: the pseudonyms (for the decided case, the supervisor's), the URLs
            if template.kind != NoticeKind.DISPUTE_OUTCOME:  # an outcome names the URLs and the decision only
                assert canaries["analyst"].pseudonym in text, where
                assert canaries["supervisor"].pseudonym in text, where
            assert canaries["second"].pseudonym not in text, where
            assert first.url in text and decided.url in text, where
            assert notice.reference in text, where

    def test_the_context_holds_only_plain_facts(self, scheme, templates, canaries):
        case = assessed_case(scheme, [(canaries["analyst"], "first")])
        context = rendering.notice_context(notice_of(NoticeKind.TAKEDOWN, "en", [case]))

        def plain(value: Any) -> bool:
            if isinstance(value, dict):
                return all(isinstance(k, str) and plain(v) for k, v in value.items())
            if isinstance(value, list):
                return all(plain(v) for v in value)
            return value is None or isinstance(value, str | int | bool)

        assert plain(context)  # no model object a template could walk from
        assert context["items"][0]["analyst"] == canaries["analyst"].pseudonym

    def test_the_sample_context_has_the_shape_of_a_real_one(self, scheme, templates, canaries):
        """validate_template checks names against the sample: it must offer exactly what rendering offers."""
        for kind in set(NoticeKind.values) - {NoticeKind.STATUS_UPDATE}:
            case = assessed_case(scheme, [(canaries["analyst"], "first")])
            real = rendering.notice_context(notice_of(kind, "en", [case]))
            sample = rendering.sample_context(kind)
            assert set(real) == set(sample), kind
            assert set(real["items"][0]) == set(sample["items"][0]), kind
            assert set(real["links"]) == set(sample["links"]), kind
            assert set(real["outcome"]) == set(sample["outcome"]), kind
            assert set(real["authorisation"]) == set(sample["authorisation"]), kind
            assert {k for k, v in real["links"].items() if v} == {k for k, v in sample["links"].items() if v}, kind


class TestFacts:
    def test_the_explanation_is_the_deciding_verdict_and_clause(self, scheme, templates, canaries):
        case = assessed_case(scheme, [(canaries["analyst"], "first")])
        Assessment.objects.create(case=case, assessor=canaries["supervisor"], kind="decision",
                                  verdict=scheme.verdict("illegal_baseline"), clause=scheme.clause("INT", "BL-2"),
                                  media_type=scheme.option("media_type", "videos"),
                                  age_group=scheme.option("age_group", "infant_toddler"),
                                  created_at=timezone.now() - timedelta(hours=1))  # older, but the decision
        [item] = rendering.notice_context(notice_of(NoticeKind.TAKEDOWN, "en", [case]))["items"]
        assert item["clause_code"] == "BL-2"
        assert "BL-2" in item["explanation"] and "Illegal under the international baseline" in item["explanation"]
        assert scheme.clause("INT", "BL-2").text in item["explanation"]
        assert (item["media_type"], item["age_group"]) == ("Videos", "Infant or toddler")
        assert item["analyst"] == canaries["supervisor"].pseudonym

    def test_links_and_api_per_kind(self, scheme, templates, canaries, settings):
        settings.NTD_PUBLIC_URL = "https://ntd.hotline.test"
        case = assessed_case(scheme, [(canaries["analyst"], "first")])
        takedown = notice_of(NoticeKind.TAKEDOWN, "en", [case])
        context = rendering.notice_context(takedown)
        assert context["api"] == f"https://ntd.hotline.test/api/v1/notices/{takedown.reference}/"
        assert all(context["links"][p].startswith("https://ntd.hotline.test/n/" + p + "/")
                   for p in ("acknowledge", "removed", "dispute"))
        assert context["links"]["authorise"] == context["links"]["hold"] == ""
        other = assessed_case(scheme, [(canaries["analyst"], "first")])
        request = notice_of(NoticeKind.AUTHORISATION_REQUEST, "en", [other])
        links = rendering.notice_context(request)["links"]
        assert links["authorise"] and links["hold"] and not links["removed"] and not links["dispute"]

    def test_the_payload(self, scheme, templates, canaries, settings):
        settings.NTD_ORGANISATION = "Example Hotline"
        case = assessed_case(scheme, [(canaries["analyst"], "first")])
        notice = notice_of(NoticeKind.TAKEDOWN, "en", [case])
        payload = rendering.render(notice).payload
        assert payload["type"] == "notice.takedown"
        body = payload["notice"]
        assert (body["reference"], body["kind"], body["organisation"]) == (notice.reference, "takedown",
                                                                          "Example Hotline")
        assert body["items"] == [{"url": case.url, "case_reference": case.reference,
                                  "explanation": rendering.notice_context(notice)["items"][0]["explanation"]}]
        assert set(body["links"]) == {"acknowledge", "removed", "dispute"}
        assert body["deadline"].endswith("Z")
        json.dumps(payload)  # JSON-able

    def test_the_outcome_of_a_dispute(self, scheme, templates, canaries):
        case = assessed_case(scheme, [(canaries["analyst"], "first")])
        notice = notice_of(NoticeKind.DISPUTE_OUTCOME, "en", [case])
        outcome = rendering.notice_context(notice)["outcome"]
        assert outcome["decision"] == "withdrawn" and outcome["notice_reference"].startswith("N-")
        rendered = rendering.render(notice)
        assert "withdrawn" in rendered.subject and "You need not act" in rendered.body

    def test_the_outcome_as_the_decision_recorded_it(self, scheme, templates, canaries):
        case = assessed_case(scheme, [(canaries["analyst"], "first")])
        partner = Partner.objects.create(name="Disputing host", kind="hosting_provider", country="GB")
        disputed = services.issue_notice(partner=partner, kind=NoticeKind.TAKEDOWN, cases=[case], actor=None,
                                         immediate=True)
        Notice.objects.filter(pk=disputed.pk).update(state=Notice.State.SENT, disputed_at=timezone.now())
        told = services.issue_notice(
            partner=partner, kind=NoticeKind.DISPUTE_OUTCOME, cases=[case], actor=None, immediate=True,
            payload={"dispute": {"notice": disputed.reference, "outcome": "upheld", "note": "We looked again."}})
        rendered = rendering.render(told)
        assert rendered.subject.endswith("upheld") and disputed.reference in rendered.subject
        assert "We looked again." in rendered.body and f"/n/removed/{disputed.reference}:" in rendered.body
        assert rendered.payload["notice"]["outcome"]["decision"] == "upheld"


class TestTemplates:
    def test_the_language_falls_back_to_english(self, scheme, templates, canaries):
        dutch = notice_of(NoticeKind.TAKEDOWN, "nl", [assessed_case(scheme, [(canaries["analyst"], "first")])])
        assert rendering.render(dutch).subject.startswith("Verwijderverzoek")
        french = notice_of(NoticeKind.TAKEDOWN, "fr", [assessed_case(scheme, [(canaries["analyst"], "first")])])
        assert rendering.render(french).subject.startswith("Takedown notice")

    def test_no_active_template_is_an_error(self, scheme, templates, canaries):
        NoticeTemplate.objects.filter(kind=NoticeKind.HOTLINE_REFERRAL).update(active=False)
        notice = notice_of(NoticeKind.HOTLINE_REFERRAL, "en", [assessed_case(scheme, [(canaries["analyst"],
                                                                                       "first")])])
        with pytest.raises(rendering.NoTemplate, match="no active template"):
            rendering.render(notice)

    def test_an_unknown_variable_is_an_error_not_an_empty_string(self, scheme, templates, canaries):
        NoticeTemplate.objects.filter(kind=NoticeKind.TAKEDOWN, language="en").update(
            body="Remove {{ items.0.url }} by {{ deadlin }}.")
        notice = notice_of(NoticeKind.TAKEDOWN, "en", [assessed_case(scheme, [(canaries["analyst"], "first")])])
        with pytest.raises(rendering.UnknownVariable, match="deadlin"):
            rendering.render(notice)
        with pytest.raises(rendering.UnknownVariable, match="item.name"):
            rendering.render_text("{% for item in items %}{% if item.name %}x{% endif %}{% endfor %}",
                                  rendering.sample_context(NoticeKind.TAKEDOWN))

    def test_the_text_is_not_html_escaped(self, scheme, templates, canaries):
        case = assessed_case(scheme, [(canaries["analyst"], "first")], url="https://host.example/a?b=1&c=<2>")
        body = rendering.render(notice_of(NoticeKind.TAKEDOWN, "en", [case])).body
        assert "https://host.example/a?b=1&c=<2>" in body and "&amp;" not in body

    def test_every_shipped_template_validates(self, templates):
        for (kind, _language), (subject, body) in rendering.default_templates().items():
            rendering.validate_template(kind, subject, body)

    @pytest.mark.parametrize(("subject", "body", "field", "message"), [
        ("Notice {{ reference }}", "{% if child_at_risk %}Urgent", "body", "Unclosed tag on line 1: 'if'"),
        ("Notice {{ reference }}", "{% load static %}{{ organisation }}", "body", "{% load %} is not allowed"),
        ("Notice {{ reference }}", '{% include "x.txt" %}', "body", "{% include %} is not allowed"),
        ("Notice {{ reference }}", "{% url 'home' %}", "body", "{% url %} is not allowed"),
        ("Notice {{ reference }}", "{% now 'Y' %}", "body", "unknown tag {% now %}"),
        ("Notice {{ refrence }}", "{{ organisation }}", "subject", "Unknown variable {{ refrence }}"),
        ("Notice {{ reference }}", "{% if recipient.email %}x{% endif %}", "body",
         "Unknown variable {{ recipient.email }} on line 1"),
        ("Notice {{ reference }}", "\n\n{% for item in items %}{{ item.assessor }}{% endfor %}", "body",
         "Unknown variable {{ item.assessor }} on line 3"),
        ("Notice {{ reference }}", "{{ organisation|nosuchfilter }}", "body", "Invalid filter: 'nosuchfilter'"),
        ("{% if False %}x{% endif %}", "{{ organisation }}", "subject", "The subject is empty once rendered"),
    ])
    def test_validation_messages(self, subject, body, field, message):
        with pytest.raises(ValidationError) as raised:
            rendering.validate_template(NoticeKind.TAKEDOWN, subject, body)
        assert any(message in text for text in raised.value.message_dict[field]), raised.value.message_dict

    def test_a_valid_template_passes_and_names_the_facts(self):
        rendering.validate_template(
            NoticeKind.TAKEDOWN, "{{ organisation }}: {{ reference }}",
            "{% for item in items %}{{ forloop.counter }}. {{ item.url }} {{ item.explanation }}{% endfor %}"
            "{% with first=items.0 %}{{ first.case_reference }}{% endwith %}{{ links.acknowledge }} {{ api }}")
        with pytest.raises(ValidationError) as raised:
            rendering.validate_template(NoticeKind.TAKEDOWN, "{{ nope }}", "x")
        assert "Notice templates can use:" in raised.value.message_dict["subject"][0]
        assert "case_reference" in raised.value.message_dict["subject"][0]
