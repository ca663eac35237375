"""Hostile input: hypothesis sends 10,000 public form posts and partner API bodies.

Random fields mixing valid and invalid values, URLs in every scheme and spelling (NUL and control characters,
right-to-left marks, IDN, IPv6, percent-escapes, 5,000 characters), files, huge values, bytes that are not
UTF-8, charsets that are not text encodings, lone surrogates, JSON that is not an object or is nested deeper
than the parser goes, and wrong content types. For every example:

- the answer is never a 5xx;
- an answer that is not a success (302 for the form, 201 for the API) wrote nothing: the rows of Report,
  Case, ReportURL and AuditEvent are as they were; a 200 from the API is a retry and writes nothing either;
- a success wrote one report and its audit events, and every case holds an http(s) URL of printable ASCII;
- what is refused whatever the rest says (a bad stamp, a file, a non-web scheme, a charset that is not UTF-8
  or not text, another content type, no valid API key) is never a success.

Each example runs in a savepoint that is rolled back: the tables stay as they were before it, and an example
that breaks the transaction cannot spoil the ones after it (or hypothesis's shrinking). Nothing commits, so
no on-commit task (the acknowledgement mail) is ever sent.

Strategies are built once, at import: hypothesis validates every strategy object it has not seen, and
building them inside the composites cost more than sending the request.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.test import Client
from django.test.client import BOUNDARY, encode_multipart
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ntd.audit import AuditEvent
from reports import abuse
from reports.models import Case, EncounteredVia, MaterialKind, Report, ReportURL
from reports.serializers import HASH_TYPES

pytestmark = pytest.mark.django_db

HOSTILE = hypothesis_settings(
    max_examples=5000, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- Text and URLs in every scheme and spelling --------------------------------------------------------------

WEB_SCHEMES = [
    "http://", "https://", "HTTP://", "HtTpS://", "hxxp://", "hxxps://", "h**p://", "hxxps[:]//", "http[://]",
    "", "//", "http:", "https:/", "http:\\\\", "https:///", " https://", "\u200bhttps://", "\ufeffhttp://",
]
# Never a reportable web page, however the rest of the line looks: a success with one of these is a bug.
OTHER_SCHEMES = [
    "data:", "data:text/html;base64,", "data:image/png;base64,", "javascript:", "JaVaScRiPt:", " javascript:",
    "\u200bjavascript:", "javascript://", "vbscript:", "VBScript:", "file://", "file:///", "FILE://", "ftp://",
    "ftps://", "sftp://", "blob:", "blob:https://", "about:", "about:blank", "chrome://", "chrome-extension://",
    "view-source:http://", "ws://", "wss://", "mailto:", "tel:", "sms:", "irc://", "gopher://", "ldap://", "smb://",
    "news:", "magnet:?xt=urn:btih:", "intent://", "jar:http://", "feed:", "git://", "ssh://", "x-scheme+v.1-a:",
]
GOOD_HOSTS = [
    "example.com", "a.example", "EXAMPLE.COM", "sub.example.co.uk", "example.com.", "example.com:8080",
    "192.0.2.1", "[2001:db8::1]", "[::ffff:192.0.2.1]", "bücher.example", "xn--bcher-kva.example",
    "例え.テスト", "пример.рф", "example[.]com", "ex%61mple.com", "_sub.example.com", "foo.onion", "user.github.io",
]
BAD_HOSTS = [
    "", "localhost", "intranet", "user:pass@example.com", "@example.com", "example.com:99999", "0x7f.0.0.1",
    "2130706433", "[::1", "[fe80::1%25eth0]", "2001:db8::1", "xn--zz.example", "xn--.example", "\u202eexample.com",
    "exa\u200bmple.com", "example%2ecom", "example dot com", "-bad-.example", "a" * 64 + ".example",
    ("a" * 63 + ".") * 4 + "com", "example..com", "example.com\x00.evil", "exa mple.com", "example.com\\@evil.test",
]
ODD = [
    "%", "%2e", "%2E%2e/", "%00", "%zz", "%%", "/../", "/./", "\\", "#", "?", "&", "=", "@", ":", "[.]", "(dot)",
    " dot ", "\x00", "\x01", "\x1f", "\x7f", "\t", "\r", "\n", "\u0085", "\u2028", "\u202e", "\u200f", "\u2066",
    "\u200b", "\ufeff", "é", "\U0001d518", "<", ">", '"', "'", "`", "(", ")", "[", "]", "{", "}", "|", "^", "~", " ",
]
SURROGATES = ["\ud800", "\udfff", "\udbff\udfff"]
PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-._~/"
VALID_URLS = ["https://a.example/1", "hxxp://b[.]example/2", "c.example/3", "HTTPS://Example.COM:443/a/./c/../b?x=1#top",
              "https://example.com/a/b?x=1", "http://[2001:db8::1]/x", "https://bücher.example/ä"]


def _texts(*, surrogates: bool = False, pieces: int = 6) -> st.SearchStrategy[str]:
    """Runs of any characters between pieces URLs and forms trip over; lone surrogates only where JSON can
    carry them (a form body is bytes: it cannot)."""
    if surrogates:
        piece = st.one_of(st.sampled_from(ODD), st.sampled_from(SURROGATES), st.text(st.characters(), max_size=8))
    else:
        piece = st.one_of(st.sampled_from(ODD), st.text(st.characters(exclude_categories=["Cs"]), max_size=8))
    return st.lists(piece, max_size=pieces).map("".join)


def _huge(max_size: int = 100_000) -> st.SearchStrategy[str]:
    """1 to `max_size` characters, built by repetition (drawing 100,000 characters one by one is slow)."""
    pieces = st.sampled_from(["x", "é", "\U0001d518", "\x00", "a b\n", "<script>", "%", "\u202e"])
    return st.builds(lambda piece, n: (piece * n)[:n], pieces, st.integers(1, max_size))


TEXT = _texts()
TEXT_SURROGATES = _texts(surrogates=True)
HUGE = _huge()
ANY_TEXT = st.one_of(st.just(""), _texts(pieces=12), HUGE)
PLAIN_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=300)

VALID_URL = st.one_of(st.sampled_from(VALID_URLS), st.builds(
    lambda scheme, host, path, query: scheme + host + path + query,
    st.sampled_from(["http://", "https://", "HTTP://", "hxxp://", "", "//"]), st.sampled_from(GOOD_HOSTS),
    st.text(alphabet=PATH_CHARS, max_size=20).map(lambda p: "/" + p),
    st.one_of(st.just(""), st.text(alphabet=PATH_CHARS, max_size=10).map(lambda q: "?q=" + q)),
))
VALID_URLS_LIST = st.lists(VALID_URL, min_size=1, max_size=5)


def _lines(text: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[list[str], bool]]:
    """0 to 30 URLs of every kind, and whether one of them has a scheme no report may have."""
    path = text.map(lambda p: "/" + p if p[:1] not in ("?", "#") else p)
    hosts = st.sampled_from(GOOD_HOSTS + BAD_HOSTS)
    url = st.one_of(
        VALID_URL.map(lambda url: (url, False)),
        st.builds(lambda s, h, p: (s + h + p, False), st.sampled_from(WEB_SCHEMES), hosts, path),
        st.builds(lambda s, h, p: (s + h + p, True), st.sampled_from(OTHER_SCHEMES), hosts, path),
        st.integers(1990, 5000).map(lambda n: ("https://example.com/" + "a" * (n - 20), False)),
        st.integers(60, 5000).map(lambda n: ("https://" + "a" * n + ".example/", False)),
        text.map(lambda t: (t, False)),
    )
    return st.lists(url, max_size=30).map(lambda drawn: ([u for u, _ in drawn], any(o for _, o in drawn)))


ANY_LINES = _lines(TEXT)
ANY_LINES_SURROGATES = _lines(TEXT_SURROGATES)
LINE_BREAKS = st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\u2028", "\x0b", "\x0c", "\x1c", "\x85"])
DATETIME_TEXT = st.one_of(
    st.builds(lambda moment, spelling: moment.strftime(spelling), st.datetimes(),
              st.sampled_from(["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S.%fZ"])),
    st.sampled_from(["", "2026-13-45 25:61", "0000-00-00", "9999-12-31 23:59", "0001-01-01", "1-1-1", "now",
                     "2026-11-25T14:30:00+99:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
                     "2026-11-25T14:30", "2099-01-01 00:00", "1e9", "-1"]),
    _texts(pieces=3),
)
PAST = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2025, 12, 31))  # noqa: DTZ001
MODES = st.sampled_from(["valid", "valid", "one bad field", "anything"])
_ABSENT = object()


def _other_charset(charset: str | None) -> bool:
    """A charset Python knows that is not UTF-8 (Django ignores one it does not know, and reads UTF-8)."""
    try:
        return charset is not None and codecs.lookup(charset).name != "utf-8"
    except LookupError:
        return False


def _not_text(charset: str | None) -> bool:
    """A codec Python knows that does not turn bytes into text (base64, zlib, rot13)."""
    if charset is None:
        return False
    try:
        codecs.lookup(charset)
    except LookupError:
        return False
    try:
        "".encode(charset)
    except LookupError:
        return True
    return False


# --- The public form ---------------------------------------------------------------------------------------


def _several(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One value mostly; else the field left out (None), or sent several times."""
    return st.one_of(*[strategy] * 4, st.none(), st.lists(strategy, min_size=2, max_size=3))


