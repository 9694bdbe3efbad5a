"""The tamper-evident audit, for auditors: signed checkpoints of the journal's event chains,
a verifier that trusts neither the database nor its triggers, and an export an outsider checks
offline.

Each event's hash covers the previous one, so an edited event breaks the chain where it was
edited — unless whoever edited it also re-hashed every event after it and rewrote the chain
head. What stops that is a checkpoint: a chain head signed by the audit key, which lives in
the line's HSM and never leaves it. A re-hashed chain no longer reaches the head a checkpoint
signed; the first event no checkpoint vouches for any more is the first one in doubt.
Events after the last checkpoint are covered by their hashes alone (:attr:`AuditResult.uncovered`),
which is why ``cardline audit checkpoint`` runs often and each batch report prints the heads.

The ``cards`` and ``applications`` rows a report is built from are checked by replaying each
batch's ``card.*`` events: a row changed by hand no longer says what its events say.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from hsm.auditcert import (
    build_audit_certificate,
    certificates_from_pem,
    fingerprint,
    load_audit_certificate,
    sign_detached,
    verify_detached,
)
from hsm.errors import CertificateError, KeyNotFound
from hsm.pkcs11 import HSM
from personalization.config import LineConfig
from personalization.journal.audit_port import (
    JOURNAL_CHAIN,
    ApplicationState,
    AuditEvent,
    AuditKey,
    AuditPort,
    AuditSnapshot,
    CardState,
    Checkpoint,
    statement,
)
from personalization.journal.port import JournalPort
from personalization.journal.records import GENESIS, event_hash
from personalization.service.batches import open_journal
from personalization.service.errors import ServiceError
from personalization.service.keys import open_hsm

__all__ = ["AuditResult", "Finding", "Problem", "checkpoint", "ensure_audit_key", "verify",
           "verify_line"]

ALGORITHM = "ecdsa-p256"
CERTIFICATE_YEARS = 10
_MAX_FINDINGS = 200  # kept in a result; the rest are counted
_SETTLED = {"handed_out": "handed_out", "retry": "pending", "requeue": "pending",
            "failed": "failed"}  # an application after its card's outcome (cardstate.Outcome)
Signer = Callable[[bytes], bytes]
References = dict[str, dict[int, tuple[str, str]]]  # chain → seq → (head, "checkpoint"|"anchor")


class AuditJournal(JournalPort, AuditPort, Protocol):
    """A journal with its audit port (both adapters are)."""


class Problem(StrEnum):
    """What does not hold; the CLI says it in words."""

    EVENT_CHANGED = "event_changed"  # its hash does not follow from its fields and prev
    EVENT_MISSING = "event_missing"  # a gap in the numbering
    EVENTS_CUT_OFF = "events_cut_off"  # the head or a checkpoint names events the log lacks
    EVENTS_PAST_HEAD = "events_past_head"
    HEAD_MISMATCH = "head_mismatch"  # the last event is not the one the head names
    OUT_OF_ORDER = "events_out_of_order"  # (an export) a chain's events not together
    REHASHED = "rehashed"  # re-hashed after a change: a checkpoint or anchor names another head
    SIGNATURE = "checkpoint_signature"  # or signed by no audit certificate known (trusted)
    KEY_UNTRUSTED = "audit_key_untrusted"
    GUARDS = "guards_missing"  # the append-only triggers are missing, disabled or changed
    CARD_STATE = "card_state"  # a card row's state is not its last card.<state> event's
    CARD_UNRECORDED = "card_without_event"
    CARD_GONE = "card_row_missing"
    CARD_APPLICATION = "card_application"
    APPLICATION_STATE = "application_state"
    APPLICATION_CARDS = "application_cards"  # handed out without one handed-out card, or …
    APPLICATION_GONE = "application_row_missing"
    ACTOR = "actor_mismatch"  # (an export) the actor named is not the event's


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that does not hold: the first bad event of a chain, a checkpoint, a row."""

    code: Problem
    chain: str | None = None
    seq: int | None = None  # the event (or checkpoint) of ``chain`` it is about
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """``audit verify --json``."""
        return {"code": self.code.value, "chain": self.chain, "seq": self.seq,
                "details": dict(self.details)}


