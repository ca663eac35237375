"""Short, unguessable references that are easy to read aloud: R-7K3M-QX9P (40 random bits)."""

import hashlib
import secrets

# Crockford's base32: no I, L, O or U, so nothing reads as another character or spells a word.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_reference(prefix: str) -> str:
    bits = int.from_bytes(secrets.token_bytes(5))  # 40 bits, eight characters of five bits each
    chars = "".join(ALPHABET[(bits >> shift) & 31] for shift in range(35, -1, -5))
    return f"{prefix}-{chars[:4]}-{chars[4:]}"


def clean_reference(text: str) -> str:
    """What a person typed or read aloud, made comparable: upper case, O→0, I/L→1, dashes in place."""
    text = text.strip().upper().replace("O", "0").replace("I", "1").replace("L", "1").replace(" ", "")
    text = text.replace("-", "")
    if len(text) == 9 and text[0].isalpha():
        return f"{text[0]}-{text[1:5]}-{text[5:]}"
    return text


def status_secret_digest(secret: str) -> str:
    """What is stored of an identified reporter's status code: only its digest."""
    return hashlib.sha256(f"ntd-report-status/v1:{secret}".encode()).hexdigest()
