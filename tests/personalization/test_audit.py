"""The tamper-evident audit end to end on a SQLite journal, its audit key on a real SoftHSM
token: each way of tampering — an event edited with the triggers dropped, the last event
deleted, the chain re-hashed after an edit, the triggers dropped alone, a card's or an
application's state changed by hand, a checkpoint's signature broken — is made on a COPY of
one journal and caught by `audit verify`, naming the first bad event by its seq; the untouched
journal holds; openssl verifies an exported checkpoint; an export verifies offline and a
tampered one does not."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from asn1crypto import x509
from typer.testing import CliRunner

from hsm.auditcert import fingerprint
from hsm.pkcs11 import HSM
from hsm.softhsm import SoftHSMToken, throwaway_token
from personalization.applications.intake import read_applications
from personalization.cardstate import Event, Kind, step
from personalization.cli import app
from personalization.config import HSMConfig, JournalConfig, LineConfig
from personalization.journal import SQLiteJournal
from personalization.journal.records import GENESIS, event_hash
from personalization.journal.sqlite_schema import MIGRATIONS
from personalization.line.report import build_report, render_html
from personalization.prep import document_number
from personalization.profile import load_profile
from personalization.reasons import Code, Reason
from personalization.service import audit, auditexport
from personalization.service.audit import AuditResult, Problem
from personalization.service.errors import ServiceError
from tests.support.crew import enrol

pytestmark = pytest.mark.softhsm
HAPPY = [Kind.FED, Kind.ENCODED, Kind.QA_PASSED, Kind.PRINTED, Kind.EJECTED]
TRIGGERS = {s.split()[2]: s for _, _, statements in MIGRATIONS for s in statements
            if s.startswith("CREATE TRIGGER")}
ROWS = {Problem.CARD_STATE, Problem.CARD_APPLICATION, Problem.CARD_GONE,
        Problem.APPLICATION_STATE, Problem.APPLICATION_CARDS, Problem.APPLICATION_GONE}
runner = CliRunner()


@dataclass(frozen=True)
class Line:
    """The pristine journal (never tampered with), its line and token, and where its first
    and last checkpoints are."""

    config: LineConfig
    token: SoftHSMToken
    folder: Path
    first: int  # seq of the first checkpoint
    last: int  # seq of the last checkpoint: the last event
    cards: dict[str, int]  # application id → the seq of its card's last event
    failed: int  # seq of application.failed

    @property
    def journal(self) -> Path:
        return self.folder / "journal.db"

    def copy(self, name: str) -> Path:
        """A copy of the pristine journal, made with SQLite's backup API."""
        target = self.folder / f"{name}.db"
        target.unlink(missing_ok=True)
        with closing(sqlite3.connect(self.journal)) as source, \
                closing(sqlite3.connect(target)) as copy:
            source.backup(copy)
        return target

    def config_for(self, path: Path) -> LineConfig:
        return self.config.model_copy(update={"journal": JournalConfig(url=f"sqlite:///{path}")})


def _cards(journal: SQLiteJournal, application: str, *runs: list[Event]) -> None:
    for number, events in enumerate(runs):
        card = journal.begin_card("B1", application, "s1")
        for event in events:
            card = journal.move(card, step(card.machine(2), event),
                                chip_serial=f"{application}-{number}" if event.kind is Kind.FED
                                else None)


def _spoiled(text: str) -> list[Event]:
    return [Event(Kind.FED), Event(Kind.FAILED, Reason(Code.TEXT, {"text": text})),
            Event(Kind.REJECTED)]


