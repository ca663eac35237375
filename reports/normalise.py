"""Turn what a reporter typed into one canonical URL, its host, its registrable domain and a dedup key.

No Django imports: this module is pure and is shared by the public report form, the e-mail intake and the
partner batch API. Parsing is the WHATWG URL standard (ada-url), so a URL means what it means in a browser;
the registrable domain comes from the Public Suffix List shipped with `publicsuffixlist` (offline, private
suffixes such as blogspot.com and github.io included).

`normalise(raw)` works in three steps:

1. Clean what a person pastes: surrounding whitespace (and zero-width characters), a pair of angle brackets,
   parentheses or quotes around the whole, and trailing punctuation (``.`` ``,`` ``;`` ``:`` ``!``, and a
   closing ``)`` ``]`` ``}`` ``>`` or quote that has no opening partner). Re-fang common obfuscations: ``hxxp://``,
   ``hxxps://`` and ``h**p://`` at the start; ``[.]`` ``(.)`` ``{.}`` ``[dot]`` ``(dot)`` ``{dot}`` (spaces
   around them allowed) anywhere; ``[:]`` and ``[://]``; and ``" dot "`` only inside the host, when the whole
   host is words joined by dots or " dot " (``example dot com/a``). Input without a scheme gets ``http://``
   when it starts with a plausible host (``example.com/a``, ``192.0.2.1``, ``[2001:db8::1]``,
   ``//example.com``); anything else without a scheme is refused.
2. Parse with ada-url and refuse what cannot be a reportable web page: a scheme other than http or https,
   no host, credentials, a host that is not a valid DNS name or IP address, or more than `MAX_URL_LENGTH`
   characters (as typed after trimming whitespace, and again once normalised).
3. Canonicalise. The WHATWG parser already lower-cases scheme and host, converts IDN hosts to punycode
   (UTS #46, non-transitional: ß stays ß), removes a default port, resolves ``.``/``..`` (also spelled
   ``%2e``) and encodes what must be encoded. On top of that the canonical form

   - drops the fragment (it never reaches the server);
   - drops one trailing dot of the host (``example.com.`` is ``example.com``);
   - drops an empty query (``/a?`` is ``/a``: the component API cannot tell ``?`` from no query, and servers
     do not either); any other query is kept byte for byte in its order;
   - normalises percent-encoding in path and query: hex digits upper-case, escapes of unreserved characters
     (``A-Z a-z 0-9 - . _ ~``) decoded, and a ``%`` that starts no escape written ``%25`` (RFC 3986), so that
     decoding can never assemble a new escape out of a stray ``%``;
   - writes a final character that step 1 would trim (``.`` ``,`` ``;`` ``:`` ``!`` or an unbalanced closer)
     percent-encoded (``/file.`` becomes ``/file%2E``, which RFC 3986 holds equal), so that the canonical
     URL is a fixed point: ``normalise(normalise(x).url) == normalise(x)``.

Decisions:

- Credentials (``http://user:pass@host/``, also a user name alone) are refused, not stripped: they are a third
  party's secret that would otherwise be stored and forwarded in notices, and ``http://bank.example@evil.test/``
  is a classic disguise; refusing makes the reporter see which host the link really goes to.
- Single-label hosts (``localhost``, ``intranet``, ``com``) are refused: they cannot name material on the
  internet. Host labels are letters, digits, ``-`` and ``_`` (underscores occur in real sub-domains), at most
  63 characters, 253 in all; a punycode label must decode and round-trip. Unknown top-level domains are
  accepted (``.onion`` and ``.i2p`` are not on the Public Suffix List but are reported).
- IP-address hosts are accepted, private ranges included: whether a recheck may fetch an address is the
  fetcher's decision (SSRF), not a property of the report. The registrable domain of an IP host is the
  address itself; ``host`` and ``registrable_domain`` hold an IPv6 address without brackets, the URL keeps them.
- A host that is itself a public suffix (``github.io``, ``co.uk``) is its own registrable domain.
- The trailing punctuation of a sentence is not part of the URL: ``http://example.com/a.`` is
  ``http://example.com/a``. A URL that really ends in one of those characters must be typed percent-encoded.
- Bracketed obfuscations are undone wherever they appear, the query included: a literal ``[.]`` in a real URL
  is far rarer than a defanging tool that also defangs paths and queries.

`key` is the SHA-256 of the canonical URL (hex): different spellings of one URL share a key, different URLs
(another query order, another path case) do not.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

import ada_url
from publicsuffixlist import PublicSuffixList

__all__ = [
    "MAX_URL_LENGTH",
    "InvalidURL",
    "NormalisedURL",
    "extract_urls",
    "normalise",
    "split_lines",
]

MAX_URL_LENGTH = 2048

# Private suffixes included (only_icann=False): x.blogspot.com and user.github.io are sites of their own.
_PSL = PublicSuffixList(only_icann=False)


@dataclass(frozen=True, slots=True)
class NormalisedURL:
    url: str  # canonical
    host: str  # ASCII (punycode); an IPv6 address without brackets
    registrable_domain: str  # PSL "eTLD+1"; the address itself for an IP host
    key: str  # SHA-256 hex of url


class InvalidURL(ValueError):
    """A refusal. `reason` is a short sentence to show next to the form field; `code` is for machines."""

    def __init__(self, reason: str, code: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def __reduce__(self) -> tuple[type[InvalidURL], tuple[str, str]]:
        return (type(self), (self.reason, self.code))


# --- Step 1: what a person pastes -----------------------------------------------------------------

# Whitespace (Unicode's, too) and the zero-width characters that come along with copied text.
_SURROUNDING = (" \t\r\n\f\v\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
                "\u2028\u2029\u202f\u205f\u3000\u200b\u200c\u200d\u2060\ufeff")
_PAIRS = {"<": ">", "(": ")", '"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019",
          "\u00ab": "\u00bb", "\u201e": "\u201c"}
_TRAILING = frozenset(".,;:!")
# A closer that closes nothing is trimmed; for a quote that is its own opener, an odd count closes nothing.
_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<", '"': '"', "'": "'", "\u201d": "\u201c", "\u2019": "\u2018",
            "\u00bb": "\u00ab"}

# [.] (.) {.} [dot] (dot) {dot}, with optional spaces around; [:] [://]. Matching pairs only.
_FANG = re.compile(
    r"\s*(?:\[(?:\.|dot)\]|\((?:\.|dot)\)|\{(?:\.|dot)\})\s*|\[:\]|\[://\]",
    re.IGNORECASE,
)
_FANGED_SCHEME = re.compile(r"h(?:xx|\*\*)p(s?)(?=:|\[:)", re.IGNORECASE)
# The host part when it is spelled "example dot com" (labels joined by "." or " dot "), optionally :port.
_SPOKEN_HOST = re.compile(
    r"(?P<scheme>https?://)?(?P<host>[^\s./?#:@]+(?:(?:\.|\s+dot\s+)[^\s./?#:@]+)+)(?P<rest>(?::\d+)?(?:[/?#].*)?)",
    re.IGNORECASE | re.DOTALL,
)
_SPOKEN_DOT = re.compile(r"\s+dot\s+", re.IGNORECASE)


def _unfang(match: re.Match[str]) -> str:
    found = match.group().strip(_SURROUNDING)
    if found == "[://]":
        return "://"
    if found == "[:]":
        return ":"
    return "."


def _trimmable_end(text: str) -> bool:
    """Whether the last character is sentence punctuation or a closer that closes nothing."""
    last = text[-1]
    if last in _TRAILING:
        return True
    opener = _CLOSERS.get(last)
    if opener is None:
        return False
    count = text.count(last)
    return count % 2 == 1 if opener == last else count > text.count(opener)


def _strip_trailing(text: str) -> str:
    while text and _trimmable_end(text):
        text = text[:-1]
    return text


def _clean(text: str) -> str:
    previous = None
    while text != previous:
        previous = text
        text = _strip_trailing(text.strip(_SURROUNDING))
        if len(text) >= 2 and _PAIRS.get(text[0]) == text[-1]:
            text = text[1:-1]
    return text


def _refang(text: str) -> str:
    # The plain `in` tests keep the common, unobfuscated URL off the regular expressions.
    if ("[" in text or "(" in text or "{" in text) and _FANG.search(text):
        text = _FANG.sub(_unfang, text)
    if text[1:2] in ("x", "X", "*"):
        match = _FANGED_SCHEME.match(text)
        if match:
            text = "http" + match.group(1) + text[match.end() :]
    if (" " in text or "\t" in text) and _SPOKEN_DOT.search(text):
        spoken = _SPOKEN_HOST.fullmatch(text)
        if spoken:
            scheme = spoken.group("scheme") or ""
            text = scheme + _SPOKEN_DOT.sub(".", spoken.group("host")) + spoken.group("rest")
    return text


# --- Scheme, or a plausible host without one --------------------------------------------------------

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_HOST_AND_PORT = re.compile(r"[^:/?#\\@\s]+:\d{1,5}(?:[/?#\\]|$)")
_PLAUSIBLE_HOST = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|[^\s/?#\\:@\[\]]+[.\u3002\uff0e\uff61][^\s/?#\\:@\[\]]+)(?::\d*)?(?:[/?#\\]|$)"
)
_NO_HOST = re.compile(r"https?:[/\\]*(?:[?#].*)?", re.IGNORECASE | re.DOTALL)
_SLASH_OR_SPACE = re.compile(r"[/\s]")


def _with_scheme(text: str) -> str:
    """Return `text` with an http(s) scheme, adding http:// to a plausible host, or refuse."""
    match = _SCHEME.match(text)
    scheme = match.group(1).lower() if match else ""
    if scheme in ("http", "https"):
        return text
    if match and not _HOST_AND_PORT.match(text):  # "example.com:8080/a" and "localhost:80" are a host and port
        shown = scheme if len(scheme) <= 20 else scheme[:20] + "…"
        raise InvalidURL(
            f"Only web addresses starting with http:// or https:// can be reported, not “{shown}:”.",
            code="scheme",
        )
    if text.startswith("//"):
        return "http:" + text
    if _PLAUSIBLE_HOST.match(text) or match:  # a match here is a host and port
        return "http://" + text
    if "@" in text and not _SLASH_OR_SPACE.search(text):
        raise InvalidURL("This looks like an e-mail address, not a web address.", code="no_scheme")
    raise InvalidURL("This does not look like a web address; enter it in full, like https://example.com/page.",
                     code="no_scheme")


