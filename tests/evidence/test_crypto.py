"""evidence.crypto (envelope encryption) and evidence.keys (NTD_ENCRYPTION_KEYS). Pure: no database."""

from __future__ import annotations

import base64
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evidence import keys
from evidence.crypto import (
    KEY_SIZE,
    NONCE_SIZE,
    TAG_SIZE,
    WRAPPED_KEY_SIZE,
    DecryptionError,
    KeyEncryptionKey,
    KeyRing,
    data_part_of,
    generate_key,
    key_id_of,
    open_sealed,
    rewrap,
    seal,
)

ROOT = Path(__file__).resolve().parents[2]
AAD = b"reports.report:R-7K3M-QX9P:reporter_contact"
OTHER_AAD = b"reports.report:R-2B8D-LW4N:reporter_contact"
PLAINTEXT = b"reporter@example.org"

OLD = KeyEncryptionKey("old", bytes(range(KEY_SIZE)))
NEW = KeyEncryptionKey("new", bytes(range(100, 100 + KEY_SIZE)))
RING = KeyRing([OLD])
ROTATED = KeyRing([NEW, OLD])  # NEW is current, OLD still opens

# The conftest's autouse fixtures are function-scoped; they do not vary between examples.
property_test = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)


def regions(blob: bytes) -> dict[str, tuple[int, int]]:
    """[start, end) of each field of a version-1 blob, computed independently of the module under test."""
    n = blob[1]
    wrap_nonce = 2 + n
    wrapped = wrap_nonce + NONCE_SIZE
    data_nonce = wrapped + WRAPPED_KEY_SIZE
    ciphertext = data_nonce + NONCE_SIZE
    tag = len(blob) - TAG_SIZE
    return {
        "version": (0, 1),
        "key id length": (1, 2),
        "key id": (2, wrap_nonce),
        "wrap nonce": (wrap_nonce, wrapped),
        "wrapped key": (wrapped, data_nonce - TAG_SIZE),
        "wrapped key tag": (data_nonce - TAG_SIZE, data_nonce),
        "data nonce": (data_nonce, ciphertext),
        "ciphertext": (ciphertext, tag),
        "tag": (tag, len(blob)),
    }


HEADER_REGIONS = ["version", "key id length", "key id", "wrap nonce", "wrapped key", "wrapped key tag"]
DATA_REGIONS = ["data nonce", "ciphertext", "tag"]
ALL_REGIONS = HEADER_REGIONS + DATA_REGIONS


def flip(blob: bytes, index: int, mask: int = 0x01) -> bytes:
    changed = bytearray(blob)
    changed[index] ^= mask
    return bytes(changed)


def entry(key_id: str, secret: bytes) -> str:
    return f"{key_id}:{base64.urlsafe_b64encode(secret).decode()}"


class TestSealAndOpen:
    def test_round_trip(self) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)

        assert open_sealed(blob, aad=AAD, keyring=RING) == PLAINTEXT
        assert PLAINTEXT not in blob

    def test_blob_layout(self) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)

        assert blob[0] == 1
        assert blob[1] == len(b"old") and blob[2:5] == b"old"
        assert len(blob) == 2 + 3 + NONCE_SIZE + WRAPPED_KEY_SIZE + NONCE_SIZE + len(PLAINTEXT) + TAG_SIZE
        assert key_id_of(blob) == "old"

    def test_empty_plaintext_and_empty_aad(self) -> None:
        blob = seal(b"", aad=b"", keyring=RING)

        assert open_sealed(blob, aad=b"", keyring=RING) == b""

    def test_accepts_a_memoryview_from_the_database_driver(self) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)

        assert open_sealed(memoryview(blob), aad=AAD, keyring=RING) == PLAINTEXT
        assert key_id_of(memoryview(blob)) == "old"

    def test_two_seals_of_the_same_plaintext_differ(self) -> None:
        first = seal(PLAINTEXT, aad=AAD, keyring=RING)
        second = seal(PLAINTEXT, aad=AAD, keyring=RING)

        assert first != second
        assert data_part_of(first) != data_part_of(second)
        for name in ("wrap nonce", "wrapped key", "data nonce", "ciphertext"):
            start, end = regions(first)[name]
            assert first[start:end] != second[start:end], name

    @property_test
    @given(plaintext=st.binary(max_size=4096), aad=st.binary(max_size=256))
    def test_round_trip_of_any_bytes(self, plaintext: bytes, aad: bytes) -> None:
        assert open_sealed(seal(plaintext, aad=aad, keyring=RING), aad=aad, keyring=RING) == plaintext


