"""reports.normalise: what a reporter typed -> canonical URL, host, registrable domain, dedup key. Pure: no database.

Each table row names the rule it proves; removing the rule makes at least one row fail.
"""

from __future__ import annotations

import hashlib
import ipaddress
import pickle
import string

import ada_url
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reports.normalise import (
    MAX_URL_LENGTH,
    InvalidURL,
    NormalisedURL,
    extract_urls,
    normalise,
    split_lines,
)

# The conftest's autouse fixtures are function-scoped; they do not vary between examples.
property_test = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300,
                         deadline=None)


def case(raw: str, expected: str, name: str) -> object:
    return pytest.param(raw, expected, id=name)


# --- The canonical URL ------------------------------------------------------------------------------------

CANONICAL = [
    # Scheme and host
    case("HTTP://example.com/", "http://example.com/", "scheme lower-cased"),
    case("HtTpS://example.com/", "https://example.com/", "https scheme lower-cased"),
    case("http://WWW.Example.COM/", "http://www.example.com/", "host lower-cased"),
    case("http://bücher.de/", "http://xn--bcher-kva.de/", "IDN host to punycode"),
    case("http://BÜCHER.de/", "http://xn--bcher-kva.de/", "IDN host case-folded"),
    case("http://faß.de/", "http://xn--fa-hia.de/", "IDN non-transitional: ß kept"),
    case("http://ＥＸＡＭＰＬＥ．com/", "http://example.com/", "full-width host mapped (UTS 46)"),
    case("http://example。com/", "http://example.com/", "ideographic full stop is a dot"),
    case("http://пример.рф/путь", "http://xn--e1afmkfd.xn--p1ai/%D0%BF%D1%83%D1%82%D1%8C", "Cyrillic host and path"),
    case("http://example.com./a", "http://example.com/a", "one trailing dot of the host dropped"),
    case("http://a_b.example.com/", "http://a_b.example.com/", "underscore allowed in a label"),
    case("http://-x-.blogspot.com/", "http://-x-.blogspot.com/", "hyphens at label ends allowed"),
    # Ports
    case("http://example.com:80/", "http://example.com/", "default http port removed"),
    case("https://example.com:443/", "https://example.com/", "default https port removed"),
    case("http://example.com:443/", "http://example.com:443/", "443 is not http's default"),
    case("https://example.com:80/", "https://example.com:80/", "80 is not https' default"),
    case("http://example.com:8080/", "http://example.com:8080/", "other port kept"),
    case("http://example.com:08080/", "http://example.com:8080/", "port leading zeros dropped"),
    case("http://example.com:/a", "http://example.com/a", "empty port dropped"),
    # Path
    case("http://example.com", "http://example.com/", "empty path becomes /"),
    case("http://example.com?q=1", "http://example.com/?q=1", "empty path becomes / before a query"),
    case("http://example.com/a/./b/../c", "http://example.com/a/c", "dot segments resolved"),
    case("http://example.com/a/%2e/b/%2E%2e/c", "http://example.com/a/c", "escaped dot segments resolved"),
    case("http://example.com/../../a", "http://example.com/a", "dot segments above the root"),
    case("http://example.com\\a\\b", "http://example.com/a/b", "backslash is a slash (WHATWG)"),
    case("http://example.com/A/B", "http://example.com/A/B", "path case kept"),
    case("http://example.com/a/", "http://example.com/a/", "trailing slash of the path kept"),
    case("http://example.com/a b", "http://example.com/a%20b", "space in path encoded"),
    case("http://example.com/é", "http://example.com/%C3%A9", "non-ASCII path encoded as UTF-8"),
    # Percent-encoding
    case("http://example.com/%7e", "http://example.com/~", "escape of ~ decoded"),
    case("http://example.com/%41%5a%61%7A%30%39", "http://example.com/AZaz09", "escapes of letters, digits decoded"),
    case("http://example.com/%2D%2E%5F", "http://example.com/-._", "escapes of - . _ decoded"),
    case("http://example.com/%2f", "http://example.com/%2F", "escape of / kept, hex upper-cased"),
    case("http://example.com/%c3%a9", "http://example.com/%C3%A9", "UTF-8 escapes upper-cased"),
    case("http://example.com/%3a%40%21", "http://example.com/%3A%40%21", "reserved escapes kept"),
    case("http://example.com/100%", "http://example.com/100%25", "stray % written %25"),
    case("http://example.com/%zz", "http://example.com/%25zz", "% before non-hex written %25"),
    case("http://example.com/%%37e", "http://example.com/%257e", "decoding never assembles a new escape"),
    case("http://example.com/?q=%7e%2f", "http://example.com/?q=~%2F", "query escapes normalised too"),
    case("http://example.com/?q=a b", "http://example.com/?q=a%20b", "space in query encoded"),
    # Query and fragment
    case("http://example.com/?b=2&a=1", "http://example.com/?b=2&a=1", "query order kept"),
    case("http://example.com/?a=1&a=1&&", "http://example.com/?a=1&a=1&&", "query kept byte for byte"),
    case("http://example.com/?a+b=c", "http://example.com/?a+b=c", "plus in query kept"),
    case("http://example.com/a?", "http://example.com/a", "empty query dropped"),
    case("http://example.com/a#frag", "http://example.com/a", "fragment dropped"),
    case("http://example.com/a?q=1#frag?x", "http://example.com/a?q=1", "fragment dropped after a query"),
    case("http://example.com/#!/page", "http://example.com/", "hash-bang fragment dropped"),
    # Final character that pasted-text cleanup would trim: kept, percent-encoded
    case("http://example.com/file.#x", "http://example.com/file%2E", "final . kept as %2E"),
    case("http://example.com/a,#x", "http://example.com/a%2C", "final , kept as %2C"),
    case("http://example.com/a)#x", "http://example.com/a%29", "final unbalanced ) kept as %29"),
    case("http://example.com/?q=a:#x", "http://example.com/?q=a%3A", "final : of a query kept as %3A"),
    case("http://example.com/a'#x", "http://example.com/a%27", "final unmatched ' kept as %27"),
    case("http://example.com/a%2E", "http://example.com/a%2E", "final %2E stays escaped"),
    # IP hosts
    case("http://192.0.2.1/", "http://192.0.2.1/", "IPv4"),
    case("http://0xC0.0.2.1/", "http://192.0.2.1/", "hex IPv4 part (WHATWG)"),
    case("http://3221225985/", "http://192.0.2.1/", "IPv4 as one number (WHATWG)"),
    case("http://192.0.2.1./", "http://192.0.2.1/", "IPv4 trailing dot"),
    case("http://[2001:DB8:0:0::1]/", "http://[2001:db8::1]/", "IPv6 compressed, lower-cased, in brackets"),
    case("http://[2001:db8::1]:80/", "http://[2001:db8::1]/", "IPv6 default port removed"),
    case("http://[2001:db8::1]:8080/", "http://[2001:db8::1]:8080/", "IPv6 other port kept"),
]


