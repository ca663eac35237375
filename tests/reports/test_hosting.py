"""reports.hosting: where a host is hosted. Pure: no database.

DNS is asked of a real DNS server on loopback (dnslib, UDP and TCP); RDAP of a real HTTP server on loopback.
Nothing here reaches the internet. The offline lookups assert what the shipped data says.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from typing import Any

import plevin
import plevin_db_network
import pytest
import whoisit
from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, SOA, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from reports.hosting import (
    RESERVED,
    AddressInfo,
    OfflineLookup,
    RdapLookup,
    ResolverConfig,
    Trace,
    hosting_from_settings,
    lookup_from_config,
    resolve,
    trace_host,
)

# --- A DNS server on loopback ------------------------------------------------------------------------------

RECORDS: dict[str, list[tuple[str, str]]] = {
    # two CNAME hops to A and AAAA, answered with the whole chain as a recursive resolver does
    "www.example.test.": [("CNAME", "edge.cdn.test.")],
    "edge.cdn.test.": [("CNAME", "origin.hosting.test.")],
    "origin.hosting.test.": [("A", "192.0.2.10"), ("AAAA", "2001:db8::10")],
    # the same two hops, answered one hop at a time as an authoritative server does
    "hop.partial.test.": [("CNAME", "hop2.partial.test.")],
    "hop2.partial.test.": [("CNAME", "origin.hosting.test.")],
    "loop-a.partial.test.": [("CNAME", "loop-b.partial.test.")],
    "loop-b.partial.test.": [("CNAME", "loop-a.partial.test.")],
    "dangling.example.test.": [("CNAME", "gone.example.test.")],
    "text-only.example.test.": [("TXT", "no address here")],
    "public.example.test.": [("AAAA", "2001:4860:4860::8888"), ("A", "8.8.8.8")],
    "big.example.test.": [("A", f"198.51.100.{n}") for n in range(1, 41)],  # > 512 bytes: UDP truncates
}
RDATA = {"A": A, "AAAA": AAAA, "CNAME": CNAME, "TXT": TXT}


class ZoneResolver(BaseResolver):
    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        name, qtype = str(request.q.qname), QTYPE[request.q.qtype]
        if name not in RECORDS:
            reply.header.rcode = RCODE.NXDOMAIN
        elif name == "big.example.test." and handler.protocol == "udp":
            reply.header.tc = 1
            return reply
        seen: set[str] = set()
        while name in RECORDS and name not in seen:
            seen.add(name)
            records = RECORDS[name]
            for kind, value in records:
                if kind == qtype or kind == "CNAME":
                    reply.add_answer(RR(name, getattr(QTYPE, kind), rdata=RDATA[kind](value), ttl=60))
            if records[0][0] != "CNAME" or ".partial." in name:
                break
            name = records[0][1]
            if name not in RECORDS:
                reply.header.rcode = RCODE.NXDOMAIN
        if not reply.rr:
            reply.add_auth(RR("test.", QTYPE.SOA, rdata=SOA("ns.test.", "hostmaster.test.", (1, 60, 60, 60, 60))))
        return reply


@pytest.fixture(scope="module")
def dns() -> Iterator[ResolverConfig]:
    """A DNS server on a free loopback port, UDP and TCP on the same port number."""
    quiet = DNSLogger(logf=lambda *_: None)
    for _ in range(20):
        udp = DNSServer(ZoneResolver(), address="127.0.0.1", port=0, logger=quiet)
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(ZoneResolver(), address="127.0.0.1", port=port, tcp=True, logger=quiet)
        except OSError:
            udp.server.server_close()
            continue
        break
    for server in (udp, tcp):
        server.start_thread()
    yield ResolverConfig(nameservers=("127.0.0.1",), port=port, timeout=2.0)
    for server in (udp, tcp):
        server.stop()
        server.server.server_close()


@pytest.fixture
def silent() -> Iterator[ResolverConfig]:
    """A nameserver that never answers: a UDP socket on loopback that nobody reads."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        yield ResolverConfig(nameservers=("127.0.0.1",), port=sink.getsockname()[1], timeout=0.6)


# --- resolve ------------------------------------------------------------------------------------------------


