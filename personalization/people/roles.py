"""Roles and what each may do: one table of actions, the roles allowed each, and the words a
refusal uses. Separation of duties (PCI Card Production, Logical Security: dual control and
least privilege): an admin manages accounts and holds no other role.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import cast

from personalization.config import ROLES, Role
from personalization.people.errors import PeopleError, PolicyViolation

__all__ = ["ACTIONS", "Action", "Person", "check_name", "check_roles", "may", "refusal"]


@dataclass(frozen=True, slots=True)
class Action:
    """Who may do an action, and the action in words (``<who> may not <does>``)."""

    roles: frozenset[Role]
    does: str


def _action(does: str, *roles: Role) -> Action:
    return Action(frozenset(roles), does)


ACTIONS: Mapping[str, Action] = MappingProxyType({
    "applications.read": _action("read applications' personal data", "operator", "qa"),
    "batch.create": _action("create batches", "operator"),
    "batch.run": _action("run batches", "operator"),
    "batch.control": _action("pause, resume or stop batches", "operator"),
    "batch.results": _action("send issuance results to the registry", "operator"),
    "line.up": _action("start the line's machines", "operator"),
    "line.down": _action("stop the line's machines", "operator"),
    "line.abandon": _action("declare a line's machines emptied", "operator"),
    "alarm.clear": _action("clear alarms", "operator"),
    "stock.reconcile": _action("reconcile card stock", "operator"),
    "printers.manage": _action("drive the printers", "operator"),
    "journal.purge": _action("purge personal data", "operator"),
    "qa.verify": _action("verify cards", "qa"),
    "qa.dump": _action("dump a chip's files", "qa"),
    "qa.signoff": _action("sign off batches", "qa"),
    "keys.ceremony": _action("run key ceremonies", "officer"),
    "keys.revoke": _action("revoke keys", "officer"),
    "prep.sign": _action("sign chip data", "officer"),
    "audit.checkpoint": _action("sign checkpoints of the audit trail", "officer"),
    "audit.verify": _action("verify the audit trail", "auditor"),
    "audit.export": _action("export the audit trail", "auditor"),
    "report.read": _action("read batch reports", "operator", "qa", "auditor"),
    "dashboard.watch": _action("watch the line and its batches", "operator", "qa", "officer",
                               "auditor"),
    "qa.read": _action("see QA verdicts", "qa", "auditor"),
    "keys.read": _action("see the key inventory", "officer", "auditor"),
    "audit.read": _action("see the audit trail", "auditor"),
    "users.manage": _action("manage accounts", "admin"),
})

# how a refusal names the people to ask instead
_ASK: Mapping[Role, str] = MappingProxyType({
    "operator": "an operator", "qa": "QA staff", "officer": "a security officer",
    "auditor": "an auditor", "admin": "an admin"})
_NAME = re.compile(r"[^\W_][\w.-]{0,63}")


@dataclass(frozen=True, slots=True)
class Person:
    """An authenticated person: the account's name and roles."""

    name: str
    roles: tuple[Role, ...]

    def may(self, action: str) -> bool:
        """True when one of the person's roles allows ``action``."""
        return may(self.roles, action)


def _known(action: str) -> Action:
    try:
        return ACTIONS[action]
    except KeyError:
        raise PeopleError("unknown_action", f"no action named {action!r}") from None


def may(roles: Iterable[str], action: str) -> bool:
    """True when one of ``roles`` allows ``action`` (an unknown action is an error)."""
    return not _known(action).roles.isdisjoint(roles)


def refusal(person: Person, action: str) -> str:
    """Why ``person`` may not do ``action`` and whom to ask, e.g. ``operator 'an' may not run
    key ceremonies; ask a security officer``."""
    allowed = _known(action)
    asked = [_ASK[role] for role in ROLES if role in allowed.roles]
    ask = asked[0] if len(asked) == 1 else f"{', '.join(asked[:-1])} or {asked[-1]}"
    return f"{' and '.join(person.roles) or 'nobody'} {person.name!r} may not {allowed.does}; " \
           f"ask {ask}"


def check_name(name: str) -> str:
    """An account name (NFC), or :class:`PolicyViolation`: 1 to 64 letters, digits, ``.``,
    ``_`` or ``-``, starting with a letter or digit (no spaces, no ``:``, which separates a
    name from its passphrase file in ``--officer NAME:FILE``)."""
    text = unicodedata.normalize("NFC", name)
    if not _NAME.fullmatch(text):
        raise PolicyViolation("bad_name", f"account name {name!r}: use 1 to 64 letters, digits, "
                                          "'.', '_' or '-', starting with a letter or digit")
    return text


def check_roles(roles: Iterable[str]) -> tuple[Role, ...]:
    """``roles`` in the usual order without repeats, or :class:`PolicyViolation`: at least one,
    each known, and an admin holds no other role (separation of duties)."""
    given = set(roles)
    unknown = sorted(given - set(ROLES))
    if unknown:
        raise PolicyViolation("unknown_role", f"no role named {', '.join(map(repr, unknown))}; "
                                              f"the roles are {', '.join(ROLES)}")
    if not given:
        raise PolicyViolation("no_role", f"an account needs a role: one of {', '.join(ROLES)}")
    if "admin" in given and len(given) > 1:
        raise PolicyViolation("admin_alone", "an admin holds no other role (separation of "
                                             "duties): make a second account for the other work")
    return tuple(cast(Role, role) for role in ROLES if role in given)