@pytest.mark.parametrize(("raw", "expected"), CANONICAL)
def test_canonical_url(raw: str, expected: str) -> None:
    assert normalise(raw).url == expected


PASTED = [
    case("  http://example.com/a  ", "http://example.com/a", "surrounding spaces"),
    case("\thttp://example.com/a\r\n", "http://example.com/a", "tab and newline"),
    case("\u00a0\u200bhttp://example.com/a\ufeff", "http://example.com/a", "no-break space, zero-width, BOM"),
    case("<http://example.com/a>", "http://example.com/a", "angle brackets"),
    case('"http://example.com/a"', "http://example.com/a", "double quotes"),
    case("'http://example.com/a'", "http://example.com/a", "single quotes"),
    case("“http://example.com/a”", "http://example.com/a", "typographic quotes"),
    case("(http://example.com/a)", "http://example.com/a", "parentheses around"),
    case("http://example.com/a.", "http://example.com/a", "trailing full stop"),
    case("http://example.com/a,", "http://example.com/a", "trailing comma"),
    case("http://example.com/a;", "http://example.com/a", "trailing semicolon"),
    case("http://example.com/a!", "http://example.com/a", "trailing exclamation mark"),
    case("http://example.com/a).", "http://example.com/a", "unbalanced ) then full stop"),
    case("http://example.com/a]", "http://example.com/a", "unbalanced ]"),
    case("http://example.com/a'", "http://example.com/a", "unmatched quote"),
    case("http://example.com/a”", "http://example.com/a", "unmatched typographic quote"),
    case("http://example.com/it's", "http://example.com/it's", "apostrophe inside kept"),
    case("http://[2001:db8::1]", "http://[2001:db8::1]/", "balanced ] of IPv6 kept"),
    case("<http://example.com/a>.", "http://example.com/a", "punctuation after the brackets"),
    case('"<http://example.com/a>",', "http://example.com/a", "nested wrappers"),
    case("http://example.com.", "http://example.com/", "full stop after a bare host"),
    case("http://en.wikipedia.org/wiki/Foo_(bar)", "http://en.wikipedia.org/wiki/Foo_(bar)", "balanced ) kept"),
    case("(http://en.wikipedia.org/wiki/Foo_(bar))", "http://en.wikipedia.org/wiki/Foo_(bar)",
         "balanced ) kept inside parentheses"),
    case("http://example.com/a?", "http://example.com/a", "trailing ? is an empty query"),
    case("http://exa\tmple.com/a\nb", "http://example.com/ab", "tab and newline inside removed (WHATWG)"),
]


