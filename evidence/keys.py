"""Key-encryption keys from the environment: `NTD_ENCRYPTION_KEYS`, never derived from SECRET_KEY.

Format: comma-separated `keyid:base64url` entries, each secret 32 random bytes; the FIRST entry is the current
key (it wraps new data keys), the others still open what they wrapped until every blob has been rewrapped::

    NTD_ENCRYPTION_KEYS=20260301-9f2c1a:3q2-7w...,20250301-04bd7e:Xk1c...

Make a new entry with `python -m evidence.keys` and put it first. `parse_keyring` and `keyring_from_env` are
pure; `keyring_from_settings` is what the Django app calls (it imports Django lazily, so this module and
`python -m evidence.keys` work without it).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import re
import sys
from collections.abc import Mapping, Sequence
from functools import lru_cache

from evidence.crypto import KEY_ID_MAX, KEY_ID_PATTERN, KEY_SIZE, KeyEncryptionKey, KeyRing, generate_key

__all__ = ["ENV_VAR", "KeyConfigError", "format_key", "keyring_from_env", "keyring_from_settings", "parse_keyring"]

ENV_VAR = "NTD_ENCRYPTION_KEYS"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")


class KeyConfigError(ValueError):
    """NTD_ENCRYPTION_KEYS is missing or wrong. Messages name entries and key ids, never secret material."""


def parse_keyring(text: str) -> KeyRing:
    """A KeyRing from `keyid:base64url,...`; the first entry is current. Whitespace around entries is ignored."""
    if not text or not text.strip():
        raise KeyConfigError(f"{ENV_VAR} is empty: it needs at least one 'keyid:base64url' entry "
                             "(make one with `python -m evidence.keys`)")
    keys: list[KeyEncryptionKey] = []
    seen_ids: dict[str, int] = {}
    seen_secrets: dict[bytes, str] = {}
    for number, entry in enumerate(text.split(","), start=1):
        where = f"{ENV_VAR} entry {number}"
        entry = entry.strip()
        if not entry:
            raise KeyConfigError(f"{where} is empty (a stray comma?)")
        key_id, sep, encoded = entry.partition(":")
        key_id, encoded = key_id.strip(), encoded.strip()
        if not sep or not key_id or not encoded:
            raise KeyConfigError(f"{where} is not of the form 'keyid:base64url'")
        if not KEY_ID_PATTERN.fullmatch(key_id):
            raise KeyConfigError(f"{where}: key id {key_id!r} must be 1 to {KEY_ID_MAX} characters of "
                                 "A-Z a-z 0-9 . _ - and start with a letter or digit")
        if key_id in seen_ids:
            raise KeyConfigError(f"{where}: key id {key_id!r} is already used by entry {seen_ids[key_id]}")
        secret = _decode_secret(encoded, f"{where} (key id {key_id!r})")
        if secret in seen_secrets:
            raise KeyConfigError(f"{where}: key {key_id!r} has the same secret as key {seen_secrets[secret]!r}")
        seen_ids[key_id] = number
        seen_secrets[secret] = key_id
        keys.append(KeyEncryptionKey(key_id, secret))
    return KeyRing(keys)


def _decode_secret(encoded: str, where: str) -> bytes:
    if not _BASE64URL.fullmatch(encoded):
        hint = ""
        if re.search(r"[+/]", encoded):
            hint = " (it has + or / of standard base64: use the URL-safe alphabet, - and _)"
        raise KeyConfigError(f"{where}: the secret is not base64url{hint}")
    unpadded = encoded.rstrip("=")
    try:
        secret = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError):
        raise KeyConfigError(f"{where}: the secret is not valid base64url") from None
    if len(secret) != KEY_SIZE:
        raise KeyConfigError(f"{where}: the secret is {len(secret)} bytes, it must be {KEY_SIZE} "
                             "(make one with `python -m evidence.keys`)")
    return secret


def keyring_from_env(environ: Mapping[str, str] | None = None) -> KeyRing:
    """The keyring from NTD_ENCRYPTION_KEYS. There is deliberately no fallback to SECRET_KEY or anything else."""
    environ = os.environ if environ is None else environ
    return _keyring_for(environ.get(ENV_VAR))


def keyring_from_settings() -> KeyRing:
    """The keyring of this Django process: `settings.NTD_ENCRYPTION_KEYS` if the settings define it (so a test
    can override it), else the environment variable. Parsed once per distinct value; no fallback to SECRET_KEY.
    """
    from django.conf import settings  # lazy: keep this module importable without Django

    text = getattr(settings, ENV_VAR, None)
    return _keyring_for(os.environ.get(ENV_VAR) if text is None else text)


@lru_cache(maxsize=4)
def _keyring_for(text: str | None) -> KeyRing:
    if text is None:
        raise KeyConfigError(f"{ENV_VAR} is missing: set it to 'keyid:base64url' (make one with "
                             "`python -m evidence.keys`); encryption keys are never derived from SECRET_KEY")
    return parse_keyring(text)


def format_key(key: KeyEncryptionKey) -> str:
    """The `keyid:base64url` entry for a key, as NTD_ENCRYPTION_KEYS expects it."""
    return f"{key.key_id}:{base64.urlsafe_b64encode(key.secret).rstrip(b'=').decode('ascii')}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evidence.keys",
        description=f"Print a new key-encryption key as a 'keyid:base64url' entry for {ENV_VAR}. "
                    "Put it FIRST (it becomes the current key) and keep the old entries after it until "
                    "every record has been rewrapped.",
    )
    parser.add_argument("--key-id", help="the key id (default: today's UTC date and a random suffix)")
    args = parser.parse_args(argv)
    try:
        key = generate_key(args.key_id)
    except ValueError as exc:
        parser.error(str(exc))
    print(format_key(key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