def _last_seq(journal: SQLiteJournal) -> int:
    return journal.verify_chain().events


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory, synth_dir: Path) -> Iterator[Line]:
    """Batch B1 run on a journal: cards handed out, a card rejected then retried, an
    application failed before its card, one out of attempts, a login with its actor; a
    checkpoint early and one at the end, signed by the audit key made on the token."""
    folder = tmp_path_factory.mktemp("audit")
    apps = [a for _, a in read_applications(
        synth_dir / "apps.jsonl", load_profile("cccd").intake_rules(), date(2026, 11, 24)).valid]
    with throwaway_token(folder / "data", "cardline-test") as token:
        config = LineConfig(line="L1", data_dir=token.data_dir, hsm=HSMConfig(
            module=token.module, token=token.label, pin_source="embedded",
            softhsm_conf=token.conf), journal=JournalConfig(url=f"sqlite:///{folder}/journal.db"))
        ids = [a.application_id for a in apps[:5]]
        with SQLiteJournal(folder / "journal.db") as journal:
            journal.create_batch("B1", source="apps.jsonl", profile="cccd", max_attempts=2,
                                 valid=[(i, a, document_number(a)) for i, a in enumerate(apps[:5])],
                                 invalid=[])
            _cards(journal, ids[0], [Event(k) for k in HAPPY])
            cards = {ids[0]: _last_seq(journal)}
            [first] = audit.checkpoint(config)
            _cards(journal, ids[1], [Event(k) for k in HAPPY])
            _cards(journal, ids[2], _spoiled("lock"), [Event(k) for k in HAPPY])
            cards[ids[2]] = _last_seq(journal)
            journal.fail_application("B1", ids[3], Reason(Code.TEXT, {"text": "photo"}))
            failed = _last_seq(journal)
            journal.note(None, "people.login", actor="an", role="operator")
            _cards(journal, ids[4], _spoiled("lock"), _spoiled("lock"))
            [last] = audit.checkpoint(config)
            assert last.seq == _last_seq(journal)
        yield Line(config, token, folder, first.seq, last.seq, cards, failed)


def _tamper(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path)) as db:
        for statement in statements:
            db.execute(statement)
        db.commit()


def _verify(path: Path) -> AuditResult:
    with SQLiteJournal(path) as journal:
        return audit.verify(journal)


def _first(result: AuditResult) -> tuple[Problem, str | None, int | None]:
    bad = result.first_bad
    assert bad is not None, result.findings
    return bad.code, bad.chain, bad.seq


def test_an_untouched_journal_holds(line: Line) -> None:
    """Every event re-hashes, both checkpoints verify, every row agrees with its events."""
    result = audit.verify_line(line.config)
    assert result.ok, result.findings
    assert (result.events, result.checkpoints, result.uncovered) == (line.last, 2, 0)
    with SQLiteJournal(line.copy("untouched")) as journal:
        journal.note(None, "test.after")
        later = audit.verify(journal)
    assert later.ok and later.uncovered == 1


def test_an_event_edited_after_dropping_the_triggers(line: Line) -> None:
    """The edited event's hash no longer follows: it is the first bad event, and the
    dropped trigger is reported too."""
    copy = line.copy("edited")
    seq = line.first + 2
    _tamper(copy, "DROP TRIGGER events_append_only_update",
            f"UPDATE events SET data = '{{\"station\": \"s9\"}}' WHERE seq = {seq}")  # noqa: S608
    result = _verify(copy)
    assert _first(result) == (Problem.EVENT_CHANGED, "journal", seq)
    assert {f.code for f in result.findings} == {Problem.EVENT_CHANGED, Problem.GUARDS}