class TestAadBinding:
    def test_another_records_aad_does_not_open_it(self) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)

        with pytest.raises(DecryptionError) as caught:
            open_sealed(blob, aad=OTHER_AAD, keyring=RING)
        assert str(caught.value) == "decryption failed"
        assert caught.value.key_id is None

    def test_no_aad_does_not_open_it(self) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)

        with pytest.raises(DecryptionError):
            open_sealed(blob, aad=b"", keyring=RING)

    @property_test
    @given(plaintext=st.binary(max_size=256), aad=st.binary(max_size=64), other=st.binary(max_size=64))
    def test_any_other_aad_fails(self, plaintext: bytes, aad: bytes, other: bytes) -> None:
        if aad == other:
            return
        blob = seal(plaintext, aad=aad, keyring=RING)
        with pytest.raises(DecryptionError):
            open_sealed(blob, aad=other, keyring=RING)


class TestTampering:
    @pytest.mark.parametrize("region", ALL_REGIONS)
    @pytest.mark.parametrize("end", ["first byte", "last byte"])
    def test_a_flipped_bit_in_each_region_fails(self, region: str, end: str) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)
        start, stop = regions(blob)[region]
        tampered = flip(blob, start if end == "first byte" else stop - 1)

        with pytest.raises(DecryptionError):
            open_sealed(tampered, aad=AAD, keyring=RING)

    @pytest.mark.parametrize("region", HEADER_REGIONS)
    def test_rewrap_refuses_a_tampered_header_or_wrapped_key(self, region: str) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)

        with pytest.raises(DecryptionError):
            rewrap(flip(blob, regions(blob)[region][0]), keyring=ROTATED)

    @pytest.mark.parametrize("region", DATA_REGIONS)
    def test_tampered_data_still_fails_after_rewrap(self, region: str) -> None:
        # rewrap does not read the data part, so it carries the damage over, and opening still catches it
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)
        moved = rewrap(flip(blob, regions(blob)[region][0]), keyring=ROTATED)

        with pytest.raises(DecryptionError):
            open_sealed(moved, aad=AAD, keyring=ROTATED)

    @property_test
    @given(data=st.data(), mask=st.integers(min_value=1, max_value=255))
    def test_any_changed_byte_fails(self, data: st.DataObject, mask: int) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)
        index = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))

        with pytest.raises(DecryptionError):
            open_sealed(flip(blob, index, mask), aad=AAD, keyring=RING)

    @pytest.mark.parametrize("cut", [0, 1, 2, 10, 60, 89, 90, 91])
    def test_truncated_blob_fails(self, cut: int) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)

        with pytest.raises(DecryptionError):
            open_sealed(blob[:cut], aad=AAD, keyring=RING)
        with pytest.raises(DecryptionError):
            open_sealed(blob[:-1], aad=AAD, keyring=RING)

    def test_extended_blob_fails(self) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)

        with pytest.raises(DecryptionError):
            open_sealed(blob + b"\x00", aad=AAD, keyring=RING)

    def test_wrapped_key_is_bound_to_its_key_id(self) -> None:
        # given two ids for the same secret, so only the wrap's associated data tells them apart
        twins = KeyRing([KeyEncryptionKey("ka", OLD.secret), KeyEncryptionKey("kb", OLD.secret)])
        blob = seal(PLAINTEXT, aad=AAD, keyring=twins)
        # when the key id is swapped for the other known id
        moved = blob.replace(b"ka", b"kb", 1)

        # then the wrapped key does not open
        with pytest.raises(DecryptionError) as caught:
            open_sealed(moved, aad=AAD, keyring=twins)
        assert caught.value.key_id is None

    def test_blob_swapped_between_records_fails(self) -> None:
        mine = seal(PLAINTEXT, aad=AAD, keyring=RING)
        seal(b"someone@example.net", aad=OTHER_AAD, keyring=RING)

        with pytest.raises(DecryptionError):
            open_sealed(mine, aad=OTHER_AAD, keyring=RING)

    def test_not_bytes_is_a_type_error(self) -> None:
        with pytest.raises(TypeError):
            open_sealed("text", aad=AAD, keyring=RING)  # type: ignore[arg-type]