@pytest.mark.parametrize(("raw", "expected"), PASTED)
def test_pasted_text_is_cleaned(raw: str, expected: str) -> None:
    assert normalise(raw).url == expected


REFANGED = [
    case("hxxp://example.com/a", "http://example.com/a", "hxxp"),
    case("hxxps://example.com/a", "https://example.com/a", "hxxps"),
    case("HXXPS://example.com/a", "https://example.com/a", "HXXPS"),
    case("h**p://example.com/a", "http://example.com/a", "h**p"),
    case("h**ps://example.com/a", "https://example.com/a", "h**ps"),
    case("http://example[.]com/a", "http://example.com/a", "[.]"),
    case("http://example(.)com/a", "http://example.com/a", "(.)"),
    case("http://example{.}com/a", "http://example.com/a", "{.}"),
    case("http://example[dot]com/a", "http://example.com/a", "[dot]"),
    case("http://example[DOT]com/a", "http://example.com/a", "[DOT]"),
    case("http://example (dot) com/a", "http://example.com/a", "(dot) with spaces"),
    case("http://example [.] com/a", "http://example.com/a", "[.] with spaces"),
    case("http[:]//example.com/a", "http://example.com/a", "[:]"),
    case("http[://]example.com/a", "http://example.com/a", "[://]"),
    case("hxxps[:]//www[.]example[.]co[.]uk/x[.]jpg", "https://www.example.co.uk/x.jpg", "all at once"),
    case("hxxp://example[.]com[.]", "http://example.com/", "defanged trailing dot"),
    case("example dot com/a", "http://example.com/a", "' dot ' in the host"),
    case("www DOT example dot co dot uk", "http://www.example.co.uk/", "' DOT ' several times"),
    case("https://example dot com:8080/a", "https://example.com:8080/a", "' dot ' with scheme and port"),
    case("www.example dot com", "http://www.example.com/", "' dot ' mixed with ."),
    case("example[.]com", "http://example.com/", "defanged without a scheme"),
    case("http://example.com/a dot b", "http://example.com/a%20dot%20b", "' dot ' in the path is left alone"),
]


@pytest.mark.parametrize(("raw", "expected"), REFANGED)
def test_obfuscation_is_undone(raw: str, expected: str) -> None:
    assert normalise(raw).url == expected


SCHEMELESS = [
    case("example.com", "http://example.com/", "bare domain"),
    case("example.com/a?q=1", "http://example.com/a?q=1", "domain and path"),
    case("www.example.com", "http://www.example.com/", "www"),
    case("example.com:8080/a", "http://example.com:8080/a", "domain and port is not a scheme"),
    case("192.0.2.1/a", "http://192.0.2.1/a", "IPv4"),
    case("192.0.2.1:8080", "http://192.0.2.1:8080/", "IPv4 and port"),
    case("[2001:db8::1]/a", "http://[2001:db8::1]/a", "IPv6"),
    case("//example.com/a", "http://example.com/a", "scheme-relative"),
    case("bücher.de/a", "http://xn--bcher-kva.de/a", "IDN"),
    case("http:example.com/a", "http://example.com/a", "http: without slashes (WHATWG)"),
    case("http:/example.com/a", "http://example.com/a", "http:/ with one slash (WHATWG)"),
    case("https:\\\\example.com", "https://example.com/", "backslashes after the scheme (WHATWG)"),
]


@pytest.mark.parametrize(("raw", "expected"), SCHEMELESS)
def test_missing_scheme_becomes_http(raw: str, expected: str) -> None:
    assert normalise(raw).url == expected


# --- Refusals ---------------------------------------------------------------------------------------------

SCHEME_REASON = "Only web addresses starting with http:// or https:// can be reported, not “{}:”."
NO_SCHEME_REASON = "This does not look like a web address; enter it in full, like https://example.com/page."
HOST_REASON = "The host name is not a valid domain name."
SINGLE_LABEL_REASON = "The host name must be a full domain name, like example.com, or an IP address."
CREDENTIALS_REASON = "Remove the user name and password (the part before “@”) from the address."
INVALID_REASON = "This is not a valid web address."
NO_HOST_REASON = "The address has no host name, like example.com."

