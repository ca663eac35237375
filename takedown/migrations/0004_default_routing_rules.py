"""The default routing rules (an admin changes them in the admin; this only seeds an empty table).

A child at immediate risk: our national police at once. Hosted here: the hosting provider is told to take the
material down and our police are informed. Hosted abroad where a partner hotline works: that hotline. Abroad
without one: the police of that country (or the international liaison). Hosting unknown: a supervisor decides.
"""

from django.db import migrations

DEFAULT_RULES = [
    # (position, situation, send_to, notice_kind)
    (10, "child_at_risk", "national_police", "police_referral"),
    (20, "domestic", "hosting_provider", "takedown"),
    (30, "domestic", "national_police", "police_information"),
    (40, "hotline_abroad", "country_hotline", "hotline_referral"),
    (50, "no_hotline_abroad", "country_police", "police_referral"),
    (60, "unknown", "supervisor", ""),
]


def add_default_rules(apps, schema_editor):
    rule_model = apps.get_model("takedown", "RoutingRule")
    if rule_model.objects.exists():
        return  # rules of the deployment's own: keep them
    rule_model.objects.bulk_create([
        rule_model(position=position, situation=situation, send_to=send_to, notice_kind=kind,
                   needs_authorisation=False)
        for position, situation, send_to, kind in DEFAULT_RULES
    ])


def remove_default_rules(apps, schema_editor):
    rule_model = apps.get_model("takedown", "RoutingRule")
    for position, situation, send_to, kind in DEFAULT_RULES:
        rule_model.objects.filter(position=position, situation=situation, send_to=send_to, notice_kind=kind,
                                  country="", asn=None, partner=None).delete()


class Migration(migrations.Migration):

    dependencies = [("takedown", "0003_notices")]

    operations = [migrations.RunPython(add_default_rules, remove_default_rules)]