# --- Step 3: canonical form ---------------------------------------------------------------------------

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = "0123456789abcdefABCDEF"
_ESCAPES = {a + b: (chr(int(a + b, 16)) if chr(int(a + b, 16)) in _UNRESERVED else "%" + (a + b).upper())
            for a in _HEX for b in _HEX}
_ESCAPE = re.compile(r"%(?:[0-9A-Fa-f]{2})?")


def _escape(match: re.Match[str]) -> str:
    token = match.group()
    return _ESCAPES[token[1:]] if len(token) == 3 else "%25"


def _normalise_escapes(part: str) -> str:
    return _ESCAPE.sub(_escape, part) if "%" in part else part


_DOMAIN = re.compile(r"(?:[a-z0-9_-]{1,63}\.)+[a-z0-9_-]{1,63}")
_IPV4 = re.compile(r"[0-9.]+")


def _valid_punycode(label: str) -> bool:
    try:
        unicode = ada_url.idna_to_unicode(label)
        return unicode != label and ada_url.idna_to_ascii(unicode) == label.encode("ascii")
    except (UnicodeError, ValueError):
        return False


@lru_cache(maxsize=65_536)
def _host_and_domain(hostname: str) -> tuple[str, str]:
    """(host, registrable domain) of a hostname as ada serialises it, or InvalidURL."""
    if hostname.startswith("["):  # IPv6, already validated and compressed by the parser
        address = hostname[1:-1]
        return address, address
    if _IPV4.fullmatch(hostname):  # the parser turns every all-numeric host into dotted IPv4 or refuses it
        return hostname, hostname
    host = hostname[:-1] if hostname.endswith(".") else hostname
    labels = host.split(".")
    if len(labels) < 2:
        raise InvalidURL("The host name must be a full domain name, like example.com, or an IP address.",
                         code="host")
    if len(host) > 253 or not _DOMAIN.fullmatch(host):
        raise InvalidURL("The host name is not a valid domain name.", code="host")
    if "xn--" in host and not all(_valid_punycode(label) for label in labels if label.startswith("xn--")):
        raise InvalidURL("The host name is not a valid domain name.", code="host")
    return host, _PSL.privatesuffix(host) or host