REFUSED = [
    # Schemes other than http and https
    pytest.param("data:text/html,<b>x</b>", "scheme", SCHEME_REASON.format("data"), id="data"),
    pytest.param("javascript:alert(1)", "scheme", SCHEME_REASON.format("javascript"), id="javascript"),
    pytest.param("JavaScript:alert(1)", "scheme", SCHEME_REASON.format("javascript"), id="JavaScript"),
    pytest.param("vbscript:msgbox(1)", "scheme", SCHEME_REASON.format("vbscript"), id="vbscript"),
    pytest.param("file:///etc/passwd", "scheme", SCHEME_REASON.format("file"), id="file"),
    pytest.param("ftp://example.com/a", "scheme", SCHEME_REASON.format("ftp"), id="ftp"),
    pytest.param("mailto:abuse@example.com", "scheme", SCHEME_REASON.format("mailto"), id="mailto"),
    pytest.param("blob:https://example.com/uuid", "scheme", SCHEME_REASON.format("blob"), id="blob"),
    pytest.param("about:blank", "scheme", SCHEME_REASON.format("about"), id="about"),
    pytest.param("chrome://settings", "scheme", SCHEME_REASON.format("chrome"), id="chrome"),
    pytest.param("ws://example.com/", "scheme", SCHEME_REASON.format("ws"), id="ws"),
    pytest.param("wss://example.com/", "scheme", SCHEME_REASON.format("wss"), id="wss"),
    pytest.param("view-source:http://example.com/", "scheme", SCHEME_REASON.format("view-source"),
                 id="view-source"),
    pytest.param("tel:+441234567890", "scheme", SCHEME_REASON.format("tel"), id="tel"),
    pytest.param("hxxp-not://example.com", "scheme", SCHEME_REASON.format("hxxp-not"), id="not a fanged scheme"),
    # No scheme and nothing that looks like a host
    pytest.param("example", "no_scheme", NO_SCHEME_REASON, id="a word"),
    pytest.param("/a/b", "no_scheme", NO_SCHEME_REASON, id="a path"),
    pytest.param("https//example.com", "no_scheme", NO_SCHEME_REASON, id="colon missing"),
    pytest.param("abuse@example.com", "no_scheme", "This looks like an e-mail address, not a web address.",
                 id="an e-mail address"),
    # Nothing at all
    pytest.param("", "empty", "Enter a web address.", id="empty"),
    pytest.param(" \t\n ", "empty", "Enter a web address.", id="whitespace"),
    pytest.param("<>", "no_scheme", NO_SCHEME_REASON, id="empty brackets"),
    # No host
    pytest.param("http://", "no_host", NO_HOST_REASON, id="http://"),
    pytest.param("https:///", "no_host", NO_HOST_REASON, id="https:///"),
    pytest.param("http://?q=1", "no_host", NO_HOST_REASON, id="query only"),
    pytest.param("http://#a", "no_host", NO_HOST_REASON, id="fragment only"),
    # Credentials
    pytest.param("http://user:pass@example.com/", "credentials", CREDENTIALS_REASON, id="user and password"),
    pytest.param("http://user@example.com/", "credentials", CREDENTIALS_REASON, id="user only"),
    pytest.param("http://:pass@example.com/", "credentials", CREDENTIALS_REASON, id="password only"),
    pytest.param("http://bank.example@evil.example/", "credentials", CREDENTIALS_REASON, id="disguised host"),
    pytest.param("hxxp://u:p@evil[.]com/", "credentials", CREDENTIALS_REASON, id="defanged with credentials"),
    # Hosts
    pytest.param("http://localhost/", "host", SINGLE_LABEL_REASON, id="localhost"),
    pytest.param("localhost:8080/a", "host", SINGLE_LABEL_REASON, id="localhost and port without scheme"),
    pytest.param("http://intranet/a", "host", SINGLE_LABEL_REASON, id="single label"),
    pytest.param("http://com/", "host", SINGLE_LABEL_REASON, id="a TLD alone"),
    pytest.param("http://a..example.com/", "host", HOST_REASON, id="empty label"),
    pytest.param("http://.example.com/", "host", HOST_REASON, id="leading dot"),
    pytest.param("http://example.com../", "host", HOST_REASON, id="two trailing dots"),
    pytest.param("http://a%2e.example.com/", "host", HOST_REASON, id="escaped dot makes an empty label"),
    pytest.param("http://ex!ample.com/", "host", HOST_REASON, id="! in host (allowed by WHATWG)"),
    pytest.param("http://ex$ample.com/", "host", HOST_REASON, id="$ in host"),
    pytest.param("http://" + "a" * 64 + ".com/", "host", HOST_REASON, id="label of 64"),
    pytest.param("http://" + ".".join(["a" * 63] * 4) + ".com/", "host", HOST_REASON, id="host of 260"),
    pytest.param("http://xn--a.com/", "host", HOST_REASON, id="punycode that does not decode"),
    pytest.param("http://xn--abc-.com/", "host", HOST_REASON, id="punycode of plain ASCII"),
    pytest.param("http://xn--zz.com/", "host", HOST_REASON, id="incomplete punycode"),
    pytest.param("http://ex ample.com/", "invalid", INVALID_REASON, id="space in host"),
    pytest.param("http://exa<mple.com/", "invalid", INVALID_REASON, id="forbidden host code point"),
    pytest.param("http://example.com:65536/", "invalid", INVALID_REASON, id="port out of range"),
    pytest.param("http://example.com:8o/", "invalid", INVALID_REASON, id="port not a number"),
    pytest.param("http://1.2.3.4.5/", "invalid", INVALID_REASON, id="IPv4 with five parts"),
    pytest.param("http://256.0.0.1/", "invalid", INVALID_REASON, id="IPv4 out of range"),
    pytest.param("http://example.1/", "invalid", INVALID_REASON, id="numeric TLD"),
    pytest.param("http://[2001:db8::g]/", "invalid", INVALID_REASON, id="bad IPv6"),
    pytest.param("http://[2001:db8::1/", "invalid", INVALID_REASON, id="unclosed IPv6"),
    pytest.param("http://exa\u0000mple.com/", "invalid", INVALID_REASON, id="NUL in host"),
    # Length
    pytest.param("http://example.com/" + "a" * (MAX_URL_LENGTH - 18), "too_long",
                 "The address is longer than 2,048 characters.", id="too long as typed"),
    pytest.param("http://example.com/" + "é" * 700, "too_long",
                 "The address is longer than 2,048 characters once normalised.", id="too long once encoded"),
]


