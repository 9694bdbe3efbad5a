"""The journal's audit port: what the tamper-evident audit asks of the journal, whatever
database keeps it.

Both adapters implement :class:`AuditPort` beside the journal port. Their promises:

- checkpoints and audit certificates are append-only (the database refuses UPDATE and
  DELETE of a checkpoint; the lines' PostgreSQL role is granted SELECT and INSERT only);
- :meth:`AuditPort.audit_snapshot` reads everything the verifier needs — every chain's events
  in order, the chain heads, the checkpoints, the audit certificates, which guards of the log
  are in force, and the cards' and applications' states — from ONE consistent snapshot of the
  database, streaming events (a journal holds millions) rather than loading them all.

Chains: SQLite keeps one, ``journal``; PostgreSQL keeps ``journal`` and one per line,
``line:<name>``, whose heads are anchored in ``journal``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

JOURNAL_CHAIN = "journal"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A chain head as the audit key signed it: ``signature`` is a detached CMS SignedData
    (DER) over :func:`statement` of the other fields."""

    chain: str
    seq: int
    head: str
    at: str  # ISO 8601, UTC, whole seconds
    key_label: str
    signature: bytes


@dataclass(frozen=True, slots=True)
class AuditKey:
    """An audit key's certificate (the key itself never leaves the HSM)."""

    label: str
    certificate: bytes
    created_at: str


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One event of a chain exactly as stored: ``data`` is the JSON text that was hashed."""

    chain: str
    seq: int
    at: str
    batch: str | None
    card: int | None
    kind: str
    data: str
    prev: str
    hash: str


@dataclass(frozen=True, slots=True)
class CardState:
    """A card row's state, as the ``cards`` table holds it."""

    card: int
    application_id: str
    state: str


@dataclass(frozen=True, slots=True)
class ApplicationState:
    """An application row's state, as the ``applications`` table holds it."""

    application_id: str
    state: str


def statement(chain: str, seq: int, head: str, at: str) -> bytes:
    """The canonical UTF-8 text a checkpoint signs: one ``key=value`` line per field."""
    return (f"cardline audit checkpoint\nchain={chain}\nseq={seq}\nhead={head}\nat={at}\n"
            ).encode()


def parse_statement(text: bytes) -> tuple[str, int, str, str]:
    """(chain, seq, head, at) of a statement :func:`statement` wrote; ValueError otherwise."""
    lines = text.decode("utf-8").split("\n")
    if len(lines) != 6 or lines[0] != "cardline audit checkpoint" or lines[5] != "":
        raise ValueError("not a cardline audit checkpoint statement")
    fields = dict(line.split("=", 1) for line in lines[1:5])
    if list(fields) != ["chain", "seq", "head", "at"]:
        raise ValueError("a checkpoint statement names chain, seq, head and at, in that order")
    chain, seq, head, at = fields["chain"], int(fields["seq"]), fields["head"], fields["at"]
    if statement(chain, seq, head, at) != text:
        raise ValueError("the checkpoint statement is not in its canonical form")
    return chain, seq, head, at


class AuditSnapshot(Protocol):
    """One consistent read of the journal for the verifier; valid inside its ``with``."""

    def heads(self) -> dict[str, tuple[int, str]]:
        """Each chain's head: (seq, hash) of its last event."""

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, by chain and seq."""

    def audit_keys(self) -> list[AuditKey]:
        """Every audit certificate."""

    def missing_guards(self) -> list[str]:
        """The database rules that keep the log append-only (triggers) which are missing,
        disabled or changed: empty when all are in force."""

    def events(self, chain: str | None = None, after: int = 0) -> Iterator[AuditEvent]:
        """Events after seq ``after``, of one chain or of all (``journal`` first, then the
        others by name), each chain in seq order; streamed."""

    def batches(self) -> list[str]:
        """Every batch's name."""

    def batch_events(self, batch: str) -> Iterator[AuditEvent]:
        """One batch's events in the order they happened; streamed."""

    def cards(self, batch: str) -> list[CardState]:
        """One batch's cards, by id."""

    def applications(self, batch: str) -> list[ApplicationState]:
        """One batch's applications."""


@runtime_checkable
class AuditPort(Protocol):
    """What the audit needs of the journal, beside :class:`~.port.JournalPort`."""

    def chain_heads(self) -> dict[str, tuple[int, str]]:
        """Each chain's head now: chain → (seq, hash)."""

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Keep a signed checkpoint; :class:`~.port.ConflictError` when that chain already has
        one at that seq."""

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, by chain and seq."""

    def add_audit_key(self, label: str, certificate: bytes) -> None:
        """Keep an audit key's certificate; :class:`~.port.ConflictError` when the label has
        one already (a certificate is never replaced)."""

    def audit_key(self, label: str) -> AuditKey | None:
        """The certificate of audit key ``label``, or None."""

    def audit_snapshot(self) -> AbstractContextManager[AuditSnapshot]:
        """Everything the verifier reads, from one consistent snapshot."""
