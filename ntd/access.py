"""Object access: one helper over django-guardian, for small objects (queues, partners), never cases."""

from typing import Any

from django.db.models import Model, QuerySet
from guardian.shortcuts import get_objects_for_user


def objects_for_user[M: Model](user: Any, perm: str | list[str], klass: type[M] | QuerySet[M]) -> QuerySet[M]:
    """The objects `user` holds `perm` (or any of a list of perms) on through an explicit object grant.

    Grants to the user and to their groups count. A global permission does not, and a superuser gets
    nothing for free: access to a queue or a partner is always granted on the object itself.
    """
    return get_objects_for_user(
        user, perm, klass=klass, accept_global_perms=False, with_superuser=False, use_groups=True,
        any_perm=isinstance(perm, list),
    )
