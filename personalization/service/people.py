"""Accounts, logins and permissions: the first admin, the accounts an admin adds and disables,
passphrases, logins that last until the end of the shift, and :func:`acting` — what every
command calls to learn who acts and whether they may.

Who acts comes from ``CARDLINE_USER`` + ``CARDLINE_PASSPHRASE`` (scripts and tests), else from
the session file ``cardline login`` wrote: owner-only (0600) in an owner-only folder
(``$CARDLINE_SESSION_DIR``, else ``~/.config/cardline``), one per journal, holding a random
token of which the journal keeps only the SHA-256. Every refusal is audited
(``people.refused``, or ``people.login_failed`` for a wrong passphrase or an unknown name).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from common.files import write_private
from personalization.config import LineConfig
from personalization.journal import JournalPort, open_journal
from personalization.journal.people_port import (
    AccountChanges,
    AccountRow,
    NotFirstError,
    PeoplePort,
    people,
)
from personalization.people import (
    Person,
    PolicyViolation,
    WrongPassphrase,
    check_name,
    check_passphrase,
    check_roles,
    hash_passphrase,
    local,
    needs_rehash,
    refusal,
    shift_end,
    spend,
    verify_passphrase,
)
from personalization.service.errors import NotFound, ServiceError

__all__ = [
    "Account",
    "Identity",
    "NotLoggedIn",
    "PeoplePort",
    "Person",
    "Refused",
    "Session",
    "acting",
    "add",
    "authenticate",
    "bootstrap",
    "browser_person",
    "current_person",
    "disable",
    "end_browser_session",
    "list_accounts",
    "login",
    "logout",
    "open_browser_session",
    "passwd",
    "permit",
    "read_passphrase_file",
    "session_path",
    "verify_officers",
    "whoami",
]

USER_ENV = "CARDLINE_USER"
PASSPHRASE_ENV = "CARDLINE_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
SESSION_DIR_ENV = "CARDLINE_SESSION_DIR"
LOG_IN = "log in with `cardline login`"
PASSPHRASE_FILE_MAX = 4096  # bytes
NOT_AUTHENTICATED = "unknown account or wrong passphrase"


class Refused(ServiceError):  # noqa: N818 - reads as what happened
    """A person may not do what was asked, or could not be authenticated (audited). ``code``
    says why; ``person`` and ``action`` what was refused to whom, when known."""

    def __init__(self, message: str, *, code: str = "refused", person: str | None = None,
                 action: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.person = person
        self.action = action


class NotLoggedIn(ServiceError):  # noqa: N818 - reads as what happened
    """Nobody is logged in to this journal, or the session ended, expired or its account was
    disabled."""


@dataclass(frozen=True, slots=True)
class Account:
    """An account as people see it (never its passphrase hash)."""

    name: str
    roles: tuple[str, ...]
    disabled: bool
    locked_until: datetime | None
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, row: AccountRow) -> Account:
        """The shown part of a journal row."""
        return cls(row.name, row.roles, row.disabled, row.locked_until, row.created_at,
                   row.created_by)

    def as_dict(self) -> dict[str, Any]:
        """``users list --json``."""
        return {"name": self.name, "roles": list(self.roles), "disabled": self.disabled,
                "locked_until": None if self.locked_until is None else
                self.locked_until.isoformat(),
                "created_at": self.created_at.isoformat(), "created_by": self.created_by}


@dataclass(frozen=True, slots=True)
class Session:
    """A login: who, until when (the end of the shift), and the file that holds it."""

    person: Person
    expires_at: datetime
    path: Path


@dataclass(frozen=True, slots=True)
class Identity:
    """Who acts, and how they proved it: the environment, or a session until ``expires_at``."""

    person: Person
    source: Literal["environment", "session"]
    expires_at: datetime | None


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _journal(config: LineConfig) -> Iterator[PeoplePort]:
    with open_journal(config.journal.url) as journal:
        yield people(journal)


def _refuse(journal: PeoplePort, message: str, code: str, *, person: str | None,
            action: str | None, kind: str = "people.refused", reason: str | None = None,
            **data: Any) -> Refused:
    """Audit a refusal (``reason``, by default ``code``) and return the error to raise."""
    journal.note(None, kind, actor=person, action=action, reason=reason or code, **data)
    return Refused(message, code=code, person=person, action=action)


def _require(journal: PeoplePort, person: Person, action: str) -> None:
    if not person.may(action):
        raise _refuse(journal, refusal(person, action), "not_permitted", person=person.name,
                      action=action, roles=list(person.roles))


def _person(journal: PeoplePort, row: AccountRow) -> Person:
    """The person of an account, refused when its stored roles break the rules."""
    try:
        return Person(row.name, check_roles(row.roles))
    except PolicyViolation as exc:
        raise _refuse(journal, f"account {row.name!r}: {exc}", exc.code, person=row.name,
                      action=None) from exc


def _new_row(name: str, roles: Sequence[str], passphrase: str, *, by: str | None,
             journal: PeoplePort) -> AccountRow:
    """A new account checked against the policy (refusals audited as ``by``'s)."""
    try:
        name = check_name(name)
        granted = check_roles(roles)
        phc = hash_passphrase(check_passphrase(name, passphrase))
    except PolicyViolation as exc:
        raise _refuse(journal, str(exc), exc.code, person=by, action="users.manage") from exc
    at = _now()
    return AccountRow(name, granted, phc, False, 0, None, at, by or name, at)


def bootstrap(config: LineConfig, name: str, passphrase: str) -> Person:
    """Create the first admin, once: refused (and audited) when the journal has accounts."""
    with _journal(config) as journal:
        row = _new_row(name, ["admin"], passphrase, by=None, journal=journal)
        try:
            journal.add_account(row, actor=row.name, first=True)
        except NotFirstError as exc:
            raise _refuse(journal, str(exc), "bootstrapped", person=None,
                          action="users.bootstrap") from exc
    return Person(row.name, ("admin",))


def add(config: LineConfig, actor: Person, name: str, roles: Sequence[str],
        passphrase: str) -> Account:
    """An admin adds an account (policy: see :mod:`personalization.people`)."""
    with _journal(config) as journal:
        _require(journal, actor, "users.manage")
        row = _new_row(name, roles, passphrase, by=actor.name, journal=journal)
        journal.add_account(row, actor=actor.name)
    return Account.of(row)


def list_accounts(config: LineConfig, actor: Person) -> list[Account]:
    """Every account, for an admin."""
    with _journal(config) as journal:
        _require(journal, actor, "users.manage")
        return [Account.of(row) for row in journal.accounts()]


def _existing(journal: PeoplePort, name: str) -> AccountRow:
    row = journal.account(unicodedata.normalize("NFC", name))
    if row is None:
        raise NotFound(f"no account named {name!r} (see `cardline users list`)")
    return row


def disable(config: LineConfig, actor: Person, name: str) -> Account:
    """An admin disables an account and ends its sessions; the last enabled admin stays."""
    with _journal(config) as journal:
        _require(journal, actor, "users.manage")
        row = _existing(journal, name)
        admins = [a for a in journal.accounts() if "admin" in a.roles and not a.disabled]
        if [a.name for a in admins] == [row.name]:
            raise _refuse(journal, f"{row.name!r} is the last enabled admin: add another admin "
                          "first", "last_admin", person=actor.name, action="users.manage")
        if not row.disabled:
            row = journal.update_account(row.name, actor=actor.name, event="people.disabled",
                                         disabled=True)
        journal.end_sessions(row.name, actor=actor.name)
    return Account.of(row)


def passwd(config: LineConfig, actor: Person, name: str, new: str, *,
           old: str | None = None) -> None:
    """A person changes their own passphrase (proving the ``old`` one); an admin resets
    another's, which also lifts a lockout and ends that account's sessions."""
    with _journal(config) as journal:
        row = _existing(journal, name)
        if row.name == actor.name:
            if old is None:
                raise ServiceError("changing your own passphrase needs your current one")
            authenticate(journal, config, row.name, old)
            phc = _checked_hash(journal, actor, row.name, new)
            journal.update_account(row.name, actor=actor.name,
                                   event="people.passphrase_changed", passphrase=phc)
            return
        _require(journal, actor, "users.manage")
        phc = _checked_hash(journal, actor, row.name, new)
        journal.update_account(row.name, actor=actor.name, event="people.passphrase_reset",
                               passphrase=phc, failures=0, locked_until=None)
        journal.end_sessions(row.name, actor=actor.name)


def _checked_hash(journal: PeoplePort, actor: Person, name: str, passphrase: str) -> str:
    try:
        return hash_passphrase(check_passphrase(name, passphrase))
    except PolicyViolation as exc:
        raise _refuse(journal, str(exc), exc.code, person=actor.name, action="users.passwd",
                      account=name) from exc


def authenticate(journal: JournalPort | PeoplePort, config: LineConfig, name: str,
                 passphrase: str) -> Person:
    """The person whose passphrase this is, or :class:`Refused`. An unknown name costs the
    same hash work and gets the same message as a wrong passphrase; wrong passphrases in a
    row lock the account (``people.lockout_failures`` for ``lockout_minutes``); a locked or
    disabled account is refused. Each refusal is audited."""
    at, rules, journal = _now(), config.people, people(journal)
    row = journal.account(unicodedata.normalize("NFC", name))
    if row is None:
        with suppress(WrongPassphrase):
            spend(passphrase)
        raise _refuse(journal, NOT_AUTHENTICATED, "not_authenticated", person=None,
                      action="login", kind="people.login_failed", reason="unknown_account")
    if row.locked_until is not None and row.locked_until > at:
        until = local(row.locked_until, rules.timezone)
        raise _refuse(journal, f"account {row.name!r} is locked until {until:%H:%M} after "
                      "wrong passphrases; wait, or ask an admin to reset its passphrase",
                      "locked", person=row.name, action="login")
    try:
        verify_passphrase(row.passphrase, passphrase)
    except WrongPassphrase as exc:
        journal.count_failure(row.name, limit=rules.lockout_failures,
                              lock_until=at + timedelta(minutes=rules.lockout_minutes))
        raise Refused(NOT_AUTHENTICATED, code="not_authenticated", action="login") from exc
    if row.disabled:
        raise _refuse(journal, f"account {row.name!r} is disabled; ask an admin", "disabled",
                      person=row.name, action="login")
    _tidy(journal, row, passphrase)
    return _person(journal, row)


def _tidy(journal: PeoplePort, row: AccountRow, passphrase: str) -> None:
    """After a good passphrase: forget earlier failures, and rehash at today's parameters."""
    changes: AccountChanges = {}
    if row.failures or row.locked_until is not None:
        changes["failures"] = 0
        changes["locked_until"] = None
    if needs_rehash(row.passphrase):
        changes["passphrase"] = hash_passphrase(passphrase)
    if changes:
        event = "people.rehashed" if "passphrase" in changes else "people.failures_cleared"
        journal.update_account(row.name, actor=row.name, event=event, **changes)


def verify_officers(journal: JournalPort | PeoplePort, config: LineConfig,
                    credentials: Sequence[tuple[str, str]]) -> list[Person]:
    """The distinct officers of a ceremony, each authenticated with their own passphrase
    (the same name twice counts once); any that fails, or holds no ``officer`` role, refuses
    the whole ceremony (audited, and a wrong passphrase counts towards its lockout)."""
    officers: dict[str, Person] = {}
    journal = people(journal)
    for name, passphrase in credentials:
        name = unicodedata.normalize("NFC", name)
        if name in officers:
            continue
        try:
            person = authenticate(journal, config, name, passphrase)
        except Refused as exc:
            raise _refuse(journal, f"officer {name!r}: {exc}", exc.code, person=None,
                          action="keys.ceremony") from exc
        if "officer" not in person.roles:
            raise _refuse(journal, f"{' and '.join(person.roles)} {name!r} is not a security "
                          "officer; a ceremony needs officers", "not_officer",
                          person=person.name, action="keys.ceremony")
        officers[name] = person
    return list(officers.values())


# -- sessions ---------------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(bytes.fromhex(token)).hexdigest()


def session_path(config: LineConfig) -> Path:
    """The session file of this line's journal (one per journal URL)."""
    given = os.environ.get(SESSION_DIR_ENV)
    folder = Path(given) if given else Path.home() / ".config" / "cardline"
    url = config.journal.url.encode("utf-8")
    return folder / f"session-{hashlib.sha256(url).hexdigest()[:32]}.json"


def _owner_only(path: Path, mode: int, uid: int, what: str) -> None:
    if stat.S_IMODE(mode) & 0o077 or uid != os.geteuid():
        raise ServiceError(f"{what} {path} is not private to you (mode "
                           f"{stat.S_IMODE(mode):o}): chmod 700 its folder and 600 the file, "
                           f"or remove it and {LOG_IN}")


def _write_session(config: LineConfig, account: str, token: str, expires: datetime) -> Path:
    path = session_path(config)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder = path.parent.stat()
    _owner_only(path.parent, folder.st_mode, folder.st_uid, "session folder")
    text = json.dumps({"account": account, "journal": config.journal.url, "token": token,
                       "expires_at": expires.isoformat()})
    write_private(path, text)
    return path


def _read_session(config: LineConfig) -> dict[str, str]:
    path = session_path(config)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise NotLoggedIn(f"nobody is logged in to journal {config.journal.url}: "
                          f"{LOG_IN}") from None
    except OSError as exc:
        raise NotLoggedIn(f"session file {path}: {exc.strerror}: {LOG_IN}") from exc
    with os.fdopen(fd, encoding="utf-8") as handle:
        found = os.fstat(handle.fileno())
        _owner_only(path, found.st_mode, found.st_uid, "session file")
        try:
            saved = json.loads(handle.read())
            bytes.fromhex(saved["token"])
            if saved["journal"] != config.journal.url or not isinstance(saved["account"], str):
                raise ValueError("another journal")
        except (ValueError, KeyError, TypeError) as exc:
            raise NotLoggedIn(f"session file {path} is not this journal's: {LOG_IN}") from exc
    return {"account": saved["account"], "token": saved["token"]}


def login(config: LineConfig, name: str, passphrase: str) -> Session:
    """Authenticate and open a session until the end of the current shift, in a session
    file only its owner can read."""
    person, token, expires = open_browser_session(config, name, passphrase)
    return Session(person, expires, _write_session(config, person.name, token, expires))


def logout(config: LineConfig) -> str:
    """End this journal's session and remove its file; the account that was logged in."""
    saved = _read_session(config)
    with _journal(config) as journal:
        journal.end_session(_digest(saved["token"]))
    session_path(config).unlink(missing_ok=True)
    return saved["account"]


def _from_session(journal: PeoplePort, config: LineConfig) -> Identity:
    saved = _read_session(config)
    row = journal.session(_digest(saved["token"]))
    if row is None or row.account != saved["account"]:
        raise NotLoggedIn(f"the journal knows no such session: {LOG_IN}")
    zone = config.people.timezone
    if row.ended_at is not None:
        raise NotLoggedIn(f"your session ended at {local(row.ended_at, zone):%H:%M}: {LOG_IN}")
    if row.expires_at <= _now():
        raise NotLoggedIn(f"your session ended with the shift at "
                          f"{local(row.expires_at, zone):%Y-%m-%d %H:%M}: {LOG_IN}")
    account = journal.account(row.account)
    if account is None or account.disabled:
        raise NotLoggedIn(f"account {row.account!r} is disabled: ask an admin, then {LOG_IN}")
    return Identity(_person(journal, account), "session", local(row.expires_at, zone))


def _identify(journal: PeoplePort, config: LineConfig) -> Identity:
    user, passphrase = os.environ.get(USER_ENV), os.environ.get(PASSPHRASE_ENV)
    if user is None and passphrase is None:
        return _from_session(journal, config)
    if not user or not passphrase:
        raise NotLoggedIn(f"set both {USER_ENV} and {PASSPHRASE_ENV}, or neither and {LOG_IN}")
    return Identity(authenticate(journal, config, user, passphrase), "environment", None)


def whoami(config: LineConfig) -> Identity:
    """Who acts: from ``CARDLINE_USER`` + ``CARDLINE_PASSPHRASE`` when both are set, else
    from this journal's session (:class:`NotLoggedIn` when there is none that holds)."""
    with _journal(config) as journal:
        return _identify(journal, config)


def current_person(config: LineConfig) -> Person:
    """The person who acts (see :func:`whoami`)."""
    return whoami(config).person


def open_browser_session(config: LineConfig, name: str, passphrase: str) -> tuple[Person, str,
                                                                                  datetime]:
    """Authenticate and open a session (a browser's, or :func:`login`'s): the person, the
    session's token (for a cookie or the session file; the journal keeps only its SHA-256)
    and when it ends (the shift's end). Refusals as :func:`authenticate`'s, audited."""
    token = secrets.token_hex(32)
    with _journal(config) as journal:
        person = authenticate(journal, config, name, passphrase)
        expires = shift_end(_now(), config.people.shifts, config.people.timezone)
        journal.open_session(_digest(token), person.name, expires)
    return person, token, expires


def browser_person(config: LineConfig, token: str, journal: JournalPort | None = None) -> Person:
    """The person of a browser's session token, or :class:`NotLoggedIn` (unknown, ended,
    expired, or its account disabled since); read through ``journal`` when given (the
    dashboard keeps one open), else through the line's."""
    try:
        digest = _digest(token)
    except ValueError:
        raise NotLoggedIn("not a session token") from None
    with _journal(config) if journal is None else nullcontext(people(journal)) as store:
        row = store.session(digest)
        if row is None or row.ended_at is not None or row.expires_at <= _now():
            raise NotLoggedIn("the session ended: log in again")
        account = store.account(row.account)
        if account is None or account.disabled:
            raise NotLoggedIn(f"account {row.account!r} is disabled: ask an admin")
        return _person(store, account)


def end_browser_session(config: LineConfig, token: str) -> None:
    """End a browser's session (logging out); an unknown token ends nothing."""
    with suppress(ValueError), _journal(config) as journal:
        journal.end_session(_digest(token))


def permit(config: LineConfig, person: Person, action: str, target: str | None = None) -> None:
    """Refuse (:class:`Refused`, audited) unless ``person`` may do ``action``; audit it when
    allowed (as :func:`acting`, for a person the dashboard already knows)."""
    with _journal(config) as journal:
        _allow(journal, person, action, target)


def _allow(journal: PeoplePort, person: Person, action: str, target: str | None) -> None:
    _require(journal, person, action)
    if action not in _READS:
        journal.note(None, "people.acted", actor=person.name, roles=list(person.roles),
                     action=action, target=target)


def acting(config: LineConfig, action: str, target: str | None = None) -> Person:
    """The person who acts, when they may do ``action`` (a name of
    :data:`personalization.people.ACTIONS`); otherwise :class:`Refused`, audited, naming the
    person, their role, the action and whom to ask. An allowed action is audited too
    (``people.acted``: who, with which roles, what, on what ``target`` — a batch's name, a
    key's label; never personal data)."""
    with _journal(config) as journal:
        person = _identify(journal, config).person
        _allow(journal, person, action, target)
    return person


# Reads that change nothing are not events of their own (a checkpoint is its own record):
# auditing them would move the chain at every look and every signature.
_READS = frozenset({"audit.verify", "audit.checkpoint", "report.read", "dashboard.watch",
                    "qa.read", "keys.read", "audit.read"})


def read_passphrase_file(path: Path) -> str:
    """The passphrase a file holds (one trailing newline ignored). The file must be private
    to its owner (no permission for group or others), as an SSH key must."""
    try:
        with path.open("rb") as handle:
            found = os.fstat(handle.fileno())
            if not stat.S_ISREG(found.st_mode):
                raise ServiceError(f"passphrase file {path} is not a regular file")
            if stat.S_IMODE(found.st_mode) & 0o077:
                raise ServiceError(f"passphrase file {path} is open to group or others (mode "
                                   f"{stat.S_IMODE(found.st_mode):o}): chmod 600 {path}")
            raw = handle.read(PASSPHRASE_FILE_MAX + 1)
    except OSError as exc:
        raise ServiceError(f"passphrase file {path}: {exc.strerror}") from exc
    if len(raw) > PASSPHRASE_FILE_MAX:
        raise ServiceError(f"passphrase file {path} is larger than {PASSPHRASE_FILE_MAX} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ServiceError(f"passphrase file {path} is not UTF-8 text") from exc
    text = text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text
    if not text:
        raise ServiceError(f"passphrase file {path} is empty")
    return text