@pytest.mark.parametrize("rewind", [False, True], ids=["head-kept", "head-rewound"])
def test_the_last_event_deleted(line: Line, rewind: bool) -> None:
    """The last event deleted is named by its seq, whether the chain head still names it or
    was moved back to the event before (and the triggers put back): then the signed
    checkpoint still names it."""
    copy = line.copy("deleted")
    statements = ["DROP TRIGGER events_append_only_delete",
                  f"DELETE FROM events WHERE seq = {line.last}"]  # noqa: S608
    if rewind:
        statements += ["DROP TRIGGER chain_head_forward",
                       f"UPDATE chain_head SET seq = {line.last - 1}, hash = (SELECT hash FROM "  # noqa: S608
                       f"events WHERE seq = {line.last - 1})",
                       TRIGGERS["chain_head_forward"]]
    _tamper(copy, *statements, TRIGGERS["events_append_only_delete"])
    result = _verify(copy)
    assert _first(result) == (Problem.EVENTS_CUT_OFF, "journal", line.last)
    # the deleted event settled a card and its application: their rows now disagree too
    assert {f.code for f in result.findings[1:]} == {Problem.CARD_STATE,
                                                     Problem.APPLICATION_STATE}


def _rehash(path: Path, seq: int) -> None:
    """Edit event ``seq``, recompute every hash after it and the head, put the triggers back."""
    _tamper(path, "DROP TRIGGER events_append_only_update", "DROP TRIGGER chain_head_forward",
            f"UPDATE events SET data = '{{\"forged\": true}}' WHERE seq = {seq}")  # noqa: S608
    with closing(sqlite3.connect(path)) as db:
        prev = db.execute("SELECT hash FROM events WHERE seq = ?", (seq - 1,)).fetchone()[0]
        for number, at, batch, card, kind, data in db.execute(
                "SELECT seq, at, batch, card, kind, data FROM events WHERE seq >= ? "
                "ORDER BY seq", (seq,)).fetchall():
            digest = event_hash(prev, number, at, batch, card, kind, data)
            db.execute("UPDATE events SET prev = ?, hash = ? WHERE seq = ?",
                       (prev, digest, number))
            prev = digest
        db.execute("UPDATE chain_head SET hash = ?", (prev,))
        db.commit()
    _tamper(path, TRIGGERS["events_append_only_update"], TRIGGERS["chain_head_forward"])


@pytest.mark.parametrize("offset", [1, 4])
def test_a_chain_rehashed_after_an_edit(line: Line, offset: int) -> None:
    """The re-hashed chain is whole and its triggers in place, but the last checkpoint names
    another head: the first event no checkpoint vouches for any more is the first bad one
    (the edited one, when it follows the earlier checkpoint)."""
    copy = line.copy("rehashed")
    edited = line.first + offset
    _rehash(copy, edited)
    with SQLiteJournal(copy) as journal:
        assert journal.verify_chain().ok
    result = _verify(copy)
    assert _first(result) == (Problem.REHASHED, "journal", line.first + 1)
    bad = result.first_bad
    assert bad is not None and bad.details == {"through": line.last, "by": "checkpoint"}
    assert bad.seq is not None and bad.seq <= edited
    # the forged event was a card's (its application gone from its data): rows disagree too
    assert all(f.code in ROWS for f in result.findings[1:])


@pytest.mark.parametrize("how", ["dropped", "replaced"])
def test_dropped_triggers_alone_are_reported(line: Line, how: str) -> None:
    """With no event touched, append-only triggers dropped (or replaced by ones that allow
    everything) are reported by name; no event is named."""
    copy = line.copy("guards")
    if how == "dropped":
        _tamper(copy, "DROP TRIGGER events_append_only_update",
                "DROP TRIGGER audit_checkpoints_no_delete")
    else:
        _tamper(copy, "DROP TRIGGER events_append_only_update",
                "CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events "
                "BEGIN SELECT 1; END")
    result = _verify(copy)
    assert not result.ok and result.first_bad is None
    [finding] = result.findings
    assert finding.code is Problem.GUARDS
    assert list(finding.details["guards"]) == (
        ["events_append_only_update", "audit_checkpoints_no_delete"] if how == "dropped"
        else ["events_append_only_update"])