VALID_FORM = {
    "urls": st.builds(lambda urls, br: br.join(urls), VALID_URLS_LIST, st.sampled_from(["\n", "\r\n"])),
    "material_kind": st.sampled_from(MaterialKind.values),
    "encountered_via": st.sampled_from(EncounteredVia.values),
    "encountered_at": st.one_of(st.just(""), PAST.map(lambda d: d.strftime("%Y-%m-%dT%H:%M"))),
    "description": PLAIN_TEXT,
    "child_at_risk": st.sampled_from(["on", ""]),
    "contact": st.sampled_from(["anonymous", "email"]),
    "email": st.sampled_from(["reporter@example.com", "Ünïcode@exämple.de"]),
    "website": st.just(""),
    "altcha": st.none(),
}
HOSTILE_FORM = {
    "urls": st.one_of(ANY_TEXT, st.builds(lambda urls, br: br.join(urls), VALID_URLS_LIST, LINE_BREAKS)),
    "material_kind": _several(st.one_of(st.sampled_from(MaterialKind.values), ANY_TEXT)),
    "encountered_via": _several(st.one_of(st.sampled_from(EncounteredVia.values), ANY_TEXT)),
    "encountered_at": _several(DATETIME_TEXT),
    "description": _several(st.one_of(st.just(""), _texts(pieces=30), HUGE)),
    "child_at_risk": _several(st.one_of(st.sampled_from(["on", "", "off", "false", "0", "yes"]), ANY_TEXT)),
    "contact": _several(st.one_of(st.sampled_from(["anonymous", "email", "", "both"]), ANY_TEXT)),
    "email": _several(st.one_of(st.sampled_from([
        "reporter@example.com", "", "a@b", "x" * 300 + "@example.com", "<script>@x", "a@[127.0.0.1]",
        "reporter@example.com\r\nBcc: x@evil.test"]), ANY_TEXT)),
    "website": st.one_of(st.just(""), st.none(), ANY_TEXT),
    "altcha": st.one_of(st.none(), st.just(""), TEXT, _huge(3000)),
}
BAD_FORM_FIELD = st.sampled_from(sorted(HOSTILE_FORM))
EXTRA_FIELDS = st.dictionaries(_texts(pieces=2), TEXT, max_size=3)
STAMPS = st.sampled_from(["valid"] * 30 + ["missing", "forged", "garbage", "expired", "future", "tampered",
                                           "other-salt"])
