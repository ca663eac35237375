import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from ntd import roles


@pytest.mark.django_db
class TestRoles:
    def test_migrate_created_every_role_with_its_permissions(self):
        for role, labels in roles.ROLE_PERMISSIONS.items():
            group = Group.objects.get(name=role)
            got = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
            assert got == set(labels)

    def test_bootstrap_is_idempotent_and_repairs_drift(self, capsys):
        auditor = Group.objects.get(name=roles.AUDITOR)
        auditor.permissions.clear()
        Group.objects.get(name=roles.ANALYST).delete()

        call_command("bootstrap_roles")
        call_command("bootstrap_roles")

        assert Group.objects.filter(name__in=roles.ROLE_LABELS).count() == len(roles.ROLE_LABELS)
        assert auditor.permissions.count() == len(roles.ROLE_PERMISSIONS[roles.AUDITOR])
        assert "Auditor" in capsys.readouterr().out

    def test_assign_role_gives_the_permissions_and_admin_site_only_to_admins(self, make_staff):
        auditor = make_staff(roles.AUDITOR).user
        admin = make_staff(roles.ADMIN).user
        assert auditor.has_perm("ntd.view_auditevent") and not auditor.is_staff
        assert admin.is_staff and admin.has_perm("takedown.add_partner")
        assert not admin.has_perm("ntd.view_auditevent")

    def test_unknown_role_is_refused(self, make_staff):
        with pytest.raises(ValueError, match="unknown role"):
            roles.assign_role(make_staff().user, "overlord")


@pytest.mark.django_db
def test_navigation_shows_each_role_only_what_it_may_use(make_staff):
    from ntd.navigation import navigation_for

    def labels(user):
        return [item.label for item in navigation_for(user)]

    assert labels(make_staff().user) == ["Home"]  # no role yet: nothing it would be refused
    assert labels(make_staff(roles.ANALYST).user) == ["Home", "Cases", "API documentation"]
    assert labels(make_staff(roles.SUPERVISOR).user) == ["Home", "Cases", "Team", "API documentation"]
    assert labels(make_staff(roles.AUDITOR).user) == ["Home", "Cases", "Audit log", "API documentation"]
    assert labels(make_staff(roles.ADMIN).user) == ["Home", "API documentation", "Administration"]
