"""Routing rules and notice templates in the admin: validated (nothing saved on bad input), audited, admin only."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from ntd.audit import AuditEvent
from ntd.roles import ADMIN
from takedown.models import NoticeTemplate, Partner, RoutingRule
from takedown.routing import load_rules

pytestmark = pytest.mark.django_db

OTHER_ROLES = ["analyst", "supervisor", "welfare_officer", "auditor"]


@pytest.fixture
def admin_client(make_staff: Any) -> Client:
    client = Client()
    client.force_login(make_staff(ADMIN).user, backend="django.contrib.auth.backends.ModelBackend")
    return client


@pytest.fixture
def no_rules() -> None:
    RoutingRule.objects.all().delete()  # the default rules of migration 0004, where a test wants its own


def rule_form(**fields: str) -> dict[str, str]:
    return {"position": "100", "active": "on", "situation": "domestic", "country": "", "asn": "",
            "send_to": "hosting_provider", "partner": "", "notice_kind": "", "authorisation_wait_minutes": "240",
            "authorisation_fallback": "wait", "escalate_to": ""} | fields


class TestRoutingRules:
    def test_an_admin_adds_a_rule_it_is_audited_and_routing_uses_it(self, admin_client, no_rules):
        registrar = Partner.objects.create(name="Registrar", kind=Partner.Kind.REGISTRAR)

        response = admin_client.post("/admin/takedown/routingrule/add/", rule_form(
            position="15", situation="hotline_abroad", country="fr", asn="64501", send_to="partner",
            partner=str(registrar.pk), notice_kind="takedown", needs_authorisation="on",
            authorisation_wait_minutes="30", authorisation_fallback="send", escalate_to=str(registrar.pk)))

        assert response.status_code == 302, response.content.decode()[:3000]
        rule = RoutingRule.objects.get()
        assert (rule.position, rule.situation, rule.country, rule.asn, rule.send_to, rule.partner) == (
            15, "hotline_abroad", "FR", 64501, "partner", registrar)
        assert (rule.notice_kind, rule.needs_authorisation, rule.authorisation_wait_minutes,
                rule.authorisation_fallback, rule.escalate_to) == ("takedown", True, 30, "send", registrar)
        assert [r.partner_id for r in load_rules()] == [registrar.pk]
        event = AuditEvent.objects.get()
        assert (event.action, event.target_type, event.target_id) == (
            "routing_rule.changed", "takedown.routingrule", str(rule.pk))
        assert "situation" in event.data["fields"] and "partner" in event.data["fields"]

    def test_a_change_and_a_deletion_are_audited(self, admin_client, no_rules):
        rule = RoutingRule.objects.create(position=20, situation="domestic", send_to="hosting_provider")

        changed = admin_client.post(f"/admin/takedown/routingrule/{rule.pk}/change/", rule_form(position="25"))
        deleted = admin_client.post(f"/admin/takedown/routingrule/{rule.pk}/delete/", {"post": "yes"})

        assert (changed.status_code, deleted.status_code) == (302, 302)
        assert not RoutingRule.objects.exists()
        assert [(e.action, e.target_id, e.data) for e in AuditEvent.objects.all()] == [
            ("routing_rule.changed", str(rule.pk), {"fields": ["position"]}),
            ("routing_rule.changed", str(rule.pk), {}),
        ]

    def test_the_list_is_in_the_order_rules_are_applied(self, admin_client, no_rules):
        for position, target in ((30, "national_police"), (10, "international_police"), (20, "country_police")):
            RoutingRule.objects.create(position=position, situation="domestic", send_to=target)

        page = admin_client.get("/admin/takedown/routingrule/").content.decode()

        table = page[page.index('id="result_list"'):page.index("</table>", page.index('id="result_list"'))]
        positions = [table.index(label) for label in ("The international police liaison",
                                                      "The police of the hosting country", "Our national police")]
        assert positions == sorted(positions)

    def test_the_default_rules_are_listed(self, admin_client):
        RoutingRule.objects.all().delete()
        from tests.takedown.test_routing import add_default_rules

        add_default_rules()

        page = admin_client.get("/admin/takedown/routingrule/").content.decode()
        assert "A child is at immediate risk (always first)" in page and "A supervisor decides (a task)" in page

    @pytest.mark.parametrize(("fields", "message"), [
        ({"send_to": "partner", "notice_kind": "takedown"}, "Choose the partner this rule sends to."),
        ({"send_to": "partner", "partner": "{partner}"}, "Choose the notice the partner gets."),
        ({"partner": "{partner}"}, "Only a rule that sends to a named partner names one"),
        ({"send_to": "supervisor", "notice_kind": "takedown"}, "A supervisor decides: this rule sends no notice."),
        ({"notice_kind": "authorisation_request"}, "Select a valid choice."),
        ({"notice_kind": "status_update"}, "Select a valid choice."),
        ({"country": "F1"}, "Use the two-letter ISO 3166-1 code"),
        ({"country": "FRA"}, "at most 2 characters"),
        ({"situation": "unknown", "country": "FR"}, "whose hosting country is not known: it cannot name a country"),
        ({"situation": "domestic", "country": "FR"}, "A domestic rule applies to cases hosted in GB only"),
        ({"asn": "AS64500"}, "Enter a whole number."),
        ({"situation": "abroad"}, "Select a valid choice."),
        ({"send_to": "everyone"}, "Select a valid choice."),
        ({"authorisation_wait_minutes": "-5"}, "greater than or equal to 0"),
    ])
    def test_invalid_rules_are_refused_with_a_message_and_nothing_is_saved(self, admin_client, settings, no_rules,
                                                                          fields, message):
        settings.NTD_COUNTRY = "GB"
        partner = Partner.objects.create(name="Registrar", kind=Partner.Kind.REGISTRAR)
        fields = {name: value.replace("{partner}", str(partner.pk)) for name, value in fields.items()}

        response = admin_client.post("/admin/takedown/routingrule/add/", rule_form(**fields))

        assert response.status_code == 200
        assert message in response.content.decode()
        assert not RoutingRule.objects.exists() and not AuditEvent.objects.exists()

    def test_a_rule_for_our_own_country_may_name_it(self, admin_client, settings, no_rules):
        settings.NTD_COUNTRY = "GB"

        assert admin_client.post("/admin/takedown/routingrule/add/", rule_form(country="gb")).status_code == 302
        assert RoutingRule.objects.get().country == "GB"


TEMPLATE = {"kind": "takedown", "language": "fr", "subject": "Avis {{ reference }}",
            "body": "Bonjour {{ recipient }},\n{% for item in items %}{{ item.url }}\n{% endfor %}", "active": "on"}


class TestNoticeTemplates:
    def test_an_admin_adds_a_template_and_it_is_audited(self, admin_client):
        response = admin_client.post("/admin/takedown/noticetemplate/add/", TEMPLATE | {"language": "FR"})

        assert response.status_code == 302, response.content.decode()[:3000]
        template = NoticeTemplate.objects.get(kind="takedown", language="fr")
        assert template.subject == "Avis {{ reference }}"
        event = AuditEvent.objects.get()
        assert (event.action, event.target_type, event.target_id) == (
            "notice_template.changed", "takedown.noticetemplate", str(template.pk))
        assert event.data == {"fields": ["body", "kind", "language", "subject"]}

    def test_a_change_is_audited_with_the_fields_that_changed(self, admin_client):
        template = NoticeTemplate.objects.create(kind="takedown", language="fr", subject="Avis {{ reference }}",
                                                 body=TEMPLATE["body"])

        response = admin_client.post(f"/admin/takedown/noticetemplate/{template.pk}/change/",
                                     TEMPLATE | {"subject": "Avis de retrait {{ reference }}"})

        assert response.status_code == 302
        assert AuditEvent.objects.get().data == {"fields": ["subject"]}

    @pytest.mark.parametrize(("fields", "message"), [
        ({"body": "Hello {{ recipient.name }} {{ notice.refrence }}"}, "Unknown variable"),
        ({"body": "{% if analyst_name %}x{% endif %}"}, "Unknown variable"),
        ({"body": "{% load static %}"}, "{% load %} is not allowed"),
        ({"body": "{% include 'x.txt' %}"}, "{% include %} is not allowed"),
        ({"subject": "{% if %}"}, "Unexpected end of expression in if tag."),
        ({"subject": "{% if child_at_risk %}{% endif %}"}, "The subject is empty once rendered."),
        ({"body": "{% for item in items %}"}, "endfor"),
        ({"language": "french"}, "at most 2 characters"),
        ({"language": "f1"}, "Use a two-letter ISO 639-1 code"),
        ({"language": ""}, "This field is required."),
        ({"kind": "poem"}, "Select a valid choice."),
        ({"subject": ""}, "This field is required."),
    ])
    def test_invalid_templates_are_refused_with_a_message_and_nothing_is_saved(self, admin_client, fields, message):
        before = NoticeTemplate.objects.count()

        response = admin_client.post("/admin/takedown/noticetemplate/add/", TEMPLATE | fields)

        assert response.status_code == 200
        assert message in response.content.decode().replace("&#x27;", "'")
        assert NoticeTemplate.objects.count() == before and not AuditEvent.objects.exists()

    def test_a_second_template_for_the_same_kind_and_language_is_refused(self, admin_client):
        NoticeTemplate.objects.get_or_create(kind="takedown", language="fr", defaults={
            "subject": "Avis", "body": "Bonjour"})

        response = admin_client.post("/admin/takedown/noticetemplate/add/", TEMPLATE)

        assert response.status_code == 200 and "already exists" in response.content.decode()
        assert NoticeTemplate.objects.filter(kind="takedown", language="fr").count() == 1


class TestOnlyTheAdminRole:
    @pytest.mark.parametrize("role", OTHER_ROLES)
    def test_other_roles_are_refused_every_page(self, make_staff, role):
        rule = RoutingRule.objects.create(position=999, situation="unknown", send_to="supervisor")
        template, _ = NoticeTemplate.objects.get_or_create(kind="takedown", language="zz",
                                                           defaults={"subject": "s", "body": "b"})
        client = Client()
        client.force_login(make_staff(role).user, backend="django.contrib.auth.backends.ModelBackend")

        for model, pk in (("routingrule", rule.pk), ("noticetemplate", template.pk)):
            for page in ("", "add/", f"{pk}/change/", f"{pk}/delete/", f"{pk}/history/"):
                assert client.get(f"/admin/takedown/{model}/{page}", follow=True).status_code == 403, (model, page)
        assert client.post("/admin/takedown/routingrule/add/", rule_form(), follow=True).status_code == 403
        assert client.post(f"/admin/takedown/routingrule/{rule.pk}/delete/", {"post": "yes"},
                           follow=True).status_code == 403
        assert client.post("/admin/takedown/noticetemplate/add/", TEMPLATE, follow=True).status_code == 403
        assert RoutingRule.objects.filter(pk=rule.pk).exists()
        assert not NoticeTemplate.objects.filter(language="fr").exists() and not AuditEvent.objects.exists()

    def test_the_admin_role_may_not_delete_a_template(self, admin_client):
        template, _ = NoticeTemplate.objects.get_or_create(kind="takedown", language="zz",
                                                           defaults={"subject": "s", "body": "b"})

        assert admin_client.get(f"/admin/takedown/noticetemplate/{template.pk}/delete/").status_code == 403
        assert admin_client.get("/admin/takedown/routingrule/add/").status_code == 200
        assert admin_client.get("/admin/takedown/noticetemplate/add/").status_code == 200
