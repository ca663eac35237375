"""Where a host is hosted: its addresses (DNS), and whose network each address is in.

Pure: no Django and no database (only `hosting_from_settings()` reads settings). `trace_host()` answers a
`Trace`, whose `to_json()` is what a case stores.

- `resolve()` asks DNS (dnspython) for A and AAAA, following CNAMEs, within one time budget. Whatever goes
  wrong (no such domain, no address, timeout, no usable nameserver) is an "unresolvable" outcome, never an
  exception. An IP-address host is its own answer.
- `OfflineLookup` (the default): the country from iptocc (the country the registry lists for the block), AS
  number, operator and abuse mailbox from plevin-db-network, read with `plevin`. Both ship inside wheels: no
  network, and the trace records the data's build date.
- `RdapLookup`: the registries' RDAP services through whoisit, live, within a deadline.
- Private and reserved addresses are not looked up: country "" and network `RESERVED`.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import cache
from importlib.metadata import version
from typing import Any, Protocol

import dns.exception
import dns.message
import dns.name
import dns.resolver
import iptocc
import plevin
import plevin_db_network
import requests

RESOLVED = "resolved"
UNRESOLVABLE = "unresolvable"
RESERVED = "private/reserved address"
MAX_CHAIN = 8  # queries made to follow one CNAME chain before giving up (a loop, or a chain far too long)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AddressInfo:
    ip: str
    version: int  # 4 or 6
    country: str  # ISO 3166 alpha-2, "" when unknown
    asn: int | None
    network: str  # operator or network name, "" when unknown
    abuse_contact: str  # abuse mailbox where known, else ""


@dataclass(frozen=True)
class Trace:
    host: str
    outcome: str  # RESOLVED or UNRESOLVABLE
    detail: str  # why unresolvable, in plain words; "" when resolved
    cname_chain: tuple[str, ...]  # the aliases followed, in order, without the host itself
    addresses: tuple[AddressInfo, ...]  # IPv4 first
    source: str  # the lookup used
    data_date: str  # ISO date of the lookup's data; "" for a live lookup

    @property
    def primary(self) -> AddressInfo | None:
        """The address the case is filed under: the first, IPv4 before IPv6."""
        return self.addresses[0] if self.addresses else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "cname_chain": list(self.cname_chain),
                "addresses": [asdict(address) for address in self.addresses]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trace:
        return cls(**{**data, "cname_chain": tuple(data["cname_chain"]),
                      "addresses": tuple(AddressInfo(**address) for address in data["addresses"])})


@dataclass(frozen=True)
class ResolverConfig:
    nameservers: tuple[str, ...] = ()  # empty: the system resolver (/etc/resolv.conf)
    port: int = 53
    timeout: float = 2.0  # seconds for one host, A, AAAA and every CNAME hop (plus dnspython's back-off, <= 0.2 s)


class _ChainTooLong(Exception):
    pass


def resolve(host: str, config: ResolverConfig) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
    """(outcome, detail, cname_chain, ips) for a host name or IP literal; IPv4 addresses first."""
    literal = _ip_literal(host)
    if literal is not None:
        return RESOLVED, "", (), (str(literal),)
    deadline = time.monotonic() + config.timeout
    chain: list[str] = []
    ips: list[str] = []
    failure = ""
    try:
        resolver = _resolver(config)
        name = dns.name.from_text(host)
    except dns.resolver.NoResolverConfiguration:
        return UNRESOLVABLE, "no resolver configured", (), ()
    except (dns.exception.SyntaxError, dns.name.IDNAException):
        return UNRESOLVABLE, "not a valid host name", (), ()
    for rdtype in ("A", "AAAA"):
        try:
            ips += _addresses(resolver, name, rdtype, chain, deadline)
        except dns.resolver.NXDOMAIN as error:
            for response in error.responses().values():
                _follow(response, chain)
            failure = "no such domain"
            break
        except dns.exception.Timeout:
            failure = failure or f"timed out after {float(config.timeout)} s"
            break
        except _ChainTooLong:
            failure = f"CNAME chain longer than {MAX_CHAIN} (a loop?)"
            break
        except dns.resolver.NoNameservers:
            failure = failure or "no nameserver gave a usable answer"
        except dns.exception.DNSException as error:
            failure = failure or f"DNS error: {error}"[:200]
    if ips:
        return RESOLVED, "", tuple(chain), tuple(dict.fromkeys(ips))
    return UNRESOLVABLE, failure or "no A or AAAA record", tuple(chain), ()


def _ip_literal(host: str) -> Address | None:
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _resolver(config: ResolverConfig) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=not config.nameservers)
    resolver.port = config.port  # before the nameservers: a nameserver given as a string takes it then
    if config.nameservers:
        resolver.nameservers = list(config.nameservers)
    resolver.timeout = config.timeout / 2  # one attempt; a silent server leaves time to retry or try the next
    return resolver


def _addresses(resolver: dns.resolver.Resolver, name: dns.name.Name, rdtype: str, chain: list[str],
               deadline: float) -> list[str]:
    """The addresses of one type, following CNAMEs, also when a server answers with part of the chain only."""
    for _ in range(MAX_CHAIN):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise dns.exception.Timeout
        answer = resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False, lifetime=remaining)
        _follow(answer.response, chain)
        if answer.rrset is not None:
            return [rdata.address for rdata in answer.rrset]
        if answer.canonical_name == name:
            return []
        name = answer.canonical_name
    raise _ChainTooLong


def _follow(response: dns.message.Message, chain: list[str]) -> None:
    """Record each CNAME target in a response, in order, once."""
    try:
        cnames = response.resolve_chaining().cnames if isinstance(response, dns.message.QueryMessage) else []
    except dns.exception.DNSException:  # a loop or a malformed answer: nothing more to record from it
        return
    for rrset in cnames:
        target = rrset[0].target.to_text(omit_final_dot=True)
        if target not in chain:
            chain.append(target)


class NetworkLookup(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def data_date(self) -> str: ...

    def lookup(self, ip: str) -> AddressInfo: ...


def _reserved(address: Address) -> bool:
    return not address.is_global or address.is_multicast


def _reserved_info(address: Address) -> AddressInfo:
    return AddressInfo(str(address), address.version, "", None, RESERVED, "")


@cache
def _network_data() -> plevin.Plevin:
    """plevin-db-network's file, opened once per process: memory-mapped, blocks decoded as lookups reach them."""
    return plevin.Plevin(plevin_db_network.PATH)


