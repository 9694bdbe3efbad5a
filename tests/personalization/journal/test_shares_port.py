"""Officers' sealed shares of a token PIN, kept by every journal adapter the same way."""

from __future__ import annotations

from typing import Any

import pytest

from personalization.journal import JournalPort
from personalization.journal.port import ConflictError

from .conftest import Backdoor, Refused


def _accounts(backdoor: Backdoor, *names: str) -> None:
    for name in names:
        sql = ("INSERT INTO accounts (name, roles, passphrase, created_at, created_by, "  # noqa: S608 - test values
               f"changed_at) VALUES ('{name}', '[\"officer\"]', 'x', '2026-01-01', 'root', "
               "'2026-01-01')")
        backdoor.execute(sql)


def test_a_new_generation_replaces_the_shares_in_force(journal: JournalPort,
                                                       backdoor: Backdoor) -> None:
    """The newest generation is in force; each split is one event naming its holders and
    never a share; a split made against a stale generation is refused."""
    _accounts(backdoor, "olga", "oscar", "oanh")
    store: Any = journal
    assert store.shares("csca") == []
    assert store.put_shares("csca", 2, [("olga", b"\x01s1"), ("oscar", b"\x02s2")],
                            actor="olga", after=0) == 1
    assert [(r.officer, r.share, r.generation) for r in store.shares("csca")] == [
        ("olga", b"\x01s1", 1), ("oscar", b"\x02s2", 1)]
    with pytest.raises(ConflictError, match="re-split by another ceremony"):
        store.put_shares("csca", 2, [("olga", b"x"), ("oanh", b"y")], actor="olga", after=0)
    assert store.put_shares("csca", 2, [("olga", b"n1"), ("oanh", b"n3")], actor="olga",
                            after=1) == 2
    assert {r.officer for r in store.shares("csca")} == {"olga", "oanh"}
    assert store.shares("other") == []
    events = [e for e in _all_events(journal) if e["kind"] == "keys.shares_split"]
    assert [e["data"]["holders"] for e in events] == [["olga", "oscar"], ["oanh", "olga"]]
    assert all(set(e["data"]) == {"actor", "token", "generation", "quorum", "holders"}
               for e in events)  # who holds a share, never the share


def test_shares_are_never_rewritten(journal: JournalPort, backdoor: Backdoor) -> None:
    """The database itself refuses to rewrite a share (a re-split adds a generation)."""
    _accounts(backdoor, "olga", "oscar")
    store: Any = journal
    store.put_shares("csca", 2, [("olga", b"a"), ("oscar", b"b")], actor="olga", after=0)
    with pytest.raises(Refused):
        backdoor.execute("UPDATE key_shares SET share = X'00' WHERE officer = 'olga'")


def test_a_share_belongs_to_an_account(journal: JournalPort) -> None:
    """A share for a name that is no account is refused by the database."""
    store: Any = journal
    with pytest.raises(Exception, match=r"(?i)foreign key|violates"):
        store.put_shares("csca", 2, [("nobody", b"a"), ("ghost", b"b")], actor="x", after=0)


def _all_events(journal: JournalPort) -> list[dict[str, Any]]:
    store: Any = journal
    rows = store._read("SELECT kind, data FROM events ORDER BY seq")
    import json
    return [{"kind": r[0] if not isinstance(r, dict) else r["kind"],
             "data": json.loads(r[1] if not isinstance(r, dict) else r["data"])} for r in rows]
