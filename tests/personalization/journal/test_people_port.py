"""The journal's people port on every adapter: accounts, the one-time bootstrap, changes,
failure counting, sessions, and an audit event for each change that holds no secret."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from personalization.journal import JournalError, JournalPort, open_journal
from personalization.journal.people_port import (
    AccountExistsError,
    AccountRow,
    NotFirstError,
    PeoplePort,
    UnknownAccountError,
    changed,
    people,
)

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
# stand-ins for Argon2id PHC strings and token hashes: the port stores them as given
PHC = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$not-a-real-hash-but-a-secret"
TOKEN_HASH = "ab" * 32


def _row(name: str, *roles: str, by: str = "root-admin", phc: str = PHC) -> AccountRow:
    return AccountRow(name=name, roles=roles or ("operator",), passphrase=phc, disabled=False,
                      failures=0, locked_until=None, created_at=NOW, created_by=by,
                      changed_at=NOW)


@pytest.fixture()
def port(journal: JournalPort) -> PeoplePort:
    """The people side of a fresh journal of each adapter."""
    return people(journal)


@pytest.fixture()
def staffed(port: PeoplePort) -> PeoplePort:
    """A journal with its first admin and one operator."""
    port.add_account(_row("root-admin", "admin"), actor="root-admin", first=True)
    port.add_account(_row("an"), actor="root-admin")
    return port


def _together(url: str, count: int, work: Callable[[PeoplePort, int], None]) -> list[str]:
    """Run ``work`` in ``count`` threads at once, each on a journal of its own (as separate
    processes would); the errors they raised, by type name."""
    barrier, errors = threading.Barrier(count), []

    def run(index: int) -> None:
        with open_journal(url) as journal:
            barrier.wait()
            try:
                work(people(journal), index)
            except JournalError as exc:
                errors.append(type(exc).__name__)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_every_adapter_has_a_people_side(journal: JournalPort) -> None:
    """Both adapters implement the people port; an object that does not is a clear error."""
    assert isinstance(journal, PeoplePort)
    with pytest.raises(JournalError, match="keeps no accounts"):
        people(object())


def test_the_first_account_is_created_once(port: PeoplePort) -> None:
    """The bootstrap succeeds on an empty journal only; a second one is refused and changes
    nothing."""
    port.add_account(_row("root-admin", "admin"), actor="root-admin", first=True)
    with pytest.raises(NotFirstError, match="created once"):
        port.add_account(_row("other-admin", "admin"), actor="other-admin", first=True)
    assert [a.name for a in port.accounts()] == ["root-admin"]


def test_of_two_bootstraps_at_once_one_wins(journal_url: str, port: PeoplePort) -> None:
    """Four bootstraps of different names at the same moment: exactly one account exists
    and the others were refused as not first."""
    def bootstrap(journal: PeoplePort, index: int) -> None:
        journal.add_account(_row(f"admin-{index}", "admin"), actor=f"admin-{index}", first=True)

    errors = _together(journal_url, 4, bootstrap)
    assert errors == ["NotFirstError"] * 3
    assert len(port.accounts()) == 1


def test_a_taken_name_is_refused(staffed: PeoplePort) -> None:
    """Adding an account under a name that exists raises AccountExistsError."""
    with pytest.raises(AccountExistsError, match="'an' already exists"):
        staffed.add_account(_row("an", "qa"), actor="root-admin")
    account = staffed.account("an")
    assert account is not None and account.roles == ("operator",)


def test_an_account_reads_back_as_written(staffed: PeoplePort) -> None:
    """Every field of a row comes back as added; an unknown name is None."""
    assert staffed.account("an") == _row("an")
    assert staffed.account("nobody") is None
    assert [a.name for a in staffed.accounts()] == ["an", "root-admin"]


def test_a_change_is_written_with_its_event(staffed: PeoplePort) -> None:
    """update_account changes the row and appends the named event with the actor, the
    account, the fields and their new values."""
    until = NOW + timedelta(minutes=15)
    row = staffed.update_account("an", actor="root-admin", event="people.disabled",
                                 disabled=True, locked_until=until)
    assert staffed.account("an") == row
    assert row.disabled and row.locked_until == until and row.changed_at > NOW
    event = staffed.people_events()[-1]
    assert event["kind"] == "people.disabled"
    assert event["data"] == {"actor": "root-admin", "account": "an", "disabled": True,
                             "fields": ["disabled", "locked_until"],
                             "locked_until": until.isoformat(timespec="microseconds")}


def test_changing_an_unknown_account_is_an_error(staffed: PeoplePort) -> None:
    """update_account on a name without an account raises UnknownAccountError."""
    with pytest.raises(UnknownAccountError, match="'ghost'"):
        staffed.update_account("ghost", actor="root-admin", event="people.disabled",
                               disabled=True)


def test_only_the_changeable_fields_change() -> None:
    """A change to the name or the creation is refused before any database is involved."""
    with pytest.raises(JournalError, match="created_by, name"):
        changed(_row("an"), {"name": "x", "created_by": "y"}, NOW)  # type: ignore[typeddict-unknown-key]


def test_failures_lock_the_account_at_the_limit(staffed: PeoplePort) -> None:
    """Each failure counts; at the limit the account locks until the given moment, the count
    starts again, and both are audited."""
    until = NOW + timedelta(minutes=15)
    counts = [staffed.count_failure("an", limit=3, lock_until=until) for _ in range(3)]
    assert [(r.failures, r.locked_until) for r in counts] == [(1, None), (2, None), (0, until)]
    kinds = [(e["kind"], e["data"].get("failures")) for e in staffed.people_events()[-4:]]
    assert kinds == [("people.login_failed", 1), ("people.login_failed", 2),
                     ("people.login_failed", 3), ("people.locked", 3)]


def test_failures_counted_at_once_are_all_counted(journal_url: str,
                                                  staffed: PeoplePort) -> None:
    """Four connections counting failures of one account at the same moment lose none."""
    def fail(journal: PeoplePort, index: int) -> None:
        for _ in range(5):
            journal.count_failure("an", limit=1000, lock_until=NOW)

    assert _together(journal_url, 4, fail) == []
    account = staffed.account("an")
    assert account is not None and account.failures == 20


def test_a_session_opens_reads_and_ends_once(staffed: PeoplePort) -> None:
    """A session is found by its token hash until it ends; it ends once; logins and logouts
    are audited by account."""
    expires = NOW + timedelta(hours=8)
    staffed.open_session(TOKEN_HASH, "an", expires)
    found = staffed.session(TOKEN_HASH)
    assert found is not None
    assert (found.account, found.expires_at, found.ended_at) == ("an", expires, None)
    assert staffed.session("cd" * 32) is None
    assert staffed.end_session(TOKEN_HASH)
    assert not staffed.end_session(TOKEN_HASH)
    ended = staffed.session(TOKEN_HASH)
    assert ended is not None and ended.ended_at is not None
    assert [e["kind"] for e in staffed.people_events()[-2:]] == ["people.login", "people.logout"]


def test_ending_an_accounts_sessions_ends_only_its_open_ones(staffed: PeoplePort) -> None:
    """end_sessions ends every open session of one account, counts them, and is audited."""
    for index, account in enumerate(("an", "an", "root-admin")):
        staffed.open_session(f"{index:064x}", account, NOW + timedelta(hours=1))
    assert staffed.end_sessions("an", actor="root-admin") == 2
    assert staffed.end_sessions("an", actor="root-admin") == 0
    still = staffed.session(f"{2:064x}")
    assert still is not None and still.ended_at is None
    assert staffed.people_events()[-1]["data"] == {"actor": "root-admin", "account": "an",
                                                   "sessions": 2}


@pytest.fixture()
def busy(staffed: PeoplePort) -> Iterator[PeoplePort]:
    """A journal after one of every kind of change."""
    staffed.update_account("an", actor="an", event="people.passphrase_changed",
                           passphrase=PHC + "-new")
    staffed.count_failure("an", limit=1, lock_until=NOW)
    staffed.open_session(TOKEN_HASH, "an", NOW + timedelta(hours=1))
    staffed.end_session(TOKEN_HASH)
    staffed.end_sessions("root-admin", actor="root-admin")
    staffed.note(None, "people.refused", actor="an", roles=["operator"], action="users.manage")
    yield staffed


def test_every_change_is_audited_with_its_actor_and_no_secret(busy: PeoplePort) -> None:
    """Each people event names its actor and the account it touched; no event holds a
    passphrase hash or a token hash."""
    events = busy.people_events()
    assert {e["kind"] for e in events} >= {
        "people.account_added", "people.passphrase_changed", "people.login_failed",
        "people.locked", "people.login", "people.logout", "people.refused"}
    assert all("actor" in e["data"] for e in events)
    text = json.dumps([e["data"] for e in events])
    for secret in (PHC, "argon2", TOKEN_HASH):
        assert secret not in text
    assert "passphrase" in busy.people_events()[2]["data"]["fields"]  # which field, not its value


def test_a_rows_repr_shows_no_hash(staffed: PeoplePort) -> None:
    """An account's or a session's repr (in a log or a traceback) leaves the secrets out."""
    staffed.open_session(TOKEN_HASH, "an", NOW + timedelta(hours=1))
    assert PHC not in repr(staffed.account("an"))
    assert TOKEN_HASH not in repr(staffed.session(TOKEN_HASH))
