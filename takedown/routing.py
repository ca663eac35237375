"""Who hears about a confirmed case: the routing rules (admin data) applied to the facts of the case.

`route(facts, rules, directory)` is pure: no database, no clock, no settings. The loaders `load_rules()` and
`load_directory()` read what it needs, so a caller does::

    decision = route(Facts(case.hosting_country, case.hosting_asn, case.child_at_risk), load_rules(),
                     load_directory())

The situation of a case is UNKNOWN when its hosting country is not known, DOMESTIC when it is hosted in our own
country, HOTLINE_ABROAD when it is hosted in a country where a partner hotline works, else NO_HOTLINE_ABROAD.
A rule applies when its situation is the case's (a CHILD_AT_RISK rule applies in addition, to every case with a
child at immediate risk) and its country and AS number, when it names them, are the case's. Child-at-risk rules
come first and their notices are immediate (never held back for grouping); then the rules in order of position.

Each applying rule names a target, resolved through the directory of active partners. A target that cannot be
resolved (no hosting provider for the network, no police for the country, ...) becomes a reason, in words, for a
supervisor to decide, never a silent gap. A partner hears once per notice kind: the first rule wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from takedown.models import HostingNetwork, NoticeKind, Partner, RoutingRule

Situation = RoutingRule.Situation
Target = RoutingRule.Target

# The notice a target gets when its rule leaves the kind blank.
DEFAULT_KIND = {
    Target.HOSTING_PROVIDER: NoticeKind.TAKEDOWN,
    Target.COUNTRY_HOTLINE: NoticeKind.HOTLINE_REFERRAL,
    Target.COUNTRY_POLICE: NoticeKind.POLICE_REFERRAL,
    Target.INTERNATIONAL_POLICE: NoticeKind.POLICE_REFERRAL,
    Target.NATIONAL_POLICE: NoticeKind.POLICE_INFORMATION,  # a referral when a child is at risk
}  # a rule to a named partner names its kind (the admin requires it)


@dataclass(frozen=True)
class Facts:
    """What routing needs to know about a case."""

    hosting_country: str  # ISO 3166-1 alpha-2; "" when not known
    asn: int | None
    child_at_risk: bool


@dataclass(frozen=True)
class Rule:
    """A routing rule (mirrors `RoutingRule`)."""

    position: int
    situation: str
    country: str = ""
    asn: int | None = None
    send_to: str = Target.SUPERVISOR
    partner_id: int | None = None
    notice_kind: str = ""
    needs_authorisation: bool = False
    authorisation_wait_minutes: int = 240
    authorisation_fallback: str = RoutingRule.Fallback.WAIT
    escalate_to_id: int | None = None

    @classmethod
    def from_model(cls, rule: RoutingRule) -> Rule:
        return cls(position=rule.position, situation=rule.situation, country=rule.country, asn=rule.asn,
                   send_to=rule.send_to, partner_id=rule.partner_id, notice_kind=rule.notice_kind,
                   needs_authorisation=rule.needs_authorisation,
                   authorisation_wait_minutes=rule.authorisation_wait_minutes,
                   authorisation_fallback=rule.authorisation_fallback, escalate_to_id=rule.escalate_to_id)


@dataclass(frozen=True)
class Directory:
    """The active partners routing can name, by role.

    `active_partners`: the ids of all active partners, so a rule naming a partner that was since deactivated
    goes to a supervisor instead; None does not check (the loader always fills it).
    """

    own_country: str
    hosts_by_asn: Mapping[int, int] = field(default_factory=dict)
    hotlines_by_country: Mapping[str, int] = field(default_factory=dict)
    police_by_country: Mapping[str, int] = field(default_factory=dict)
    international_police: int | None = None
    active_partners: frozenset[int] | None = None


@dataclass(frozen=True)
class Recipient:
    partner_id: int
    kind: str
    immediate: bool
    needs_authorisation: bool
    authorisation_wait_minutes: int
    authorisation_fallback: str
    escalate_to_id: int | None


@dataclass(frozen=True)
class Route:
    """The recipients in order, and why a supervisor must decide (empty: nothing to decide)."""

    recipients: tuple[Recipient, ...]
    supervisor_reasons: tuple[str, ...]
    situation: str = ""


def situation_of(facts: Facts, directory: Directory) -> str:
    country = facts.hosting_country.strip().upper()
    if not country:
        return Situation.UNKNOWN
    if country == directory.own_country.upper():
        return Situation.DOMESTIC
    if country in directory.hotlines_by_country:
        return Situation.HOTLINE_ABROAD
    return Situation.NO_HOTLINE_ABROAD


def route(facts: Facts, rules: Sequence[Rule], directory: Directory) -> Route:
    """Who to tell about a case and with which notice; what a supervisor must decide."""
    country = facts.hosting_country.strip().upper()
    situation = situation_of(facts, directory)
    applying = [rule for rule in rules if _applies(rule, situation, facts, country)]
    # Child-at-risk rules first; otherwise by position (sorted() is stable: equal positions keep their order).
    applying = sorted(applying, key=lambda rule: (rule.situation != Situation.CHILD_AT_RISK, rule.position))

    recipients: dict[tuple[int, str], Recipient] = {}
    reasons: dict[str, None] = {}  # ordered, without repeats
    for rule in applying:
        partner_id, reason = _resolve(rule, facts, country, situation, directory)
        if partner_id is None:
            reasons[reason] = None
            continue
        kind = rule.notice_kind or _default_kind(rule.send_to, facts)
        if not kind:
            reasons[f"Routing rule {rule.position} sends to a named partner without saying which notice."] = None
            continue
        if (partner_id, kind) in recipients:
            continue
        recipients[(partner_id, kind)] = Recipient(
            partner_id=partner_id, kind=kind, immediate=rule.situation == Situation.CHILD_AT_RISK,
            needs_authorisation=rule.needs_authorisation,
            authorisation_wait_minutes=rule.authorisation_wait_minutes,
            authorisation_fallback=rule.authorisation_fallback, escalate_to_id=rule.escalate_to_id)
    if not recipients and not reasons:
        reasons[f"No routing rule applies to a case {_where(situation, country)}."] = None
    return Route(recipients=tuple(recipients.values()), supervisor_reasons=tuple(reasons), situation=situation)


def _applies(rule: Rule, situation: str, facts: Facts, country: str) -> bool:
    if rule.situation != situation and not (rule.situation == Situation.CHILD_AT_RISK and facts.child_at_risk):
        return False
    if rule.country and rule.country.upper() != country:
        return False
    return rule.asn is None or rule.asn == facts.asn


def _default_kind(target: str, facts: Facts) -> str:
    if target == Target.NATIONAL_POLICE and facts.child_at_risk:
        return NoticeKind.POLICE_REFERRAL
    return DEFAULT_KIND.get(target, "")


def _resolve(rule: Rule, facts: Facts, country: str, situation: str,
             directory: Directory) -> tuple[int | None, str]:
    """The partner the rule's target names, or None and the reason a supervisor must decide instead."""
    own = directory.own_country.upper()
    target = rule.send_to
    if target == Target.HOSTING_PROVIDER:
        hosted = f"hosted in {country}" if country else "hosting country not known"
        if facts.asn is None:
            return None, f"No hosting provider can be told: the hosting network (AS number) is not known ({hosted})."
        return _active(directory.hosts_by_asn.get(facts.asn), rule, directory,
                       f"No hosting provider is known for AS{facts.asn} ({hosted}).")
    if target == Target.NATIONAL_POLICE:
        return _active(directory.police_by_country.get(own), rule, directory,
                       f"No national police is set up: no active law enforcement partner in {own}.")
    if target == Target.COUNTRY_HOTLINE:
        if not country:
            return None, "The hosting country is not known, so no partner hotline can be chosen."
        return _active(directory.hotlines_by_country.get(country), rule, directory,
                       f"No partner hotline is known for {country}.")
    if target == Target.COUNTRY_POLICE:
        police = directory.police_by_country.get(country) if country else None
        where = country or "the hosting country (not known)"
        return _active(police if police is not None else directory.international_police, rule, directory,
                       f"No police partner is known for {where} and no international police liaison is set up.")
    if target == Target.INTERNATIONAL_POLICE:
        return _active(directory.international_police, rule, directory,
                       "No international police liaison is set up.")
    if target == Target.PARTNER:
        if rule.partner_id is None:
            return None, f"Routing rule {rule.position} sends to a named partner but names none."
        return _active(rule.partner_id, rule, directory, "")
    if target == Target.SUPERVISOR:
        return None, (f"Routing rule {rule.position} asks a supervisor to decide who to tell about a case "
                      f"{_where(situation, country, rule)}.")
    return None, f"Routing rule {rule.position} sends to {target!r}, which ntd does not know."