def _protect_end(url: str) -> str:
    """Percent-encode a final character that cleaning would trim, so the canonical URL is a fixed point."""
    return f"{url[:-1]}%{ord(url[-1]):02X}" if _trimmable_end(url) else url


def normalise(raw: str) -> NormalisedURL:
    """The canonical form of one URL as a person typed it; InvalidURL (with a reason) if it cannot be reported."""
    if not isinstance(raw, str):
        raise TypeError(f"normalise() takes a str, not {type(raw).__name__}")
    text = raw.strip(_SURROUNDING)
    if not text:
        raise InvalidURL("Enter a web address.", code="empty")
    if len(text) > MAX_URL_LENGTH:
        raise InvalidURL(f"The address is longer than {MAX_URL_LENGTH:,} characters.", code="too_long")
    text = _with_scheme(_clean(_refang(_clean(text))))
    try:
        href = ada_url.parse_url(text, attributes=("href",))["href"]
    except ValueError:
        if _NO_HOST.fullmatch(text):
            raise InvalidURL("The address has no host name, like example.com.", code="no_host") from None
        raise InvalidURL("This is not a valid web address.", code="invalid") from None

    # A special-scheme href is scheme "://" [userinfo "@"] host [":" port] path ["?" query] ["#" fragment].
    # Userinfo has "/" and "@" percent-encoded and the path always starts with "/".
    scheme, _, rest = href.partition("://")
    slash = rest.find("/")
    authority, tail = rest[:slash], rest[slash:]
    if "@" in authority:
        raise InvalidURL("Remove the user name and password (the part before “@”) from the address.",
                         code="credentials")
    if authority.startswith("["):
        bracket = authority.index("]") + 1
        hostname, port = authority[:bracket], authority[bracket + 1 :]
    else:
        hostname, _, port = authority.partition(":")
    host, registrable_domain = _host_and_domain(hostname)

    tail = tail.partition("#")[0]
    path, _, query = tail.partition("?")
    url = f"{scheme}://{'[' + host + ']' if hostname.startswith('[') else host}{':' + port if port else ''}" \
          f"{_normalise_escapes(path)}{'?' + _normalise_escapes(query) if query else ''}"
    url = _protect_end(url)
    if ("[" in url or "(" in url or "{" in url) and _FANG.search(url):  # "[%2E]" decoded to "[.]": once more
        return normalise(url)
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL(f"The address is longer than {MAX_URL_LENGTH:,} characters once normalised.",
                         code="too_long")
    return NormalisedURL(url, host, registrable_domain, hashlib.sha256(url.encode("ascii")).hexdigest())


