"""factory_boy factories for review tests: queues, cases and the grants that open a queue to a user."""

from __future__ import annotations

import hashlib
from typing import Any

import factory
from factory.django import DjangoModelFactory
from guardian.shortcuts import assign_perm

from reports.models import Case, ClassificationOption, PolicyClause, Queue, Verdict, VerdictMapping
from reports.scheme import load_scheme


class QueueFactory(DjangoModelFactory):
    class Meta:
        model = Queue

    name = factory.Sequence(lambda n: f"Queue {n}")
    slug = factory.Sequence(lambda n: f"queue-{n}")


class CaseFactory(DjangoModelFactory):
    class Meta:
        model = Case

    url = factory.Sequence(lambda n: f"https://host{n}.example/page")
    url_key = factory.LazyAttribute(lambda case: hashlib.sha256(case.url.encode()).hexdigest())
    host = factory.LazyAttribute(lambda case: case.url.split("/")[2])
    registrable_domain = factory.LazyAttribute(lambda case: case.host)
    queue = factory.LazyFunction(lambda: Queue.objects.get(pk=Queue.objects.default_id()))


def grant(user: Any, queue: Queue, perm: str = "work_queue") -> None:
    """Open `queue` to `user` (work_queue or supervise_queue), as an admin does."""
    assign_perm(f"reports.{perm}", user, queue)
    for name in ("_ntd_queue_ids", "_ntd_supervised_ids", "_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(name, None)


class Scheme:
    """The seeded classification scheme, looked up by code."""

    def __init__(self) -> None:
        load_scheme(Verdict, ClassificationOption, PolicyClause, VerdictMapping)
        self.verdicts = {v.code: v for v in Verdict.objects.all()}
        self.options = {(o.field, o.code): o for o in ClassificationOption.objects.all()}
        self.clauses = {(c.jurisdiction, c.code): c for c in PolicyClause.objects.all()}

    def verdict(self, code: str) -> Verdict:
        return self.verdicts[code]

    def option(self, field: str, code: str) -> ClassificationOption:
        return self.options[(field, code)]

    def clause(self, jurisdiction: str, code: str) -> PolicyClause:
        return self.clauses[(jurisdiction, code)]