# What rows say (cards, applications, an export's actors) is checked against events; when the
# events themselves are bad, those come first.
_ROWS = frozenset({Problem.CARD_STATE, Problem.CARD_UNRECORDED, Problem.CARD_GONE,
                   Problem.CARD_APPLICATION, Problem.APPLICATION_STATE,
                   Problem.APPLICATION_CARDS, Problem.APPLICATION_GONE, Problem.ACTOR})


def _order(finding: Finding) -> tuple[bool, bool, bool, str, int]:
    return (finding.seq is None, finding.code in _ROWS, finding.chain != JOURNAL_CHAIN,
            finding.chain or "", finding.seq or 0)


@dataclass(frozen=True, slots=True)
class AuditResult:
    """The verdict on an audit trail: the events and checkpoints read, what does not hold
    (first bad event first), how many events no checkpoint covers yet, and the SHA-256
    fingerprints of the audit certificates relied on (to compare out of band)."""

    events: int
    checkpoints: int
    findings: tuple[Finding, ...]
    omitted: int = 0  # findings beyond those kept
    uncovered: int = 0
    certificates: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """The trail holds."""
        return not self.findings

    @property
    def first_bad(self) -> Finding | None:
        """The first finding that names an event, if any: a bad event of a chain before a row
        that disagrees with its events."""
        return next((f for f in self.findings if f.seq is not None), None)

    def as_dict(self) -> dict[str, Any]:
        """``audit verify --json``."""
        return {"ok": self.ok, "events": self.events, "checkpoints": self.checkpoints,
                "uncovered": self.uncovered, "certificates": list(self.certificates),
                "findings": [f.as_dict() for f in self.findings], "omitted": self.omitted}


def result_of(events: int, checkpoints: int, findings: Iterable[Finding], uncovered: int,
            certificates: Iterable[bytes]) -> AuditResult:
    ordered = sorted(findings, key=_order)
    return AuditResult(events, checkpoints, tuple(ordered[:_MAX_FINDINGS]),
                       max(len(ordered) - _MAX_FINDINGS, 0), uncovered,
                       tuple(sorted({fingerprint(c) for c in certificates})))


# -- the chains -----------------------------------------------------------------------------

@dataclass
class _Walk:
    """Re-hashes one chain as its events stream by, checking them against the heads that
    checkpoints (and, for a line's chain, the journal's anchors) name."""

    chain: str
    references: Mapping[int, tuple[str, str]]
    prev: str = GENESIS
    count: int = 0
    vouched: int = 0  # the last seq a checkpoint or anchor vouched for
    finding: Finding | None = None

    def feed(self, event: AuditEvent) -> None:
        self.count += 1
        if self.finding is not None:
            return
        if event.seq != self.count:
            self.finding = Finding(Problem.EVENT_MISSING, self.chain, self.count)
        elif event.prev != self.prev or event.hash != event_hash(
                self.prev, event.seq, event.at, event.batch, event.card, event.kind, event.data):
            self.finding = Finding(Problem.EVENT_CHANGED, self.chain, event.seq)
        else:
            self.prev = event.hash
            self._vouch(event.seq)

    def _vouch(self, seq: int) -> None:
        reference = self.references.get(seq)
        if reference is None:
            return
        if reference[0] == self.prev:
            self.vouched = seq
        else:  # every event from the last one vouched for may have been changed
            self.finding = Finding(Problem.REHASHED, self.chain, self.vouched + 1,
                                   {"through": seq, "by": reference[1]})

    def end(self, head: tuple[int, str]) -> Finding | None:
        if self.finding is not None:
            return self.finding
        beyond = [seq for seq in self.references if seq > self.count]
        if head[0] > self.count or beyond:
            return Finding(Problem.EVENTS_CUT_OFF, self.chain, self.count + 1,
                           {"head": head[0], "named": max([head[0], *beyond])})
        if head[0] < self.count:
            return Finding(Problem.EVENTS_PAST_HEAD, self.chain, head[0] + 1, {"head": head[0]})
        if head[1] != self.prev:
            return Finding(Problem.HEAD_MISMATCH, self.chain, self.count)
        return None