FORM_ENCODINGS = st.sampled_from(["urlencoded"] * 6 + ["multipart"] * 3 + ["raw", "latin-1", "wrong-type",
                                                                            "handmade", "bad-length"])
# Content-Length as a client may spell it; gunicorn refuses what is not a number, other servers may not.
CONTENT_LENGTH = st.sampled_from(["abc", "1e3", "0x10", "", " 12", "-1", "99999999999999999999"])
FORM_CHARSET = st.one_of(*[st.none()] * 8, st.sampled_from([
    "utf-8", "UTF8", "latin-1", "utf-16", "base64", "rot13", "zlib", "idna", "hex", "bogus-charset", "utf-8-sig",
    "punycode", "bz2"]))
RAW_FORM = st.one_of(st.binary(max_size=500), st.binary().map(lambda tail: b"urls=https%3A%2F%2Fa.example%2F&" + tail))
UPLOAD = st.tuples(
    st.sampled_from(["file", "urls", "evidence", "image"]),
    st.sampled_from([("photo.jpg", "image/jpeg"), ("../../etc/passwd", "text/plain"), ("a\x00.png", "image/png"),
                     ("é.mp4", "video/mp4"), ("x" * 300 + ".jpg", "image/jpeg"), ("data.bin", "text/plain")]),
    st.one_of(st.binary(max_size=200), _huge(70_000).map(str.encode)),
)
WRONG_FORM_TYPE = st.sampled_from([
    "application/json", "text/plain", "text/html", "application/xml", "", "image/jpeg", "application/octet-stream",
    "multipart/mixed; boundary=x", "application/x-www-form-urlencoded-x"])
