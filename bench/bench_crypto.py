"""Envelope encryption (evidence.crypto) against bare AES-GCM, in the same run, pure CPU (no database).

    .venv/bin/python bench/bench_crypto.py [--seconds 1.0] [--size 1024]

Prints operations per second for: the raw baseline (one fixed AESGCM key, encrypt + decrypt of a 1 KiB
payload), seal + open of the same payload, seal alone, and rewrap, with each ratio to its baseline.
DESIGN targets: the vault stores >= 5,000 records/s (so sealing must leave most of the budget to the database)
and rewraps 1 million records in < 60 s (>= ~17,000 rewraps/s of CPU). Each figure is the best of 5 rounds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from evidence.crypto import KeyRing, generate_key, open_sealed, rewrap, seal  # noqa: E402

ROUNDS = 5
BATCH = 1000
VAULT_TARGET = 5_000  # records/s encrypted and stored
REWRAP_RECORDS = 1_000_000
REWRAP_SECONDS = 60


def rate(run_batch: Callable[[], None], seconds: float) -> float:
    """Best of ROUNDS rounds of operations per second; `run_batch` does BATCH operations."""
    run_batch()  # warm up
    best = 0.0
    for _ in range(ROUNDS):
        done = 0
        start = time.perf_counter()
        deadline = start + seconds / ROUNDS
        while True:
            run_batch()
            done += BATCH
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, done / (now - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement (default 1.0)")
    parser.add_argument("--size", type=int, default=1024, help="payload size in bytes (default 1024)")
    args = parser.parse_args()

    payload = os.urandom(args.size)
    aads = [f"evidence.record:{n}:payload".encode() for n in range(BATCH)]
    old, new = generate_key("bench-old"), generate_key("bench-new")
    ring, rotated = KeyRing([old]), KeyRing([new, old])
    blobs = [seal(payload, aad=aad, keyring=ring) for aad in aads]

    raw = AESGCM(AESGCM.generate_key(bit_length=256))
    nonce = os.urandom(12)  # the baseline re-uses one nonce: it measures speed only and never leaves this process
    raw_sealed = raw.encrypt(nonce, payload, aads[0])
    wrapped_key = raw.encrypt(nonce, os.urandom(32), b"wrap")

    def raw_encrypt_decrypt() -> None:
        for aad in aads:
            raw.decrypt(nonce, raw.encrypt(nonce, payload, aad), aad)

    def raw_encrypt() -> None:
        for aad in aads:
            raw.encrypt(nonce, payload, aad)

    def raw_decrypt() -> None:
        for _ in aads:
            raw.decrypt(nonce, raw_sealed, aads[0])

    def raw_key_unwrap_wrap() -> None:
        for _ in aads:
            raw.encrypt(nonce, raw.decrypt(nonce, wrapped_key, b"wrap"), b"wrap")

    def seal_open() -> None:
        for aad in aads:
            open_sealed(seal(payload, aad=aad, keyring=ring), aad=aad, keyring=ring)

    def seal_only() -> None:
        for aad in aads:
            seal(payload, aad=aad, keyring=ring)

    def open_only() -> None:
        for blob, aad in zip(blobs, aads, strict=True):
            open_sealed(blob, aad=aad, keyring=ring)

    def rewrap_all() -> None:
        for blob in blobs:
            rewrap(blob, keyring=rotated)

    assert raw.decrypt(nonce, raw_sealed, aads[0]) == payload
    assert open_sealed(rewrap(blobs[0], keyring=rotated), aad=aads[0], keyring=rotated) == payload

    print(f"bench_crypto: {args.size}-byte payloads, AES-256-GCM, best of {ROUNDS} rounds in {args.seconds:g} s, "
          f"cryptography on Python {sys.version.split()[0]}")
    figures = {
        "raw encrypt+decrypt": rate(raw_encrypt_decrypt, args.seconds),
        "raw encrypt": rate(raw_encrypt, args.seconds),
        "raw decrypt": rate(raw_decrypt, args.seconds),
        "raw 32-byte unwrap+wrap": rate(raw_key_unwrap_wrap, args.seconds),
        "seal+open": rate(seal_open, args.seconds),
        "seal": rate(seal_only, args.seconds),
        "open": rate(open_only, args.seconds),
        "rewrap": rate(rewrap_all, args.seconds),
    }
    baseline_of = {"seal+open": "raw encrypt+decrypt", "seal": "raw encrypt", "open": "raw decrypt",
                   "rewrap": "raw 32-byte unwrap+wrap"}
    for name, per_second in figures.items():
        base = baseline_of.get(name)
        ratio = f"  {per_second / figures[base]:.2f}x of {base}" if base else ""
        print(f"  {name:<24} {per_second:>11,.0f}/s  {1e6 / per_second:7.2f} us{ratio}")

    seal_rate = figures["seal"]
    seal_share = VAULT_TARGET / seal_rate
    print(f"vault target {VAULT_TARGET:,} records/s: sealing uses {seal_share:.1%} of one core at that rate "
          f"({'ok' if seal_share < 0.25 else 'TOO SLOW'})")
    rewrap_rate = figures["rewrap"]
    seconds = REWRAP_RECORDS / rewrap_rate
    needed = REWRAP_RECORDS / REWRAP_SECONDS
    print(f"rotation target {REWRAP_RECORDS:,} rewraps < {REWRAP_SECONDS} s (>= {needed:,.0f}/s): "
          f"{seconds:.1f} s of CPU ({'ok' if rewrap_rate >= needed else 'TOO SLOW'})")


if __name__ == "__main__":
    main()
