"""The audit port on both adapters: chain heads, append-only checkpoints and audit
certificates, one consistent snapshot for the verifier, the append-only guards it reports; and
the verifier catching a re-hashed chain and a card changed by hand on the database itself.
Checkpoints here are signed by a software key (the HSM's part is tests/personalization/
test_audit.py); on PostgreSQL the journal is opened as the lines' role."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from psycopg import errors as pgerrors

from hsm.auditcert import build_audit_certificate
from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.cardstate import Event, Kind, step
from personalization.journal.audit_port import AuditKey, AuditPort, Checkpoint
from personalization.journal.pgcluster import LINE
from personalization.journal.port import ConflictError, JournalPort
from personalization.journal.postgres import PostgresJournal
from personalization.journal.records import GENESIS, event_hash
from personalization.prep import document_number
from personalization.profile import load_profile
from personalization.reasons import Code, Reason
from personalization.service.audit import AuditJournal, Problem, sign_heads, verify
from tests.personalization.journal.conftest import Backdoor, Refused, SQLiteBackdoor
from tests.support.pg import PostgresBackdoor, SoftwareKeyWrap, TestServer

HAPPY = [Kind.FED, Kind.ENCODED, Kind.QA_PASSED, Kind.PRINTED, Kind.EJECTED]
AT = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
# the chain head's and the log's guards, and how each adapter gets around them
_UNGUARD = {"sqlite": ["DROP TRIGGER events_append_only_update",
                       "DROP TRIGGER chain_head_forward"],
            "postgresql": ["ALTER TABLE events DISABLE TRIGGER events_append_only",
                           "ALTER TABLE chain_heads DISABLE TRIGGER chain_heads_forward"]}
_REGUARD = {"postgresql": ["ALTER TABLE events ENABLE TRIGGER events_append_only",
                           "ALTER TABLE chain_heads ENABLE TRIGGER chain_heads_forward"]}


@pytest.fixture(scope="module")
def apps(synth_dir: Path) -> list[Application]:
    """Four validated synthetic applications."""
    result = read_applications(synth_dir / "apps.jsonl", load_profile("cccd").intake_rules(),
                               date(2026, 11, 24))
    return [a for _, a in result.valid][:4]


@pytest.fixture(scope="module")
def software_key() -> ec.EllipticCurvePrivateKey:
    """A P-256 key standing in for the HSM's audit key."""
    return ec.generate_private_key(ec.SECP256R1())


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _audit(journal: JournalPort) -> AuditJournal:
    assert isinstance(journal, AuditPort)
    return journal


def _audit_key(journal: AuditJournal, key: ec.EllipticCurvePrivateKey) -> AuditKey:
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    certificate = build_audit_certificate(spki_der=spki, line="L1", serial_number=7,
                                          validity=(AT, AT + timedelta(days=365)),
                                          sign=lambda tbs: _sign(key, tbs))
    journal.add_audit_key("AUDIT", certificate)
    stored = journal.audit_key("AUDIT")
    assert stored is not None
    return stored


def _batch(journal: JournalPort, apps: list[Application]) -> None:
    """Batch B1: two cards handed out, one application failed before any card."""
    journal.create_batch("B1", source="apps.jsonl", profile="cccd", max_attempts=2,
                         valid=[(i + 1, a, document_number(a)) for i, a in enumerate(apps)],
                         invalid=[])
    for index, app in enumerate(apps[:2]):
        card = journal.begin_card("B1", app.application_id, "s1")
        for kind in HAPPY:
            card = journal.move(card, step(card.machine(2), Event(kind)),
                                chip_serial=f"B1-CHIP-{index}" if kind is Kind.FED else None)
    journal.fail_application("B1", apps[2].application_id, Reason(Code.TEXT, {"text": "x"}))


def _kind(journal_target_url: str) -> str:
    return "sqlite" if journal_target_url.startswith("sqlite:") else "postgresql"


def test_the_chain_head_is_the_last_event(journal: JournalPort) -> None:
    """chain_heads names each chain's last event (seq and hash), as the snapshot streams it."""
    audit = _audit(journal)
    journal.note(None, "test.note", n=1)
    heads = audit.chain_heads()
    with audit.audit_snapshot() as snapshot:
        events = list(snapshot.events("journal"))
        assert snapshot.heads() == heads
    assert heads["journal"] == (events[-1].seq, events[-1].hash) == (2, events[-1].hash)
    assert events[0].prev == GENESIS and [e.seq for e in events] == [1, 2]


