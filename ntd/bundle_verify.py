#!/usr/bin/env python3
"""Check an ntd export bundle on its own: standard-library Python 3.9 or later, nothing else.

    python3 verify.py bundle.zip     check the ZIP as it was received
    python3 verify.py                check the folder this script sits in (the unzipped bundle)
    python3 verify.py FOLDER         check an unzipped bundle elsewhere

It checks, in this order, and stops at the first fault, which it names:
1. every file against manifest.json (SHA-256 and size), and that nothing was added to the ZIP;
2. every event in events.jsonl: its hash recomputed from its fields and the previous event's hash (the same
   rule the hotline's database uses); that consecutive events (#n, #n+1) link; and that the chain head and
   the signed checkpoint named in the bundle agree with the events, where the bundle holds those events;
3. that events.jsonl holds as many events as the manifest says, and that timeline.jsonl and timeline.csv
   describe exactly those events, with the same hashes.
Prints OK and exits 0, or prints FAILED with the reason and exits 1.

This script is copied verbatim into every bundle (ntd/bundle_verify.py in the ntd source).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any

GENESIS_HASH = "0" * 64
HASH_VERSIONS = (1,)
MANIFEST = "manifest.json"
EVENTS, TIMELINE_JSONL, TIMELINE_CSV, CHECKPOINT = "events.jsonl", "timeline.jsonl", "timeline.csv", "checkpoint.json"
BLOCK = 1 << 16


class Failed(Exception):
    """The bundle is not what its manifest says: the message names the file, or the event, and what is wrong."""


def chain_hash(fields: dict[str, Any], prev_hash: str) -> str:
    """SHA-256 over the previous hash and the event's canonical JSON (sorted keys, no spaces, UTF-8)."""
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


# --- reading the bundle: a ZIP or a folder ---------------------------------------------------------------


class Bundle:
    def __init__(self, path: str) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if os.path.isdir(path):
            return
        if not os.path.isfile(path):
            raise Failed(f"{path}: no such file or folder")
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise Failed(f"{path}: not a readable ZIP file ({exc})") from None

    def names(self) -> set[str]:
        if self.zip is not None:
            return {name for name in self.zip.namelist() if not name.endswith("/")}
        return {name for name in os.listdir(self.path) if os.path.isfile(os.path.join(self.path, name))}

    def open(self, name: str) -> IO[bytes]:
        try:
            if self.zip is not None:
                return self.zip.open(name)
            return open(os.path.join(self.path, name), "rb")
        except (KeyError, FileNotFoundError):
            raise Failed(f"{name}: missing from the bundle") from None

    def blocks(self, name: str) -> Iterator[bytes]:
        """The file's bytes, a block at a time; a damaged ZIP member fails here (CRC or deflate error)."""
        with self.open(name) as fh:
            while True:
                try:
                    block = fh.read(BLOCK)
                except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                    raise Failed(f"{name}: damaged inside the ZIP ({exc})") from None
                if not block:
                    return
                yield block

    def lines(self, name: str) -> Iterator[str]:
        pending = b""
        for block in self.blocks(name):
            pending += block
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield _text(name, line)
        if pending:
            yield _text(name, pending)

    def json(self, name: str) -> Any:
        try:
            return json.loads(b"".join(self.blocks(name)).decode("utf-8"))
        except ValueError as exc:
            raise Failed(f"{name}: not valid JSON ({exc})") from None


def _text(name: str, line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise Failed(f"{name}: not valid UTF-8") from None


# --- 1. the manifest -------------------------------------------------------------------------------------


def check_manifest(bundle: Bundle) -> dict[str, Any]:
    manifest = bundle.json(MANIFEST)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list) or not files or not all(isinstance(item, dict) for item in files):
        raise Failed(f"{MANIFEST}: lists no files")
    listed = set()
    for item in files:
        name = item.get("name")
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
            raise Failed(f"{MANIFEST}: names a file it may not: {name!r}")
        digest, size = hashlib.sha256(), 0
        for block in bundle.blocks(name):
            digest.update(block)
            size += len(block)
        if digest.hexdigest() != item.get("sha256"):
            raise Failed(f"{name}: its SHA-256 differs from the manifest: the file was changed")
        if size != item.get("size"):
            raise Failed(f"{name}: its size differs from the manifest")
        listed.add(name)
    for name in (EVENTS, TIMELINE_JSONL, TIMELINE_CSV, CHECKPOINT):
        if name not in listed:
            raise Failed(f"{MANIFEST}: does not list {name}")
    extra = bundle.names() - listed - {MANIFEST}
    if extra and bundle.zip is not None:
        raise Failed(f"{sorted(extra)[0]}: in the ZIP but not in the manifest: it was added")
    for name in sorted(extra):
        print(f"note: {name} is not part of the bundle (not in the manifest); ignored")
    return manifest


