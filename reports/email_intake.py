"""E-mail intake: one RFC 5322 message from a partner's whitelisted sender becomes one partner report.

`ingest(raw)` takes the message as the mail server hands it over (`manage.py ingest_email` reads it from a pipe)
and either files a report or raises `Refused`, having written nothing but a refusal counter. In order:

1. Size: a message over ``EMAIL_INTAKE_MAX_BYTES`` is refused unread.
2. Sender: the one address of the one ``From`` header must be whitelisted for an active partner, by its exact
   address or by ``@domain`` (the exact address wins when both exist). Envelope sender and ``Sender`` are
   ignored: ``From`` is what DKIM and DMARC protect.
3. Authentication, either of
   - a DKIM signature that verifies here (dkimpy) and whose ``d=`` domain is aligned with the From domain
     (relaxed alignment, as DMARC: the same registrable domain). A signature with a body length limit
     (``l=``) does not count, since anyone could append URLs after the signed part;
   - the topmost ``Authentication-Results`` header whose authserv-id is ``EMAIL_INTAKE_TRUSTED_AUTHSERV_ID``
     (the deployment's own mail server; empty trusts none), saying ``dkim=pass`` for an aligned ``header.d``
     or ``dmarc=pass`` for ``header.from`` equal to the From domain. Only that one header counts: a copy
     further down was there before our server saw the message, so anyone could have written it.
4. URLs: from the inline text/plain parts (the text of the text/html parts, tags stripped, when there is no
   plain part), with `normalise.extract_urls`, defanged ``hxxp`` and ``[.]`` spellings included. Every other
   part (attachments, images, forwarded messages) is skipped unread and the report says "attachment refused".
   At most `MAX_URLS` URLs; a candidate that does not normalise is dropped.
5. Filing: `intake.file_partner_report` with the Message-ID as the partner's reference, so a re-delivered
   message files nothing new; the same Message-ID with other URLs is refused.

The message body is never logged or stored: only the URLs found in it are.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from typing import Any

import dkim
import dkim.dnsplug
import dkim.util
from django.conf import settings
from django.core.cache import cache
from django.db.models.functions import Lower
from django.utils import timezone

from reports import intake
from reports.models import Report
from reports.normalise import InvalidURL, extract_urls, normalise
from reports.serializers import MAX_BATCH
from takedown.models import Partner, WhitelistedSender

MAX_URLS = MAX_BATCH  # as the partner API; a longer list goes through the API
MAX_SIGNATURES = 5  # DKIM signatures tried per message (each may cost a DNS query)
REFUSAL_COUNTER_DAYS = 35

DnsFunc = Callable[..., bytes | None]


class Reason(enum.StrEnum):
    """Why a message was refused, and the exit status of `ingest_email` (sysexits.h, which mail servers map
    to a delivery status: 5.1.1 user unknown, 5.7.0 permission denied, 5.6.0 data format error, ...)."""

    TOO_BIG = "too_big"
    UNKNOWN_SENDER = "unknown_sender"
    NOT_AUTHENTICATED = "not_authenticated"
    NO_URLS = "no_urls"
    MESSAGE_ID_REUSED = "message_id_reused"

    @property
    def exit_status(self) -> int:
        return _EXIT_STATUS[self]


_EXIT_STATUS = {
    Reason.NO_URLS: 65,  # EX_DATAERR
    Reason.UNKNOWN_SENDER: 67,  # EX_NOUSER
    Reason.TOO_BIG: 73,  # EX_CANTCREAT: 5.2.x, the mailbox class of "message too big"
    Reason.MESSAGE_ID_REUSED: 76,  # EX_PROTOCOL
    Reason.NOT_AUTHENTICATED: 77,  # EX_NOPERM
}
EX_TEMPFAIL = 75  # the mail server keeps the message and tries again later


class Refused(Exception):
    """The message was refused; nothing was written but the refusal counter."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TemporaryFailure(Exception):
    """Nothing was decided (DNS did not answer): the mail server should deliver the message again later."""


@dataclass(frozen=True)
class Sender:
    address: str  # local@domain, lower case, the domain in ASCII (punycode)
    domain: str


def ingest(raw: bytes, *, dnsfunc: DnsFunc | None = None) -> intake.Filed:
    """File the report in `raw`, or raise `Refused` (counted) or `TemporaryFailure` (not counted)."""
    try:
        return _ingest(raw, dnsfunc or dns_txt)
    except Refused as refusal:
        count_refusal(refusal.reason)
        raise


def dns_txt(name: bytes, timeout: int = 5) -> bytes | None:
    """The TXT record of `name` from DNS (dkimpy's resolver)."""
    return dkim.dnsplug.get_txt(name, timeout=timeout)


