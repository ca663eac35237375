"""The notice templates ntd starts with: English for every kind that has words (a status update to a referring
ntd is data only), and Dutch and German takedown notices. Admins edit them as data; this only fills the gaps.

What a notice says follows DSA Art. 16(2) and the GSMA/UNICEF notice-and-takedown guide: why the material is
illegal (the verdict and the clause it relies on), the exact URLs, our reference, the deadline, how to acknowledge
and how to dispute (signed links and the API), a statement of good faith, that no image is attached and the
material must not be forwarded, that "takedown" means removing from public access and preserving (not
deleting), and the analysts' pseudonymous ids. The facts available are those of takedown.rendering.notice_context.
"""

from django.db import migrations

ITEMS_EN = """{% for item in items %}
{{ forloop.counter }}. {{ item.url }}
   Our case: {{ item.case_reference }}
   Why it is illegal: {{ item.explanation }}{% if item.media_type %}
   Material: {{ item.media_type }}{% if item.age_group %}, apparent age group: {{ item.age_group }}{% endif %}{% endif %}
   Assessed by analyst: {{ item.analyst|default:"(not recorded)" }}{% if item.child_at_risk %}
   A child may be at immediate risk.{% endif %}
{% endfor %}"""

NO_IMAGES_EN = """No image or other copy of the material is attached to this message, and we will never send one. Do not \
forward the material or these addresses to anyone who does not need them to act on this notice, and do not copy \
the material."""

GOOD_FAITH_EN = """{{ organisation }} makes this notice in good faith: we believe that the information in it is \
accurate and complete, and that the material is illegal. The assessment was made by trained analysts, named here \
only by their pseudonymous ids."""

ANSWER_EN = """How to answer
- Acknowledge receipt: {{ links.acknowledge }}
- Tell us the material has been removed: {{ links.removed }}
- If you believe this notice is wrong, dispute it and tell us why: {{ links.dispute }}
- The same through our API: {{ api }}
Each link names this notice only. Please quote our reference {{ reference }} in any reply."""