class TestResolve:
    def test_two_cname_hops_to_a_and_aaaa(self, dns: ResolverConfig) -> None:
        assert resolve("www.example.test", dns) == (
            "resolved", "", ("edge.cdn.test", "origin.hosting.test"), ("192.0.2.10", "2001:db8::10"))

    def test_a_chain_answered_one_hop_at_a_time_is_followed(self, dns: ResolverConfig) -> None:
        assert resolve("hop.partial.test", dns) == (
            "resolved", "", ("hop2.partial.test", "origin.hosting.test"), ("192.0.2.10", "2001:db8::10"))

    def test_a_cname_loop_stops(self, dns: ResolverConfig) -> None:
        outcome, detail, chain, ips = resolve("loop-a.partial.test", dns)

        assert (outcome, ips) == ("unresolvable", ())
        assert detail == "CNAME chain longer than 8 (a loop?)"
        assert chain == ("loop-b.partial.test", "loop-a.partial.test")

    def test_no_such_domain(self, dns: ResolverConfig) -> None:
        assert resolve("missing.example.test", dns) == ("unresolvable", "no such domain", (), ())

    def test_a_cname_to_a_missing_name_keeps_the_chain(self, dns: ResolverConfig) -> None:
        assert resolve("dangling.example.test", dns) == (
            "unresolvable", "no such domain", ("gone.example.test",), ())

    def test_a_name_without_addresses(self, dns: ResolverConfig) -> None:
        assert resolve("text-only.example.test", dns) == ("unresolvable", "no A or AAAA record", (), ())

    def test_a_truncated_udp_answer_is_asked_again_over_tcp(self, dns: ResolverConfig) -> None:
        outcome, _, _, ips = resolve("big.example.test", dns)

        assert outcome == "resolved"
        assert ips == tuple(f"198.51.100.{n}" for n in range(1, 41))

    def test_a_server_that_never_answers_times_out_within_the_budget(self, silent: ResolverConfig) -> None:
        started = time.monotonic()
        outcome, detail, chain, ips = resolve("www.example.test", silent)
        elapsed = time.monotonic() - started

        assert (outcome, detail, chain, ips) == ("unresolvable", "timed out after 0.6 s", (), ())
        # Two attempts of 0.3 s; dnspython then sleeps its back-off (0.1 s, 0.2 s), which its lifetime ignores.
        assert 0.6 <= elapsed < 0.6 + 0.2 + 0.3

    @pytest.mark.parametrize(("host", "ip"), [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:DB8:0::1]", "2001:db8::1"),
    ])
    def test_an_ip_literal_skips_dns(self, silent: ResolverConfig, host: str, ip: str) -> None:
        assert resolve(host, silent) == ("resolved", "", (), (ip,))  # the silent server would time out

    def test_an_invalid_name_is_unresolvable(self, silent: ResolverConfig) -> None:
        assert resolve("a..b", silent) == ("unresolvable", "not a valid host name", (), ())


# --- OfflineLookup ------------------------------------------------------------------------------------------

OFFLINE = OfflineLookup()


class TestOfflineLookup:
    @pytest.mark.parametrize("expected", [
        AddressInfo("8.8.8.8", 4, "US", 15169, "Google LLC", "network-abuse@google.com"),
        AddressInfo("1.1.1.1", 4, "AU", 13335, "Cloudflare, Inc.", "abuse@cloudflare.com"),
        AddressInfo("2001:4860:4860::8888", 6, "US", 15169, "Google LLC", "network-abuse@google.com"),
        AddressInfo("2606:4700:4700::1111", 6, "US", 13335, "Cloudflare, Inc.", "abuse@cloudflare.com"),
    ], ids=lambda info: info.ip)
    def test_well_known_public_addresses(self, expected: AddressInfo) -> None:
        assert OFFLINE.lookup(expected.ip) == expected

    def test_an_address_is_written_in_its_shortest_form(self) -> None:
        assert OFFLINE.lookup("2001:4860:4860:0:0:0:0:8888").ip == "2001:4860:4860::8888"

    @pytest.mark.parametrize("ip", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "100.64.0.1", "169.254.1.1",
                                    "192.0.2.10", "224.0.0.1", "::1", "fc00::1", "fe80::1", "2001:db8::10"])
    def test_private_and_reserved_addresses(self, ip: str) -> None:
        info = OFFLINE.lookup(ip)

        assert (info.country, info.asn, info.network, info.abuse_contact) == ("", None, RESERVED, "")

    def test_source_and_date_name_the_data(self) -> None:
        assert OFFLINE.name == (f"offline: iptocc {version('iptocc')} "
                                f"+ plevin-db-network {version('plevin-db-network')}")
        assert re.fullmatch(r"offline: iptocc 3\.\S+ \+ plevin-db-network 20\d\d\.\S+", OFFLINE.name)
        assert OFFLINE.data_date == plevin.Plevin(plevin_db_network.PATH).built
        assert date.fromisoformat(OFFLINE.data_date).year >= 2026