def _ingest(raw: bytes, dnsfunc: DnsFunc) -> intake.Filed:
    limit = settings.EMAIL_INTAKE_MAX_BYTES
    if len(raw) > limit:
        raise Refused(Reason.TOO_BIG, f"the message is larger than {limit:,} bytes")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    sender = from_address(message)
    if sender is None:
        raise Refused(Reason.UNKNOWN_SENDER, "the message has no single From address")
    partner = partner_for(sender)
    if partner is None:
        raise Refused(Reason.UNKNOWN_SENDER, "the sender is not whitelisted for any partner")
    if not trusted_authentication_results(message, sender.domain):
        dns = _WatchedDns(dnsfunc)
        if not dkim_aligned(raw, sender.domain, dnsfunc=dns):
            if dns.timed_out:
                raise TemporaryFailure("DNS did not answer for the DKIM key")
            raise Refused(Reason.NOT_AUTHENTICATED, "no valid DKIM signature of the sender's domain")

    text, attachment_refused = message_text(message)
    reported = []
    for candidate in extract_urls(text):
        try:
            reported.append(intake.ReportedURL(candidate, normalise(candidate)))
        except InvalidURL:
            continue
    if not reported:
        raise Refused(Reason.NO_URLS, "no web address was found in the text of the message")
    if len(reported) > MAX_URLS:
        raise Refused(Reason.TOO_BIG, f"more than {MAX_URLS:,} URLs; send them in several messages or by the API")

    try:
        return intake.file_partner_report(
            partner=partner, urls=reported, channel=Report.Channel.EMAIL,
            details=intake.ReportDetails(attachment_refused=attachment_refused),
            partner_reference=message_reference(message, raw),
            request_digest=hashlib.sha256("\n".join(sorted(r.url.key for r in reported)).encode()).hexdigest(),
        )
    except intake.ReferenceConflict:
        raise Refused(Reason.MESSAGE_ID_REUSED, "this Message-ID was filed before with other URLs") from None


# --- Refusal counter ----------------------------------------------------------------------------------


def refusal_key(day: str, reason: str = "") -> str:
    return f"intake:email-refused:{day}" + (f":{reason}" if reason else "")


def count_refusal(reason: Reason) -> None:
    """Count the refusal for today, in total and by reason (atomic: `add` is SET NX, `incr` is INCRBY)."""
    day = timezone.now().strftime("%Y%m%d")
    for key in (refusal_key(day), refusal_key(day, reason)):
        cache.add(key, 0, timeout=REFUSAL_COUNTER_DAYS * 86400)
        cache.incr(key)


def refusals_on(day: str, reason: str = "") -> int:
    """How many messages were refused on `day` (YYYYMMDD), in total or for one reason."""
    return int(cache.get(refusal_key(day, reason), 0))


# --- Sender -------------------------------------------------------------------------------------------

_ASCII_DOMAIN = re.compile(r"(?:[a-z0-9_-]{1,63}\.)+[a-z0-9-]{2,63}")


def _ascii_domain(domain: str) -> str | None:
    domain = domain.strip().rstrip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return domain if _ASCII_DOMAIN.fullmatch(domain) else None


def from_address(message: EmailMessage) -> Sender | None:
    """The address of the message's one From header, or None when there is not exactly one."""
    headers = message.get_all("From") or []
    if len(headers) != 1:
        return None
    addresses: tuple[Any, ...] = getattr(headers[0], "addresses", ())
    if len(addresses) != 1 or not addresses[0].username:
        return None
    domain = _ascii_domain(addresses[0].domain)
    if domain is None:
        return None
    return Sender(f"{addresses[0].username.lower()}@{domain}", domain)


def partner_for(sender: Sender) -> Partner | None:
    """The active partner that whitelisted this address, or else its domain."""
    whitelisted = (
        WhitelistedSender.objects.alias(lower=Lower("address"))
        .filter(lower__in=[sender.address, "@" + sender.domain], partner__is_active=True)
        .select_related("partner")
    )
    found = sorted(whitelisted, key=lambda entry: entry.address.startswith("@"))  # the exact address first
    return found[0].partner if found else None


# --- Authentication -----------------------------------------------------------------------------------


def organisational_domain(domain: str) -> str | None:
    """The registrable domain (Public Suffix List, private suffixes included), as DMARC's relaxed alignment."""
    domain = _ascii_domain(domain) or ""
    if not domain:
        return None
    try:
        return normalise(f"http://{domain}/").registrable_domain
    except InvalidURL:
        return None


def aligned(signing_domain: str, from_domain: str) -> bool:
    signing = _ascii_domain(signing_domain)
    if not signing:
        return False
    return signing == from_domain or organisational_domain(signing) == organisational_domain(from_domain)


class _WatchedDns:
    """Pass DNS queries through, remembering a timeout (dkimpy turns it into a plain 'fail')."""

    def __init__(self, dnsfunc: DnsFunc) -> None:
        self.dnsfunc = dnsfunc
        self.timed_out = False

    def __call__(self, name: bytes, timeout: int = 5) -> bytes | None:
        try:
            return self.dnsfunc(name, timeout=timeout)
        except dkim.DnsTimeoutError:
            self.timed_out = True
            raise