def anchors(bundle: Bundle, manifest: dict[str, Any]) -> dict[int, tuple[str, str]]:
    """Hashes the events must have, by seq: the chain head at export and the latest signed checkpoint."""
    wanted: dict[int, tuple[str, str]] = {}
    chain = manifest.get("chain")
    if isinstance(chain, dict) and type(chain.get("head_seq")) is int:
        wanted[chain["head_seq"]] = (str(chain.get("head_hash")), f"the chain head in {MANIFEST}")
    saved = bundle.json(CHECKPOINT)
    checkpoint = saved.get("checkpoint") if isinstance(saved, dict) else None
    if isinstance(checkpoint, dict) and type(checkpoint.get("seq")) is int:
        wanted.setdefault(checkpoint["seq"], (str(checkpoint.get("hash")), f"the signed checkpoint in {CHECKPOINT}"))
    return wanted


# --- 2. the events and their chain -----------------------------------------------------------------------


def events(bundle: Bundle) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(bundle.lines(EVENTS), 1):
        try:
            event = json.loads(line)
            ok = (isinstance(event["fields"], dict) and type(event["fields"]["seq"]) is int
                  and isinstance(event["hash"], str) and isinstance(event["prev_hash"], str))
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise Failed(f"{EVENTS} line {number}: not an event (fields, prev_hash, hash)")
        yield number, event


def check_chain(bundle: Bundle, wanted: dict[int, tuple[str, str]]) -> int:
    """Each event's hash from its fields, each link between consecutive events, the anchors; returns the count."""
    count, last_seq, last_hash = 0, 0, GENESIS_HASH  # event #1 links to the genesis hash
    for number, event in events(bundle):
        fields, seq = event["fields"], event["fields"]["seq"]
        where = f"{EVENTS} line {number} (event #{seq})"
        if fields.get("v") not in HASH_VERSIONS:
            raise Failed(f"{where}: hash version {fields.get('v')!r} is not one this script knows")
        if seq <= last_seq:
            raise Failed(f"{where}: out of order (after #{last_seq})")
        if chain_hash(fields, event["prev_hash"]) != event["hash"]:
            raise Failed(f"{where}: its hash does not match its content: the event was changed")
        if seq == last_seq + 1 and event["prev_hash"] != last_hash:
            if seq == 1:
                raise Failed(f"{where}: the first event of the log does not start from the genesis hash")
            raise Failed(f"{where}: its prev_hash does not link to event #{last_seq}: one of the two was changed")
        if seq in wanted and wanted[seq][0] != event["hash"]:
            raise Failed(f"{where}: its hash differs from {wanted[seq][1]}")
        count, last_seq, last_hash = count + 1, seq, event["hash"]
    return count


# --- 3. the timeline describes the same events -----------------------------------------------------------


class _BlockReader(io.RawIOBase):
    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks, self._pending = blocks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            self._pending = next(self._blocks, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size], self._pending = self._pending[:size], self._pending[size:]
        return size


def _json_rows(bundle: Bundle) -> Iterator[Any]:
    for number, line in enumerate(bundle.lines(TIMELINE_JSONL), 1):
        try:
            yield json.loads(line)
        except ValueError:
            raise Failed(f"{TIMELINE_JSONL} line {number}: not valid JSON") from None


def _csv_rows(bundle: Bundle) -> Iterator[Any]:
    raw = io.BufferedReader(_BlockReader(bundle.blocks(TIMELINE_CSV)))
    try:
        yield from csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise Failed(f"{TIMELINE_CSV}: not readable CSV ({exc})") from None


def check_timeline(bundle: Bundle) -> None:
    """timeline.jsonl and timeline.csv, row by row beside events.jsonl: the same events, the same hashes."""
    streams = {TIMELINE_JSONL: _json_rows(bundle), TIMELINE_CSV: _csv_rows(bundle)}
    for number, event in events(bundle):
        want = (event["fields"]["seq"], event["hash"], event["prev_hash"])
        for name, stream in streams.items():
            row = next(stream, None)
            if row is None:
                raise Failed(f"{name}: ends before event #{want[0]} ({EVENTS} line {number})")
            try:
                got = (int(row["seq"]), row["hash"], row["prev_hash"])
            except (KeyError, TypeError, ValueError):
                got = None
            if got != want:
                raise Failed(f"{name}: row {number} does not match event #{want[0]} of {EVENTS}")
    for name, stream in streams.items():
        if next(stream, None) is not None:
            raise Failed(f"{name}: has more rows than {EVENTS}")


def verify(path: str) -> str:
    bundle = Bundle(path)
    manifest = check_manifest(bundle)
    count = check_chain(bundle, anchors(bundle, manifest))
    export = manifest.get("export") if isinstance(manifest.get("export"), dict) else {}
    if export.get("events") != count:
        raise Failed(f"{EVENTS}: holds {count} events where the manifest says {export.get('events')}")
    check_timeline(bundle)
    chain = manifest.get("chain") or {}
    return (f"OK: {len(manifest['files'])} files match the manifest; {count} events, each hash recomputed and "
            f"consecutive events linked; chain head at export #{chain.get('head_seq')} {chain.get('head_hash')}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print(__doc__)
        return 1
    path = args[0] if args else os.path.dirname(os.path.abspath(__file__))
    try:
        print(verify(path))
    except Failed as exc:
        print(f"FAILED: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