@pytest.mark.parametrize(("raw", "code", "reason"), REFUSED)
def test_refused_with_a_reason(raw: str, code: str, reason: str) -> None:
    with pytest.raises(InvalidURL) as refused:
        normalise(raw)
    assert refused.value.code == code
    assert refused.value.reason == reason
    assert str(refused.value) == reason


def test_longest_accepted_url() -> None:
    at_limit = "http://example.com/" + "a" * (MAX_URL_LENGTH - 19)
    assert len(at_limit) == MAX_URL_LENGTH
    assert normalise(at_limit).url == at_limit
    assert normalise(f"  {at_limit}  ").url == at_limit  # surrounding whitespace is not counted


def test_invalid_url_is_a_value_error_that_survives_pickling() -> None:
    error = InvalidURL("The host name is not a valid domain name.", "host")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (copy.reason, copy.code) == (error.reason, error.code)


def test_only_text_is_accepted() -> None:
    with pytest.raises(TypeError):
        normalise(b"http://example.com/")  # type: ignore[arg-type]


# --- Host and registrable domain --------------------------------------------------------------------------

DOMAINS = [
    pytest.param("http://www.example.com/", "www.example.com", "example.com", id="ICANN suffix"),
    pytest.param("http://a.b.example.co.uk/", "a.b.example.co.uk", "example.co.uk", id="multi-level suffix"),
    pytest.param("http://example.co.uk/", "example.co.uk", "example.co.uk", id="registrable itself"),
    pytest.param("http://www.example.com.au/", "www.example.com.au", "example.com.au", id="com.au"),
    pytest.param("http://x.blogspot.com/p", "x.blogspot.com", "x.blogspot.com", id="private suffix blogspot"),
    pytest.param("http://a.x.blogspot.com/", "a.x.blogspot.com", "x.blogspot.com", id="under a blogspot site"),
    pytest.param("https://user.github.io/repo", "user.github.io", "user.github.io", id="private suffix github.io"),
    pytest.param("http://www.bbc.co.uk./", "www.bbc.co.uk", "bbc.co.uk", id="trailing dot"),
    pytest.param("http://city.kobe.jp/", "city.kobe.jp", "city.kobe.jp", id="PSL exception rule"),
    pytest.param("http://a.b.c.kobe.jp/", "a.b.c.kobe.jp", "b.c.kobe.jp", id="PSL wildcard rule"),
    pytest.param("http://github.io/", "github.io", "github.io", id="a public suffix is its own domain"),
    pytest.param("http://co.uk/", "co.uk", "co.uk", id="an ICANN suffix is its own domain"),
    pytest.param("http://www.bücher.de/", "www.xn--bcher-kva.de", "xn--bcher-kva.de", id="IDN in punycode"),
    pytest.param("http://пример.рф/", "xn--e1afmkfd.xn--p1ai", "xn--e1afmkfd.xn--p1ai", id="IDN TLD"),
    pytest.param("http://abcdefghij234567.onion/", "abcdefghij234567.onion", "abcdefghij234567.onion",
                 id="onion (not on the PSL)"),
    pytest.param("http://a.b.example.unknowntld/", "a.b.example.unknowntld", "example.unknowntld",
                 id="unknown TLD"),
    pytest.param("http://192.0.2.1:8080/", "192.0.2.1", "192.0.2.1", id="IPv4 is its own domain"),
    pytest.param("http://10.0.0.1/", "10.0.0.1", "10.0.0.1", id="private IPv4 accepted"),
    pytest.param("http://[2001:DB8::1]/", "2001:db8::1", "2001:db8::1", id="IPv6 without brackets"),
    pytest.param("http://[::ffff:192.0.2.1]/", "::ffff:c000:201", "::ffff:c000:201", id="IPv4-mapped IPv6"),
]