class TestKeyIds:
    def test_unknown_key_id_is_named(self) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)

        with pytest.raises(DecryptionError, match="key id 'old' is not in the keyring") as caught:
            open_sealed(blob, aad=AAD, keyring=KeyRing([NEW]))
        assert caught.value.key_id == "old"

    def test_unknown_key_id_is_named_by_rewrap(self) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)

        with pytest.raises(DecryptionError, match="'old'"):
            rewrap(blob, keyring=KeyRing([NEW]))

    def test_a_key_with_the_right_id_but_the_wrong_secret_fails(self) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)
        impostor = KeyRing([KeyEncryptionKey("old", NEW.secret)])

        with pytest.raises(DecryptionError) as caught:
            open_sealed(blob, aad=AAD, keyring=impostor)
        assert caught.value.key_id is None

    def test_garbage_key_id_is_shown_escaped(self) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)
        garbled = blob[:2] + b"\xffld" + blob[5:]

        with pytest.raises(DecryptionError) as caught:
            open_sealed(garbled, aad=AAD, keyring=RING)
        assert caught.value.key_id == "\\xffld"


class TestRotation:
    def test_blob_sealed_under_the_old_key_opens_after_a_new_current_key_is_added(self) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)

        assert open_sealed(blob, aad=AAD, keyring=ROTATED) == PLAINTEXT

    def test_new_blobs_use_the_current_key(self) -> None:
        assert key_id_of(seal(PLAINTEXT, aad=AAD, keyring=ROTATED)) == "new"

    def test_rewrap_moves_the_blob_to_the_current_key(self) -> None:
        # given a blob sealed before the rotation
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)

        # when it is rewrapped, without its aad
        moved = rewrap(blob, keyring=ROTATED)

        # then it names the new key, opens with the same aad, and its data part is byte for byte the same
        assert key_id_of(moved) == "new"
        assert data_part_of(moved) == data_part_of(blob)
        assert moved.endswith(data_part_of(blob))
        assert open_sealed(moved, aad=AAD, keyring=ROTATED) == PLAINTEXT
        # and the old key can be retired
        assert open_sealed(moved, aad=AAD, keyring=KeyRing([NEW])) == PLAINTEXT
        with pytest.raises(DecryptionError):
            open_sealed(moved, aad=OTHER_AAD, keyring=ROTATED)

    def test_rewrap_of_a_blob_already_under_the_current_key_returns_it_unchanged(self) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=ROTATED)

        assert rewrap(blob, keyring=ROTATED) == blob

    def test_rewrap_checks_a_blob_already_under_the_current_key(self) -> None:
        blob = seal(PLAINTEXT, aad=AAD, keyring=ROTATED)
        start, _ = regions(blob)["wrapped key"]

        with pytest.raises(DecryptionError):
            rewrap(flip(blob, start), keyring=ROTATED)

    def test_rewrap_through_two_rotations(self) -> None:
        newest = KeyEncryptionKey("newest", bytes(range(200, 200 + KEY_SIZE)))
        blob = seal(PLAINTEXT, aad=AAD, keyring=RING)

        twice = rewrap(rewrap(blob, keyring=ROTATED), keyring=KeyRing([newest, NEW]))

        assert key_id_of(twice) == "newest"
        assert open_sealed(twice, aad=AAD, keyring=KeyRing([newest])) == PLAINTEXT

    @property_test
    @given(plaintext=st.binary(max_size=1024), aad=st.binary(max_size=128))
    def test_rewrap_keeps_any_blob_openable(self, plaintext: bytes, aad: bytes) -> None:
        moved = rewrap(seal(plaintext, aad=aad, keyring=RING), keyring=ROTATED)

        assert open_sealed(moved, aad=aad, keyring=KeyRing([NEW])) == plaintext


class TestKeyRing:
    def test_first_key_is_current(self) -> None:
        assert ROTATED.current_key_id == "new"
        assert ROTATED.key_ids == ("new", "old")
        assert "old" in ROTATED and "other" not in ROTATED
        assert len(ROTATED) == 2

    def test_repr_shows_no_secret(self) -> None:
        for text in (repr(ROTATED), repr(OLD), str(OLD)):
            assert OLD.secret.hex() not in text and repr(OLD.secret) not in text
        assert "old" in repr(ROTATED)

    def test_is_not_pickled(self) -> None:
        with pytest.raises(TypeError, match="not pickled"):
            pickle.dumps(ROTATED)

    def test_needs_a_key(self) -> None:
        with pytest.raises(ValueError, match="at least one key"):
            KeyRing([])

    def test_refuses_a_duplicate_id(self) -> None:
        with pytest.raises(ValueError, match="appears twice"):
            KeyRing([OLD, KeyEncryptionKey("old", NEW.secret)])

    @pytest.mark.parametrize("secret", [b"", b"x" * 16, b"x" * 31, b"x" * 33])
    def test_key_must_be_32_bytes(self, secret: bytes) -> None:
        with pytest.raises(ValueError, match="exactly 32 bytes"):
            KeyEncryptionKey("k1", secret)

    @pytest.mark.parametrize("key_id", ["", "-k", "k:1", "k,1", "k 1", "k\\1", "é", "k" * 33])
    def test_key_id_is_short_and_plain(self, key_id: str) -> None:
        with pytest.raises(ValueError, match="key id"):
            KeyEncryptionKey(key_id, OLD.secret)

    def test_generated_keys_are_random_and_dated(self) -> None:
        first, second = generate_key(), generate_key()

        assert first.secret != second.secret and first.key_id != second.key_id
        assert len(first.secret) == KEY_SIZE
        assert first.key_id[:8].isdigit() and first.key_id[8] == "-"