def test_checkpoints_and_audit_keys_are_kept_once(journal: JournalPort) -> None:
    """A checkpoint is kept as given and listed by chain and seq; a second one at the same
    seq of a chain, or a second certificate under a label, is refused."""
    audit = _audit(journal)
    points = [Checkpoint("journal", 1, "ab" * 32, "2026-11-30T08:00:00+00:00", "AUDIT", b"\x30"),
              Checkpoint("journal", 3, "cd" * 32, "2026-11-30T09:00:00+00:00", "AUDIT", b"\x31")]
    for point in reversed(points):
        audit.add_checkpoint(point)
    assert audit.checkpoints() == points
    with pytest.raises(ConflictError):
        audit.add_checkpoint(points[0])
    assert audit.audit_key("AUDIT") is None
    audit.add_audit_key("AUDIT", b"cert")
    stored = audit.audit_key("AUDIT")
    assert stored is not None and (stored.label, stored.certificate) == ("AUDIT", b"cert")
    with pytest.raises(ConflictError):
        audit.add_audit_key("AUDIT", b"another")


@pytest.mark.parametrize("statement", ["UPDATE audit_checkpoints SET head = 'x'",
                                       "DELETE FROM audit_checkpoints"])
def test_the_database_refuses_to_change_a_checkpoint(journal: JournalPort, backdoor: Backdoor,
                                                     statement: str) -> None:
    """Checkpoints are append-only in the database itself, whoever asks."""
    _audit(journal).add_checkpoint(Checkpoint("journal", 1, "ab" * 32, "t", "AUDIT", b"0"))
    with pytest.raises(Refused, match="append-only"):
        backdoor.execute(statement)


def test_the_snapshot_is_one_moment(journal: JournalPort, apps: list[Application]) -> None:
    """Events appended while the verifier reads are not in its snapshot: what it streams ends
    at the head it read, and the batch's rows are as of the same moment."""
    audit = _audit(journal)
    _batch(journal, apps)
    with audit.audit_snapshot() as snapshot:
        head = snapshot.heads()["journal"]
        journal.note(None, "test.meanwhile")
        card = journal.begin_card("B1", apps[3].application_id, "s1")
        events = list(snapshot.events())
        cards = snapshot.cards("B1")
        assert [c.state for c in cards] == ["handed_out", "handed_out"]
        assert {a.state for a in snapshot.applications("B1")} == {"handed_out", "failed",
                                                                  "pending"}
        kinds = [e.kind for e in snapshot.batch_events("B1")]
    assert card.id not in [c.card for c in cards]
    assert [e.seq for e in events] == list(range(1, head[0] + 1))
    assert kinds.count("card.handed_out") == 2 and "application.failed" in kinds
    assert audit.chain_heads()["journal"][0] == head[0] + 2


def test_missing_guards_are_named(journal: JournalPort, backdoor: Backdoor,
                                  journal_url: str) -> None:
    """With every trigger in force the snapshot names none; one dropped or disabled is
    named."""
    audit = _audit(journal)
    with audit.audit_snapshot() as snapshot:
        assert snapshot.missing_guards() == []
    backdoor.execute(_UNGUARD[_kind(journal_url)][0])
    with audit.audit_snapshot() as snapshot:
        missing = snapshot.missing_guards()
    assert missing == [_UNGUARD[_kind(journal_url)][0].split()[-1]]


def _events(backdoor: Backdoor, start: int) -> list[tuple[int, str, str | None, int | None,
                                                           str, str]]:
    query = ("SELECT seq, at, batch, card, kind, data FROM events WHERE chain = 'journal' "  # noqa: S608
             f"AND seq >= {start} ORDER BY seq")
    if isinstance(backdoor, SQLiteBackdoor):
        with closing(sqlite3.connect(backdoor.path)) as db:
            return db.execute(query.replace("chain = 'journal' AND ", "")).fetchall()
    assert isinstance(backdoor, PostgresBackdoor)
    return backdoor.fetch(query)  # type: ignore[return-value]