def dkim_aligned(raw: bytes, from_domain: str, *, dnsfunc: DnsFunc) -> bool:
    """True when one DKIM signature of a domain aligned with `from_domain` verifies (no l= allowed)."""
    try:
        verifier = dkim.DKIM(raw, minkey=1024)
    except dkim.DKIMException:
        return False
    signatures = [value for name, value in verifier.headers if name.lower() == b"dkim-signature"]
    for index, value in enumerate(signatures[:MAX_SIGNATURES]):
        try:
            tags = dkim.util.parse_tag_value(value)
        except dkim.util.InvalidTagValueList:
            continue
        if b"l" in tags or not aligned(tags.get(b"d", b"").decode("ascii", "replace"), from_domain):
            continue  # not ours to check: no DNS query for a domain that could not count anyway
        try:
            if verifier.verify(idx=index, dnsfunc=dnsfunc):
                return True
        except dkim.DKIMException:
            continue
    return False


def _authres_tokens(value: str) -> list[list[str]]:
    """An Authentication-Results value as `;`-separated groups of tokens, comments dropped, quotes undone."""
    groups: list[list[str]] = [[]]
    token: list[str] = []
    depth, quoted, escaped = 0, False, False

    def end_token() -> None:
        if token:
            groups[-1].append("".join(token))
            token.clear()

    for char in value:
        if escaped:
            if depth == 0:
                token.append(char)
            escaped = False
        elif char == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            if char == '"':
                quoted = False
            else:
                token.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth:
            continue
        elif char == '"':
            quoted = True
        elif char == ";":
            end_token()
            groups.append([])
        elif char.isspace():
            end_token()
        else:
            token.append(char)
    end_token()
    return groups


def authentication_results(value: str) -> tuple[str, list[tuple[str, str, dict[str, str]]]]:
    """(authserv-id, [(method, result, {property: value})]) of one Authentication-Results value (RFC 8601)."""
    groups = _authres_tokens(value)
    authserv_id = groups[0][0].lower() if groups[0] else ""
    results = []
    for group in groups[1:]:
        if not group or "=" not in group[0]:
            continue
        method, _, result = group[0].partition("=")
        properties = {}
        for item in group[1:]:
            name, equals, item_value = item.partition("=")
            if equals:
                properties[name.lower()] = item_value.lower()
        results.append((method.split("/")[0].lower(), result.lower(), properties))
    return authserv_id, results


def trusted_authentication_results(message: EmailMessage, from_domain: str) -> bool:
    """True when our own mail server's topmost Authentication-Results says DKIM or DMARC passed for the domain."""
    trusted = settings.EMAIL_INTAKE_TRUSTED_AUTHSERV_ID.strip().lower()
    if not trusted:
        return False
    for header in message.get_all("Authentication-Results") or []:
        authserv_id, results = authentication_results(str(header))
        if authserv_id != trusted:
            continue
        for method, result, properties in results:
            if result != "pass":
                continue
            if method == "dkim" and aligned(properties.get("header.d", ""), from_domain):
                return True
            if method == "dmarc" and _ascii_domain(properties.get("header.from", "")) == from_domain:
                return True
        return False  # only the topmost header of our server counts
    return False


# --- Text and attachments -----------------------------------------------------------------------------


def _leaves(part: EmailMessage) -> Iterator[EmailMessage]:
    if part.get_content_maintype() == "multipart":
        for child in part.iter_parts():
            yield from _leaves(child)  # type: ignore[arg-type]
    else:
        yield part  # message/rfc822 included: a forwarded message is an attachment, not text


def _text_of(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError):  # an unknown or lying charset
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


class _HTMLText(HTMLParser):
    """The text of an HTML part: character data outside script and style, a line break at every tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self.skipping += 1
        self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self.skipping:
            self.skipping -= 1
        self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.chunks.append(data)


def html_text(html: str) -> str:
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return "".join(parser.chunks)


def message_text(message: EmailMessage) -> tuple[str, bool]:
    """(the text to look for URLs in, whether any other part was refused). Other parts are never read."""
    plain: list[str] = []
    html: list[str] = []
    refused = False
    for part in _leaves(message):
        content_type = part.get_content_type()
        if (content_type in ("text/plain", "text/html") and part.get_content_disposition() != "attachment"
                and not part.get_filename()):
            (plain if content_type == "text/plain" else html).append(_text_of(part))
        else:
            refused = True
    text = "\n".join(plain) if plain else "\n".join(html_text(part) for part in html)
    return text, refused


# --- Reference ----------------------------------------------------------------------------------------


def message_reference(message: EmailMessage, raw: bytes) -> str:
    """The Message-ID (hashed if longer than the field), or a digest of the body when there is none."""
    message_id = str(message.get("Message-ID", "") or "").strip()
    if message_id:
        if len(message_id) <= 128:
            return message_id
        return "sha256:" + hashlib.sha256(message_id.encode()).hexdigest()
    # Relays add headers and may change line endings, not the body.
    body = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[-1].replace(b"\r\n", b"\n")
    return "body-sha256:" + hashlib.sha256(body).hexdigest()