# --- trace_host and the stored form -------------------------------------------------------------------------


class TestTraceHost:
    def test_a_resolved_host_is_filed_under_its_first_ipv4_address(self, dns: ResolverConfig) -> None:
        trace = trace_host("public.example.test", resolver=dns, lookup=OFFLINE)

        assert (trace.outcome, trace.detail, trace.cname_chain) == ("resolved", "", ())
        assert [info.ip for info in trace.addresses] == ["8.8.8.8", "2001:4860:4860::8888"]
        assert trace.primary == AddressInfo("8.8.8.8", 4, "US", 15169, "Google LLC", "network-abuse@google.com")
        assert (trace.source, trace.data_date) == (OFFLINE.name, OFFLINE.data_date)

    def test_an_unresolvable_host_has_no_primary_address(self, dns: ResolverConfig) -> None:
        trace = trace_host("missing.example.test", resolver=dns, lookup=OFFLINE)

        assert (trace.outcome, trace.detail, trace.addresses, trace.primary) == (
            "unresolvable", "no such domain", (), None)

    @pytest.mark.parametrize("host", ["www.example.test", "public.example.test", "missing.example.test"])
    def test_to_json_survives_a_json_round_trip(self, dns: ResolverConfig, host: str) -> None:
        trace = trace_host(host, resolver=dns, lookup=OFFLINE)

        stored = json.loads(json.dumps(trace.to_json()))

        assert stored == trace.to_json()
        assert Trace.from_json(stored) == trace
        assert set(stored) == {"host", "outcome", "detail", "cname_chain", "addresses", "source", "data_date"}


# --- RdapLookup, against an RDAP server on loopback ---------------------------------------------------------

RDAP_ANSWER = {
    "objectClassName": "ip network", "handle": "NET-8-8-8-0-2", "name": "GOGL", "type": "DIRECT ALLOCATION",
    "startAddress": "8.8.8.0", "endAddress": "8.8.8.255", "ipVersion": "v4", "country": "us",
    "arin_originas0_originautnums": [15169],
    "entities": [{
        "objectClassName": "entity", "handle": "GOGL", "roles": ["registrant"],
        "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "Google LLC"],
                                 ["kind", {}, "text", "org"]]],
        "entities": [{
            "objectClassName": "entity", "handle": "ABUSE5250-ARIN", "roles": ["abuse"],
            "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "Abuse"],
                                     ["email", {}, "text", "network-abuse@google.com"]]],
        }],
    }],
}


class RdapHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        found = self.path.rstrip("/") == "/ip/8.8.8.8"
        body = json.dumps(RDAP_ANSWER if found else {"errorCode": 404}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/rdap+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def bootstrap_to(base: str) -> None:
    """Point whoisit at one RDAP server for everything, as IANA's registry would."""
    services = {"services": [[["0.0.0.0/0"], [base]]]}
    data = {"timestamp": int(time.time()), "ipv4": services, "ipv6": {"services": [[["::/0"], [base]]]},
            "asn": {"services": [[["1-4199999999"], [base]]]}, "dns": {"services": [[["test"], [base]]]},
            "object": {"services": [[["TEST"], [base]]]}}
    whoisit.clear_bootstrapping()
    whoisit.load_bootstrap_data(json.dumps(data), allow_insecure=True)


@pytest.fixture
def rdap_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RdapHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    bootstrap_to(base)
    yield base
    server.shutdown()
    server.server_close()
    whoisit.clear_bootstrapping()
    whoisit.clear_session()


@pytest.fixture
def dead_rdap() -> Iterator[str]:
    """An RDAP server that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        bootstrap_to(f"http://127.0.0.1:{listener.getsockname()[1]}/")
        yield "silent"
    whoisit.clear_bootstrapping()
    whoisit.clear_session()


@pytest.fixture
def closed_rdap() -> Iterator[str]:
    """An RDAP server whose port refuses connections."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bootstrap_to(f"http://127.0.0.1:{port}/")
    yield "closed"
    whoisit.clear_bootstrapping()
    whoisit.clear_session()


class TestRdapLookup:
    def test_the_registry_answer(self, rdap_server: str) -> None:
        lookup = RdapLookup(timeout=2.0)

        assert lookup.lookup("8.8.8.8") == AddressInfo("8.8.8.8", 4, "US", 15169, "Google LLC",
                                                       "network-abuse@google.com")
        assert lookup.data_date == ""
        assert lookup.name == f"rdap: whoisit {version('whoisit')}"

    def test_an_address_the_registry_does_not_know_has_empty_fields(self, rdap_server: str) -> None:
        assert RdapLookup(timeout=2.0).lookup("9.9.9.9") == AddressInfo("9.9.9.9", 4, "", None, "", "")

    def test_a_refused_connection_has_empty_fields(self, closed_rdap: str) -> None:
        assert RdapLookup(timeout=2.0).lookup("8.8.8.8") == AddressInfo("8.8.8.8", 4, "", None, "", "")

    def test_a_server_that_never_answers_gives_up_within_the_timeout(self, dead_rdap: str) -> None:
        started = time.monotonic()
        info = RdapLookup(timeout=0.5).lookup("2001:4860:4860::8888")
        elapsed = time.monotonic() - started

        assert info == AddressInfo("2001:4860:4860::8888", 6, "", None, "", "")
        assert elapsed < 0.5 + 0.5

    def test_private_addresses_are_not_asked(self, closed_rdap: str) -> None:
        assert RdapLookup(timeout=0.1).lookup("10.0.0.1") == AddressInfo("10.0.0.1", 4, "", None, RESERVED, "")


# --- Configuration ------------------------------------------------------------------------------------------


class TestConfiguration:
    @pytest.mark.parametrize(("spec", "kind"), [
        ("offline", OfflineLookup), ("", OfflineLookup), (" Offline ", OfflineLookup), ("rdap", RdapLookup),
    ])
    def test_lookup_from_config(self, spec: str, kind: type) -> None:
        assert isinstance(lookup_from_config(spec), kind)

    def test_offline_is_the_default(self) -> None:
        assert isinstance(lookup_from_config(), OfflineLookup)

    @pytest.mark.parametrize(("spec", "message"), [
        ("whois", "unknown hosting lookup 'whois': use 'offline' or 'rdap'"),
        ("offline:fast", "unknown hosting lookup 'offline:fast'"),
        ("maxmind:/var/lib/GeoLite2-ASN.mmdb", "MaxMind files are not supported"),
    ])
    def test_an_unknown_spec_is_refused(self, spec: str, message: str) -> None:
        with pytest.raises(ValueError, match=re.escape(message)):
            lookup_from_config(spec)

    def test_hosting_from_settings(self, settings: Any) -> None:
        settings.DNS_NAMESERVERS = ["127.0.0.1", "::1"]
        settings.DNS_PORT = "5353"
        settings.DNS_TIMEOUT = "1.5"
        settings.HOSTING_LOOKUP = "rdap"

        resolver, lookup = hosting_from_settings()

        assert resolver == ResolverConfig(nameservers=("127.0.0.1", "::1"), port=5353, timeout=1.5)
        assert isinstance(lookup, RdapLookup)

    def test_hosting_from_settings_defaults(self, settings: Any) -> None:
        for name in ("DNS_NAMESERVERS", "DNS_PORT", "DNS_TIMEOUT", "HOSTING_LOOKUP"):
            if hasattr(settings, name):
                delattr(settings, name)

        resolver, lookup = hosting_from_settings()

        assert resolver == ResolverConfig()
        assert isinstance(lookup, OfflineLookup)
