"""The classification scheme ntd starts with: INHOPE-style values that admins then edit as data.

`load_scheme()` is used by the data migration and by `seed_demo`; it adds what is missing and never
changes or removes what an admin has edited.
"""

from __future__ import annotations

from typing import Any

INTERNATIONAL = "INT"  # the international baseline (INTERPOL / INHOPE)
NATIONAL = "NAT"  # this deployment's national law; admins add its clauses

VERDICTS = [
    # code, label, outcome, jurisdiction whose clauses apply
    ("illegal_baseline", "Illegal under the international baseline", "illegal", INTERNATIONAL),
    ("illegal_national", "Illegal under national law", "illegal", NATIONAL),
    ("not_illegal", "Not illegal", "not_illegal", ""),
    ("unavailable", "Content no longer available", "unavailable", ""),
    ("out_of_remit", "Outside remit", "out_of_remit", ""),
]

OPTIONS = {
    "media_type": [("images", "Images"), ("videos", "Videos"), ("images_and_videos", "Images and videos"),
                   ("virtual", "Drawn, animated or computer-generated"), ("text", "Text"),
                   ("live_stream", "Live stream"), ("other", "Other")],
    "age_group": [("infant_toddler", "Infant or toddler"), ("prepubescent", "Pre-pubescent"),
                  ("pubescent", "Pubescent"), ("unknown", "Unknown")],
    "gender": [("female", "Female"), ("male", "Male"), ("both", "Both"), ("unknown", "Unknown")],
    "site_type": [("website", "Website"), ("image_host", "Image host"), ("file_host", "File host"),
                  ("forum", "Forum"), ("image_store", "Image store"), ("banner_site", "Banner site"),
                  ("link_site", "Link site"), ("social_network", "Social network"), ("blog", "Blog"),
                  ("search_provider", "Search provider"), ("redirector", "Redirector"),
                  ("web_archive", "Web archive"), ("other", "Other")],
}

CLAUSES = [
    (INTERNATIONAL, "BL-1", "Real child, apparently under 13, involved in or witnessing a sexual act",
     "INTERPOL baseline: the child is real, appears prepubescent, and is involved in or witnessing a sexual act."),
    (INTERNATIONAL, "BL-2", "Real child, apparently under 13, with a focus on the anal or genital region",
     "INTERPOL baseline: the child is real, appears prepubescent, and the image focuses on the anal or genital "
     "region."),
]

# Starting points for the other schemes; review them against your policy in the admin.
MAPPINGS = [
    ("illegal_baseline", "industry", "A1"),
    ("illegal_baseline", "uk_grading", "A"),
    ("illegal_national", "industry", "B2"),
    ("illegal_national", "uk_grading", "C"),
]


def load_scheme(verdict: Any, option: Any, clause: Any, mapping: Any) -> int:
    """Add the missing starting values with the given model classes (historical ones in a migration)."""
    added = 0
    verdicts = {}
    for order, (code, label, outcome, jurisdiction) in enumerate(VERDICTS):
        verdicts[code], created = verdict.objects.get_or_create(
            code=code, defaults={"label": label, "outcome": outcome, "jurisdiction": jurisdiction, "order": order})
        added += created
    for field, values in OPTIONS.items():
        for order, (code, label) in enumerate(values):
            added += option.objects.get_or_create(field=field, code=code,
                                                  defaults={"label": label, "order": order})[1]
    for jurisdiction, code, title, text in CLAUSES:
        added += clause.objects.get_or_create(jurisdiction=jurisdiction, code=code,
                                              defaults={"title": title, "text": text})[1]
    for code, scheme, value in MAPPINGS:
        added += mapping.objects.get_or_create(verdict=verdicts[code], scheme=scheme, defaults={"value": value})[1]
    return added
