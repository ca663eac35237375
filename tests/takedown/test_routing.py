"""Routing: every situation × target, resolvable or not, child at risk, rule filters, order, duplicates; the
loaders read the active partners and rules; the default rules (migration 0004) route as the domain texts say.

The pure part needs no database: a table of expectations written out by hand, not computed.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from typing import Any

import pytest
from django.apps import apps

from takedown.models import HostingNetwork, Partner, RoutingRule
from takedown.routing import Directory, Facts, Recipient, Route, Rule, load_directory, load_rules, route, situation_of

S, T = RoutingRule.Situation, RoutingRule.Target

# Partner ids of the full directory. Our country is GB; FR has a partner hotline, US has none.
HOST_GB, HOST_FR, HOST_US, HOST_UNKNOWN = 1, 2, 3, 4
HOTLINE_GB, HOTLINE_FR = 11, 12
POLICE_GB, POLICE_FR, POLICE_US = 21, 22, 23
INTERPOL, NAMED = 30, 99

FULL = Directory(
    own_country="GB",
    hosts_by_asn={64500: HOST_GB, 64501: HOST_FR, 64502: HOST_US, 64503: HOST_UNKNOWN},
    hotlines_by_country={"GB": HOTLINE_GB, "FR": HOTLINE_FR},
    police_by_country={"GB": POLICE_GB, "FR": POLICE_FR, "US": POLICE_US},
    international_police=INTERPOL,
)
# Nothing but what decides the situation: the FR hotline (so FR is still "a country with a partner hotline").
SPARSE = Directory(own_country="GB", hotlines_by_country={"FR": HOTLINE_FR})

FACTS = {
    S.DOMESTIC: Facts("GB", 64500, False),
    S.HOTLINE_ABROAD: Facts("FR", 64501, False),
    S.NO_HOTLINE_ABROAD: Facts("US", 64502, False),
    S.UNKNOWN: Facts("", 64503, False),
}

# (situation, target) → the partner the full directory resolves it to.
RESOLVED = {
    (S.DOMESTIC, T.HOSTING_PROVIDER): HOST_GB,
    (S.DOMESTIC, T.NATIONAL_POLICE): POLICE_GB,
    (S.DOMESTIC, T.COUNTRY_HOTLINE): HOTLINE_GB,
    (S.DOMESTIC, T.COUNTRY_POLICE): POLICE_GB,
    (S.DOMESTIC, T.INTERNATIONAL_POLICE): INTERPOL,
    (S.DOMESTIC, T.PARTNER): NAMED,
    (S.HOTLINE_ABROAD, T.HOSTING_PROVIDER): HOST_FR,
    (S.HOTLINE_ABROAD, T.NATIONAL_POLICE): POLICE_GB,
    (S.HOTLINE_ABROAD, T.COUNTRY_HOTLINE): HOTLINE_FR,
    (S.HOTLINE_ABROAD, T.COUNTRY_POLICE): POLICE_FR,
    (S.HOTLINE_ABROAD, T.INTERNATIONAL_POLICE): INTERPOL,
    (S.HOTLINE_ABROAD, T.PARTNER): NAMED,
    (S.NO_HOTLINE_ABROAD, T.HOSTING_PROVIDER): HOST_US,
    (S.NO_HOTLINE_ABROAD, T.NATIONAL_POLICE): POLICE_GB,
    (S.NO_HOTLINE_ABROAD, T.COUNTRY_POLICE): POLICE_US,
    (S.NO_HOTLINE_ABROAD, T.INTERNATIONAL_POLICE): INTERPOL,
    (S.NO_HOTLINE_ABROAD, T.PARTNER): NAMED,
    (S.UNKNOWN, T.HOSTING_PROVIDER): HOST_UNKNOWN,  # the network is known though the country is not
    (S.UNKNOWN, T.NATIONAL_POLICE): POLICE_GB,
    (S.UNKNOWN, T.COUNTRY_POLICE): INTERPOL,
    (S.UNKNOWN, T.INTERNATIONAL_POLICE): INTERPOL,
    (S.UNKNOWN, T.PARTNER): NAMED,
}
# What a supervisor is told when even the full directory cannot resolve the target.
UNRESOLVABLE_IN_FULL = {
    (S.NO_HOTLINE_ABROAD, T.COUNTRY_HOTLINE): "No partner hotline is known for US.",
    (S.UNKNOWN, T.COUNTRY_HOTLINE): "The hosting country is not known, so no partner hotline can be chosen.",
}
# (situation, target) → the reason in the sparse directory.
UNRESOLVED = {
    (S.DOMESTIC, T.HOSTING_PROVIDER): "No hosting provider is known for AS64500 (hosted in GB).",
    (S.DOMESTIC, T.NATIONAL_POLICE): "No national police is set up: no active law enforcement partner in GB.",
    (S.DOMESTIC, T.COUNTRY_HOTLINE): "No partner hotline is known for GB.",
    (S.DOMESTIC, T.COUNTRY_POLICE): "No police partner is known for GB and no international police liaison is set up.",
    (S.DOMESTIC, T.INTERNATIONAL_POLICE): "No international police liaison is set up.",
    (S.HOTLINE_ABROAD, T.HOSTING_PROVIDER): "No hosting provider is known for AS64501 (hosted in FR).",
    (S.HOTLINE_ABROAD, T.NATIONAL_POLICE): "No national police is set up: no active law enforcement partner in GB.",
    (S.HOTLINE_ABROAD, T.COUNTRY_POLICE): "No police partner is known for FR and no international police liaison "
                                          "is set up.",
    (S.HOTLINE_ABROAD, T.INTERNATIONAL_POLICE): "No international police liaison is set up.",
    (S.NO_HOTLINE_ABROAD, T.HOSTING_PROVIDER): "No hosting provider is known for AS64502 (hosted in US).",
    (S.NO_HOTLINE_ABROAD, T.NATIONAL_POLICE): "No national police is set up: no active law enforcement partner in "
                                              "GB.",
    (S.NO_HOTLINE_ABROAD, T.COUNTRY_HOTLINE): "No partner hotline is known for US.",
    (S.NO_HOTLINE_ABROAD, T.COUNTRY_POLICE): "No police partner is known for US and no international police "
                                             "liaison is set up.",
    (S.NO_HOTLINE_ABROAD, T.INTERNATIONAL_POLICE): "No international police liaison is set up.",
    (S.UNKNOWN, T.HOSTING_PROVIDER): "No hosting provider is known for AS64503 (hosting country not known).",
    (S.UNKNOWN, T.NATIONAL_POLICE): "No national police is set up: no active law enforcement partner in GB.",
    (S.UNKNOWN, T.COUNTRY_HOTLINE): "The hosting country is not known, so no partner hotline can be chosen.",
    (S.UNKNOWN, T.COUNTRY_POLICE): "No police partner is known for the hosting country (not known) and no "
                                   "international police liaison is set up.",
    (S.UNKNOWN, T.INTERNATIONAL_POLICE): "No international police liaison is set up.",
}
SUPERVISOR_REASONS = {
    S.DOMESTIC: "Routing rule 10 asks a supervisor to decide who to tell about a case hosted in GB, our own country.",
    S.HOTLINE_ABROAD: "Routing rule 10 asks a supervisor to decide who to tell about a case hosted in FR, where a "
                      "partner hotline works.",
    S.NO_HOTLINE_ABROAD: "Routing rule 10 asks a supervisor to decide who to tell about a case hosted in US, where "
                         "no partner hotline works.",
    S.UNKNOWN: "Routing rule 10 asks a supervisor to decide who to tell about a case whose hosting country is not "
               "known.",
}
DEFAULT_KINDS = {
    T.HOSTING_PROVIDER: "takedown",
    T.NATIONAL_POLICE: "police_information",
    T.COUNTRY_HOTLINE: "hotline_referral",
    T.COUNTRY_POLICE: "police_referral",
    T.INTERNATIONAL_POLICE: "police_referral",
}
SITUATIONS = [S.DOMESTIC, S.HOTLINE_ABROAD, S.NO_HOTLINE_ABROAD, S.UNKNOWN]
TARGETS = [T.HOSTING_PROVIDER, T.NATIONAL_POLICE, T.COUNTRY_HOTLINE, T.COUNTRY_POLICE, T.INTERNATIONAL_POLICE,
           T.PARTNER, T.SUPERVISOR]


def rule(situation: str, send_to: str, position: int = 10, **fields: Any) -> Rule:
    if send_to == T.PARTNER:
        fields = {"partner_id": NAMED, "notice_kind": "takedown"} | fields
    return Rule(position=position, situation=situation, send_to=send_to, **fields)


def recipient(partner_id: int, kind: str, *, immediate: bool = False, **fields: Any) -> Recipient:
    return Recipient(**{"partner_id": partner_id, "kind": kind, "immediate": immediate, "needs_authorisation": False,
                        "authorisation_wait_minutes": 240, "authorisation_fallback": "wait",
                        "escalate_to_id": None} | fields)


def pairs(decided: Route) -> list[tuple[int, str, bool]]:
    return [(r.partner_id, r.kind, r.immediate) for r in decided.recipients]


class TestSituation:
    @pytest.mark.parametrize(("country", "situation"), [
        ("GB", S.DOMESTIC), ("gb", S.DOMESTIC), (" GB ", S.DOMESTIC),
        ("FR", S.HOTLINE_ABROAD), ("fr", S.HOTLINE_ABROAD),
        ("US", S.NO_HOTLINE_ABROAD), ("", S.UNKNOWN), ("  ", S.UNKNOWN),
    ])
    def test_the_situation_follows_the_hosting_country(self, country, situation):
        assert situation_of(Facts(country, None, False), FULL) == situation
        assert route(Facts(country, None, False), [], FULL).situation == situation

    def test_our_own_country_is_domestic_even_with_a_hotline_there(self):
        assert situation_of(Facts("GB", None, False), FULL) == S.DOMESTIC  # FULL has a GB hotline

    def test_abroad_without_a_hotline_in_the_directory_is_no_hotline_abroad(self):
        assert situation_of(Facts("FR", None, False), Directory(own_country="GB")) == S.NO_HOTLINE_ABROAD


class TestEveryTargetInEverySituation:
    @pytest.mark.parametrize(("situation", "target"), [(s, t) for s in SITUATIONS for t in TARGETS])
    def test_resolvable_or_not_in_the_full_directory(self, situation, target):
        decided = route(FACTS[situation], [rule(situation, target)], FULL)

        if target == T.SUPERVISOR:
            assert (decided.recipients, decided.supervisor_reasons) == ((), (SUPERVISOR_REASONS[situation],))
        elif (situation, target) in RESOLVED:
            kind = "takedown" if target == T.PARTNER else DEFAULT_KINDS[target]
            assert decided == Route((recipient(RESOLVED[situation, target], kind),), (), situation)
        else:
            assert (decided.recipients, decided.supervisor_reasons) == (
                (), (UNRESOLVABLE_IN_FULL[situation, target],))

    @pytest.mark.parametrize(("situation", "target"), [(s, t) for s in SITUATIONS for t in TARGETS])
    def test_in_a_sparse_directory_a_supervisor_is_told_why(self, situation, target):
        decided = route(FACTS[situation], [rule(situation, target)], SPARSE)

        if target == T.PARTNER:  # a named partner needs no directory
            assert pairs(decided) == [(NAMED, "takedown", False)] and not decided.supervisor_reasons
        elif (situation, target) == (S.HOTLINE_ABROAD, T.COUNTRY_HOTLINE):  # the hotline that makes the situation
            assert pairs(decided) == [(HOTLINE_FR, "hotline_referral", False)] and not decided.supervisor_reasons
        elif target == T.SUPERVISOR:
            assert decided.supervisor_reasons == (SUPERVISOR_REASONS[situation],)
        else:
            assert (decided.recipients, decided.supervisor_reasons) == ((), (UNRESOLVED[situation, target],))

    @pytest.mark.parametrize("situation", SITUATIONS)
    def test_a_rule_for_another_situation_does_not_apply(self, situation):
        others = [rule(other, T.INTERNATIONAL_POLICE) for other in SITUATIONS if other != situation]

        decided = route(FACTS[situation], others, FULL)

        assert decided.recipients == ()
        assert decided.supervisor_reasons[0].startswith("No routing rule applies to a case ")


class TestTargets:
    def test_a_host_is_found_by_the_network_not_the_country(self):
        decided = route(Facts("GB", 64501, False), [rule(S.DOMESTIC, T.HOSTING_PROVIDER)], FULL)

        assert pairs(decided) == [(HOST_FR, "takedown", False)]

    def test_an_unknown_network_cannot_reach_a_host(self):
        decided = route(Facts("GB", None, False), [rule(S.DOMESTIC, T.HOSTING_PROVIDER)], FULL)

        assert decided.supervisor_reasons == (
            "No hosting provider can be told: the hosting network (AS number) is not known (hosted in GB).",)

    def test_country_police_falls_back_to_the_international_liaison(self):
        directory = Directory(own_country="GB", police_by_country={"GB": POLICE_GB}, international_police=INTERPOL)

        decided = route(Facts("DE", None, False), [rule(S.NO_HOTLINE_ABROAD, T.COUNTRY_POLICE)], directory)

        assert pairs(decided) == [(INTERPOL, "police_referral", False)]

    def test_a_rule_naming_no_partner_goes_to_a_supervisor(self):
        decided = route(FACTS[S.DOMESTIC], [rule(S.DOMESTIC, T.PARTNER, partner_id=None)], FULL)

        assert decided.supervisor_reasons == ("Routing rule 10 sends to a named partner but names none.",)

    def test_a_rule_naming_a_partner_without_a_notice_goes_to_a_supervisor(self):
        decided = route(FACTS[S.DOMESTIC], [rule(S.DOMESTIC, T.PARTNER, notice_kind="")], FULL)

        assert decided.supervisor_reasons == ("Routing rule 10 sends to a named partner without saying which "
                                              "notice.",)

    @pytest.mark.parametrize("target", [T.PARTNER, T.NATIONAL_POLICE, T.HOSTING_PROVIDER])
    def test_a_partner_no_longer_active_goes_to_a_supervisor(self, target):
        inactive = {T.PARTNER: NAMED, T.NATIONAL_POLICE: POLICE_GB, T.HOSTING_PROVIDER: HOST_GB}[target]
        directory = replace(FULL, active_partners=frozenset(range(100)) - {inactive})

        decided = route(FACTS[S.DOMESTIC], [rule(S.DOMESTIC, target)], directory)

        assert decided.recipients == ()
        assert decided.supervisor_reasons == (
            f"Routing rule 10 names partner {inactive}, which is no longer active.",)

    def test_an_active_partner_passes_the_check(self):
        directory = replace(FULL, active_partners=frozenset({POLICE_GB}))

        assert pairs(route(FACTS[S.DOMESTIC], [rule(S.DOMESTIC, T.NATIONAL_POLICE)], directory)) == [
            (POLICE_GB, "police_information", False)]


class TestNoticeKinds:
    @pytest.mark.parametrize(("target", "kind"), DEFAULT_KINDS.items())
    def test_the_kind_follows_the_target_when_the_rule_leaves_it_blank(self, target, kind):
        assert route(FACTS[S.DOMESTIC], [rule(S.DOMESTIC, target)], FULL).recipients[0].kind == kind

    def test_the_rule_s_kind_wins(self):
        decided = route(FACTS[S.DOMESTIC], [rule(S.DOMESTIC, T.NATIONAL_POLICE, notice_kind="police_referral")],
                        FULL)

        assert pairs(decided) == [(POLICE_GB, "police_referral", False)]

    def test_our_police_get_a_referral_by_default_when_a_child_is_at_risk(self):
        facts = Facts("GB", 64500, True)

        assert pairs(route(facts, [rule(S.CHILD_AT_RISK, T.NATIONAL_POLICE)], FULL)) == [
            (POLICE_GB, "police_referral", True)]
        assert pairs(route(facts, [rule(S.DOMESTIC, T.NATIONAL_POLICE)], FULL)) == [
            (POLICE_GB, "police_referral", False)]


class TestChildAtRisk:
    RULES = (rule(S.DOMESTIC, T.HOSTING_PROVIDER, position=20), rule(S.CHILD_AT_RISK, T.NATIONAL_POLICE, position=50))

    @pytest.mark.parametrize("situation", SITUATIONS)
    def test_child_at_risk_rules_apply_in_addition_first_and_at_once(self, situation):
        facts = Facts(FACTS[situation].hosting_country, FACTS[situation].asn, True)
        rules = [rule(situation, T.INTERNATIONAL_POLICE, position=1), rule(S.CHILD_AT_RISK, T.NATIONAL_POLICE,
                                                                           position=99)]

        decided = route(facts, rules, FULL)

        assert pairs(decided) == [(POLICE_GB, "police_referral", True), (INTERPOL, "police_referral", False)]

    def test_without_a_child_at_risk_those_rules_do_not_apply(self):
        assert pairs(route(FACTS[S.DOMESTIC], self.RULES, FULL)) == [(HOST_GB, "takedown", False)]

    def test_a_child_at_risk_rule_that_cannot_be_resolved_tells_a_supervisor(self):
        decided = route(Facts("", None, True), [rule(S.CHILD_AT_RISK, T.COUNTRY_HOTLINE)], FULL)

        assert decided.recipients == ()
        assert decided.supervisor_reasons == ("The hosting country is not known, so no partner hotline can be "
                                              "chosen.",)

    def test_a_child_at_risk_rule_narrowed_to_another_country_does_not_apply(self):
        decided = route(Facts("GB", 64500, True), [rule(S.CHILD_AT_RISK, T.NATIONAL_POLICE, country="FR")], FULL)

        assert decided.recipients == ()
        assert decided.supervisor_reasons == ("No routing rule applies to a case hosted in GB, our own country.",)

    def test_a_child_at_risk_supervisor_rule_says_so(self):
        decided = route(Facts("", None, True), [rule(S.CHILD_AT_RISK, T.SUPERVISOR, position=5)], FULL)

        assert decided.supervisor_reasons == (
            "Routing rule 5 asks a supervisor to decide who to tell about a case with a child at immediate risk.",)

    def test_the_same_partner_from_both_rules_is_told_once_at_once(self):
        rules = [rule(S.DOMESTIC, T.NATIONAL_POLICE, position=1, notice_kind="police_referral"),
                 rule(S.CHILD_AT_RISK, T.NATIONAL_POLICE, position=2)]

        assert pairs(route(Facts("GB", 64500, True), rules, FULL)) == [(POLICE_GB, "police_referral", True)]


class TestFilters:
    @pytest.mark.parametrize(("country", "asn", "facts", "applies"), [
        ("FR", None, Facts("FR", 64501, False), True),
        ("fr", None, Facts("fr", 64501, False), True),
        ("DE", None, Facts("FR", 64501, False), False),
        ("", 64501, Facts("FR", 64501, False), True),
        ("", 64999, Facts("FR", 64501, False), False),
        ("", 64501, Facts("FR", None, False), False),
        ("FR", 64501, Facts("FR", 64501, False), True),
        ("FR", 64999, Facts("FR", 64501, False), False),
        ("DE", 64501, Facts("FR", 64501, False), False),
    ])
    def test_a_rule_s_country_and_network_narrow_it(self, country, asn, facts, applies):
        decided = route(facts, [rule(S.HOTLINE_ABROAD, T.COUNTRY_HOTLINE, country=country, asn=asn)], FULL)

        assert pairs(decided) == ([(HOTLINE_FR, "hotline_referral", False)] if applies else [])

    def test_a_rule_naming_a_country_never_applies_to_an_unknown_hosting_country(self):
        decided = route(Facts("", 64503, False), [rule(S.UNKNOWN, T.INTERNATIONAL_POLICE, country="FR")], FULL)

        assert decided.recipients == ()
        assert decided.supervisor_reasons == (
            "No routing rule applies to a case whose hosting country is not known.",)

    def test_a_narrow_rule_before_a_broad_one(self):
        rules = [rule(S.HOTLINE_ABROAD, T.PARTNER, position=10, asn=64501, notice_kind="hotline_referral"),
                 rule(S.HOTLINE_ABROAD, T.COUNTRY_HOTLINE, position=20)]

        assert pairs(route(FACTS[S.HOTLINE_ABROAD], rules, FULL)) == [
            (NAMED, "hotline_referral", False), (HOTLINE_FR, "hotline_referral", False)]
        assert pairs(route(Facts("FR", 64999, False), rules, FULL)) == [(HOTLINE_FR, "hotline_referral", False)]


class TestOrderAndDuplicates:
    def test_recipients_follow_the_rules_positions_whatever_the_list_order(self):
        rules = [rule(S.DOMESTIC, T.NATIONAL_POLICE, position=30), rule(S.DOMESTIC, T.HOSTING_PROVIDER, position=20),
                 rule(S.DOMESTIC, T.INTERNATIONAL_POLICE, position=25)]

        assert pairs(route(FACTS[S.DOMESTIC], rules, FULL)) == [
            (HOST_GB, "takedown", False), (INTERPOL, "police_referral", False), (POLICE_GB, "police_information",
                                                                                 False)]

    def test_equal_positions_keep_the_given_order(self):
        rules = [rule(S.DOMESTIC, T.NATIONAL_POLICE), rule(S.DOMESTIC, T.HOSTING_PROVIDER)]

        assert [r.partner_id for r in route(FACTS[S.DOMESTIC], rules, FULL).recipients] == [POLICE_GB, HOST_GB]

    def test_a_partner_hears_once_per_kind_and_the_first_rule_wins(self):
        rules = [rule(S.DOMESTIC, T.COUNTRY_POLICE, position=10, needs_authorisation=True),
                 rule(S.DOMESTIC, T.NATIONAL_POLICE, position=20, notice_kind="police_referral"),
                 rule(S.DOMESTIC, T.NATIONAL_POLICE, position=30)]

        decided = route(FACTS[S.DOMESTIC], rules, FULL)

        assert decided.recipients == (
            recipient(POLICE_GB, "police_referral", needs_authorisation=True),
            recipient(POLICE_GB, "police_information"),
        )

    def test_a_reason_is_given_once(self):
        rules = [rule(S.DOMESTIC, T.HOSTING_PROVIDER, position=1), rule(S.DOMESTIC, T.HOSTING_PROVIDER, position=2)]

        assert route(FACTS[S.DOMESTIC], rules, SPARSE).supervisor_reasons == (
            "No hosting provider is known for AS64500 (hosted in GB).",)

    def test_recipients_and_reasons_together(self):
        rules = [rule(S.DOMESTIC, T.HOSTING_PROVIDER, position=1), rule(S.DOMESTIC, T.NATIONAL_POLICE, position=2)]
        directory = Directory(own_country="GB", police_by_country={"GB": POLICE_GB})

        decided = route(FACTS[S.DOMESTIC], rules, directory)

        assert pairs(decided) == [(POLICE_GB, "police_information", False)]
        assert decided.supervisor_reasons == ("No hosting provider is known for AS64500 (hosted in GB).",)

    def test_no_rules_at_all(self):
        assert route(FACTS[S.HOTLINE_ABROAD], [], FULL) == Route(
            (), ("No routing rule applies to a case hosted in FR, where a partner hotline works.",), S.HOTLINE_ABROAD)

    def test_the_rule_s_authorisation_and_escalation_travel_with_the_recipient(self):
        decided = route(FACTS[S.DOMESTIC], [rule(S.DOMESTIC, T.HOSTING_PROVIDER, needs_authorisation=True,
                                                 authorisation_wait_minutes=30, authorisation_fallback="send",
                                                 escalate_to_id=77)], FULL)

        assert decided.recipients == (recipient(HOST_GB, "takedown", needs_authorisation=True,
                                                authorisation_wait_minutes=30, authorisation_fallback="send",
                                                escalate_to_id=77),)


# --- the loaders and the default rules (database) ---------------------------------------------------------------
def partner(name: str, kind: str, country: str = "", **fields: Any) -> Partner:
    return Partner.objects.create(name=name, kind=kind, country=country, **fields)


@pytest.mark.django_db
class TestLoaders:
    def test_load_directory_reads_the_active_partners_by_role(self, settings):
        settings.NTD_COUNTRY = "GB"
        host = partner("Host", Partner.Kind.HOSTING_PROVIDER, "GB")
        old_host = partner("Old host", Partner.Kind.HOSTING_PROVIDER, "GB", is_active=False)
        HostingNetwork.objects.create(asn=64500, partner=host)
        HostingNetwork.objects.create(asn=64501, partner=old_host)
        plain_fr = partner("A hotline FR", Partner.Kind.HOTLINE, "FR")
        inhope_fr = partner("Z hotline FR", Partner.Kind.HOTLINE, "FR", inhope_member=True)
        first_de = partner("A hotline DE", Partner.Kind.HOTLINE, "DE")
        partner("B hotline DE", Partner.Kind.HOTLINE, "DE")
        partner("Hotline NL", Partner.Kind.HOTLINE, "NL", inhope_member=True, is_active=False)
        partner("Hotline nowhere", Partner.Kind.HOTLINE)
        police_gb = partner("Police GB", Partner.Kind.LAW_ENFORCEMENT, "GB")
        partner("Police GB old", Partner.Kind.LAW_ENFORCEMENT, "GB", is_active=False)
        police_fr = partner("Police FR", Partner.Kind.LAW_ENFORCEMENT, "FR")
        partner("A liaison", Partner.Kind.INTERNATIONAL_POLICE, is_active=False)
        liaison = partner("B liaison", Partner.Kind.INTERNATIONAL_POLICE)

        directory = load_directory()

        assert directory.own_country == "GB"
        assert dict(directory.hosts_by_asn) == {64500: host.pk}
        assert dict(directory.hotlines_by_country) == {"FR": inhope_fr.pk, "DE": first_de.pk}
        assert plain_fr.pk not in directory.hotlines_by_country.values()
        assert dict(directory.police_by_country) == {"GB": police_gb.pk, "FR": police_fr.pk}
        assert directory.international_police == liaison.pk
        assert directory.active_partners == frozenset(
            Partner.objects.filter(is_active=True).values_list("pk", flat=True))
        assert old_host.pk not in directory.active_partners

    def test_load_directory_takes_another_country_when_asked(self):
        assert load_directory("nl").own_country == "NL"

    def test_a_network_mapped_to_a_partner_that_is_not_a_host_is_not_a_host(self):
        team = partner("Team", Partner.Kind.PLATFORM_TEAM)
        HostingNetwork.objects.create(asn=64500, partner=team)

        assert load_directory("GB").hosts_by_asn == {}

    def test_load_rules_reads_the_active_rules_in_order(self):
        RoutingRule.objects.all().delete()
        named = partner("Named", Partner.Kind.REGISTRAR)
        second = RoutingRule.objects.create(position=20, situation=S.DOMESTIC, send_to=T.PARTNER, partner=named,
                                            notice_kind="takedown", escalate_to=named, needs_authorisation=True,
                                            authorisation_wait_minutes=15, authorisation_fallback="send",
                                            country="GB", asn=64500)
        RoutingRule.objects.create(position=5, situation=S.DOMESTIC, send_to=T.SUPERVISOR, active=False)
        first = RoutingRule.objects.create(position=10, situation=S.UNKNOWN, send_to=T.SUPERVISOR)
        tie = RoutingRule.objects.create(position=20, situation=S.UNKNOWN, send_to=T.INTERNATIONAL_POLICE)

        rules = load_rules()

        assert [r.position for r in rules] == [first.position, second.position, tie.position]
        assert rules[1] == Rule(position=20, situation="domestic", country="GB", asn=64500, send_to="partner",
                                partner_id=named.pk, notice_kind="takedown", needs_authorisation=True,
                                authorisation_wait_minutes=15, authorisation_fallback="send",
                                escalate_to_id=named.pk)
        assert rules[2].send_to == "international_police"


def add_default_rules() -> None:
    migration = importlib.import_module("takedown.migrations.0004_default_routing_rules")
    migration.add_default_rules(apps, None)


@pytest.mark.django_db
class TestDefaultRules:
    @pytest.fixture
    def partners(self, settings: Any) -> dict[str, Partner]:
        settings.NTD_COUNTRY = "GB"
        RoutingRule.objects.all().delete()  # a transactional test elsewhere may have emptied it already
        add_default_rules()
        made = {
            "host": partner("Host GB", Partner.Kind.HOSTING_PROVIDER, "GB"),
            "police": partner("Police GB", Partner.Kind.LAW_ENFORCEMENT, "GB"),
            "hotline_fr": partner("Hotline FR", Partner.Kind.HOTLINE, "FR", inhope_member=True),
            "police_us": partner("Police US", Partner.Kind.LAW_ENFORCEMENT, "US"),
            "liaison": partner("Liaison", Partner.Kind.INTERNATIONAL_POLICE),
        }
        HostingNetwork.objects.create(asn=64500, partner=made["host"])
        return made

    def decide(self, facts: Facts) -> Route:
        return route(facts, load_rules(), load_directory())

    def test_the_defaults_are_the_domain_s_rules(self, partners):
        assert [(r.position, r.situation, r.send_to, r.notice_kind, r.needs_authorisation) for r in load_rules()] == [
            (10, "child_at_risk", "national_police", "police_referral", False),
            (20, "domestic", "hosting_provider", "takedown", False),
            (30, "domestic", "national_police", "police_information", False),
            (40, "hotline_abroad", "country_hotline", "hotline_referral", False),
            (50, "no_hotline_abroad", "country_police", "police_referral", False),
            (60, "unknown", "supervisor", "", False),
        ]

    def test_the_defaults_are_not_added_over_a_deployment_s_own_rules(self, partners):
        RoutingRule.objects.exclude(position=60).delete()

        add_default_rules()

        assert list(RoutingRule.objects.values_list("position", flat=True)) == [60]

    def test_hosted_here(self, partners):
        assert pairs(self.decide(Facts("GB", 64500, False))) == [
            (partners["host"].pk, "takedown", False), (partners["police"].pk, "police_information", False)]

    def test_hosted_here_with_a_child_at_risk(self, partners):
        assert pairs(self.decide(Facts("GB", 64500, True))) == [
            (partners["police"].pk, "police_referral", True), (partners["host"].pk, "takedown", False),
            (partners["police"].pk, "police_information", False)]

    def test_hosted_where_a_partner_hotline_works(self, partners):
        assert pairs(self.decide(Facts("FR", 64501, False))) == [(partners["hotline_fr"].pk, "hotline_referral",
                                                                  False)]

    def test_hosted_where_no_partner_hotline_works(self, partners):
        assert pairs(self.decide(Facts("US", 64502, False))) == [(partners["police_us"].pk, "police_referral", False)]
        assert pairs(self.decide(Facts("BR", 64503, False))) == [(partners["liaison"].pk, "police_referral", False)]

    def test_hosting_unknown(self, partners):
        decided = self.decide(Facts("", None, False))

        assert decided.recipients == ()
        assert decided.supervisor_reasons == ("Routing rule 60 asks a supervisor to decide who to tell about a case "
                                              "whose hosting country is not known.",)

    def test_hosted_here_on_a_network_no_host_answers_for(self, partners):
        decided = self.decide(Facts("GB", 64999, False))

        assert pairs(decided) == [(partners["police"].pk, "police_information", False)]
        assert decided.supervisor_reasons == ("No hosting provider is known for AS64999 (hosted in GB).",)