class OfflineLookup:
    """iptocc for the country, plevin-db-network for the AS number, operator and abuse mailbox."""

    _lock = threading.Lock()  # plevin decodes blocks into shared caches; one lookup at a time

    @property
    def name(self) -> str:
        return f"offline: iptocc {version('iptocc')} + plevin-db-network {version('plevin-db-network')}"

    @property
    def data_date(self) -> str:
        return _network_data().built

    def lookup(self, ip: str) -> AddressInfo:
        address = ipaddress.ip_address(ip)
        if _reserved(address):
            return _reserved_info(address)
        with self._lock:
            network = _network_data().lookup(address).network
        operator = network.operator if network else None
        name = (operator and (operator.company or operator.brand)) or (network and network.handle) or ""
        country = iptocc.country_code(str(address)) or (network and network.country) or ""
        return AddressInfo(str(address), address.version, country, network.asn if network else None, name,
                           (operator and operator.abuse_email) or "")


class _TimedSession(requests.Session):
    """A session whose every request gives up after `timeout` seconds (whoisit's own default is 10 s)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["timeout"] = self.timeout
        return super().request(*args, **kwargs)


@cache
def _rdap_workers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="rdap")


_bootstrapping = threading.Lock()


class RdapLookup:
    """The registry's RDAP answer for each address, through whoisit. Live: `data_date` is ""."""

    data_date = ""

    def __init__(self, *, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.name = f"rdap: whoisit {version('whoisit')}"
        self._session = _TimedSession(timeout)

    def lookup(self, ip: str) -> AddressInfo:
        """Never raises for an unreachable or failing server, and never waits longer than `timeout`: the
        answer is then an AddressInfo with empty fields (a worker thread may finish the request later)."""
        address = ipaddress.ip_address(ip)
        if _reserved(address):
            return _reserved_info(address)
        import whoisit.errors  # here: importing whoisit adds log handlers (DEBUG level when DEBUG=1 is set)

        future = _rdap_workers().submit(self._query, str(address))
        try:
            found = future.result(timeout=self.timeout)
        except (TimeoutError, whoisit.errors.WhoisItError, requests.RequestException):
            found = {}
        entities = found.get("entities", {})
        abuse = next((one["email"] for one in entities.get("abuse", []) if one.get("email")), "")
        holder = next((one["name"] for one in entities.get("registrant", []) if one.get("name")), "")
        asns = found.get("origin_autnums") or [None]
        return AddressInfo(str(address), address.version, str(found.get("country", "")).upper(), asns[0],
                           holder or found.get("name", ""), abuse)

    def _query(self, ip: str) -> dict[str, Any]:
        import whoisit

        with _bootstrapping:
            if not whoisit.is_bootstrapped():
                whoisit.bootstrap()  # IANA's service registry; load_bootstrap_data() first to skip the fetch
        return whoisit.ip(ip, session=self._session)


def lookup_from_config(spec: str = "offline") -> NetworkLookup:
    """"offline" (the default, also for "") or "rdap"; anything else, "maxmind:/path" included, is a ValueError."""
    kind, _, argument = spec.strip().partition(":")
    kind = kind.lower()
    if kind in ("", "offline") and not argument:
        return OfflineLookup()
    if kind == "rdap" and not argument:
        return RdapLookup()
    if kind == "maxmind":
        raise ValueError(f"hosting lookup {spec!r}: MaxMind files are not supported (no maxminddb reader is "
                         "installed); use 'offline' or 'rdap'")
    raise ValueError(f"unknown hosting lookup {spec!r}: use 'offline' or 'rdap'")


def trace_host(host: str, *, resolver: ResolverConfig, lookup: NetworkLookup) -> Trace:
    """Resolve the host and look up the network of each address."""
    outcome, detail, chain, ips = resolve(host, resolver)
    addresses = tuple(sorted((lookup.lookup(ip) for ip in ips), key=lambda address: address.version))
    return Trace(host, outcome, detail, chain, addresses, lookup.name, lookup.data_date)


def hosting_from_settings() -> tuple[ResolverConfig, NetworkLookup]:
    """The resolver and lookup that settings name: DNS_NAMESERVERS, DNS_PORT, DNS_TIMEOUT, HOSTING_LOOKUP."""
    from django.conf import settings

    resolver = ResolverConfig(nameservers=tuple(getattr(settings, "DNS_NAMESERVERS", ())),
                              port=int(getattr(settings, "DNS_PORT", 53)),
                              timeout=float(getattr(settings, "DNS_TIMEOUT", 2.0)))
    return resolver, lookup_from_config(getattr(settings, "HOSTING_LOOKUP", "offline"))