@pytest.mark.parametrize(("raw", "host", "registrable_domain"), DOMAINS)
def test_host_and_registrable_domain(raw: str, host: str, registrable_domain: str) -> None:
    normalised = normalise(raw)
    assert (normalised.host, normalised.registrable_domain) == (host, registrable_domain)


def test_ipv6_is_in_brackets_in_the_url_only() -> None:
    normalised = normalise("http://[2001:db8::1]:8080/a")
    assert normalised.url == "http://[2001:db8::1]:8080/a"
    assert ipaddress.ip_address(normalised.host) == ipaddress.ip_address("2001:db8::1")


def test_result_is_a_frozen_value() -> None:
    normalised = normalise("http://example.com/a")
    assert normalised == NormalisedURL(
        url="http://example.com/a", host="example.com", registrable_domain="example.com",
        key=hashlib.sha256(b"http://example.com/a").hexdigest(),
    )
    with pytest.raises(AttributeError):
        normalised.url = "http://example.org/"  # type: ignore[misc]


# --- The dedup key ----------------------------------------------------------------------------------------

SAME_URL = [
    pytest.param(["http://example.com/a", "HTTP://EXAMPLE.COM/a", "http://Example.Com/a"], id="case of scheme, host"),
    pytest.param(["http://example.com/a", "http://example.com:80/a"], id="default http port"),
    pytest.param(["https://example.com/a", "https://example.com:443/a"], id="default https port"),
    pytest.param(["http://example.com/a", "http://example.com/b/../a", "http://example.com/./a"], id="dot segments"),
    pytest.param(["http://example.com/a", "http://example.com/a#top", "http://example.com/a#"], id="fragment"),
    pytest.param(["http://example.com/~u", "http://example.com/%7eu", "http://example.com/%7Eu"], id="%7e and ~"),
    pytest.param(["http://example.com/%C3%A9", "http://example.com/%c3%a9", "http://example.com/é"],
                 id="escape case and raw UTF-8"),
    pytest.param(["http://example.com/a", "hxxp://example[.]com/a", "h**p[:]//example(dot)com/a"],
                 id="obfuscation"),
    pytest.param(["http://bücher.de/", "http://xn--bcher-kva.de/", "http://XN--BCHER-KVA.de/"],
                 id="IDN unicode and punycode"),
    pytest.param(["http://example.com/a", "http://example.com./a"], id="trailing dot of the host"),
    pytest.param(["http://example.com", "http://example.com/", "http://example.com/?"], id="empty path and query"),
    pytest.param(["http://example.com/a", "example.com/a", "<http://example.com/a>."], id="pasted forms"),
    pytest.param(["http://192.0.2.1/", "http://0xc0.0.2.1/", "http://3221225985/"], id="IPv4 spellings"),
    pytest.param(["http://[2001:db8::1]/", "http://[2001:DB8:0:0:0:0:0:1]/"], id="IPv6 spellings"),
]


@pytest.mark.parametrize("spellings", SAME_URL)
def test_spellings_of_one_url_share_a_key(spellings: list[str]) -> None:
    keys = {normalise(raw).key for raw in spellings}
    assert len(keys) == 1