def _anchor(event: AuditEvent, anchors: References) -> None:
    """A line chain's head as the journal's chain recorded it (PostgreSQL: join, leave)."""
    if event.chain != JOURNAL_CHAIN or '"chain_hash"' not in event.data:
        return
    data = json.loads(event.data)
    chain, seq, digest = data.get("chain"), data.get("chain_seq"), data.get("chain_hash")
    if isinstance(chain, str) and isinstance(seq, int) and seq > 0 and isinstance(digest, str):
        anchors.setdefault(chain, {})[seq] = (digest, "anchor")


def walk_chains(events: Iterable[AuditEvent], heads: Mapping[str, tuple[int, str]],
                 checkpoints: References) -> tuple[int, list[Finding]]:
    """Every chain re-hashed in one pass over the events (a chain's events together, the
    journal's first): (events read, the first bad event of each chain that has one)."""
    anchors: References = {}
    findings: list[Finding] = []
    done: dict[str, int] = {}
    walk: _Walk | None = None

    def close(walk: _Walk) -> None:
        done[walk.chain] = walk.count
        found = walk.end(heads.get(walk.chain, (0, GENESIS)))
        findings.extend([found] if found else [])

    for event in events:
        if walk is None or event.chain != walk.chain:
            if walk is not None:
                close(walk)
            if event.chain in done:
                findings.append(Finding(Problem.OUT_OF_ORDER, event.chain, event.seq))
            walk = _Walk(event.chain, {**anchors.get(event.chain, {}),
                                       **checkpoints.get(event.chain, {})})
        walk.feed(event)
        _anchor(event, anchors)
    if walk is not None:
        close(walk)
    for chain in sorted((set(heads) | set(checkpoints)) - set(done)):
        close(_Walk(chain, checkpoints.get(chain, {})))
    return sum(done.values()), findings


def uncovered(heads: Mapping[str, tuple[int, str]], checkpoints: References) -> int:
    """Events after the last good checkpoint of their chain: vouched for by hashes alone."""
    return sum(max(seq - max(checkpoints.get(chain, {}), default=0), 0)
               for chain, (seq, _) in heads.items())


# -- checkpoints ----------------------------------------------------------------------------

def signed_findings(checkpoints: Iterable[Checkpoint],
            certificates: Callable[[Checkpoint], Sequence[bytes]],
            ) -> tuple[References, list[Finding]]:
    """The checkpoints whose signature verifies under their audit certificate, by chain and
    seq; a finding for each of the others."""
    good: References = {}
    findings: list[Finding] = []
    for point in checkpoints:
        error = _signature_error(point, certificates(point))
        if error is not None:
            findings.append(Finding(Problem.SIGNATURE, point.chain, point.seq, {"error": error}))
        else:
            good.setdefault(point.chain, {})[point.seq] = (point.head, "checkpoint")
    return good, findings


def _signature_error(point: Checkpoint, certificates: Sequence[bytes]) -> str | None:
    """None when one of ``certificates`` signed the checkpoint's statement, else why not."""
    key = f" for audit key {point.key_label!r}" if point.key_label else ""
    error = f"no audit certificate{key} that is known and trusted"
    content = statement(point.chain, point.seq, point.head, point.at)
    for certificate in certificates:
        try:
            verify_detached(point.signature, content, certificate)
        except CertificateError as exc:
            error = str(exc)
        else:
            return None
    return error


def trusted_findings(certificates: Iterable[bytes],
                     trusted: Sequence[bytes] | None) -> list[Finding]:
    """An audit certificate the auditor does not know (when they named the ones they do)."""
    if trusted is None:
        return []
    return [Finding(Problem.KEY_UNTRUSTED, details={"sha256": fingerprint(c)})
            for c in certificates if c not in trusted]


# -- the states the report is built from ----------------------------------------------------

