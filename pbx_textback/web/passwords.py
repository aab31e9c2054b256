"""Password hashes for the inbox's accounts (argon2id, argon2-cffi's defaults)."""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_ph = PasswordHasher()
MIN_LENGTH = 8
DUMMY_HASH = _ph.hash("no such user: never matches a real sign-in")


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"the password is {len(password)} characters; at least {MIN_LENGTH}")
    return _ph.hash(password)


def verify(stored: str, password: str) -> bool:
    try:
        return _ph.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
