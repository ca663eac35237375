"""The hashed bundle (ntd/exports.py) and its own checker (ntd/bundle_verify.py, copied into it as verify.py).

The bundle is checked the way its recipient checks it: verify.py taken out of the ZIP and run by another
Python process, on the ZIP as received, on an unzipped folder, and on bundles spoiled one byte at a time.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from ntd import audit, bundle_verify
from ntd.audit import Action, AuditEvent
from ntd.exports import ExportRequest
from reports.models import Case
from tests.ntd.test_exports import AUDITOR_NAME, bundle_members, case_export, export, new_analyst, open_case, run_verify

pytestmark = pytest.mark.django_db
BUNDLE_FILES = {"timeline.jsonl", "timeline.csv", "events.jsonl", "checkpoint.json", "verify.py", "README.txt",
                "manifest.json"}


@pytest.fixture
def case(make_staff: Any, default_queue: Any) -> Case:
    return open_case(new_analyst(make_staff, default_queue))


def spoiled(members: dict[str, bytes], tmp_path: Path, **changes: bytes) -> Path:
    path = tmp_path / "spoiled.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, changes.get(name.replace(".", "_"), data))
    return path


@pytest.fixture
def bundle(case: Case, make_staff: Any, tmp_path: Path) -> dict[str, Any]:
    """The case's bundle with a signed checkpoint at the case's last event; verify.py taken out beside it."""
    last = AuditEvent.objects.order_by("-seq").first()
    audit.write_checkpoint(last.seq, last.hash)
    data = case_export(case, "bundle", actor=make_staff("auditor", username=AUDITOR_NAME).user)
    (tmp_path / "bundle.zip").write_bytes(data)
    members = bundle_members(data)
    (tmp_path / "verify.py").write_bytes(members["verify.py"])
    return {"data": data, "members": members, "zip": tmp_path / "bundle.zip", "script": tmp_path / "verify.py"}


class TestBundle:
    def test_what_it_holds(self, bundle: dict[str, Any], case: Case) -> None:
        members = bundle["members"]
        manifest = json.loads(members["manifest.json"])

        assert set(members) == BUNDLE_FILES and list(members)[-1] == "manifest.json"
        assert {f["name"] for f in manifest["files"]} == BUNDLE_FILES - {"manifest.json"}
        for listed in manifest["files"]:
            assert listed["sha256"] == hashlib.sha256(members[listed["name"]]).hexdigest()
            assert listed["size"] == len(members[listed["name"]])
        events = [json.loads(line) for line in members["events.jsonl"].splitlines()]
        stored = {e.seq: e for e in ExportRequest(kind="case", case_id=case.pk, format="csv").events()}
        assert [e["fields"] for e in events] == [stored[e["fields"]["seq"]].canonical_fields() for e in events]
        assert [e["hash"] for e in events] == [stored[e["fields"]["seq"]].hash for e in events]
        checkpoint = json.loads(members["checkpoint.json"])
        assert audit.is_signed_checkpoint(checkpoint["checkpoint"])
        assert checkpoint["head"] == {"seq": manifest["chain"]["head_seq"], "hash": manifest["chain"]["head_hash"]}
        assert manifest["export"]["events"] == len(events) == 5 and manifest["export"]["case"] == case.reference
        assert members["verify.py"] == Path(bundle_verify.__file__).read_bytes()

    def test_verify_passes_the_zip_as_received(self, bundle: dict[str, Any]) -> None:
        result = run_verify(bundle["script"], str(bundle["zip"]))

        assert (result.returncode, result.stdout[:3]) == (0, "OK:"), result.stdout + result.stderr
        assert "5 events" in result.stdout

    def test_verify_passes_inside_the_unzipped_folder(self, bundle: dict[str, Any], tmp_path: Path) -> None:
        folder = tmp_path / "unzipped"
        zipfile.ZipFile(bundle["zip"]).extractall(folder)

        result = run_verify(Path("verify.py"), cwd=folder)

        assert (result.returncode, result.stdout[:3]) == (0, "OK:"), result.stdout

    def test_a_flipped_byte_in_a_file_fails_on_the_manifest(self, bundle: dict[str, Any], tmp_path: Path) -> None:
        events = bytearray(bundle["members"]["events.jsonl"])
        events[40] ^= 0x01

        result = run_verify(bundle["script"], str(spoiled(bundle["members"], tmp_path, events_jsonl=bytes(events))))

        assert result.returncode == 1
        assert result.stdout.startswith("FAILED: events.jsonl: its SHA-256 differs from the manifest")

    def test_a_flipped_byte_in_the_raw_zip_fails_naming_the_file(self, bundle: dict[str, Any]) -> None:
        data = bytearray(bundle["data"])
        with zipfile.ZipFile(io.BytesIO(bundle["data"])) as archive:
            info = archive.getinfo("events.jsonl")
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)  # past the local header
        data[start + info.compress_size // 2] ^= 0x10
        bundle["zip"].write_bytes(bytes(data))

        result = run_verify(bundle["script"], str(bundle["zip"]))

        assert result.returncode == 1
        assert result.stdout.startswith("FAILED: events.jsonl: damaged inside the ZIP"), result.stdout

    def test_an_event_edited_and_rehashed_fails_on_the_manifest_then_on_the_link(
        self, bundle: dict[str, Any], tmp_path: Path
    ) -> None:
        lines = [json.loads(line) for line in bundle["members"]["events.jsonl"].splitlines()]
        edited = lines[2]  # the first claim: the release follows it directly (#n, #n+1)
        assert lines[3]["fields"]["seq"] == edited["fields"]["seq"] + 1
        edited["fields"]["data"]["to"] = "closed"
        edited["hash"] = audit.chain_hash(edited["fields"], edited["prev_hash"])
        events = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()

        # the manifest as exported: the file's fingerprint no longer matches
        result = run_verify(bundle["script"], str(spoiled(bundle["members"], tmp_path, events_jsonl=events)))
        assert result.returncode == 1
        assert result.stdout.startswith("FAILED: events.jsonl: its SHA-256 differs from the manifest")

        # the manifest "fixed" too: the next event no longer links
        manifest = json.loads(bundle["members"]["manifest.json"])
        for listed in manifest["files"]:
            if listed["name"] == "events.jsonl":
                listed.update(sha256=hashlib.sha256(events).hexdigest(), size=len(events))
        fixed = json.dumps(manifest).encode()
        result = run_verify(bundle["script"], str(spoiled(bundle["members"], tmp_path, events_jsonl=events,
                                                          manifest_json=fixed)))
        assert result.returncode == 1
        next_seq = edited["fields"]["seq"] + 1
        assert result.stdout.startswith(f"FAILED: events.jsonl line 4 (event #{next_seq}): its prev_hash does not "
                                        f"link to event #{next_seq - 1}"), result.stdout

    def test_a_file_added_to_the_zip_fails(self, bundle: dict[str, Any], tmp_path: Path) -> None:
        members = {**bundle["members"], "NOTE.txt": b"trust me"}

        result = run_verify(bundle["script"], str(spoiled(members, tmp_path)))

        assert (result.returncode, result.stdout) == (1, "FAILED: NOTE.txt: in the ZIP but not in the manifest: "
                                                         "it was added\n")

    def test_a_log_bundle_links_every_event(self, case: Case, tmp_path: Path) -> None:
        path = tmp_path / "log.zip"
        path.write_bytes(export(ExportRequest(kind="log", format="bundle")))

        result = run_verify(Path(bundle_verify.__file__), str(path))

        assert result.returncode == 0 and "consecutive events linked" in result.stdout


class TestVerifyScript:
    def test_its_hash_is_the_audit_logs(self, case: Case) -> None:
        with transaction.atomic():
            audit.record(actor="system", action=Action.CASE_VIEWED, case_id=case.pk,
                         data={"reason": "Zoë — 日本語, \"quoted\"\n", "n": 2**40, "ok": None, "list": [1, "x"]})
        for event in AuditEvent.objects.order_by("seq"):
            fields = json.loads(json.dumps(event.canonical_fields()))  # as read back from events.jsonl
            assert bundle_verify.chain_hash(fields, event.prev_hash) == audit.chain_hash(
                event.canonical_fields(), event.prev_hash) == event.hash

    def test_it_is_standalone_python_3_9(self) -> None:
        source = Path(bundle_verify.__file__).read_text()
        tree = ast.parse(source, feature_version=(3, 9))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert imported <= sys.stdlib_module_names | {"__future__"}, imported
        assert bundle_verify.GENESIS_HASH == audit.GENESIS_HASH
        assert bundle_verify.HASH_VERSIONS == (audit.HASH_VERSION,)
