"""Virtual API key secrets: generation, hashing, and reading the public id back out.

A key looks like `crk_<id>_<secret>`: `id` is 10 characters, public, and identifies the key in
listings and the ledger; `secret` is 32 characters from a CSPRNG (about 190 bits). Only the
SHA-256 of the whole key is stored: a fast hash is right for high-entropy secrets (there is
nothing to brute-force), and comparison is constant-time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

PREFIX = "crk_"
_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 10
SECRET_LENGTH = 32


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_key() -> tuple[str, str, str]:
    """A fresh key: (key id, the whole key to show once, its hash to store)."""
    key_id = _random(ID_LENGTH)
    key = f"{PREFIX}{key_id}_{_random(SECRET_LENGTH)}"
    return key_id, key, hash_key(key)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(presented: str) -> str | None:
    """The public id inside a presented key, or None if it is not shaped like one of ours.
    Does no lookup and reveals nothing about whether the key exists."""
    if (
        not presented.startswith(PREFIX)
        or len(presented) != len(PREFIX) + ID_LENGTH + 1 + SECRET_LENGTH
    ):
        return None
    key_id = presented[len(PREFIX) : len(PREFIX) + ID_LENGTH]
    return key_id if presented[len(PREFIX) + ID_LENGTH] == "_" else None


def matches(presented: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored hash."""
    return hmac.compare_digest(hash_key(presented), stored_hash)
