"""Envelope encryption: AES-256-GCM under a fresh data key per record, the data key wrapped by a key-encryption key.

No Django imports: this module is pure and is shared by the public report form (the reporter's e-mail address)
and the evidence vault. Keys come from `evidence.keys` (the environment), never from SECRET_KEY.

Blob format, version 1 (all sizes in bytes)::

    size      field
    1         version, 0x01
    1         n, the length of the key id
    n         key id (ASCII) of the key-encryption key (KEK) that wraps the data key
    12        wrap nonce
    48        wrapped data key: AES-GCM(KEK) of the 32-byte data key, 32 + 16-byte tag
    12        data nonce
    len + 16  ciphertext + 16-byte tag: AES-GCM(data key) of the plaintext

The wrap is authenticated with associated data b"ntd/wrap" + version + n + key id, so a wrapped key cannot be
moved under another key id or format version. The data is authenticated with the caller's `aad` alone, which
binds the record (b"reports.report:R-7K3M-QX9P:reporter_contact"): a blob copied to another record does not open.
Because the data part does not depend on the KEK, `rewrap` rotates a record to the current KEK without the aad
and without touching the ciphertext; crypto-shredding a record means deleting its blob (or its KEK for all).

Every failure to open (wrong aad, unknown key id, malformed or altered blob) raises `DecryptionError`; its message
says nothing more than "decryption failed", except that an unknown key id is named so an operator can tell a
missing key from damaged data.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "VERSION",
    "DecryptionError",
    "KeyEncryptionKey",
    "KeyRing",
    "data_part_of",
    "generate_key",
    "key_id_of",
    "open_sealed",
    "rewrap",
    "seal",
]

VERSION = 1
KEY_SIZE = 32  # AES-256, for both the data keys and the KEKs
NONCE_SIZE = 12  # 96-bit GCM nonce
TAG_SIZE = 16
WRAPPED_KEY_SIZE = KEY_SIZE + TAG_SIZE
KEY_ID_MAX = 32
KEY_ID_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{KEY_ID_MAX - 1}}}")

_VERSION_BYTE = bytes([VERSION])
_WRAP_AAD_PREFIX = b"ntd/wrap"
# Smallest possible blob: version, key id length, a one-byte key id, wrap nonce and key, data nonce and tag.
_MIN_SIZE = 2 + 1 + NONCE_SIZE + WRAPPED_KEY_SIZE + NONCE_SIZE + TAG_SIZE


class DecryptionError(Exception):
    """A blob could not be opened. `key_id` is set only when the blob names a key the keyring does not hold."""

    def __init__(self, message: str = "decryption failed", *, key_id: str | None = None) -> None:
        super().__init__(message)
        self.key_id = key_id


@dataclass(frozen=True, slots=True)
class KeyEncryptionKey:
    """A KEK: a short public id (stored in every blob it wraps) and 32 secret random bytes."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, str) or not KEY_ID_PATTERN.fullmatch(self.key_id):
            raise ValueError(
                f"key id {self.key_id!r} must be 1 to {KEY_ID_MAX} characters of A-Z a-z 0-9 . _ - "
                "and start with a letter or digit"
            )
        if not isinstance(self.secret, bytes) or len(self.secret) != KEY_SIZE:
            raise ValueError(f"key {self.key_id!r} must be exactly {KEY_SIZE} bytes")


def generate_key(key_id: str | None = None) -> KeyEncryptionKey:
    """A fresh KEK from the operating system's CSPRNG; the default id is the UTC date and a random suffix."""
    if key_id is None:
        key_id = f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
    return KeyEncryptionKey(key_id, secrets.token_bytes(KEY_SIZE))


class _Kek:
    """What the keyring keeps per KEK: the prepared cipher and the header that blobs under it start with."""

    __slots__ = ("aead", "header", "wrap_aad")

    def __init__(self, key: KeyEncryptionKey) -> None:
        kid = key.key_id.encode("ascii")
        self.header = _VERSION_BYTE + bytes([len(kid)]) + kid
        self.wrap_aad = _WRAP_AAD_PREFIX + self.header
        self.aead = AESGCM(key.secret)


class KeyRing:
    """The KEKs a process may use. The first key is current (it wraps new data keys); all of them unwrap.

    Rotation without downtime: deploy a ring with the new key first and the old ones after it, rewrap the stored
    blobs (`rewrap`), then drop the old key once no blob names it (`key_id_of`).
    """

    __slots__ = ("_current", "_keks", "_key_ids")

    def __init__(self, keys: Iterable[KeyEncryptionKey]) -> None:
        keks: dict[str, _Kek] = {}
        for key in keys:
            if not isinstance(key, KeyEncryptionKey):
                raise TypeError(f"KeyRing takes KeyEncryptionKey objects, not {type(key).__name__}")
            if key.key_id in keks:
                raise ValueError(f"key id {key.key_id!r} appears twice in the keyring")
            keks[key.key_id] = _Kek(key)
        if not keks:
            raise ValueError("a keyring needs at least one key")
        self._keks = keks
        self._key_ids = tuple(keks)
        self._current = keks[self._key_ids[0]]

    @property
    def current_key_id(self) -> str:
        return self._key_ids[0]

    @property
    def key_ids(self) -> tuple[str, ...]:
        """All key ids, the current one first."""
        return self._key_ids

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keks

    def __iter__(self) -> Iterator[str]:
        return iter(self._key_ids)

    def __len__(self) -> int:
        return len(self._key_ids)

    def __repr__(self) -> str:  # never the secrets
        return f"KeyRing(current={self.current_key_id!r}, key_ids={list(self._key_ids)!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a KeyRing holds secrets and is not pickled; load it from the environment in each process")