def split_lines(text: str, *, limit: int = 20) -> list[str]:
    """One URL per line, blank lines ignored, duplicates kept; InvalidURL past `limit` lines."""
    lines = [stripped for line in text.splitlines() if (stripped := line.strip(_SURROUNDING))]
    if len(lines) > limit:
        raise InvalidURL(f"Enter at most {limit} addresses, one per line (this has {len(lines)}).",
                         code="too_many")
    return lines


# http(s)://, hxxp(s)://, h**p(s)://, with ":" or "[:]" and "//" or "[://]"; up to whitespace, <>" or the
# "](" between a Markdown link's text and its target.
_URL_IN_TEXT = re.compile(
    r"h(?:tt|xx|\*\*)ps?(?:://|\[:\]//|\[://\])(?:(?!\]\()[^\s<>\"\u201c\u201d])+",
    re.IGNORECASE,
)


def extract_urls(text: str) -> list[str]:
    """The http(s) URLs in free text (an e-mail body), also defanged hxxp ones, in order, deduplicated.

    Each is returned as written (less the punctuation around it), to be passed to `normalise()`; two spellings
    of one URL count once, the first kept. A candidate that does not normalise is still returned (once), so
    the caller can tell the sender what was refused and why.
    """
    found: list[str] = []
    seen: set[str] = set()
    for match in _URL_IN_TEXT.finditer(text):
        candidate = _clean(match.group())
        try:
            identity = normalise(candidate).key
        except InvalidURL:
            identity = candidate
        if identity not in seen:
            seen.add(identity)
            found.append(candidate)
    return found