def test_a_card_state_changed_by_hand(line: Line) -> None:
    """A handed-out card set to rejected in the cards table is named by its last event."""
    copy = line.copy("card")
    application = next(iter(line.cards))
    _tamper(copy, "UPDATE cards SET state = 'rejected' WHERE application_id = "  # noqa: S608
                  f"'{application}' AND state = 'handed_out'")
    result = _verify(copy)
    assert _first(result) == (Problem.CARD_STATE, "journal", line.cards[application])
    assert {f.code for f in result.findings} == {Problem.CARD_STATE,
                                                 Problem.APPLICATION_CARDS}


def test_an_application_state_changed_by_hand(line: Line) -> None:
    """A failed application set to handed out disagrees with the event that failed it and
    has no handed-out card."""
    copy = line.copy("application")
    _tamper(copy, "UPDATE applications SET state = 'handed_out' WHERE state = 'failed'")
    result = _verify(copy)
    codes = [(f.code, f.seq) for f in result.findings]
    assert (Problem.APPLICATION_STATE, line.failed) in codes
    assert Problem.APPLICATION_CARDS in {code for code, _ in codes}


@pytest.mark.parametrize("how", ["signature", "head"])
def test_a_checkpoint_whose_signature_does_not_verify(line: Line, how: str) -> None:
    """A checkpoint's signature changed, or its head changed under its signature, is named by
    the checkpoint's chain and seq."""
    copy = line.copy("checkpoint")
    with closing(sqlite3.connect(copy)) as db:
        signature = db.execute("SELECT signature FROM audit_checkpoints WHERE seq = ?",
                               (line.first,)).fetchone()[0]
    change = (f"signature = x'{(signature[:-1] + bytes([signature[-1] ^ 1])).hex()}'"
              if how == "signature" else f"head = '{'0' * 64}'")
    _tamper(copy, "DROP TRIGGER audit_checkpoints_no_update",
            f"UPDATE audit_checkpoints SET {change} WHERE seq = {line.first}",  # noqa: S608
            TRIGGERS["audit_checkpoints_no_update"])
    result = _verify(copy)
    assert _first(result) == (Problem.SIGNATURE, "journal", line.first)
    assert len(result.findings) == 1


def test_the_audit_key_stays_in_the_hsm(line: Line) -> None:
    """The audit key was made on the token, sensitive and never extractable; its
    certificate names the line, for digital signatures only; its making is journaled; with
    no head moved, a checkpoint signs nothing."""
    with HSM(line.token.module, line.token.label, line.token.pin) as hsm:
        attributes = hsm.key_attributes("AUDIT")
    assert attributes.sensitive and attributes.never_extractable and attributes.local
    assert not attributes.extractable
    with SQLiteJournal(line.journal) as journal, journal.audit_snapshot() as snapshot:
        key = journal.audit_key("AUDIT")
        made = [json.loads(e.data) for e in snapshot.events() if e.kind == "audit.key"]
    assert key is not None and made == [{"generated": True, "label": "AUDIT",
                                         "sha256": fingerprint(key.certificate)}]
    certificate = x509.Certificate.load(key.certificate)
    assert certificate.subject.native == {"common_name": "cardline audit L1"}
    assert certificate.key_usage_value.native == {"digital_signature"}
    assert certificate.public_key.curve == ("named", "secp256r1")
    assert audit.checkpoint(line.config) == []


@pytest.mark.parametrize("how", ["edited", "guards", "forged"])
def test_a_checkpoint_refuses_to_sign_over_tampering(line: Line, how: str) -> None:
    """Nothing is signed over an event edited since the last checkpoint, while a trigger is
    missing, or from a last checkpoint whose signature does not verify."""
    copy = line.copy("refused")
    with SQLiteJournal(copy) as journal:
        journal.note(None, "test.after")
    statements = {
        "edited": ["DROP TRIGGER events_append_only_update",
                   f"UPDATE events SET data = '{{\"x\": 1}}' WHERE seq = {line.last + 1}",  # noqa: S608
                   TRIGGERS["events_append_only_update"]],
        "guards": ["DROP TRIGGER events_append_only_update"],
        "forged": ["DROP TRIGGER audit_checkpoints_no_update",
                   f"UPDATE audit_checkpoints SET at = 'x' WHERE seq = {line.last}",  # noqa: S608
                   TRIGGERS["audit_checkpoints_no_update"]]}
    _tamper(copy, *statements[how])
    expected = {"edited": rf"event {line.last + 1}: event_changed",
                "guards": r"triggers are not in force \(events_append_only_update\)",
                "forged": rf"last checkpoint of chain 'journal' \(seq {line.last}\) does not"}
    with pytest.raises(ServiceError, match=expected[how]):
        audit.checkpoint(line.config_for(copy))
    with SQLiteJournal(copy) as journal:
        assert len(journal.checkpoints()) == 2