HANDMADE_MULTIPART = st.fixed_dictionaries({
    "boundary": st.text(alphabet="abcXYZ0123456789'()+_,-./:=? ", min_size=1, max_size=70),
    "parts": st.lists(st.tuples(
        st.sampled_from(["urls", "material_kind", "encountered_via", "contact", "stamp", "description", "x"]),
        st.sampled_from(['form-data; name="{n}"', "form-data; name={n}", 'form-data; name="{n}"; filename="x.jpg"',
                         "form-data; name*=UTF-8''{n}", "form-data", 'attachment; name="{n}"', "",
                         'form-data; name="{n}"; filename=""', "form-data; name=\"{n}\"; filename*=UTF-8''%C3%A9.png"]),
        st.sampled_from(["", "Content-Transfer-Encoding: base64\r\n", "Content-Type: text/plain; charset=base64\r\n",
                         "Content-Length: -1\r\n", "X: \x00\r\n"]),
        st.one_of(st.sampled_from(VALID_URLS), TEXT),
    ), max_size=6),
    "ending": st.sampled_from(["--\r\n", "--", "\r\n", ""]),
    "quoted": st.booleans(),
})


@st.composite
def form_posts(draw: st.DrawFn) -> dict[str, Any]:
    """All fields valid, all but one, or anything; then a stamp, an encoding, maybe a file."""
    mode = draw(MODES)
    bad = draw(BAD_FORM_FIELD) if mode == "one bad field" else None
    fields: dict[str, Any] = {}
    refusals = []
    for name, valid in VALID_FORM.items():
        if mode == "anything" or name == bad:
            if name == "urls" and draw(st.booleans()):
                lines, other_scheme = draw(ANY_LINES)
                value = draw(LINE_BREAKS).join(lines)
                if other_scheme:
                    refusals.append("a non-web scheme")
            else:
                value = draw(HOSTILE_FORM[name])
        else:
            value = draw(valid)
        if value is not None:
            fields[name] = value
    if mode == "anything":
        fields.update(draw(EXTRA_FIELDS))
    post: dict[str, Any] = {"mode": mode, "fields": fields, "stamp": draw(STAMPS), "encoding": draw(FORM_ENCODINGS),
                            "charset": None, "content_type": None, "file": None, "raw": None, "handmade": None}
    if post["stamp"] != "valid":
        refusals.append(f"stamp {post['stamp']}")
    match post["encoding"]:
        case "urlencoded" | "latin-1" | "raw":
            post["charset"] = draw(FORM_CHARSET)
            if _other_charset(post["charset"]):
                refusals.append(f"charset {post['charset']}")
            if post["encoding"] == "raw":
                post["raw"] = draw(RAW_FORM)
        case "multipart" | "handmade":
            post["charset"] = draw(FORM_CHARSET)
            if _other_charset(post["charset"]):
                refusals.append(f"charset {post['charset']}")
            if post["encoding"] == "multipart" and draw(st.booleans()):
                post["file"] = draw(UPLOAD)
                refusals.append("a file")
            if post["encoding"] == "handmade":
                post["handmade"] = draw(HANDMADE_MULTIPART)
                # filename="" is a plain field to Django; any other filename makes the part a file.
                if any("filename" in d and 'filename=""' not in d for _, d, _, _ in post["handmade"]["parts"]):
                    refusals.append("a file")
        case "wrong-type":
            post["content_type"] = draw(WRONG_FORM_TYPE)
            refusals.append(f"content type {post['content_type']!r}")
        case "bad-length":
            post["content_length"] = draw(CONTENT_LENGTH)
            if not post["content_length"].strip().lstrip("-").isdigit():
                refusals.append(f"Content-Length {post['content_length']!r}")
    post["refusal"] = ", ".join(refusals) or None
    return post


