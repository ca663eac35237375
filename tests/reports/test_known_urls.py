from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.test import Client

from ntd.audit import AuditEvent
from ntd.roles import ADMIN, ANALYST, AUDITOR, SUPERVISOR
from reports.known_urls import deactivate_known_urls, import_known_urls
from reports.models import Case, KnownURL

pytestmark = pytest.mark.django_db

LIST = """url
https://known.example/a
hxxp://known[.]example/b?x=1
ftp://known.example/c

javascript:alert(1)
HTTPS://KNOWN.EXAMPLE:443/a
"https://known.example/d, with a comma"
# a comment line
"""


def listed() -> dict[str, tuple[str, bool]]:
    return {url: (source, active) for url, source, active in KnownURL.objects.values_list("url", "source", "active")}


class TestImport:
    def test_valid_lines_are_listed_and_invalid_ones_named_by_line_number(self):
        result = import_known_urls(LIST, source="Hotline NL list", actor="system")

        assert (result.added, result.updated, result.unchanged, result.duplicates) == (3, 0, 0, 1)
        assert [line for line, _ in result.invalid] == [4, 6]
        assert "http:// or https://" in result.invalid[0][1]
        assert listed() == {
            "https://known.example/a": ("Hotline NL list", True),
            "http://known.example/b?x=1": ("Hotline NL list", True),
            "https://known.example/d,%20with%20a%20comma": ("Hotline NL list", True),
        }
        entry = KnownURL.objects.get(url="https://known.example/a")
        assert entry.registrable_domain == "known.example" and len(entry.url_key) == 64

    def test_one_audit_event_with_the_counts_and_no_urls(self):
        import_known_urls(LIST, source="Hotline NL list", actor="system")

        event = AuditEvent.objects.get()
        assert event.action == "known_urls.imported" and event.actor_type == "system"
        assert event.data == {"source": "Hotline NL list", "added": 3, "updated": 0, "unchanged": 0,
                              "duplicates": 1, "invalid": 2}

    def test_a_reimport_changes_nothing(self):
        import_known_urls(LIST, source="Hotline NL list", actor="system")
        before = list(KnownURL.objects.order_by("id").values())

        result = import_known_urls(LIST, source="Hotline NL list", actor="system")

        assert (result.added, result.updated, result.unchanged) == (0, 0, 3)
        assert list(KnownURL.objects.order_by("id").values()) == before

    def test_another_source_takes_over_and_a_deactivated_entry_comes_back(self):
        import_known_urls("https://known.example/a\nhttps://known.example/b\n", source="List A", actor="system")
        deactivate_known_urls(KnownURL.objects.filter(url="https://known.example/b").values_list("pk", flat=True),
                              actor="system")

        result = import_known_urls("https://known.example/a\nhttps://known.example/b\nhttps://known.example/c\n",
                                   source="List A", actor="system")

        assert (result.added, result.updated, result.unchanged) == (1, 1, 1)
        assert all(active for _, active in listed().values())
        result = import_known_urls("https://known.example/a\n", source="List B", actor="system")
        assert (result.added, result.updated) == (0, 1)
        assert listed()["https://known.example/a"] == ("List B", True)

    def test_a_header_row_is_optional_and_only_the_first_column_counts(self):
        result = import_known_urls(["https://known.example/a,extra,columns\n", "url\n"], source="S", actor="system")

        assert result.added == 1
        assert result.invalid == [(2, result.invalid[0][1])]  # "url" after the first row is a bad line, not a header

    def test_broken_csv_is_reported_and_the_rest_imported(self):
        result = import_known_urls("https://known.example/a\n" + "x" * 200_000 + "\nhttps://known.example/c\n",
                                   source="S", actor="system")

        assert result.added == 2 and [line for line, _ in result.invalid] == [2]
        assert "not valid CSV" in result.invalid[0][1]

    def test_a_user_without_the_permissions_may_not_import(self, make_staff):
        analyst = make_staff(ANALYST).user
        with pytest.raises(PermissionDenied):
            import_known_urls("https://known.example/a\n", source="S", actor=analyst)
        assert not KnownURL.objects.exists()

    def test_the_command_imports_a_file(self, tmp_path):
        path = tmp_path / "list.csv"
        path.write_text("\ufeffurl\r\nhttps://known.example/a\r\nnot a url\r\n", encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()

        call_command("import_known_urls", str(path), "--source", "Hotline NL", stdout=out, stderr=err)

        assert out.getvalue().startswith("1 added, 0 updated, 0 unchanged, 0 duplicate lines, 1 invalid lines")
        assert err.getvalue().startswith("line 3: ")
        assert listed() == {"https://known.example/a": ("Hotline NL", True)}


class TestReportsOfKnownURLs:
    def test_a_public_report_of_a_known_url_in_another_spelling_gets_top_priority(self, report_form):
        import_known_urls("https://known.example/a?b=1\n", source="S", actor="system")

        response = report_form("hxxps://KNOWN[.]example:443/a?b=1#top\nhttps://unknown.example/x")

        assert response.status_code == 302
        cases = {url: (priority, known) for url, priority, known in Case.objects.values_list("url", "priority",
                                                                                             "known_url")}
        assert cases == {"https://known.example/a?b=1": (80, True), "https://unknown.example/x": (10, False)}

    def test_a_partner_report_of_a_known_url_gets_top_priority(self, partner_key):
        import_known_urls("https://known.example/a\n", source="S", actor="system")
        client = Client(headers={"X-Api-Key": partner_key[1]})

        response = client.post("/api/v1/reports/", {"urls": ["https://Known.Example/a"]},
                               content_type="application/json")

        assert response.status_code == 201
        case = Case.objects.get()
        assert case.priority >= 80 and case.known_url

    def test_a_deactivated_entry_no_longer_escalates(self, report_form):
        import_known_urls("https://known.example/a\n", source="S", actor="system")
        deactivate_known_urls(KnownURL.objects.values_list("pk", flat=True), actor="system")

        report_form("https://known.example/a")

        assert Case.objects.values_list("priority", "known_url").get() == (10, False)


class TestAdmin:
    def admin(self, make_staff: Any, role: str = ADMIN) -> tuple[Client, Any]:
        staff = make_staff(role)
        client = Client()
        client.force_login(staff.user, backend="django.contrib.auth.backends.ModelBackend")
        return client, staff.user

    def test_an_admin_imports_a_pasted_csv(self, make_staff):
        client, user = self.admin(make_staff)
        page = client.get("/admin/reports/knownurl/import/")
        assert page.status_code == 200
        html = page.content.decode()
        assert 'enctype="multipart' not in html and 'name="csv"' in html
        assert 'nonce="' in html  # the file reader runs under the content security policy

        response = client.post("/admin/reports/knownurl/import/",
                               {"source": "Hotline NL", "csv": "url\r\nhttps://known.example/a\r\n"})

        assert response.status_code == 302 and response["Location"] == "/admin/reports/knownurl/"
        assert listed() == {"https://known.example/a": ("Hotline NL", True)}
        assert KnownURL.objects.get().added_by == user
        event = AuditEvent.objects.get(action="known_urls.imported")
        assert (event.actor_type, event.actor_id) == ("user", str(user.pk))

    def test_invalid_lines_are_shown_with_their_numbers(self, make_staff):
        client, _ = self.admin(make_staff)

        response = client.post("/admin/reports/knownurl/import/",
                               {"source": "S", "csv": "https://known.example/a\nmailto:x@example.org\n"})

        assert response.status_code == 200
        assert "<td>2</td>" in response.content.decode()
        assert KnownURL.objects.count() == 1

    def test_a_list_over_5_mb_is_refused(self, make_staff):
        client, _ = self.admin(make_staff)
        big = "https://known.example/" + "a" * 1000 + "\n"

        response = client.post("/admin/reports/knownurl/import/", {"source": "S", "csv": big * 5300})

        assert response.status_code == 200 and "larger than 5 MB" in response.content.decode()
        assert not KnownURL.objects.exists() and not AuditEvent.objects.filter(action="known_urls.imported")

    @pytest.mark.parametrize("role", [ANALYST, SUPERVISOR, AUDITOR])
    def test_only_admins_reach_the_list_and_the_import(self, make_staff, role):
        client, _ = self.admin(make_staff, role)

        for url in ("/admin/reports/knownurl/", "/admin/reports/knownurl/import/"):
            response = client.get(url, follow=True)
            assert response.status_code == 403, url
        client.post("/admin/reports/knownurl/import/", {"source": "S", "csv": "https://known.example/a\n"})
        assert not KnownURL.objects.exists()

    def test_the_list_links_the_import_and_searches_any_spelling(self, make_staff):
        client, _ = self.admin(make_staff)
        import_known_urls("https://known.example/a?b=1\nhttps://other.example/\n", source="S", actor="system")

        page = client.get("/admin/reports/knownurl/", {"q": "hxxps://KNOWN[.]example/a?b=1"}).content.decode()

        assert 'href="/admin/reports/knownurl/import/"' in page
        assert "https://known.example/a?b=1" in page and "https://other.example/" not in page

    def test_deactivate_action(self, make_staff):
        client, user = self.admin(make_staff)
        import_known_urls("https://known.example/a\nhttps://known.example/b\n", source="S", actor="system")
        entry = KnownURL.objects.get(url="https://known.example/a")

        response = client.post("/admin/reports/knownurl/", {"action": "deactivate", "_selected_action": [entry.pk]})

        assert response.status_code == 302
        assert listed() == {"https://known.example/a": ("S", False), "https://known.example/b": ("S", True)}
        event = AuditEvent.objects.get(action="known_urls.deactivated")
        assert event.data == {"count": 1, "ids": [entry.pk]} and event.actor_id == str(user.pk)

    def test_an_admin_adds_one_url_and_it_is_normalised(self, make_staff):
        client, user = self.admin(make_staff)

        response = client.post("/admin/reports/knownurl/add/",
                               {"url": "hxxps://Known[.]Example/a#x", "source": "By hand", "active": "on"})

        assert response.status_code == 302
        entry = KnownURL.objects.get()
        assert (entry.url, entry.registrable_domain, entry.added_by) == ("https://known.example/a", "known.example",
                                                                         user)
        assert AuditEvent.objects.get(action="known_url.created").data == {"fields": ["source", "url"]}
        again = client.post("/admin/reports/knownurl/add/", {"url": "https://known.example/a", "source": "x"})
        assert again.status_code == 200 and "already on the list" in again.content.decode()