@dataclass
class _Replay:
    """A batch's ``card.*`` and ``application.failed`` events, replayed: where each card and
    application should be, and the event that put it there."""

    batch: str
    cards: dict[int, tuple[str, str, int]] = field(default_factory=dict)  # state, chain, seq
    owners: dict[int, str] = field(default_factory=dict)  # card → application
    applications: dict[str, tuple[str, str, int]] = field(default_factory=dict)

    def feed(self, event: AuditEvent) -> None:
        if event.kind == "application.failed":
            data = json.loads(event.data)
            self.applications[str(data.get("application"))] = ("failed", event.chain, event.seq)
        if event.card is None or not event.kind.startswith("card."):
            return
        state = event.kind.removeprefix("card.")
        if state == "superseded" and self.cards.get(event.card, ("",))[0] != "handed_out":
            # only a handed-out card is superseded (cardstate.supersede): a row that says
            # superseded then disagrees with what its events allow
            state = "superseded without being handed out"
        self.cards[event.card] = (state, event.chain, event.seq)
        data = json.loads(event.data)
        if state == "feeding":
            self.owners[event.card] = str(data.get("application"))
            self.applications[self.owners[event.card]] = ("active", event.chain, event.seq)
        owner = self.owners.get(event.card)
        if owner is not None and data.get("outcome") in _SETTLED:
            self.applications[owner] = (_SETTLED[data["outcome"]], event.chain, event.seq)

    def check_cards(self, rows: Sequence[CardState]) -> Iterator[Finding]:
        for row in rows:
            where = {"batch": self.batch, "card": row.card}
            replayed = self.cards.pop(row.card, None)
            if replayed is None:
                yield Finding(Problem.CARD_UNRECORDED, details={**where, "row": row.state})
                continue
            state, chain, seq = replayed
            if state != row.state:
                yield Finding(Problem.CARD_STATE, chain, seq,
                              {**where, "row": row.state, "events": state})
            if self.owners.get(row.card, row.application_id) != row.application_id:
                yield Finding(Problem.CARD_APPLICATION, chain, seq,
                              {**where, "row": row.application_id,
                               "events": self.owners[row.card]})
        for card, (state, chain, seq) in self.cards.items():  # events of cards with no row
            yield Finding(Problem.CARD_GONE, chain, seq,
                          {"batch": self.batch, "card": card, "events": state})

    def check_applications(self, rows: Sequence[ApplicationState],
                           cards: Sequence[CardState]) -> Iterator[Finding]:
        handed = {c.application_id: 0 for c in cards}
        for card in cards:  # a superseded card was handed out (its holder's next one since)
            handed[card.application_id] += card.state in ("handed_out", "superseded")
        for row in rows:
            where = {"batch": self.batch, "application": row.application_id}
            state, chain, seq = self.applications.pop(row.application_id, ("pending", None, None))
            if state != row.state:
                yield Finding(Problem.APPLICATION_STATE, chain, seq,
                              {**where, "row": row.state, "events": state})
            if (row.state == "handed_out") != (handed.get(row.application_id, 0) == 1) or \
                    handed.get(row.application_id, 0) > 1:
                yield Finding(Problem.APPLICATION_CARDS, chain, seq,
                              {**where, "row": row.state,
                               "handed_out_cards": handed.get(row.application_id, 0)})
        for application, (state, chain, seq) in self.applications.items():
            yield Finding(Problem.APPLICATION_GONE, chain, seq,
                          {"batch": self.batch, "application": application, "events": state})


def _replay(snapshot: AuditSnapshot, batch: str) -> list[Finding]:
    """One batch's card and application rows against its events (memory: one batch)."""
    replay = _Replay(batch)
    for event in snapshot.batch_events(batch):
        replay.feed(event)
    cards = snapshot.cards(batch)
    return [*replay.check_cards(cards),
            *replay.check_applications(snapshot.applications(batch), cards)]


# -- verifying a journal --------------------------------------------------------------------

def audit_journal(journal: JournalPort) -> AuditJournal:
    if not isinstance(journal, AuditPort):
        raise ServiceError(f"journal {journal.url}: this journal keeps no audit checkpoints")
    return journal


