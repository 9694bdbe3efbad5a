"""The registry's boundary, kept by every journal adapter the same way: each signed batch file
received once (a replay refused, an unfinished import carried on, a discarded one received
again), DS signatures and issuance results written once, and the database refusing to
rewrite either."""

from __future__ import annotations

import json
from typing import Any

import pytest

from personalization.journal import JournalPort
from personalization.journal.port import BatchExistsError
from personalization.journal.registry_port import ReceivedRow, ReplayError, Signature

from .conftest import Backdoor, Refused


def _row(registry_id: str, batch: str, sha256: str = "ab" * 32) -> ReceivedRow:
    return ReceivedRow(registry_id, batch, sha256, "CN=Registry batch signer serial 07",
                       False, "2026-11-30T10:00:00+00:00")


def _importing(journal: JournalPort, name: str) -> None:
    journal.begin_import(name, source=f"/intake/{name}.jsonl", profile="cccd", max_attempts=3)


def test_a_registry_batch_is_received_once(journal: JournalPort) -> None:
    """The first file with an id is recorded with its event; the same file again under the
    same name carries on its unfinished import; any other batch with that id is a replay;
    a name another import holds is refused; an id whose import was discarded may come again."""
    store: Any = journal
    store.receive(_row("RB-1", "B1"), actor="tess")
    _importing(journal, "B1")
    assert store.received("RB-1") == _row("RB-1", "B1")
    assert store.received_for("B1") == _row("RB-1", "B1")
    assert store.received_for("B2") is None and store.received("RB-9") is None

    store.receive(_row("RB-1", "B1"), actor="tess")  # the killed import, given again
    with pytest.raises(ReplayError, match=r"'RB-1' was already received .*batch 'B1'"):
        store.receive(_row("RB-1", "B2"), actor="tess")
    with pytest.raises(ReplayError):  # another file claiming the same id
        store.receive(_row("RB-1", "B1", sha256="cd" * 32), actor="tess")
    with pytest.raises(BatchExistsError):
        store.receive(_row("RB-2", "B1"), actor="tess")

    journal.discard_import("B1")
    store.receive(_row("RB-1", "B3"), actor="olga")
    assert store.received("RB-1") == _row("RB-1", "B3")
    events = [e for e in _events(journal) if e["kind"] == "registry.received"]
    assert [(e["batch"], e["data"]["registry_batch"], e["data"]["actor"]) for e in events] == [
        ("B1", "RB-1", "tess"), ("B3", "RB-1", "olga")]


def test_signatures_are_recorded_and_never_rewritten(journal: JournalPort,
                                                     backdoor: Backdoor) -> None:
    """Signature records come back per DS key in order; the database refuses to change or
    delete one."""
    store: Any = journal
    first = [Signature("DS-1", f"00000000{n}", f"2026-11-30T10:00:0{n}", "prep", None, f"A{n}")
             for n in range(3)]
    store.record_signatures(first)
    store.record_signatures([Signature("DS-2", "000000009", "2026-11-30T11:00:00",
                                       "batch run", "B1", "A9")])
    store.record_signatures([])
    assert store.signatures("DS-1") == first
    assert [s.batch for s in store.signatures("DS-2")] == ["B1"]
    with pytest.raises(Refused):
        backdoor.execute("UPDATE ds_signatures SET ds = 'DS-X'")
    with pytest.raises(Refused):
        backdoor.execute("DELETE FROM ds_signatures")


def test_issuance_results_are_kept_once(journal: JournalPort, backdoor: Backdoor) -> None:
    """The first results kept are the ones returned ever after, with one event; the database
    refuses to replace them."""
    store: Any = journal
    journal.create_batch("B1", source="/x.jsonl", profile="cccd", max_attempts=3, valid=[],
                         invalid=[])
    assert store.results_document("B1") is None
    assert store.keep_results("B1", b"first", actor="an") == b"first"
    assert store.keep_results("B1", b"second", actor="an") == b"first"
    assert store.results_document("B1") == b"first"
    assert [e["kind"] for e in _events(journal)].count("batch.results") == 1
    with pytest.raises(Refused):
        backdoor.execute("DELETE FROM batch_results")


def _events(journal: JournalPort) -> list[dict[str, Any]]:
    store: Any = journal
    rows = store._read("SELECT batch, kind, data FROM events ORDER BY seq")
    return [{"batch": r["batch"] if isinstance(r, dict) else r[0],
             "kind": r["kind"] if isinstance(r, dict) else r[1],
             "data": json.loads(r["data"] if isinstance(r, dict) else r[2])} for r in rows]
