"""The words of a notice: admin-edited templates rendered over a fixed, whitelisted set of facts.

A notice leaves the system, so what it may say is decided here and nowhere else. `notice_context()` builds the
only facts a template can reach: plain strings, numbers, booleans, lists and dicts, copied from the notice, its
cases and their deciding assessments. No model object is ever in the context, so no template can walk from an
assessment to the analyst behind it; an analyst appears only as `user.pseudonym`.

The template language is Django's, on an engine of its own that is strict:

- no loaders, no `{% load %}`, no `{% include %}`/`{% extends %}`: only the tags in `ALLOWED_TAGS` and the
  built-in filters;
- autoescape off (the subject and body are plain text; the webhook payload is built as data, not rendered);
- an unknown variable is an error, not an empty string: `{{ notice.refrence }}` fails to render, and
  `validate_template()` also checks the names inside `{% if %}`/`{% for %}`, where Django would silently take an
  unknown name as false or empty.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Case, F, IntegerField, Value, When
from django.template import Context, Engine, Library, TemplateSyntaxError, defaulttags
from django.template.base import FilterExpression, Lexer, Node, NodeList, TokenType, Variable, VariableNode
from django.template.defaulttags import ForNode, IfNode, TemplateLiteral, WithNode
from django.utils import timezone

from takedown import links
from takedown.models import Notice, NoticeKind, NoticeTemplate

# --- The engine -------------------------------------------------------------------------------------------------

ALLOWED_TAGS = ("if", "for", "with", "comment", "templatetag", "verbatim")
# Tags people reach for that are refused with a reason rather than "invalid block tag".
REFUSED_TAGS = {
    "load": "{% load %} is not allowed: notice templates use only the built-in tags and filters.",
    "include": "{% include %} is not allowed: a notice template is one self-contained text.",
    "extends": "{% extends %} is not allowed: a notice template is one self-contained text.",
    "block": "{% block %} is not allowed: a notice template is one self-contained text.",
    "url": "{% url %} is not allowed: use the links given, e.g. {{ links.acknowledge }}.",
    "debug": "{% debug %} is not allowed.",
    "csrf_token": "{% csrf_token %} has no place in a notice.",
}
# Closing and middle tags of the allowed ones (parsed by their opening tag, never on their own).
_INNER_TAGS = {"elif", "else", "endif", "empty", "endfor", "endwith", "endcomment", "endverbatim"}

# Django loads template "builtins" by module path and takes the module's `register`: this module is the one tag
# library of the notice engine (the filters come from django.template.defaultfilters, unchanged).
register = Library()
for _name in ALLOWED_TAGS:
    register.tags[_name] = defaulttags.register.tags[_name]


class UnknownVariable(TemplateSyntaxError):
    """A template names a fact that the notice context does not have."""


class _Strict(str):
    """Django's `string_if_invalid`: formatting it with the unknown variable raises instead of printing ''."""

    def __new__(cls) -> _Strict:
        return super().__new__(cls, "%s")

    def __mod__(self, variable: Any) -> str:
        raise UnknownVariable(f"unknown variable {{{{ {variable} }}}}")

    def __str__(self) -> str:  # where Django puts string_if_invalid itself in the output (uncallable methods)
        raise UnknownVariable("a variable that cannot be shown")


class _NoticeEngine(Engine):
    default_builtins = ["takedown.rendering", "django.template.defaultfilters"]


ENGINE = _NoticeEngine(loaders=[], libraries={}, autoescape=False, string_if_invalid=_Strict(), debug=False)


# --- The facts --------------------------------------------------------------------------------------------------

LINK_PURPOSES = {
    NoticeKind.POLICE_INFORMATION: ("acknowledge",),
    NoticeKind.AUTHORISATION_REQUEST: ("acknowledge", "authorise", "hold"),
    NoticeKind.DISPUTE_OUTCOME: (),
    NoticeKind.STATUS_UPDATE: (),
}
DEFAULT_LINK_PURPOSES = ("acknowledge", "removed", "dispute")
LINK_KEYS = ("acknowledge", "removed", "dispute", "authorise", "hold")


