"""People: who may do what on the line. Pure rules, no I/O: passphrase hashing and policy
(``passphrases``), roles, the action table and separation of duties (``roles``), and when a
login ends (``shifts``). The journal keeps the accounts; the service layer ties them together.
"""

from __future__ import annotations

from personalization.people.errors import PeopleError, PolicyViolation, WrongPassphrase
from personalization.people.passphrases import (
    check_passphrase,
    hash_passphrase,
    needs_rehash,
    spend,
    verify_passphrase,
)
from personalization.people.roles import (
    ACTIONS,
    Action,
    Person,
    check_name,
    check_roles,
    may,
    refusal,
)
from personalization.people.shifts import local, shift_end

__all__ = [
    "ACTIONS",
    "Action",
    "PeopleError",
    "Person",
    "PolicyViolation",
    "WrongPassphrase",
    "check_name",
    "check_passphrase",
    "check_roles",
    "hash_passphrase",
    "local",
    "may",
    "needs_rehash",
    "refusal",
    "shift_end",
    "spend",
    "verify_passphrase",
]