def _rehash(backdoor: Backdoor, kind: str, seq: int, data: str) -> None:
    """Edit event ``seq`` and re-hash every event after it and the chain head, as someone
    holding the database could: the chain is whole again, and so are its guards."""
    for statement in _UNGUARD[kind]:
        backdoor.execute(statement)
    backdoor.execute(f"UPDATE events SET data = '{data}' WHERE seq = {seq}")  # noqa: S608
    digest = _stored_hash(backdoor, seq - 1) if seq > 1 else GENESIS
    table = "chain_head" if kind == "sqlite" else "chain_heads"
    for number, at, batch, card, event_kind, text in _events(backdoor, seq):
        new = event_hash(digest, number, at, batch, card, event_kind, text)
        backdoor.execute(f"UPDATE events SET prev = '{digest}', hash = '{new}' "  # noqa: S608
                         f"WHERE seq = {number}")
        digest = new
    backdoor.execute(f"UPDATE {table} SET hash = '{digest}'")  # noqa: S608
    if kind == "sqlite":
        _recreate_sqlite_guards(backdoor)
    for statement in _REGUARD.get(kind, []):
        backdoor.execute(statement)


def _stored_hash(backdoor: Backdoor, seq: int) -> str:
    query = f"SELECT hash FROM events WHERE seq = {seq} AND chain = 'journal'"  # noqa: S608
    if isinstance(backdoor, SQLiteBackdoor):
        with closing(sqlite3.connect(backdoor.path)) as db:
            return str(db.execute(query.replace(" AND chain = 'journal'", "")).fetchone()[0])
    assert isinstance(backdoor, PostgresBackdoor)
    return str(backdoor.fetch(query)[0][0])


def _recreate_sqlite_guards(backdoor: Backdoor) -> None:
    from personalization.journal.sqlite_schema import MIGRATIONS

    texts = {s.split()[2]: s for _, _, statements in MIGRATIONS for s in statements
             if s.startswith("CREATE TRIGGER")}
    for name in ("events_append_only_update", "chain_head_forward"):
        backdoor.execute(texts[name])


def test_a_rehashed_chain_is_caught_by_its_signed_checkpoint(
        journal: JournalPort, backdoor: Backdoor, journal_url: str, apps: list[Application],
        software_key: ec.EllipticCurvePrivateKey) -> None:
    """An event edited, every later hash and the head recomputed and the triggers put back:
    the chain is whole, yet the signed checkpoint names another head, and the first event no
    checkpoint vouches for any more is named."""
    audit = _audit(journal)
    key = _audit_key(audit, software_key)
    first = sign_heads(audit, key, lambda data: _sign(software_key, data), at=AT)
    _batch(journal, apps)
    last = sign_heads(audit, key, lambda data: _sign(software_key, data), at=AT)
    assert verify(audit).ok
    edited = first[0].seq + 3
    _rehash(backdoor, _kind(journal_url), edited, '{"forged": true}')
    assert journal.verify_chain().ok  # the chain alone no longer tells
    result = verify(audit)
    bad = result.first_bad
    assert bad is not None and bad.code is Problem.REHASHED, result.findings
    assert (bad.chain, bad.seq) == ("journal", first[0].seq + 1)
    assert bad.seq is not None and bad.seq <= edited <= bad.details["through"] == last[0].seq
    assert all(f.code is not Problem.GUARDS for f in result.findings)


def test_a_card_state_changed_by_hand_is_caught(
        journal: JournalPort, backdoor: Backdoor, apps: list[Application]) -> None:
    """A handed-out card set to rejected in the cards table, with its events untouched, is
    named by its last event; its application then has no handed-out card."""
    audit = _audit(journal)
    _batch(journal, apps)
    card = journal.cards("B1")[1]
    assert verify(audit).ok
    backdoor.execute(f"UPDATE cards SET state = 'rejected' WHERE id = {card.id}")  # noqa: S608
    result = verify(audit)
    with audit.audit_snapshot() as snapshot:
        last = [e for e in snapshot.batch_events("B1") if e.card == card.id][-1]
    bad = result.first_bad
    assert bad is not None and bad.code is Problem.CARD_STATE
    assert (bad.chain, bad.seq) == (last.chain, last.seq)
    assert dict(bad.details) == {"batch": "B1", "card": card.id, "row": "rejected",
                                 "events": "handed_out"}
    assert Problem.APPLICATION_CARDS in {f.code for f in result.findings}


def test_an_application_state_changed_by_hand_is_caught(
        journal: JournalPort, backdoor: Backdoor, apps: list[Application]) -> None:
    """A failed application set to handed out is named by the event that failed it."""
    audit = _audit(journal)
    _batch(journal, apps)
    backdoor.execute(f"UPDATE applications SET state = 'handed_out' WHERE application_id = "  # noqa: S608
                     f"'{apps[2].application_id}'")
    result = verify(audit)
    codes = {f.code for f in result.findings}
    assert codes == {Problem.APPLICATION_STATE, Problem.APPLICATION_CARDS}
    bad = result.first_bad
    assert bad is not None and bad.details["events"] == "failed"