def format_deadline(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def notice_deadline(notice: Notice, now: dt.datetime | None = None) -> dt.datetime:
    """The deadline the notice states: the one already set, the time the police are asked to answer by (a
    request for authorisation), else NOTICE_DEADLINE_HOURS from now."""
    if notice.deadline_at is not None:
        return notice.deadline_at
    if notice.kind == NoticeKind.AUTHORISATION_REQUEST and notice.authorisation_id is not None:
        return notice.authorisation.answer_by
    return (now or timezone.now()) + dt.timedelta(hours=settings.NOTICE_DEADLINE_HOURS)


def api_url(reference: str) -> str:
    return f"{settings.NTD_PUBLIC_URL}/api/v1/notices/{reference}/"


def _deciding_assessments(case_ids: list[int]) -> dict[int, Any]:
    """Per case, the illegal assessment that settled it: a supervisor's decision if there is one, else the latest
    (a second opinion agrees with the first, so the latest states the verdict the case stands on).

    Of the assessor only the pseudonym is read (`analyst_pseudonym`): names, usernames and addresses never
    enter the rendering."""
    from reports.models import Assessment, Verdict

    rank = Case(When(kind=Assessment.Kind.DECISION, then=Value(0)), default=Value(1), output_field=IntegerField())
    found: dict[int, Any] = {}
    rows = (Assessment.objects.filter(case_id__in=case_ids, verdict__outcome=Verdict.Outcome.ILLEGAL)
            .select_related("verdict", "clause", "media_type", "age_group")
            .annotate(rank=rank, analyst_pseudonym=F("assessor__pseudonym"))
            .order_by("case_id", "rank", "-created_at", "-id"))
    for assessment in rows:
        found.setdefault(assessment.case_id, assessment)
    return found


def explanation(assessment: Any) -> str:
    """Why the material is illegal, in the words of the scheme: the verdict and the clause it relies on."""
    if assessment is None:
        return "Assessed as child sexual abuse material."
    text = assessment.verdict.label
    clause = assessment.clause
    if clause is not None:
        text += f", clause {clause.code} ({clause.title})"
        if clause.text:
            text += f": {clause.text}"
    return text if text.endswith(".") else text + "."


def _item(case: Any, assessment: Any) -> dict[str, Any]:
    clause = assessment.clause if assessment is not None else None
    return {
        "url": case.url,
        "case_reference": case.reference,
        "explanation": explanation(assessment),
        "verdict": assessment.verdict.label if assessment is not None else "",
        "clause_code": clause.code if clause is not None else "",
        "clause_title": clause.title if clause is not None else "",
        "clause_text": clause.text if clause is not None else "",
        "media_type": assessment.media_type.label if assessment is not None and assessment.media_type else "",
        "age_group": assessment.age_group.label if assessment is not None and assessment.age_group else "",
        "analyst": assessment.analyst_pseudonym if assessment is not None else "",
        "child_at_risk": bool(case.child_at_risk),
    }


def _links(notice: Notice) -> dict[str, str]:
    wanted = LINK_PURPOSES.get(notice.kind, DEFAULT_LINK_PURPOSES)
    return {key: links.link_for(notice, key) if key in wanted else "" for key in LINK_KEYS}


LABELS = {"upheld": "upheld: the material must be removed", "withdrawn": "withdrawn: you need not act on it"}


def _outcome(notice: Notice, case_ids: list[int]) -> dict[str, str]:
    """For an outcome-of-dispute notice: the disputed notice and what became of it, as the decision recorded it
    in the notice's payload ({"dispute": {"notice", "outcome", "note"}}, takedown.responses), else as that
    notice's state says (withdrawn, or upheld once no longer disputed); with its removal link and API address."""
    empty = {"decision": "", "label": "", "note": "", "notice_reference": "", "removed_link": "", "notice_api": ""}
    if notice.kind != NoticeKind.DISPUTE_OUTCOME:
        return empty
    given = notice.payload.get("dispute") if isinstance(notice.payload, dict) else None
    given = given if isinstance(given, dict) else {}
    others = Notice.objects.filter(partner_id=notice.partner_id).exclude(pk=notice.pk)
    if given.get("notice"):
        disputed = others.filter(reference=given["notice"]).first()
    else:
        disputed = (others.filter(disputed_at__isnull=False, items__case_id__in=case_ids)
                    .exclude(kind=NoticeKind.DISPUTE_OUTCOME).order_by("-disputed_at", "-pk").first())
    if disputed is None:
        return empty
    decision = given.get("outcome") if given.get("outcome") in LABELS else ""
    if not decision and disputed.state == Notice.State.WITHDRAWN:
        decision = "withdrawn"
    elif not decision and disputed.state != Notice.State.DISPUTED:
        decision = "upheld"
    note = given.get("note") if isinstance(given.get("note"), str) else ""
    return {"decision": decision, "label": LABELS.get(decision, "still under review"), "note": note,
            "notice_reference": disputed.reference,
            "removed_link": links.link_for(disputed, "removed") if decision == "upheld" else "",
            "notice_api": api_url(disputed.reference)}


def _authorisation(notice: Notice) -> dict[str, Any]:
    """For a request for police authorisation: what happens without an answer, and who waits for consent
    (organisations, by name, and the kind of notice each would get)."""
    from takedown.models import Partner

    empty: dict[str, Any] = {"fallback": "", "pending": []}
    if notice.kind != NoticeKind.AUTHORISATION_REQUEST or notice.authorisation_id is None:
        return empty
    request = notice.authorisation
    names = dict(Partner.objects.filter(pk__in=[p.get("partner") for p in request.pending])
                 .values_list("pk", "name"))
    pending = [{"recipient": names.get(p.get("partner"), ""), "kind_label": NoticeKind(p["kind"]).label}
               for p in request.pending if p.get("kind") in NoticeKind.values]
    return {"fallback": request.fallback, "pending": pending}


def notice_context(notice: Notice, now: dt.datetime | None = None) -> dict[str, Any]:
    """The facts a template may use, and nothing else (see `sample_context()` for the same shape)."""
    return _facts(notice, now)[0]


def _facts(notice: Notice, now: dt.datetime | None) -> tuple[dict[str, Any], list[int]]:
    items = list(notice.items.select_related("case").order_by("pk"))
    cases = [item.case for item in items]
    case_ids = [case.pk for case in cases]
    decided = _deciding_assessments(case_ids)
    rendered_items = [_item(case, decided.get(case.pk)) for case in cases]
    deadline = notice_deadline(notice, now)
    return ({
        "organisation": settings.NTD_ORGANISATION,
        "reference": notice.reference,
        "kind": notice.kind,
        "kind_label": NoticeKind(notice.kind).label,
        "recipient": notice.partner.name,
        "deadline": format_deadline(deadline),
        "deadline_iso": iso(deadline),
        "deadline_hours": settings.NOTICE_DEADLINE_HOURS,
        "items": rendered_items,
        "item_count": len(rendered_items),
        "analysts": sorted({item["analyst"] for item in rendered_items if item["analyst"]}),
        "links": _links(notice),
        "api": api_url(notice.reference),
        "child_at_risk": any(item["child_at_risk"] for item in rendered_items),
        "outcome": _outcome(notice, case_ids),
        "authorisation": _authorisation(notice),
    }, case_ids)


def sample_context(kind: str) -> dict[str, Any]:
    """A context of the same shape as `notice_context()`, for checking a template before it is saved."""
    public = settings.NTD_PUBLIC_URL
    purposes = LINK_PURPOSES.get(kind, DEFAULT_LINK_PURPOSES)
    item = {
        "url": "https://host.example/gallery/1", "case_reference": "C-0000-0001",
        "explanation": "Illegal under the international baseline, clause BL-1 (Real child): a sample.",
        "verdict": "Illegal under the international baseline", "clause_code": "BL-1",
        "clause_title": "Real child", "clause_text": "A sample clause.", "media_type": "Images",
        "age_group": "Pre-pubescent", "analyst": "A-SAMPLE", "child_at_risk": False,
    }
    deadline = timezone.now() + dt.timedelta(hours=settings.NOTICE_DEADLINE_HOURS)
    return {
        "organisation": settings.NTD_ORGANISATION,
        "reference": "N-0000-0001",
        "kind": kind,
        "kind_label": NoticeKind(kind).label,
        "recipient": "Example Hosting Ltd",
        "deadline": format_deadline(deadline),
        "deadline_iso": iso(deadline),
        "deadline_hours": settings.NOTICE_DEADLINE_HOURS,
        "items": [item],
        "item_count": 1,
        "analysts": ["A-SAMPLE"],
        "links": {key: f"{public}/n/{key}/sample/" if key in purposes else "" for key in LINK_KEYS},
        "api": api_url("N-0000-0001"),
        "child_at_risk": False,
        "outcome": ({"decision": "upheld", "label": LABELS["upheld"], "note": "A note from us.",
                     "notice_reference": "N-0000-0000", "removed_link": f"{public}/n/removed/sample/",
                     "notice_api": api_url("N-0000-0000")}
                    if kind == NoticeKind.DISPUTE_OUTCOME else
                    {"decision": "", "label": "", "note": "", "notice_reference": "", "removed_link": "",
                     "notice_api": ""}),
        "authorisation": ({"fallback": "wait", "pending": [{"recipient": "Example Hosting Ltd",
                                                            "kind_label": NoticeKind.TAKEDOWN.label}]}
                          if kind == NoticeKind.AUTHORISATION_REQUEST else {"fallback": "", "pending": []}),
    }


def payload(context: dict[str, Any], sealed_at: dt.datetime | None = None) -> dict[str, Any]:
    """The webhook body: the same facts as data (JSON), for a recipient's systems."""
    notice = {
        "reference": context["reference"],
        "kind": context["kind"],
        "deadline": context["deadline_iso"],
        "items": [{"url": item["url"], "case_reference": item["case_reference"],
                   "explanation": item["explanation"]} for item in context["items"]],
        "links": {key: value for key, value in context["links"].items() if value},
        "api": context["api"],
        "organisation": context["organisation"],
        "child_at_risk": context["child_at_risk"],
    }
    if context["kind"] == NoticeKind.DISPUTE_OUTCOME:
        notice["outcome"] = {"decision": context["outcome"]["decision"], "note": context["outcome"]["note"],
                             "notice_reference": context["outcome"]["notice_reference"],
                             "removed_link": context["outcome"]["removed_link"],
                             "notice_api": context["outcome"]["notice_api"]}
    return {"type": f"notice.{context['kind']}", "timestamp": iso(sealed_at or timezone.now()), "notice": notice}


# --- Templates --------------------------------------------------------------------------------------------------


class NoTemplate(Exception):
    """No active template for a kind, in the language asked for or in English."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    payload: dict[str, Any]
    case_ids: tuple[int, ...] = ()  # the notice's cases, in order (for the caller's audit; never rendered)


def default_templates() -> dict[tuple[str, str], tuple[str, str]]:
    """The templates ntd ships, (kind, language) → (subject, body): those of the data migration that seeds them."""
    import importlib

    return importlib.import_module("takedown.migrations.0005_default_notice_templates").TEMPLATES


def install_default_templates() -> int:
    """Add the shipped templates that are missing (an emptied table in a test, a new kind); the number added."""
    added = 0
    for (kind, language), (subject, body) in default_templates().items():
        added += NoticeTemplate.objects.get_or_create(kind=kind, language=language,
                                                      defaults={"subject": subject, "body": body})[1]
    return added


def template_for(kind: str, language: str) -> NoticeTemplate:
    rows = NoticeTemplate.objects.filter(kind=kind, active=True, language__in=[language, "en"])
    found = {template.language: template for template in rows}
    template = found.get(language) or found.get("en")
    if template is None:
        raise NoTemplate(f"There is no active template for {NoticeKind(kind).label.lower()} notices "
                         f"(language {language or 'en'} or en).")
    return template


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> Any:
    _refuse_tags(source)
    return ENGINE.from_string(source)


def _refuse_tags(source: str) -> None:
    for token in Lexer(source).tokenize():
        if token.token_type != TokenType.BLOCK:
            continue
        name = token.contents.split()[0] if token.contents.split() else ""
        if name in REFUSED_TAGS:
            raise TemplateSyntaxError(f"line {token.lineno}: {REFUSED_TAGS[name]}")
        if name not in ALLOWED_TAGS and name not in _INNER_TAGS:
            raise TemplateSyntaxError(f"line {token.lineno}: unknown tag {{% {name} %}}; notice templates may use "
                                      f"{', '.join(ALLOWED_TAGS)}.")


def render_text(source: str, context: dict[str, Any]) -> str:
    template = _compiled(source)
    check_names(template.nodelist, context)
    return template.render(Context(context, autoescape=False))


def render(notice: Notice, now: dt.datetime | None = None) -> Rendered:
    """The subject, body and webhook payload of a notice, in its language (or English)."""
    template = template_for(notice.kind, notice.language)
    context, case_ids = _facts(notice, now)
    subject = " ".join(render_text(template.subject, context).split())  # one line: it becomes a header
    body = render_text(template.body, context).strip() + "\n"
    return Rendered(subject=subject, body=body, payload=payload(context, now), case_ids=tuple(case_ids))


def validate_template(kind: str, subject: str, body: str) -> None:
    """Render with a sample context; a readable ValidationError for syntax errors, refused tags and unknown
    names (also inside {% if %} and {% for %})."""
    context = sample_context(kind)
    errors: dict[str, list[str]] = {}
    for field, source in (("subject", subject), ("body", body)):
        try:
            text = render_text(source, context)
        except TemplateSyntaxError as error:
            errors.setdefault(field, []).append(_readable(error))
        except Exception as error:  # a filter given the wrong kind of value: tell the admin, do not fail
            errors.setdefault(field, []).append(f"The template cannot be rendered: {error}")
        else:
            if field == "subject" and not text.strip():
                errors.setdefault(field, []).append("The subject is empty once rendered.")
    if errors:
        raise ValidationError(errors)


def _readable(error: Exception) -> str:
    message = str(error)
    if isinstance(error, UnknownVariable):
        return (f"{message[:1].upper()}{message[1:]}. Notice templates can use: "
                f"{', '.join(sorted(sample_context(NoticeKind.TAKEDOWN)))}; each item has "
                f"{', '.join(sorted(sample_context(NoticeKind.TAKEDOWN)['items'][0]))}.")
    return message[:1].upper() + message[1:]


# --- Checking names statically ----------------------------------------------------------------------------------

_ANY = object()  # a value whose shape is not known (a loop over a literal, say): its attributes are not checked


def check_names(nodelist: NodeList, scope: dict[str, Any]) -> None:
    """Raise UnknownVariable for a name no context value has, wherever it is used, including conditions and
    loops (where Django would resolve an unknown name to nothing without a word)."""
    for node in nodelist:
        _check_node(node, scope)


def _check_node(node: Node, scope: dict[str, Any]) -> None:
    line = getattr(getattr(node, "token", None), "lineno", None)
    if isinstance(node, VariableNode):
        _check_expression(node.filter_expression, scope, line)
    elif isinstance(node, IfNode):
        for condition, nodelist in node.conditions_nodelists:
            for expression in _condition_expressions(condition):
                _check_expression(expression, scope, line)
            check_names(nodelist, scope)
    elif isinstance(node, ForNode):
        sequence = _check_expression(node.sequence, scope, line)
        element = sequence[0] if isinstance(sequence, list | tuple) and sequence else _ANY
        inner = dict(scope)
        for index, name in enumerate(node.loopvars):
            if len(node.loopvars) == 1:
                inner[name] = element
            elif isinstance(element, list | tuple) and index < len(element):
                inner[name] = element[index]
            else:
                inner[name] = _ANY
        inner["forloop"] = {"counter": 1, "counter0": 0, "revcounter": 1, "revcounter0": 0, "first": True,
                            "last": True, "length": 1, "parentloop": scope.get("forloop", {})}
        check_names(node.nodelist_loop, inner)
        check_names(node.nodelist_empty, scope)
    elif isinstance(node, WithNode):
        inner = dict(scope)
        for name, expression in node.extra_context.items():
            inner[name] = _check_expression(expression, scope, line)
        check_names(node.nodelist, inner)
    else:
        for attribute in getattr(node, "child_nodelists", ()):
            check_names(getattr(node, attribute, None) or NodeList(), scope)


def _condition_expressions(condition: Any) -> Iterator[FilterExpression]:
    if condition is None:
        return
    if isinstance(condition, TemplateLiteral):
        yield condition.value
        return
    for part in (getattr(condition, "first", None), getattr(condition, "second", None)):
        if part is not None:
            yield from _condition_expressions(part)


def _check_expression(expression: FilterExpression, scope: dict[str, Any], line: int | None) -> Any:
    for _, arguments in expression.filters:
        for is_lookup, argument in arguments:
            if is_lookup and isinstance(argument, Variable):
                _lookup(argument, scope, line)
    if isinstance(expression.var, Variable):
        return _lookup(expression.var, scope, line)
    return expression.var


_CONTEXT_BUILTINS = {"True": True, "False": False, "None": None}


def _lookup(variable: Variable, scope: dict[str, Any], line: int | None) -> Any:
    if variable.lookups is None:  # a literal: "text", 3
        return variable.literal
    where = f" on line {line}" if line else ""
    first = variable.lookups[0]
    if first in scope:
        value = scope[first]
    elif first in _CONTEXT_BUILTINS:
        value = _CONTEXT_BUILTINS[first]
    else:
        raise UnknownVariable(f"unknown variable {{{{ {variable.var} }}}}{where}")
    for part in variable.lookups[1:]:
        if value is _ANY:
            return _ANY
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list | tuple) and part.isdigit():
            value = value[int(part)] if int(part) < len(value) else _ANY
        else:
            raise UnknownVariable(f"unknown variable {{{{ {variable.var} }}}}{where}")
    return value