DIFFERENT_URLS = [
    pytest.param("http://example.com/?a=1&b=2", "http://example.com/?b=2&a=1", id="query order"),
    pytest.param("http://example.com/A", "http://example.com/a", id="path case"),
    pytest.param("http://example.com/?q=A", "http://example.com/?q=a", id="query case"),
    pytest.param("http://example.com/a", "https://example.com/a", id="scheme"),
    pytest.param("http://example.com/a", "http://example.com:8080/a", id="port"),
    pytest.param("http://example.com/a", "http://example.com/a/", id="trailing slash"),
    pytest.param("http://example.com/a/b", "http://example.com/a%2Fb", id="slash and %2F"),
    pytest.param("http://example.com/?q=a+b", "http://example.com/?q=a%20b", id="+ and %20"),
    pytest.param("http://example.com/?q=a%26b", "http://example.com/?q=a&b", id="& and %26"),
    pytest.param("http://example.com/a?", "http://example.com/a?=", id="empty and = query"),
    pytest.param("http://www.example.com/", "http://example.com/", id="www sub-domain"),
    pytest.param("http://a.blogspot.com/", "http://b.blogspot.com/", id="two blogspot sites"),
]


@pytest.mark.parametrize(("one", "other"), DIFFERENT_URLS)
def test_different_urls_have_different_keys(one: str, other: str) -> None:
    assert normalise(one).key != normalise(other).key


def test_key_is_the_sha256_of_the_canonical_url() -> None:
    normalised = normalise("HTTP://Example.com:80/a/../b?q=%7e#x")
    assert normalised.url == "http://example.com/b?q=~"
    assert normalised.key == hashlib.sha256(b"http://example.com/b?q=~").hexdigest()
    assert len(normalised.key) == 64 and set(normalised.key) <= set("0123456789abcdef")


# --- split_lines and extract_urls -------------------------------------------------------------------------


class TestSplitLines:
    def test_one_url_per_line_blank_lines_ignored_duplicates_kept(self) -> None:
        text = "http://example.com/a\r\n\n   \n  example.org \nhttp://example.com/a\n"
        assert split_lines(text) == ["http://example.com/a", "example.org", "http://example.com/a"]

    def test_unicode_line_breaks_and_blank_input(self) -> None:
        assert split_lines("a.example\u2028b.example") == ["a.example", "b.example"]
        assert split_lines(" \n\t\n") == []

    def test_limit(self) -> None:
        assert len(split_lines("\n".join(["example.com"] * 20))) == 20
        with pytest.raises(InvalidURL) as refused:
            split_lines("\n".join(["example.com"] * 21))
        assert refused.value.code == "too_many"
        assert refused.value.reason == "Enter at most 20 addresses, one per line (this has 21)."
        assert split_lines("a\nb\nc", limit=3) == ["a", "b", "c"]
        with pytest.raises(InvalidURL):
            split_lines("a\nb\nc", limit=2)


class TestExtractURLs:
    def test_finds_urls_in_order(self) -> None:
        text = "Hello,\nI found https://example.com/a and then http://example.org/b?x=1.\nThanks"
        assert extract_urls(text) == ["https://example.com/a", "http://example.org/b?x=1"]

    def test_finds_defanged_urls(self) -> None:
        text = "bad: hxxp://evil[.]example/a, also HXXPS[:]//evil[.]example/b and h**p[://]evil(.)example/c"
        found = extract_urls(text)
        assert found == ["hxxp://evil[.]example/a", "HXXPS[:]//evil[.]example/b", "h**p[://]evil(.)example/c"]
        assert [normalise(url).url for url in found] == [
            "http://evil.example/a", "https://evil.example/b", "http://evil.example/c",
        ]

    def test_punctuation_and_brackets_around_are_not_part_of_the_url(self) -> None:
        text = '(see http://example.com/a), <http://example.com/b>; "http://example.com/c"! http://example.com/d.'
        assert extract_urls(text) == [f"http://example.com/{p}" for p in "abcd"]

    def test_markdown_links_and_quotes(self) -> None:
        text = "See [http://example.com/a](http://example.com/a), 'http://example.com/b' and [x](hxxp://evil[.]com/c)."
        assert extract_urls(text) == ["http://example.com/a", "http://example.com/b", "hxxp://evil[.]com/c"]

    def test_balanced_parentheses_stay(self) -> None:
        assert extract_urls("(http://en.wikipedia.org/wiki/Foo_(bar))") == ["http://en.wikipedia.org/wiki/Foo_(bar)"]

    def test_deduplicated_by_canonical_form_first_spelling_kept(self) -> None:
        text = "http://Example.com/a#x then hxxp://example[.]com/a then http://example.com:80/a and http://example.com/A"
        assert extract_urls(text) == ["http://Example.com/a#x", "http://example.com/A"]

    def test_refused_urls_are_returned_once_for_the_caller_to_report(self) -> None:
        text = "http://u:p@example.com/ http://u:p@example.com/ http://localhost/"
        assert extract_urls(text) == ["http://u:p@example.com/", "http://localhost/"]

    def test_no_urls(self) -> None:
        assert extract_urls("") == []
        assert extract_urls("example.com and ftp://example.com/ and mailto:a@example.com") == []