@pytest.mark.postgres
@pytest.mark.parametrize("statement", [
    "UPDATE events SET kind = 'x'", "DELETE FROM events",
    "UPDATE audit_checkpoints SET head = 'x'", "DELETE FROM audit_checkpoints",
    "TRUNCATE audit_checkpoints", "UPDATE audit_keys SET certificate = 'x'",
    "DELETE FROM audit_keys", "ALTER TABLE audit_checkpoints DISABLE TRIGGER ALL"])
def test_the_lines_role_cannot_rewrite_the_trail(pg_server: TestServer,
                                                 statement: str) -> None:
    """The lines' role may append checkpoints and certificates, never change or remove one,
    nor an event: the server refuses it before any trigger runs."""
    name = pg_server.fresh()
    try:
        with psycopg.connect(pg_server.cluster.url(name, LINE), connect_timeout=5) as db:
            db.execute("INSERT INTO audit_checkpoints (chain, seq, head, at, key_label, "
                       "signature) VALUES ('journal', 1, 'h', 't', 'AUDIT', '\\x30')")
            db.commit()
            with pytest.raises(pgerrors.InsufficientPrivilege):
                db.execute(statement.encode())
    finally:
        pg_server.cluster.drop_database(name)


def _chain_events(backdoor: PostgresBackdoor, chain: str) -> list[tuple[
        int, str, str | None, int | None, str, str, str]]:
    return backdoor.fetch(  # type: ignore[return-value]
        "SELECT seq, at, batch, card, kind, data, hash FROM events WHERE "  # noqa: S608
        f"chain = '{chain}' ORDER BY seq")


@pytest.mark.postgres
def test_the_lines_chains_verify_and_their_anchors_hold_them(
        pg_server: TestServer, key_wrap: SoftwareKeyWrap, apps: list[Application],
        software_key: ec.EllipticCurvePrivateKey) -> None:
    """Two lines run a batch, each on a chain of its own anchored in the journal's: the whole
    trail holds and each chain is checkpointed; a line's chain re-hashed after an edit (its
    head too) is caught at its first event no checkpoint or anchor vouches for."""
    name = pg_server.fresh()
    backdoor = pg_server.backdoor(name)
    try:
        with PostgresJournal(pg_server.cluster.url(name), wrap=key_wrap) as journal:
            journal.create_batch("B1", source="apps.jsonl", profile="cccd", max_attempts=2,
                                 valid=[(i + 1, a, document_number(a))
                                        for i, a in enumerate(apps)], invalid=[])
            for index, line in enumerate(("L1", "L2")):
                journal.join_line("B1", line, stations=[f"{line}-s1"], holder="test")
                for app in apps[2 * index:2 * index + 2]:
                    card = journal.begin_card("B1", app.application_id, f"{line}-s1", line)
                    for kind in HAPPY:
                        card = journal.move(card, step(card.machine(2), Event(kind)),
                                            chip_serial=f"{app.application_id}-chip"
                                            if kind is Kind.FED else None)
                journal.leave_line("B1", line, "run-1")
            key = _audit_key(journal, software_key)
            made = sign_heads(journal, key, lambda data: _sign(software_key, data), at=AT)
            assert sorted(p.chain for p in made) == ["journal", "line:L1", "line:L2"]
            assert verify(journal).ok
            seq = 2
            rows = _chain_events(backdoor, "line:L1")
            digest = rows[seq - 2][6]
            backdoor.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            backdoor.execute("ALTER TABLE chain_heads DISABLE TRIGGER chain_heads_forward")
            for number, at, batch, card_id, event_kind, data, _ in rows[seq - 1:]:
                text = '{"forged": true}' if number == seq else data
                new = event_hash(digest, number, at, batch, card_id, event_kind, text)
                backdoor.execute(f"UPDATE events SET data = '{text}', prev = '{digest}', "  # noqa: S608
                                 f"hash = '{new}' WHERE chain = 'line:L1' AND seq = {number}")
                digest = new
            backdoor.execute(f"UPDATE chain_heads SET hash = '{digest}' "  # noqa: S608
                             "WHERE chain = 'line:L1'")
            backdoor.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
            backdoor.execute("ALTER TABLE chain_heads ENABLE TRIGGER chain_heads_forward")
            result = verify(journal)
        bad = result.first_bad
        assert bad is not None and (bad.code, bad.chain, bad.seq) == (
            Problem.REHASHED, "line:L1", 1), result.findings
    finally:
        pg_server.cluster.drop_database(name)