class TestParseKeyring:
    def test_first_entry_is_current(self) -> None:
        ring = keys.parse_keyring(f"{entry('new', NEW.secret)},{entry('old', OLD.secret)}")

        assert ring.key_ids == ("new", "old")
        assert open_sealed(seal(PLAINTEXT, aad=AAD, keyring=RING), aad=AAD, keyring=ring) == PLAINTEXT
        assert key_id_of(seal(PLAINTEXT, aad=AAD, keyring=ring)) == "new"

    def test_whitespace_and_missing_padding_are_accepted(self) -> None:
        unpadded = base64.urlsafe_b64encode(NEW.secret).decode().rstrip("=")

        ring = keys.parse_keyring(f"  new:{unpadded} ,\n old : {base64.urlsafe_b64encode(OLD.secret).decode()}\n")

        assert ring.key_ids == ("new", "old")

    def test_format_key_round_trips(self) -> None:
        key = generate_key("k2026")

        ring = keys.parse_keyring(keys.format_key(key))

        assert ring.current_key_id == "k2026"
        blob = seal(PLAINTEXT, aad=AAD, keyring=ring)
        assert open_sealed(blob, aad=AAD, keyring=KeyRing([key])) == PLAINTEXT

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("", "NTD_ENCRYPTION_KEYS is empty"),
            ("  \n", "NTD_ENCRYPTION_KEYS is empty"),
            (f"{entry('a', OLD.secret)},", "entry 2 is empty"),
            (f"{entry('a', OLD.secret)},,{entry('b', NEW.secret)}", "entry 2 is empty"),
            (base64.urlsafe_b64encode(OLD.secret).decode(), "entry 1 is not of the form 'keyid:base64url'"),
            ("a:", "entry 1 is not of the form"),
            (f":{base64.urlsafe_b64encode(OLD.secret).decode()}", "entry 1 is not of the form"),
            (entry("bad id", OLD.secret), "key id 'bad id' must be 1 to 32 characters"),
            (entry("k" * 33, OLD.secret), "must be 1 to 32 characters"),
            (f"{entry('a', OLD.secret)},{entry('a', NEW.secret)}", "entry 2: key id 'a' is already used by entry 1"),
            (f"{entry('a', OLD.secret)},{entry('b', OLD.secret)}", "key 'b' has the same secret as key 'a'"),
            ("a:not*base64!", "entry 1 \\(key id 'a'\\): the secret is not base64url"),
            ("a:" + base64.b64encode(b"\xfb" * 32).decode(), "standard base64: use the URL-safe alphabet"),
            ("a:" + base64.urlsafe_b64encode(b"x" * 32).decode()[:-3], "not valid base64url"),
            (entry("a", b"x" * 16), "the secret is 16 bytes, it must be 32"),
            (entry("a", b"x" * 64), "the secret is 64 bytes, it must be 32"),
        ],
    )
    def test_errors_are_clear(self, text: str, message: str) -> None:
        with pytest.raises(keys.KeyConfigError, match=message):
            keys.parse_keyring(text)

    def test_errors_never_show_the_secret(self) -> None:
        secret_text = base64.urlsafe_b64encode(OLD.secret).decode()
        for text in (f"a:{secret_text},a:{secret_text}", f"a:{secret_text},b:{secret_text}", f"a:{secret_text}$",
                     f"a:{secret_text[:-4]}", f"bad id:{secret_text}"):
            with pytest.raises(keys.KeyConfigError) as caught:
                keys.parse_keyring(text)
            assert secret_text.rstrip("=")[:10] not in str(caught.value)

    def test_config_error_is_a_value_error(self) -> None:
        assert issubclass(keys.KeyConfigError, ValueError)