def verify(journal: AuditPort, *, trusted: Sequence[bytes] | None = None) -> AuditResult:
    """Check the whole trail from one snapshot of the journal: every chain re-hashed and held
    to its head, its signed checkpoints and (PostgreSQL) the journal's anchors of the lines'
    chains; every checkpoint's signature; the append-only triggers; every batch's card and
    application rows against their events. ``trusted``: the audit certificates the auditor
    knows out of band (None: those the journal holds)."""
    with journal.audit_snapshot() as snapshot:
        heads, points = snapshot.heads(), snapshot.checkpoints()
        keys = {key.label: key.certificate for key in snapshot.audit_keys()}
        usable = {label: [cert] for label, cert in keys.items()
                  if trusted is None or cert in trusted}
        good, findings = signed_findings(points, lambda p: usable.get(p.key_label, []))
        findings += trusted_findings(keys.values(), trusted)
        missing = snapshot.missing_guards()
        if missing:
            findings.append(Finding(Problem.GUARDS, details={"guards": missing}))
        events, chain_findings = walk_chains(snapshot.events(), heads, good)
        for batch in snapshot.batches():
            findings += _replay(snapshot, batch)
    return result_of(events, len(points), [*findings, *chain_findings],
                   uncovered(heads, good), keys.values())


def verify_line(config: LineConfig, *, trusted: Sequence[bytes] | None = None) -> AuditResult:
    """:func:`verify` on the line's journal."""
    with open_journal(config) as journal:
        return verify(audit_journal(journal), trusted=trusted)


def read_certificates(path: Path) -> list[bytes]:
    """The audit certificates of a PEM file the auditor holds (``--certificate``)."""
    try:
        found = certificates_from_pem(path.read_bytes())
    except (OSError, CertificateError) as exc:
        raise ServiceError(f"cannot read audit certificates from {path}: {exc}") from exc
    if not found:
        raise ServiceError(f"{path} holds no certificate")
    return found


# -- the audit key and checkpoints ----------------------------------------------------------

def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _public_key(hsm: HSM, label: str) -> bytes | None:
    try:
        return hsm.public_key_info(label)
    except KeyNotFound:
        return None


def ensure_audit_key(config: LineConfig, hsm: HSM, journal: JournalPort, *,
                     at: datetime | None = None) -> AuditKey:
    """The audit key ``keys.audit_label`` on the line token, made there (ECDSA P-256,
    sensitive, never extractable) when absent, and its self-signed certificate in the journal
    (kept once; its making journaled as ``audit.key``). Refused when the token's key is not
    the one the journal's certificate names, or when it could leave the HSM."""
    label, keys = config.keys.audit_label, audit_journal(journal)
    stored = keys.audit_key(label)
    spki = _public_key(hsm, label)
    if stored is None:
        made = spki is None
        if spki is None:
            spki = hsm.generate_keypair(label, secrets.token_bytes(8), ALGORITHM)
        moment = at or now()
        certificate = build_audit_certificate(
            spki_der=spki, line=config.line, serial_number=secrets.randbits(63) + 1,
            validity=(moment, moment + timedelta(days=365 * CERTIFICATE_YEARS)),
            sign=lambda tbs: hsm.sign(label, tbs, ALGORITHM))
        keys.add_audit_key(label, certificate)
        keys.note(None, "audit.key", label=label, sha256=fingerprint(certificate),
                  generated=made)
        stored = keys.audit_key(label)
    if stored is None or spki is None:
        raise ServiceError(f"the journal holds the certificate of audit key {label!r} but the "
                           f"HSM token {config.hsm.token!r} has no such key: checkpoints need "
                           "the line token the key was made on")
    _check_key(hsm, label, stored, spki)
    return stored


def _check_key(hsm: HSM, label: str, stored: AuditKey, spki: bytes) -> None:
    certificate = load_audit_certificate(stored.certificate)
    if bytes(certificate["tbs_certificate"]["subject_public_key_info"].dump()) != spki:
        raise ServiceError(f"audit key {label!r} on the HSM token is not the key its "
                           "certificate in the journal names; it cannot sign checkpoints")
    attributes = hsm.key_attributes(label)
    if attributes.extractable or not attributes.sensitive or not attributes.can_sign:
        raise ServiceError(f"audit key {label!r} could leave the HSM (extractable or not "
                           "sensitive): make a new one under another keys.audit_label")