def _extract(tar_path: Path, into: Path) -> Path:
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return into / "audit"


def test_openssl_verifies_an_exported_checkpoint(line: Line, tmp_path: Path) -> None:
    """Each checkpoint of an export verifies with the openssl command VERIFY.txt documents,
    against the export's audit certificate."""
    done = auditexport.export_line(line.config, tmp_path / "trail.tar")
    assert (done.events, done.checkpoints) == (line.last, 2)
    assert (tmp_path / "trail.tar").stat().st_mode & 0o077 == 0
    folder = _extract(tmp_path / "trail.tar", tmp_path / "x")
    documented = (folder / "VERIFY.txt").read_text(encoding="utf-8")
    assert "openssl cms -verify -binary -inform DER -in" in documented
    signatures = sorted((folder / "checkpoints").glob("*.p7s"))
    assert len(signatures) == 2
    for signature in signatures:
        checked = subprocess.run(
            ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(signature),
             "-content", str(signature.with_suffix(".txt")), "-CAfile", "audit.pem",
             "-purpose", "any", "-out", "/dev/null"],
            cwd=folder, capture_output=True, text=True, check=False, timeout=30)
        assert checked.returncode == 0, checked.stderr
        assert "Verification successful" in checked.stderr
    forged = signatures[0].with_suffix(".txt")
    forged.write_text(forged.read_text(encoding="utf-8").replace("seq=", "seq=1"),
                      encoding="utf-8")
    refused = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(signatures[0]),
         "-content", str(forged), "-CAfile", "audit.pem", "-purpose", "any", "-out",
         "/dev/null"], cwd=folder, capture_output=True, text=True, check=False, timeout=30)
    assert refused.returncode != 0


def test_an_export_verifies_offline(line: Line, tmp_path: Path) -> None:
    """An export of a copy verifies with the copy gone (no database at all); events name
    their actor by account name; the certificate's fingerprint is the audit key's."""
    copy = line.copy("exported")
    with SQLiteJournal(copy) as journal:
        auditexport.export(journal, tmp_path / "trail.tar")
        key = journal.audit_key("AUDIT")
    copy.unlink()
    result = auditexport.verify_export(tmp_path / "trail.tar")
    assert result.ok, result.findings
    assert (result.events, result.checkpoints) == (line.last, 2)
    assert key is not None and result.certificates == (fingerprint(key.certificate),)
    events = (_extract(tmp_path / "trail.tar", tmp_path / "x") / "events.jsonl").read_text(
        encoding="utf-8").splitlines()
    login = [json.loads(e) for e in events if '"people.login"' in e]
    assert [e["actor"] for e in login] == ["an"]
    assert auditexport.verify_export(tmp_path / "trail.tar", trusted=[key.certificate]).ok


def _rewrite(source: Path, target: Path, change: Callable[[str, bytes], bytes]) -> None:
    """A copy of an export tar with each member's bytes passed through ``change``."""
    with tarfile.open(source) as old, tarfile.open(target, "w") as new:
        for member in old.getmembers():
            data = change(member.name, old.extractfile(member).read())  # type: ignore[union-attr]
            member.size = len(data)
            new.addfile(member, io.BytesIO(data))