def seal(plaintext: bytes, *, aad: bytes, keyring: KeyRing) -> bytes:
    """Encrypt `plaintext` under a fresh data key bound to `aad`, the data key wrapped by the current KEK."""
    kek = keyring._current
    material = os.urandom(KEY_SIZE + 2 * NONCE_SIZE)  # one syscall: data key, wrap nonce, data nonce
    data_key = material[:KEY_SIZE]
    wrap_nonce = material[KEY_SIZE : KEY_SIZE + NONCE_SIZE]
    data_nonce = material[KEY_SIZE + NONCE_SIZE :]
    wrapped = kek.aead.encrypt(wrap_nonce, data_key, kek.wrap_aad)
    ciphertext = AESGCM(data_key).encrypt(data_nonce, plaintext, aad)
    return b"".join((kek.header, wrap_nonce, wrapped, data_nonce, ciphertext))


def open_sealed(blob: bytes | memoryview, *, aad: bytes, keyring: KeyRing) -> bytes:
    """The plaintext of a blob made by `seal` with the same `aad`, or DecryptionError."""
    blob = _as_bytes(blob)
    kek, data_key, offset = _unwrap(blob, keyring)
    data_nonce = blob[offset : offset + NONCE_SIZE]
    try:
        return AESGCM(data_key).decrypt(data_nonce, blob[offset + NONCE_SIZE :], aad)
    except InvalidTag:
        raise DecryptionError() from None


def rewrap(blob: bytes | memoryview, *, keyring: KeyRing) -> bytes:
    """The same blob with its data key wrapped by the keyring's current KEK; the data part is copied unchanged.

    Needs no aad. A blob already under the current key is checked (its wrapped key must open) and returned as is,
    so a rotation job can be re-run safely.
    """
    blob = _as_bytes(blob)
    kek, data_key, offset = _unwrap(blob, keyring)
    current = keyring._current
    if kek is current:
        return blob
    wrap_nonce = os.urandom(NONCE_SIZE)
    wrapped = current.aead.encrypt(wrap_nonce, data_key, current.wrap_aad)
    return b"".join((current.header, wrap_nonce, wrapped, blob[offset:]))


def key_id_of(blob: bytes | memoryview) -> str:
    """The id of the KEK that wraps this blob's data key (read from the header; nothing is decrypted)."""
    kid, _ = _parse_header(_as_bytes(blob))
    return kid.decode("ascii", "backslashreplace")


def data_part_of(blob: bytes | memoryview) -> bytes:
    """The data nonce, ciphertext and tag: the part of a blob that rewrap never changes."""
    blob = _as_bytes(blob)
    _, offset = _parse_header(blob)
    return blob[offset + NONCE_SIZE + WRAPPED_KEY_SIZE :]


def _as_bytes(blob: bytes | bytearray | memoryview) -> bytes:
    """Database drivers may hand back a memoryview for a binary column."""
    if type(blob) is bytes:
        return blob
    if isinstance(blob, bytes | bytearray | memoryview):
        return bytes(blob)
    raise TypeError(f"a sealed blob is bytes, not {type(blob).__name__}")


def _parse_header(blob: bytes) -> tuple[bytes, int]:
    """(key id, offset of the wrap nonce), or DecryptionError for anything that is not a version-1 blob."""
    if len(blob) < _MIN_SIZE or blob[0] != VERSION:
        raise DecryptionError()
    kid_len = blob[1]
    offset = 2 + kid_len
    if kid_len == 0 or len(blob) < offset + NONCE_SIZE + WRAPPED_KEY_SIZE + NONCE_SIZE + TAG_SIZE:
        raise DecryptionError()
    return blob[2:offset], offset


def _unwrap(blob: bytes, keyring: KeyRing) -> tuple[_Kek, bytes, int]:
    """(the KEK, the data key, offset of the data nonce)."""
    kid, offset = _parse_header(blob)
    # Key ids are printable ASCII without a backslash, so only the exact bytes of a known id find its key.
    key_id = kid.decode("ascii", "backslashreplace")
    kek = keyring._keks.get(key_id)
    if kek is None:
        raise DecryptionError(f"decryption failed: key id {key_id!r} is not in the keyring", key_id=key_id)
    wrap_end = offset + NONCE_SIZE + WRAPPED_KEY_SIZE
    try:
        data_key = kek.aead.decrypt(blob[offset : offset + NONCE_SIZE], blob[offset + NONCE_SIZE : wrap_end],
                                    kek.wrap_aad)
    except InvalidTag:
        raise DecryptionError() from None
    return kek, data_key, wrap_end