TEMPLATES = {
    ("takedown", "en"): (
        "{% if child_at_risk %}URGENT: {% endif %}Takedown notice {{ reference }}: child sexual abuse material on "
        "your service ({{ item_count }} URL{{ item_count|pluralize }})",
        """To {{ recipient }},
{% if child_at_risk %}
URGENT: we believe a child may be at immediate risk. Please act on this notice at once.
{% endif %}
{{ organisation }} has assessed the material at the following {% if item_count == 1 %}address{% else %}\
{{ item_count }} addresses{% endif %} as child sexual abuse material, which is illegal. It is hosted on, or \
reachable through, your service.

Our reference: {{ reference }}
Please act by: {{ deadline }}
""" + ITEMS_EN + """
What we ask of you
- Remove the material from public access, or disable access to it, by {{ deadline }}.
- Do not simply delete it: isolate it and preserve it, with the data associated with it, for the police as the \
law that applies to you requires. Deleting it may harm an investigation and the identification of a child.
- """ + NO_IMAGES_EN + """

""" + ANSWER_EN + """

""" + GOOD_FAITH_EN + """

{{ organisation }}
""",
    ),
    ("takedown", "nl"): (
        "{% if child_at_risk %}SPOED: {% endif %}Verwijderverzoek {{ reference }}: materiaal van seksueel "
        "kindermisbruik op uw dienst ({{ item_count }} URL{{ item_count|pluralize:\"'s\" }})",
        """Aan {{ recipient }},
{% if child_at_risk %}
SPOED: wij vermoeden dat een kind direct gevaar loopt. Handel dit verzoek onmiddellijk af.
{% endif %}
{{ organisation }} heeft het materiaal op {% if item_count == 1 %}het volgende adres{% else %}de volgende \
{{ item_count }} adressen{% endif %} beoordeeld als materiaal van seksueel kindermisbruik (child sexual abuse \
material). Dat is illegaal. Het staat op uw dienst of is via uw dienst bereikbaar.

Onze referentie: {{ reference }}
Graag afgehandeld vóór: {{ deadline }}
{% for item in items %}
{{ forloop.counter }}. {{ item.url }}
   Ons dossier: {{ item.case_reference }}
   Waarom het illegaal is: {{ item.explanation }}{% if item.media_type %}
   Materiaal: {{ item.media_type }}{% if item.age_group %}, geschatte leeftijdsgroep: {{ item.age_group }}\
{% endif %}{% endif %}
   Beoordeeld door analist: {{ item.analyst|default:"(niet vastgelegd)" }}{% if item.child_at_risk %}
   Een kind loopt mogelijk direct gevaar.{% endif %}
{% endfor %}
Wat wij van u vragen
- Maak het materiaal vóór {{ deadline }} ontoegankelijk voor het publiek.
- Verwijder het niet zomaar: zonder het af en bewaar het, met de bijbehorende gegevens, voor de politie zoals \
de wet die op u van toepassing is dat vraagt. Verwijderen kan een onderzoek en de identificatie van een kind \
schaden.
- Bij dit bericht is geen afbeelding of andere kopie van het materiaal gevoegd, en wij sturen die ook nooit. \
Stuur het materiaal of deze adressen niet door aan wie ze niet nodig heeft om dit verzoek af te handelen, en \
kopieer het materiaal niet.

Zo antwoordt u
- Ontvangst bevestigen: {{ links.acknowledge }}
- Laten weten dat het materiaal verwijderd is: {{ links.removed }}
- Vindt u dit verzoek onterecht, maak dan bezwaar en vertel ons waarom: {{ links.dispute }}
- Hetzelfde via onze API: {{ api }}
Elke link geldt alleen voor dit verzoek. Vermeld onze referentie {{ reference }} in elk antwoord.

{{ organisation }} doet dit verzoek te goeder trouw: wij menen dat de informatie erin juist en volledig is en \
dat het materiaal illegaal is. De beoordeling is gedaan door getrainde analisten, hier alleen genoemd met hun \
pseudonieme code.

{{ organisation }}
""",
    ),
    ("takedown", "de"): (
        "{% if child_at_risk %}DRINGEND: {% endif %}Löschaufforderung {{ reference }}: Darstellungen sexuellen "
        "Kindesmissbrauchs auf Ihrem Dienst ({{ item_count }} URL{{ item_count|pluralize:\"s\" }})",
        """An {{ recipient }},
{% if child_at_risk %}
DRINGEND: Wir gehen davon aus, dass ein Kind in unmittelbarer Gefahr sein könnte. Bitte handeln Sie sofort.
{% endif %}
{{ organisation }} hat das Material unter {% if item_count == 1 %}der folgenden Adresse{% else %}den folgenden \
{{ item_count }} Adressen{% endif %} als Darstellung sexuellen Kindesmissbrauchs (child sexual abuse material) \
bewertet. Es ist illegal. Es liegt auf Ihrem Dienst oder ist über Ihren Dienst erreichbar.

Unser Zeichen: {{ reference }}
Bitte erledigen bis: {{ deadline }}
{% for item in items %}
{{ forloop.counter }}. {{ item.url }}
   Unser Vorgang: {{ item.case_reference }}
   Warum es illegal ist: {{ item.explanation }}{% if item.media_type %}
   Material: {{ item.media_type }}{% if item.age_group %}, geschätzte Altersgruppe: {{ item.age_group }}\
{% endif %}{% endif %}
   Bewertet von Analyst(in): {{ item.analyst|default:"(nicht erfasst)" }}{% if item.child_at_risk %}
   Ein Kind könnte in unmittelbarer Gefahr sein.{% endif %}
{% endfor %}
Worum wir Sie bitten
- Sperren Sie den öffentlichen Zugang zu dem Material bis {{ deadline }}.
- Löschen Sie es nicht einfach: Isolieren und sichern Sie es mit den zugehörigen Daten für die Polizei, wie es \
das für Sie geltende Recht verlangt. Eine Löschung kann Ermittlungen und die Identifizierung eines Kindes \
gefährden.
- Dieser Nachricht ist kein Bild und keine andere Kopie des Materials beigefügt, und wir senden niemals eine. \
Leiten Sie das Material oder diese Adressen nicht an Personen weiter, die sie nicht zur Bearbeitung dieser \
Aufforderung benötigen, und kopieren Sie das Material nicht.

So antworten Sie
- Empfang bestätigen: {{ links.acknowledge }}
- Mitteilen, dass das Material entfernt ist: {{ links.removed }}
- Wenn Sie diese Aufforderung für falsch halten, widersprechen Sie mit Begründung: {{ links.dispute }}
- Dasselbe über unsere API: {{ api }}
Jeder Link gilt nur für diese Aufforderung. Bitte geben Sie unser Zeichen {{ reference }} in jeder Antwort an.

{{ organisation }} sendet diese Aufforderung in gutem Glauben: Wir halten die Angaben darin für richtig und \
vollständig und das Material für illegal. Die Bewertung erfolgte durch geschulte Analystinnen und Analysten, \
die hier nur mit ihrer pseudonymen Kennung genannt werden.

{{ organisation }}
""",
    ),
    ("hotline_referral", "en"): (
        "{% if child_at_risk %}URGENT: {% endif %}Referral {{ reference }} from {{ organisation }}: child sexual "
        "abuse material hosted in your country ({{ item_count }} URL{{ item_count|pluralize }})",
        """To {{ recipient }},
{% if child_at_risk %}
URGENT: we believe a child may be at immediate risk. Please act on this referral at once.
{% endif %}
{{ organisation }} has assessed the material at the following {% if item_count == 1 %}address{% else %}\
{{ item_count }} addresses{% endif %} as child sexual abuse material. As far as we can trace it, it is hosted in \
your country. We refer it to you, as the hotline there, to act on under your procedures and the law that \
applies to you; we have not contacted the host.

Our reference: {{ reference }}
We would be grateful for an answer by: {{ deadline }}
""" + ITEMS_EN + """
""" + NO_IMAGES_EN + """

""" + ANSWER_EN + """

""" + GOOD_FAITH_EN + """

{{ organisation }}
""",
    ),
    ("police_referral", "en"): (
        "{% if child_at_risk %}URGENT – CHILD AT RISK: {% endif %}Referral {{ reference }} from {{ organisation }}: "
        "child sexual abuse material ({{ item_count }} URL{{ item_count|pluralize }})",
        """To {{ recipient }},
{% if child_at_risk %}
URGENT: we believe a child may be at immediate risk. This referral needs your attention at once.
{% endif %}
{{ organisation }} has assessed the material at the following {% if item_count == 1 %}address{% else %}\
{{ item_count }} addresses{% endif %} as child sexual abuse material. We refer it to you for investigation and \
for the identification of any child who may be at risk.

Our reference: {{ reference }}
Please acknowledge by: {{ deadline }}
""" + ITEMS_EN + """
""" + NO_IMAGES_EN + """ We keep what the law allows us to keep for you; ask us, quoting our reference.

""" + ANSWER_EN + """

""" + GOOD_FAITH_EN + """

{{ organisation }}
""",
    ),
    ("police_information", "en"): (
        "Information {{ reference }} from {{ organisation }}: child sexual abuse material hosted in our country "
        "({{ item_count }} URL{{ item_count|pluralize }})",
        """To {{ recipient }},

For your information: {{ organisation }} has assessed the material at the following \
{% if item_count == 1 %}address{% else %}{{ item_count }} addresses{% endif %} as child sexual abuse material, \
hosted in our country. We are asking the host to remove it from public access and to preserve it for you.
{% if child_at_risk %}
We believe a child may be at immediate risk.
{% endif %}
Our reference: {{ reference }}
""" + ITEMS_EN + """
""" + NO_IMAGES_EN + """

Acknowledge receipt: {{ links.acknowledge }}
The same through our API: {{ api }}
If we should hold the notice to the host (an investigation you are running), tell us at once, quoting our \
reference {{ reference }}.

""" + GOOD_FAITH_EN + """

{{ organisation }}
""",
    ),
    ("authorisation_request", "en"): (
        "Authorisation requested {{ reference }}: may {{ organisation }} notify the host about child sexual abuse "
        "material? Answer by {{ deadline }}",
        """To {{ recipient }},

{{ organisation }} has assessed the material at the following {% if item_count == 1 %}address{% else %}\
{{ item_count }} addresses{% endif %} as child sexual abuse material, hosted in our country. Before we ask for \
its removal, we ask for your authorisation, so that we do not disturb an investigation.
{% if authorisation.pending %}
Once you authorise, these notices go out:
{% for waiting in authorisation.pending %}- {{ waiting.kind_label }} to {{ waiting.recipient }}
{% endfor %}{% endif %}
Our reference: {{ reference }}
Please answer by: {{ deadline }}
""" + ITEMS_EN + """
Authorise the notices: {{ links.authorise }}
Ask us to hold them (for example, an investigation is running): {{ links.hold }}
Acknowledge receipt only: {{ links.acknowledge }}
The same through our API: {{ api }}
{% if authorisation.fallback == "send" %}
If we have no answer by {{ deadline }}, we will send the notices.
{% else %}
If we have no answer by {{ deadline }}, we will keep waiting, and a supervisor of ours will contact you.
{% endif %}
""" + NO_IMAGES_EN + """

""" + GOOD_FAITH_EN + """

{{ organisation }}
""",
    ),
    ("dispute_outcome", "en"): (
        "Outcome of your dispute of notice {{ outcome.notice_reference|default:reference }}: "
        "{{ outcome.decision|default:'under review' }}",
        """To {{ recipient }},

You disputed our notice {{ outcome.notice_reference|default:"(see our reference below)" }} about the \
following {% if item_count == 1 %}address{% else %}{{ item_count }} addresses{% endif %}. We have reviewed it \
again.

Outcome: the notice is {{ outcome.label|default:"still under review" }}.
{% if outcome.note %}
{{ outcome.note }}
{% endif %}{% if outcome.decision == "upheld" %}
We remain of the view that the material is child sexual abuse material. Please remove it from public access \
now, and preserve it for the police as the law that applies to you requires.
{% elif outcome.decision == "withdrawn" %}
You need not act on the notice. Thank you for telling us.
{% endif %}
Our reference for this message: {{ reference }}
{% for item in items %}
{{ forloop.counter }}. {{ item.url }}
   Our case: {{ item.case_reference }}{% if outcome.decision != "withdrawn" %}
   Why it is illegal: {{ item.explanation }}{% endif %}
{% endfor %}
""" + NO_IMAGES_EN + """
{% if outcome.decision == "upheld" %}
Tell us the material has been removed: {{ outcome.removed_link }}{% endif %}{% if outcome.notice_api %}
The notice through our API: {{ outcome.notice_api }}{% endif %}
{% if outcome.decision != "withdrawn" %}
""" + GOOD_FAITH_EN + """
{% endif %}
{{ organisation }}
""",
    ),
}


def add_templates(apps, schema_editor):
    template = apps.get_model("takedown", "NoticeTemplate")
    for (kind, language), (subject, body) in TEMPLATES.items():
        template.objects.get_or_create(kind=kind, language=language, defaults={"subject": subject, "body": body})


def remove_unchanged(apps, schema_editor):
    template = apps.get_model("takedown", "NoticeTemplate")
    for (kind, language), (subject, body) in TEMPLATES.items():
        template.objects.filter(kind=kind, language=language, subject=subject, body=body).delete()


class Migration(migrations.Migration):
    dependencies = [("takedown", "0004_default_routing_rules")]
    operations = [migrations.RunPython(add_templates, remove_unchanged)]