def _events_edit(seq: int, rehash: bool) -> Callable[[str, bytes], bytes]:
    def change(name: str, data: bytes) -> bytes:
        if not name.endswith("events.jsonl"):
            return data
        events, prev = [], GENESIS
        for line in data.decode("utf-8").splitlines():
            event = json.loads(line)
            if event["seq"] == seq:
                event["data"] = '{"forged": true}'
            if rehash and event["seq"] >= seq:
                event["prev"] = prev
                event["hash"] = event_hash(prev, event["seq"], event["at"], event["batch"],
                                           event["card"], event["kind"], event["data"])
            prev = event["hash"]
            events.append(json.dumps(event, ensure_ascii=False))
        return ("\n".join(events) + "\n").encode("utf-8")
    return change


def _unchanged(name: str, data: bytes) -> bytes:
    return data


@pytest.mark.parametrize("how", ["edited", "rehashed", "cut", "actor", "certificate"])
def test_a_tampered_export_is_detected(line: Line, tmp_path: Path, how: str) -> None:
    """Changed in the file: an event edited, an event edited and the chain re-hashed (the
    heads too), the last event dropped, an actor renamed, or the certificate not the one the
    auditor trusts — each found offline."""
    auditexport.export_line(line.config, tmp_path / "trail.tar")
    seq = line.first + 2
    changes: dict[str, Callable[[str, bytes], bytes]] = {
        "edited": _events_edit(seq, rehash=False),
        "rehashed": _rehashed_with_heads(seq),
        "cut": lambda name, data: b"".join(data.splitlines(keepends=True)[:-1])
        if name.endswith("events.jsonl") else data,
        "actor": lambda name, data: data.replace(b'"actor": "an"', b'"actor": "binh"'),
        "certificate": _unchanged,
    }
    _rewrite(tmp_path / "trail.tar", tmp_path / "tampered.tar", changes[how])
    trusted = [b"another certificate"] if how == "certificate" else None
    result = auditexport.verify_export(tmp_path / "tampered.tar", trusted=trusted)
    assert not result.ok
    expected = {"edited": (Problem.EVENT_CHANGED, "journal", seq),
                "rehashed": (Problem.REHASHED, "journal", line.first + 1),
                "cut": (Problem.EVENTS_CUT_OFF, "journal", line.last)}
    if how == "certificate":
        assert Problem.KEY_UNTRUSTED in {f.code for f in result.findings}
        assert _first(result) == (Problem.SIGNATURE, "journal", line.first)  # none verifies
    elif how == "actor":
        assert _first(result)[0] is Problem.ACTOR
    else:
        assert _first(result) == expected[how]


def _rehashed_with_heads(seq: int) -> Callable[[str, bytes], bytes]:
    edit = _events_edit(seq, rehash=True)
    state: dict[str, str] = {}

    def change(name: str, data: bytes) -> bytes:
        if name.endswith("events.jsonl"):
            data = edit(name, data)
            state["head"] = json.loads(data.splitlines()[-1])["hash"]
        if name.endswith("heads.json"):
            heads = json.loads(data)
            heads["chains"]["journal"]["hash"] = state.get("head", "")
            return json.dumps(heads).encode("utf-8")
        return data
    return change


def test_the_report_prints_the_chain_heads_it_covers(line: Line) -> None:
    """A batch report carries (and its page shows) the journal's chain head: seq and hash."""
    with SQLiteJournal(line.journal) as journal:
        report = build_report(journal, "B1")
        head = journal.chain_heads()["journal"]
    assert report["journal"]["heads"] == [{"chain": "journal", "seq": head[0],
                                           "hash": head[1]}]
    assert head[1] in render_html(report)