def sign_heads(journal: AuditPort, key: AuditKey, sign: Signer, *,
               at: datetime | None = None) -> list[Checkpoint]:
    """Sign the head of every chain that moved since its last checkpoint, once the events
    since that checkpoint re-hash up to it. Refused, with nothing signed, while the log's
    append-only triggers are not all in force, or when a chain does not run on from its last
    checkpoint (or that checkpoint's signature does not verify): never sign over tampering."""
    moment = at or now()
    with journal.audit_snapshot() as snapshot:
        missing = snapshot.missing_guards()
        if missing:
            raise ServiceError(f"the journal's append-only triggers are not in force "
                               f"({', '.join(missing)}); nothing was signed: run `cardline "
                               "audit verify`")
        due = _due(snapshot)
        certificates = {k.label: k.certificate for k in snapshot.audit_keys()}
        for chain, head, last in due:
            _refuse_broken(snapshot, chain, head, last, certificates)
    made = []
    for chain, (seq, digest), _ in due:
        text = statement(chain, seq, digest, moment.isoformat())
        signature = sign_detached(text, certificate=key.certificate, at=moment, sign=sign)
        point = Checkpoint(chain, seq, digest, moment.isoformat(), key.label, signature)
        journal.add_checkpoint(point)
        made.append(point)
    return made


def _due(snapshot: AuditSnapshot) -> list[tuple[str, tuple[int, str], Checkpoint | None]]:
    """Each chain whose head moved since its last checkpoint: (chain, head, that checkpoint)."""
    last = {point.chain: point for point in snapshot.checkpoints()}  # by seq: the latest
    heads = sorted(snapshot.heads().items(), key=lambda h: (h[0] != JOURNAL_CHAIN, h[0]))
    return [(chain, head, last.get(chain)) for chain, head in heads
            if head[0] > (last[chain].seq if chain in last else 0)]


def _refuse_broken(snapshot: AuditSnapshot, chain: str, head: tuple[int, str],
                   last: Checkpoint | None, certificates: Mapping[str, bytes]) -> None:
    if last is not None:
        known = certificates.get(last.key_label)
        error = _signature_error(last, [known] if known else [])
        if error is not None:
            raise ServiceError(f"the last checkpoint of chain {chain!r} (seq {last.seq}) does "
                               f"not verify ({error}); nothing was signed: run `cardline "
                               "audit verify`")
    walk = _Walk(chain, {}) if last is None else \
        _Walk(chain, {}, prev=last.head, count=last.seq, vouched=last.seq)
    for event in snapshot.events(chain, after=walk.count):
        walk.feed(event)
    broken = walk.end(head)
    if broken is not None:
        raise ServiceError(f"chain {chain!r} does not follow from its last checkpoint "
                           f"(event {broken.seq}: {broken.code.value}); nothing was signed: "
                           "run `cardline audit verify`")


def checkpoint(config: LineConfig, *, at: datetime | None = None,
               create: bool = True) -> list[Checkpoint]:
    """Sign a checkpoint of every chain of the line's journal whose head moved since its
    last one, with the audit key on the line's HSM token (made on first use; with
    ``create=False`` — the lines' own checkpoints at the end of a run, where several
    processes may finish at once — nothing is signed until a ceremony has made it)."""
    try:
        with open_journal(config) as opened:
            journal = audit_journal(opened)
            if not create and journal.audit_key(config.keys.audit_label) is None:
                return []
            with open_hsm(config) as hsm:
                key = ensure_audit_key(config, hsm, journal, at=at)
                label = key.label
                return sign_heads(journal, key, lambda data: hsm.sign(label, data, ALGORITHM),
                                  at=at)
    except CertificateError as exc:
        raise ServiceError(f"the audit certificate does not hold: {exc}") from exc