def _active(partner_id: int | None, rule: Rule, directory: Directory, missing: str) -> tuple[int | None, str]:
    if partner_id is None:
        return None, missing
    if directory.active_partners is not None and partner_id not in directory.active_partners:
        return None, f"Routing rule {rule.position} names partner {partner_id}, which is no longer active."
    return partner_id, ""


def _where(situation: str, country: str, rule: Rule | None = None) -> str:
    if rule is not None and rule.situation == Situation.CHILD_AT_RISK:
        return "with a child at immediate risk"
    if situation == Situation.DOMESTIC:
        return f"hosted in {country}, our own country"
    if situation == Situation.HOTLINE_ABROAD:
        return f"hosted in {country}, where a partner hotline works"
    if situation == Situation.NO_HOTLINE_ABROAD:
        return f"hosted in {country}, where no partner hotline works"
    return "whose hosting country is not known"


# --- loading from the database ---------------------------------------------------------------------------------
def load_rules() -> list[Rule]:
    """The active rules, in order."""
    return [Rule.from_model(rule) for rule in RoutingRule.objects.filter(active=True).order_by("position", "pk")]


def load_directory(own_country: str | None = None) -> Directory:
    """The active partners routing can name. `own_country`: settings.NTD_COUNTRY unless given."""
    from django.conf import settings

    active = Partner.objects.filter(is_active=True)
    hosts = dict(HostingNetwork.objects.filter(partner__is_active=True, partner__kind=Partner.Kind.HOSTING_PROVIDER)
                 .values_list("asn", "partner_id"))
    hotlines: dict[str, int] = {}
    # One per country: an INHOPE member before others, then by name.
    for country, pk in (active.filter(kind=Partner.Kind.HOTLINE).exclude(country="")
                        .order_by("country", "-inhope_member", "name").values_list("country", "pk")):
        hotlines.setdefault(country.upper(), pk)
    police: dict[str, int] = {}
    for country, pk in (active.filter(kind=Partner.Kind.LAW_ENFORCEMENT).exclude(country="")
                        .order_by("country", "name").values_list("country", "pk")):
        police.setdefault(country.upper(), pk)
    international = (active.filter(kind=Partner.Kind.INTERNATIONAL_POLICE).order_by("name")
                     .values_list("pk", flat=True).first())
    return Directory(
        own_country=(own_country or settings.NTD_COUNTRY).upper(), hosts_by_asn=hosts, hotlines_by_country=hotlines,
        police_by_country=police, international_police=international,
        active_partners=frozenset(active.values_list("pk", flat=True)))


__all__ = ["DEFAULT_KIND", "Directory", "Facts", "Recipient", "Route", "Rule", "load_directory",
           "load_rules", "route", "situation_of"]