# --- Properties -------------------------------------------------------------------------------------------

LDH = string.ascii_lowercase + string.digits
ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)
ascii_labels = st.text(LDH + string.ascii_uppercase + "-_", min_size=1, max_size=12)
unicode_labels = st.text(st.characters(categories=["Ll", "Lu", "Lo"], max_codepoint=0x2FFFF), min_size=1, max_size=8)
domains = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(st.one_of(ascii_labels, unicode_labels), min_size=1, max_size=3),
    st.sampled_from(["com", "co.uk", "blogspot.com", "github.io", "de", "рф", "onion", "COM", "com."]),
)
hosts = st.one_of(
    domains,
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
)
escapes = st.builds(lambda byte, upper: f"%{byte:02x}".upper() if upper else f"%{byte:02x}",
                    st.integers(0, 255), st.booleans())
url_text = st.lists(
    st.one_of(
        st.text(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/", max_size=6),
        st.sampled_from([".", "..", "/./", "/../", "%2e", "%2E%2e", "[.]", "(dot)", " ", "%", "é", "🙂", "\\"]),
        escapes,
        st.text(max_size=3),
    ),
    max_size=6,
).map("".join)
urls = st.builds(
    lambda scheme, host, port, path, query, fragment: f"{scheme}://{host}{port}/{path}{query}{fragment}",
    st.sampled_from(["http", "https", "HTTP", "hTTps", "hxxp", "hxxps", "h**p"]),
    hosts,
    st.one_of(st.just(""), st.integers(0, 65535).map(lambda port: f":{port}")),
    url_text,
    st.one_of(st.just(""), url_text.map(lambda text: "?" + text.replace("#", ""))),
    st.one_of(st.just(""), url_text.map(lambda text: "#" + text)),
)
pasted = st.builds(
    lambda url, before, after: f"{before}{url}{after}",
    urls,
    st.sampled_from(["", " ", "<", '"', "(", "\u200b"]),
    st.sampled_from(["", " ", ">", '"', ")", ".", ",", ").", "!\n"]),
)


def normalise_or_none(raw: str) -> NormalisedURL | None:
    try:
        return normalise(raw)
    except InvalidURL:
        return None


@property_test
@given(pasted)
@example("http://example.com/x[%2E]y")
@example("http://example.com/b.#frag")
@example("http://example.com/%%37e")
@example("http://example.com/?q=a)#x")
def test_normalise_is_idempotent(raw: str) -> None:
    first = normalise_or_none(raw)
    if first is not None:
        assert normalise(first.url) == first


@property_test
@given(pasted)
def test_canonical_url_is_a_stable_whatwg_url(raw: str) -> None:
    normalised = normalise_or_none(raw)
    if normalised is None:
        return
    url = normalised.url
    assert url.isascii() and len(url) <= MAX_URL_LENGTH
    assert url.startswith(("http://", "https://"))
    assert "#" not in url and "@" not in url.split("/")[2]
    assert ada_url.parse_url(url, attributes=("href",))["href"] == url  # a browser would not change it
    assert normalised.key == hashlib.sha256(url.encode()).hexdigest()


@property_test
@given(domains, url_text, st.sampled_from(["http", "https"]))
def test_host_case_default_port_and_fragment_do_not_change_the_key(host: str, path: str, scheme: str) -> None:
    path = path.replace("#", "%23") + "/end"  # the WHATWG parser trims a control character at the very end
    plain = normalise_or_none(f"{scheme}://{host}/{path}")
    if plain is None:
        return
    default_port = ":80" if scheme == "http" else ":443"
    shouted = host.translate(ASCII_UPPER)  # str.upper() is not what UTS 46 undoes: "ı".upper() == "I"
    assert normalise(f"{scheme.upper()}://{shouted}{default_port}/{path}#fragment").key == plain.key


@property_test
@given(st.text())
def test_arbitrary_text_is_normalised_or_refused(raw: str) -> None:
    try:
        normalise(raw)
    except InvalidURL as refused:
        assert refused.reason and refused.code


@property_test
@given(st.text(string.printable + "[](){}<>%:/.@é🙂\u3002", max_size=80))
def test_url_like_text_is_normalised_or_refused(raw: str) -> None:
    for candidate in (raw, "http://" + raw, "hxxp://" + raw):
        try:
            normalise(candidate)
        except InvalidURL:
            pass


@property_test
@given(st.text())
def test_extract_urls_and_split_lines_never_fail_on_text(text: str) -> None:
    extract_urls(text)
    split_lines(text, limit=10_000)