def _stamp(kind: str) -> str | None:
    signer = signing.TimestampSigner(salt=abuse.FORM_STAMP_SALT)
    now = int(time.time())

    def signed_at(moment: int) -> str:  # what TimestampSigner.sign() writes, at another time
        return signing.Signer.sign(signer, f"{secrets.token_hex(4)}:{signing.b62_encode(moment)}")

    def tampered() -> str:
        good = abuse.form_stamp()
        return good[:-1] + ("A" if good[-1] != "A" else "B")

    return {
        "valid": abuse.form_stamp,
        "missing": lambda: None,
        "forged": lambda: "abc:def:ghi",
        "garbage": lambda: secrets.token_urlsafe(40),
        "expired": lambda: signed_at(now - 5 * 3600),
        "future": lambda: signed_at(now + 3600),
        "tampered": tampered,
        "other-salt": lambda: signing.TimestampSigner(salt="another").sign(secrets.token_hex(4)),
    }[kind]()


def _send_form(client: Client, post: dict[str, Any]) -> Any:
    stamp = _stamp(post["stamp"])
    pairs = [(name, item) for name, value in post["fields"].items()
             for item in (value if isinstance(value, list) else [value])]
    pairs += [("stamp", stamp)] if stamp is not None else []
    charset = f"; charset={post['charset']}" if post["charset"] else ""
    form_type = "application/x-www-form-urlencoded" + charset
    match post["encoding"]:
        case "urlencoded":
            return client.generic("POST", "/report/", urlencode(pairs).encode(), content_type=form_type)
        case "latin-1":  # percent-escapes of Latin-1 bytes, as an old client might send
            body = urlencode(pairs, encoding="latin-1", errors="replace").encode()
            return client.generic("POST", "/report/", body, content_type=form_type)
        case "raw":
            return client.generic("POST", "/report/", post["raw"], content_type=form_type)
        case "wrong-type":
            return client.generic("POST", "/report/", urlencode(pairs).encode(), content_type=post["content_type"])
        case "bad-length":
            return client.generic("POST", "/report/", urlencode(pairs).encode(), content_type=form_type,
                                  CONTENT_LENGTH=post["content_length"])
        case "multipart":
            data: dict[str, Any] = {}
            for name, value in pairs:
                data.setdefault(name, []).append(value)
            if post["file"]:
                field, (name, kind), content = post["file"]
                data[field] = SimpleUploadedFile(name, content, content_type=kind)
            return client.generic("POST", "/report/", encode_multipart(BOUNDARY, data),
                                  content_type=f"multipart/form-data; boundary={BOUNDARY}{charset}")
        case "handmade":
            spec = post["handmade"]
            boundary = spec["boundary"]
            body = b"".join(
                f"--{boundary}\r\nContent-Disposition: {disposition.format(n=name)}\r\n{extra}\r\n".encode()
                + (stamp if name == "stamp" and stamp else value).encode("utf-8", "replace") + b"\r\n"
                for name, disposition, extra, value in spec["parts"]
            ) + f"--{boundary}{spec['ending']}".encode()
            quoted = f'"{boundary}"' if spec["quoted"] else boundary
            return client.generic("POST", "/report/", body,
                                  content_type=f"multipart/form-data; boundary={quoted}{charset}")
    raise AssertionError(post["encoding"])


# --- The partner API ---------------------------------------------------------------------------------------

JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT_SURROGATES),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT_SURROGATES, inner, max_size=4)),
    max_leaves=8,
)


def _or_anything(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The right kind of value mostly, else anything JSON can hold."""
    return st.one_of(strategy, strategy, strategy, JSON_VALUE)


HEX = st.text(alphabet="0123456789abcdef", min_size=1, max_size=64)
VALID_API = {
    "urls": VALID_URLS_LIST,
    "material_kind": st.sampled_from([*MaterialKind.values, ""]),
    "encountered_via": st.sampled_from([*EncounteredVia.values, ""]),
    "encountered_at": st.one_of(st.none(), PAST.map(lambda d: d.isoformat() + "Z")),
    "description": PLAIN_TEXT,
    "child_at_risk": st.booleans(),
    "content_hashes": st.lists(st.fixed_dictionaries({"type": st.sampled_from(HASH_TYPES), "value": HEX}),
                               max_size=3),
    "partner_reference": st.one_of(st.sampled_from(["", "ref-1", "ref-2"]), st.text(PATH_CHARS, max_size=20)),
}
HOSTILE_API = {
    "urls": st.one_of(VALID_URLS_LIST, JSON_VALUE,
                      st.integers(30, 200).map(lambda n: [f"https://batch.example/{i}" for i in range(n)])),
    # A choice refused is quoted back in the error: a lone surrogate there must not break the answer.
    "material_kind": _or_anything(st.sampled_from([*MaterialKind.values, "", "photos", "images\udfff"])),
    "encountered_via": _or_anything(st.sampled_from([*EncounteredVia.values, "", "tv", "\ud800"])),
    "encountered_at": _or_anything(st.one_of(DATETIME_TEXT, st.datetimes().map(lambda d: d.isoformat() + "Z"))),
    "description": _or_anything(st.one_of(st.just(""), _texts(surrogates=True, pieces=30), HUGE)),
    "child_at_risk": _or_anything(st.one_of(st.booleans(), st.sampled_from(["true", "yes", "no", 1, 0, 2]))),
    "content_hashes": _or_anything(st.lists(st.fixed_dictionaries(
        {"type": _or_anything(st.sampled_from([*HASH_TYPES, "crc32", ""])),
         "value": _or_anything(st.one_of(HEX, _huge(1100)))},
        optional={"extra": JSON_VALUE}), max_size=4)),
    "partner_reference": _or_anything(st.one_of(st.sampled_from(["", "ref-1", "ref-2"]), TEXT_SURROGATES,
                                                _huge(200))),
}
# A field is left out now and then, whether its value would be valid or not.
VALID_API_OR_ABSENT = {name: s if name == "urls" else st.one_of(s, s, s, st.just(_ABSENT))
                       for name, s in VALID_API.items()}
HOSTILE_API_OR_ABSENT = {name: st.one_of(s, st.just(_ABSENT)) for name, s in HOSTILE_API.items()}
BAD_API_FIELD = st.sampled_from(sorted(HOSTILE_API))
EXTRA_KEYS = st.dictionaries(TEXT_SURROGATES, JSON_VALUE, max_size=3)
API_KINDS = st.sampled_from(["object"] * 14 + ["json", "deep", "huge-number", "constant", "raw", "wrong-type",
                                                "no-body"])
API_KEYS = st.sampled_from(["valid"] * 30 + ["missing", "wrong", "malformed"])
JSON_CHARSET = st.one_of(*[st.none()] * 8, st.sampled_from([
    "utf-8", "UTF-8", "latin-1", "utf-16", "utf-32", "base64", "rot13", "zlib", "idna", "hex", "bz2", "uu",
    "bogus-charset", "utf-8-sig", "punycode"]))
TEXT_ENCODING = st.sampled_from(["utf-8"] * 8 + ["utf-16", "utf-32", "latin-1", "utf-8-sig"])
REPEAT = st.sampled_from([None, None, "same", "changed"])
NESTING = st.tuples(st.integers(1, 200_000), st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"urls":[', "]}")]))
CONSTANT = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0", "undefined", "None"])
RAW_JSON = st.one_of(st.binary(max_size=500), st.binary().map(lambda b: b'{"urls": ["' + b))
WRONG_API_BODY = st.tuples(
    st.sampled_from([b"urls=https%3A%2F%2Fa.example%2F", b'{"urls": ["https://a.example/"]}',
                     b'--x\r\nContent-Disposition: form-data; name="f"; filename="a.jpg"\r\n\r\n'
                     b"\xff\xd8\xff\r\n--x--\r\n"]),
    st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain", "",
                     "text/json", "application/xml", "application/json-patch+json", "application/octet-stream"]),
)


@st.composite
def api_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object (all fields valid, all but one, or anything), or another body altogether."""
    kind = draw(API_KINDS)
    body: dict[str, Any] = {"kind": kind, "object": None, "encoding": "utf-8", "ensure_ascii": True,
                            "charset": None, "content_type": "application/json", "raw": None, "repeat": None,
                            "key": draw(API_KEYS)}
    refusals = [f"API key {body['key']}"] if body["key"] != "valid" else []
    match kind:
        case "object":
            mode = draw(MODES)
            bad = draw(BAD_API_FIELD) if mode == "one bad field" else None
            document: dict[Any, Any] = {}
            for name in VALID_API:
                if mode == "anything" or name == bad:
                    if name == "urls" and draw(st.booleans()):
                        value, other_scheme = draw(ANY_LINES_SURROGATES)
                        if other_scheme:
                            refusals.append("a non-web scheme")
                    else:
                        value = draw(HOSTILE_API_OR_ABSENT[name])
                else:
                    value = draw(VALID_API_OR_ABSENT[name])
                if value is not _ABSENT:
                    document[name] = value
            document.update(draw(EXTRA_KEYS))  # fields no one asked for are ignored, but hashed for retries
            body.update(object=document, encoding=draw(TEXT_ENCODING), ensure_ascii=draw(st.booleans()),
                        charset=draw(JSON_CHARSET), repeat=draw(REPEAT))
            if _not_text(body["charset"]):
                refusals.append(f"charset {body['charset']}")
        case "json":  # any JSON at all, most of it not an object
            body["raw"] = json.dumps(draw(JSON_VALUE)).encode()
        case "deep":
            depth, (opener, closer) = draw(NESTING)
            body["raw"] = (opener * depth + "1" + closer * depth).encode()
            refusals.append("nesting")
        case "huge-number":
            digits = "1" + "0" * draw(st.integers(1, 100_000))
            body["raw"] = ('{"urls": ["https://a.example/"], "description": "x", "n": ' + digits + "}").encode()
        case "constant":
            body["raw"] = ('{"urls": ["https://a.example/"], "child_at_risk": ' + draw(CONSTANT) + "}").encode()
        case "raw":
            body["raw"] = draw(RAW_JSON)
        case "wrong-type":
            body["raw"], body["content_type"] = draw(WRONG_API_BODY)
            refusals.append(f"content type {body['content_type']!r}")
        case "no-body":
            body["raw"] = b""
    body["refusal"] = ", ".join(refusals) or None
    return body


def _encode(body: dict[str, Any]) -> tuple[bytes, str]:
    if body["object"] is None:
        return body["raw"], body["content_type"]
    text = json.dumps(body["object"], ensure_ascii=body["ensure_ascii"])
    charset = f"; charset={body['charset']}" if body["charset"] else ""
    errors = "surrogatepass" if body["encoding"].startswith("utf-8") else "replace"
    return text.encode(body["encoding"], errors), "application/json" + charset


def _api_headers(body: dict[str, Any], key: str) -> dict[str, str]:
    return {
        "valid": {"X-Api-Key": key},
        "missing": {},
        "wrong": {"X-Api-Key": key[:-1] + ("A" if key[-1] != "A" else "B")},
        # Not a NUL: gunicorn refuses a header holding one before Django sees it (PostgreSQL would too).
        "malformed": {"X-Api-Key": "not-a-key-é"},
    }[body["key"]]


# --- What a request wrote ----------------------------------------------------------------------------------

_COUNTED = [model._meta.db_table for model in (Report, Case, ReportURL, AuditEvent)]
WEB_URL = re.compile(r"https?://[!-~]+")


def _rows() -> tuple[int, int, int, int]:
    # Fixed table names, quoted by the backend.
    tables = ", ".join(f"(SELECT count(*) FROM {connection.ops.quote_name(table)})" for table in _COUNTED)  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {tables}")
        reports, cases, report_urls, events = cursor.fetchone()
    return reports, cases, report_urls, events


@contextmanager
def _undone() -> Iterator[None]:
    """One example in a savepoint, rolled back whatever happens."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def _assert_filed(before: tuple[int, ...], after: tuple[int, ...]) -> None:
    reports, _cases, report_urls, events = (a - b for a, b in zip(after, before, strict=True))
    assert reports == 1 and report_urls >= 1 and events >= 2, (before, after)
    for url in Case.objects.values_list("url", flat=True):
        assert WEB_URL.fullmatch(url), url


@pytest.fixture
def hostile_settings(settings: Any) -> None:
    """No rate limit or challenge in the way, and a key space of its own for the counters."""
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"],
                                                      "KEY_PREFIX": f"hostile-{secrets.token_hex(6)}"}}
    settings.INTAKE_LIMIT_PER_HOUR = 10**9
    settings.INTAKE_CHALLENGE_AFTER = 10**9
    settings.INTAKE_MIN_FORM_SECONDS = 0


class TestHostileInput:
    def test_public_form(self, client: Client, hostile_settings: None) -> None:
        seen: Counter[int] = Counter()
        rows = _rows()  # every example is rolled back: this is the count before each one

        @HOSTILE
        @given(post=form_posts())
        def send(post: dict[str, Any]) -> None:
            with _undone():
                response = _send_form(client, post)
                after = _rows()
            seen[response.status_code] += 1
            assert response.status_code < 500
            if response.status_code == 302:
                assert post["refusal"] is None, f"accepted despite {post['refusal']}"
                assert response["Location"].startswith("/report/received/?t=")
                _assert_filed(rows, after)
            else:
                assert after == rows, f"{response.status_code} but rows changed: {rows} -> {after}"

        send()
        # Both sides of the check ran, many times: successes and each kind of refusal.
        total = seen.total()
        assert total >= HOSTILE.max_examples, seen
        assert seen[302] >= total / 10 and seen[400] >= total / 10 and seen[413] > 0, seen

    def test_partner_api(self, client: Client, partner_key: Any) -> None:
        _, key = partner_key
        seen: Counter[int] = Counter()
        rows = _rows()

        def post(body: dict[str, Any]) -> Any:
            content, content_type = _encode(body)
            return client.generic("POST", "/api/v1/reports/", content, content_type=content_type,
                                  headers=_api_headers(body, key))

        @HOSTILE
        @given(body=api_bodies())
        def send(body: dict[str, Any]) -> None:
            with _undone():
                response = post(body)
                after = _rows()
                seen[response.status_code] += 1
                assert response.status_code < 500
                if response.status_code == 201:
                    assert body["refusal"] is None, f"accepted despite {body['refusal']}"
                    _assert_filed(rows, after)
                else:
                    # 200 is a retry of a filed report: it must write nothing either.
                    assert after == rows, f"{response.status_code} but rows changed: {rows} -> {after}"
                if response.status_code == 201 and body["repeat"]:
                    _send_again(body, response.json(), after)

        def _send_again(body: dict[str, Any], filed: dict[str, Any], before: tuple[int, ...]) -> None:
            """The same request again files nothing; the same partner reference for another request is a
            conflict. Without a partner reference every request is a new report."""
            changed = {**body["object"], "description": "a different request"}
            response = post(body if body["repeat"] == "same" else {**body, "object": changed})
            after = _rows()
            if not filed["partner_reference"]:
                assert response.status_code == 201, response.content
                _assert_filed(before, after)
            elif body["repeat"] == "same":
                assert response.status_code == 200 and response.json()["created"] is False, response.content
                assert response.json()["reference"] == filed["reference"] and after == before
            else:
                assert response.status_code == 409 and after == before, response.content

        send()
        total = seen.total()
        assert total >= HOSTILE.max_examples, seen
        assert seen[201] >= total / 10 and seen[400] >= total / 10 and seen[403] > 0 and seen[415] > 0, seen
