"""Passphrases: Argon2id hashes (PHC strings) at the OWASP parameters, and their policy.

OWASP Password Storage Cheat Sheet (Argon2id): m = 19 MiB (19456 KiB), t = 2, p = 1;
RFC 9106 §3.1: salt 16 bytes, tag 32 bytes. A hash made with other parameters still
verifies, and :func:`needs_rehash` says to store a new one at the next login.

Passphrases are NFC-normalized first: Vietnamese input methods send the same letters
composed or decomposed (``ế`` as one code point or as ``e`` + two combining marks).
"""

from __future__ import annotations

import unicodedata

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from personalization.people.errors import PolicyViolation, WrongPassphrase

MEMORY_KIB = 19456
TIME_COST = 2
PARALLELISM = 1
MIN_LENGTH = 12
MAX_LENGTH = 1024  # bounds the work one attempt can ask of the hash
_HASHER = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM,
                         hash_len=32, salt_len=16, type=Type.ID)
# A hash at the same parameters of a passphrase no account has: an unknown account name
# costs the same work as a known one (its passphrase is verified against this).
ABSENT = ("$argon2id$v=19$m=19456,t=2,p=1$8HtSQV79gew3B1LdnDYVZA$"
          "qJ6oR99xq0bgKApjw+f2EKzZUDMzd1A2/w/SQGtVRaQ")


def normalized(passphrase: str) -> str:
    """The passphrase as it is hashed (Unicode NFC)."""
    return unicodedata.normalize("NFC", passphrase)


def hash_passphrase(passphrase: str) -> str:
    """An Argon2id PHC string of ``passphrase``, with a fresh random salt."""
    return _HASHER.hash(normalized(passphrase))


def verify_passphrase(phc: str, passphrase: str) -> None:
    """Return when ``passphrase`` matches ``phc``; raise :class:`WrongPassphrase` otherwise
    (also for a hash that is not one: a damaged row refuses, it never lets in)."""
    try:
        _HASHER.verify(phc, normalized(passphrase))
    except (VerificationError, InvalidHashError) as exc:
        raise WrongPassphrase from exc


def spend(passphrase: str) -> None:
    """The work of a verification, for a name without an account; always refuses."""
    verify_passphrase(ABSENT, passphrase)
    raise WrongPassphrase  # even the one passphrase that matches ABSENT


def needs_rehash(phc: str) -> bool:
    """True when ``phc`` was made with other parameters than today's."""
    return _HASHER.check_needs_rehash(phc)


def check_passphrase(name: str, passphrase: str) -> str:
    """``passphrase`` normalized, or :class:`PolicyViolation`: at least 12 characters (NIST
    SP 800-63B §5.1.1.2 asks 8; a shared factory floor asks more), at most 1024, and not the
    account's own name."""
    text = normalized(passphrase)
    if len(text) < MIN_LENGTH:
        raise PolicyViolation("passphrase_short",
                              f"a passphrase needs at least {MIN_LENGTH} characters")
    if len(text) > MAX_LENGTH:
        raise PolicyViolation("passphrase_long",
                              f"a passphrase has at most {MAX_LENGTH} characters")
    if text.strip().casefold() == unicodedata.normalize("NFC", name).casefold():
        raise PolicyViolation("passphrase_is_name", "a passphrase must not be the account name")
    return text