class TestKeysFromEnvironment:
    def test_missing_variable_is_named_even_with_secret_key_set(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # given a process that has a SECRET_KEY but no encryption keys
        monkeypatch.setenv("SECRET_KEY", "test-only-secret-key-not-for-production-0123456789abcdef")
        monkeypatch.delenv("NTD_ENCRYPTION_KEYS", raising=False)

        # then no keyring is derived from SECRET_KEY: loading one fails and says what is missing
        with pytest.raises(keys.KeyConfigError, match="NTD_ENCRYPTION_KEYS is missing") as caught:
            keys.keyring_from_env()
        assert "never derived from SECRET_KEY" in str(caught.value)
        assert "python -m evidence.keys" in str(caught.value)

    def test_django_process_without_keys_refuses_even_with_secret_key_set(
        self, settings: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # given Django settings with a SECRET_KEY, and NTD_ENCRYPTION_KEYS neither in the settings nor the environment
        assert settings.SECRET_KEY
        if hasattr(settings, "NTD_ENCRYPTION_KEYS"):
            del settings.NTD_ENCRYPTION_KEYS
        monkeypatch.delenv("NTD_ENCRYPTION_KEYS", raising=False)

        with pytest.raises(keys.KeyConfigError, match="NTD_ENCRYPTION_KEYS is missing"):
            keys.keyring_from_settings()

    def test_settings_value_comes_first(self, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("NTD_ENCRYPTION_KEYS", entry("fromenv", OLD.secret))
        settings.NTD_ENCRYPTION_KEYS = f"{entry('fromsettings', NEW.secret)},{entry('old', OLD.secret)}"

        assert keys.keyring_from_settings().key_ids == ("fromsettings", "old")

    def test_environment_is_used_when_settings_do_not_say(self, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        if hasattr(settings, "NTD_ENCRYPTION_KEYS"):
            del settings.NTD_ENCRYPTION_KEYS
        monkeypatch.setenv("NTD_ENCRYPTION_KEYS", entry("fromenv", OLD.secret))

        assert keys.keyring_from_settings().current_key_id == "fromenv"

    def test_empty_variable_is_an_error(self) -> None:
        with pytest.raises(keys.KeyConfigError, match="NTD_ENCRYPTION_KEYS is empty"):
            keys.keyring_from_env({"NTD_ENCRYPTION_KEYS": "", "SECRET_KEY": "x" * 50})

    def test_keyring_does_not_depend_on_secret_key(self) -> None:
        value = f"{entry('new', NEW.secret)},{entry('old', OLD.secret)}"
        sealed = seal(PLAINTEXT, aad=AAD, keyring=keys.keyring_from_env({"NTD_ENCRYPTION_KEYS": value,
                                                                        "SECRET_KEY": "a" * 50}))

        ring = keys.keyring_from_env({"NTD_ENCRYPTION_KEYS": value, "SECRET_KEY": "b" * 50})

        assert open_sealed(sealed, aad=AAD, keyring=ring) == PLAINTEXT

    def test_the_same_value_is_parsed_once(self) -> None:
        value = entry("once", OLD.secret)

        assert keys.keyring_from_env({"NTD_ENCRYPTION_KEYS": value}) is keys.keyring_from_env(
            {"NTD_ENCRYPTION_KEYS": value})


class TestCommandLine:
    def test_prints_a_fresh_entry_that_parses(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert keys.main([]) == 0
        first = capsys.readouterr().out.strip()
        keys.main([])
        second = capsys.readouterr().out.strip()

        assert first != second
        assert "," not in first and first.count(":") == 1
        assert len(keys.parse_keyring(first)) == 1

    def test_key_id_option(self, capsys: pytest.CaptureFixture[str]) -> None:
        keys.main(["--key-id", "k2026a"])

        assert keys.parse_keyring(capsys.readouterr().out).current_key_id == "k2026a"

    def test_bad_key_id_is_refused(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as caught:
            keys.main(["--key-id", "no good"])
        assert caught.value.code == 2
        assert "key id" in capsys.readouterr().err

    def test_runs_as_a_module_without_django(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "NTD_ENCRYPTION_KEYS"}}
        script = ("import sys, evidence.crypto, evidence.keys;"
                  "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))")
        imported = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                                  check=True, timeout=60)
        assert imported.stdout.strip() == "[]"

        line = subprocess.run([sys.executable, "-m", "evidence.keys"], cwd=ROOT, env=env, capture_output=True,
                              text=True, check=True, timeout=60)
        assert keys.parse_keyring(line.stdout).current_key_id
        assert line.stderr == ""
