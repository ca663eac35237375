"""Abuse resistance for the public form that keeps no personal data.

A source is an HMAC of the client address under a random key that lives only in the cache and is
replaced every day: nothing can turn a source back into an address, not even with the database and the
code. Counters are atomic cache increments (Redis in production). Past a threshold a source must solve a
self-hosted proof-of-work challenge (ALTCHA) or, without JavaScript, wait a short while before sending;
past the limit it is asked to come back later.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from enum import Enum

from altcha import ChallengeOptionsV1, create_challenge_v1, verify_solution_v1
from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.http import HttpRequest

_DAY_KEY = "intake:daykey:{day}"
_COUNT_KEY = "intake:count:{bucket}:{source}:{hour}"
_USED_CHALLENGE = "intake:altcha-used:{signature}"
FORM_STAMP_SALT = "ntd.reports.form-stamp"


class Gate(Enum):
    OPEN = "open"  # nothing more to do
    CHALLENGE = "challenge"  # a proof of work (or, without JavaScript, a short wait) is required
    LIMITED = "limited"  # come back later


def client_address(request: HttpRequest) -> str:
    """The address of the client, taken from X-Forwarded-For only behind a known number of proxies."""
    proxies = settings.NUM_PROXIES
    if proxies:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR", "")


_day_keys: dict[str, bytes] = {}


def _day_key(now: dt.datetime) -> bytes:
    """Today's random key: made once per day in the cache (shared by every process), remembered per process."""
    day = now.strftime("%Y-%m-%d")
    key = _day_keys.get(day)
    if key is None:
        cache_key = _DAY_KEY.format(day=day)
        cache.add(cache_key, secrets.token_hex(32), timeout=2 * 24 * 3600)
        key = bytes.fromhex(cache.get(cache_key))
        _day_keys.clear()  # yesterday's key goes: nothing in this process can link days
        _day_keys[day] = key
    return key


def source_of(request: HttpRequest, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return hmac.new(_day_key(now), client_address(request).encode(), hashlib.sha256).hexdigest()[:32]


def count(source: str, now: dt.datetime | None = None, *, bucket: str = "report") -> int:
    """Add one attempt for this source in the current hour; returns the new count (one round trip on Redis)."""
    now = now or dt.datetime.now(dt.UTC)
    key = _COUNT_KEY.format(bucket=bucket, source=source, hour=now.strftime("%Y%m%d%H"))
    backend = cache._cache if hasattr(cache, "_cache") else None  # django.core.cache.backends.redis
    if backend is not None and hasattr(backend, "get_client"):
        full_key = cache.make_and_validate_key(key)
        pipe = backend.get_client(full_key, write=True).pipeline()
        pipe.incr(full_key)
        pipe.expire(full_key, 3600 + 60, nx=True)
        return int(pipe.execute()[0])
    cache.add(key, 0, timeout=3600 + 60)
    return cache.incr(key)


def peek(source: str, now: dt.datetime | None = None, *, bucket: str = "report") -> int:
    now = now or dt.datetime.now(dt.UTC)
    return cache.get(_COUNT_KEY.format(bucket=bucket, source=source, hour=now.strftime("%Y%m%d%H")), 0)


def gate_for(submissions: int) -> Gate:
    if submissions > settings.INTAKE_LIMIT_PER_HOUR:
        return Gate.LIMITED
    if submissions > settings.INTAKE_CHALLENGE_AFTER:
        return Gate.CHALLENGE
    return Gate.OPEN


# --- The signed form stamp: when the form was shown, so a bot that posts at once is seen -------------


def form_stamp() -> str:
    return signing.TimestampSigner(salt=FORM_STAMP_SALT).sign(secrets.token_hex(4))


@dataclass(frozen=True)
class StampCheck:
    valid: bool
    age: float


def check_stamp(stamp: str) -> StampCheck:
    signer = signing.TimestampSigner(salt=FORM_STAMP_SALT)
    try:
        signer.unsign(stamp, max_age=settings.INTAKE_FORM_MAX_AGE)
        signed_at = signing.b62_decode(stamp.rsplit(":", 2)[1])
    except (signing.BadSignature, ValueError, IndexError):
        return StampCheck(False, 0.0)
    return StampCheck(True, dt.datetime.now(dt.UTC).timestamp() - signed_at)


# --- ALTCHA proof of work ------------------------------------------------------------------------------


def new_challenge() -> dict[str, object]:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)
    challenge = create_challenge_v1(ChallengeOptionsV1(
        hmac_key=settings.ALTCHA_HMAC_KEY, max_number=settings.ALTCHA_MAX_NUMBER, expires=expires,
    ))
    return {"algorithm": challenge.algorithm, "challenge": challenge.challenge, "maxnumber": challenge.max_number,
            "salt": challenge.salt, "signature": challenge.signature}


def solution_valid(payload: str) -> bool:
    """A correct, unexpired solution that has not been used before."""
    if not payload or len(payload) > 2000:
        return False
    try:
        ok, _ = verify_solution_v1(payload, settings.ALTCHA_HMAC_KEY, check_expires=True)
    except Exception:  # noqa: BLE001 - a malformed payload is simply not a solution
        return False
    if not ok:
        return False
    # One use per challenge, however the payload is spelled (key order, spaces, characters base64 skips): the
    # verified signature names the challenge, the payload's bytes do not.
    signature = json.loads(base64.b64decode(payload))["signature"]
    return cache.add(_USED_CHALLENGE.format(signature=signature), 1, timeout=3600)