def _line_yaml(line: Line, journal: Path) -> Path:
    path = journal.with_suffix(".yaml")
    path.write_text(
        f"line: L1\ndata_dir: {line.token.data_dir}\n"
        f"hsm: {{module: {line.token.module}, token: {line.token.label}, "
        f"pin_source: embedded, softhsm_conf: {line.token.conf}}}\n"
        f"journal: {{url: 'sqlite:///{journal}'}}\n", encoding="utf-8")
    return path


def test_the_cli_says_whether_the_trail_holds(line: Line, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`cardline audit verify` exits 0 saying what it read, or 1 naming the first bad event;
    `audit export` writes the file `audit verify --export` checks; `audit checkpoint` signs
    what moved, then says when nothing did. An operator may do none of it."""
    copy = line.copy("cli")
    config = _line_yaml(line, copy)
    crew = enrol(config, tmp_path / "people")  # the accounts' own events follow the batch's
    for key, value in crew.env("an", {}).items():
        monkeypatch.setenv(key, value)
    refused = runner.invoke(app, ["audit", "verify", "--config", str(config)])
    assert refused.exit_code == 2 and "may not verify the audit trail" in refused.output
    for key, value in crew.env("tess", {}).items():
        monkeypatch.setenv(key, value)
    holds = runner.invoke(app, ["audit", "verify", "--config", str(config)])
    assert holds.exit_code == 0, holds.output
    assert "audit trail holds:" in holds.output and "2 checkpoints" in holds.output
    signed = runner.invoke(app, ["audit", "checkpoint", "--config", str(config)])
    assert signed.exit_code == 0 and "checkpoint: chain journal" in signed.output, signed.output
    nothing = runner.invoke(app, ["audit", "checkpoint", "--config", str(config)])
    assert nothing.exit_code == 0 and "no chain head moved" in nothing.output
    exported = runner.invoke(app, ["audit", "export", "--config", str(config), "--out",
                                   str(tmp_path / "trail.tar")])
    assert exported.exit_code == 0, exported.output
    offline = runner.invoke(app, ["audit", "verify", "--export", str(tmp_path / "trail.tar")])
    assert offline.exit_code == 0 and "audit trail holds" in offline.output
    seq = line.first + 2
    _tamper(copy, "DROP TRIGGER events_append_only_update",
            f"UPDATE events SET data = '{{}}' WHERE seq = {seq}")  # noqa: S608
    broken = runner.invoke(app, ["audit", "verify", "--config", str(config)])
    assert broken.exit_code == 1
    assert f"first bad event: seq {seq} (chain journal): its hash does not follow" in \
        broken.output


def test_the_readme_openssl_check_of_an_export(line: Line, tmp_path: Path) -> None:
    """The README's outsider check, run verbatim by bash beside an export: the fingerprint
    is printed and no checkpoint is BAD; with one statement changed, that one is BAD."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = text.index("an outsider checks it without")
    block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert block is not None and "openssl cms -verify" in block.group(1)
    auditexport.export_line(line.config, tmp_path / "trail.tar")

    def run(folder: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-eu", "-c", block.group(1)], cwd=folder,
                              capture_output=True, text=True, check=False, timeout=60)

    holds = run(tmp_path)
    assert holds.returncode == 0 and "Fingerprint=" in holds.stdout, holds.stderr
    assert "BAD" not in holds.stdout and holds.stderr.count("Verification successful") == 2
    forged_dir = tmp_path / "forged"
    forged_dir.mkdir()
    with tarfile.open(tmp_path / "trail.tar") as source, \
            tarfile.open(forged_dir / "trail.tar", "w") as target:
        changed = False
        for member in source.getmembers():
            data = source.extractfile(member) if member.isfile() else None
            if data is not None and member.name.endswith(".txt") and "checkpoints/" in \
                    member.name and not changed:
                body = data.read().replace(b"seq=", b"seq=1")
                member.size, changed = len(body), True
                target.addfile(member, io.BytesIO(body))
            else:
                target.addfile(member, data)
    assert changed
    refused = run(forged_dir)
    assert refused.stdout.count("BAD: ") == 1
