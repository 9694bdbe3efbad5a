"""The registry's boundary in the SQLite journal (a mixin of the adapter): signed batch files
received, DS signatures, issuance results."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from personalization.journal.port import BatchExistsError
from personalization.journal.registry_port import ReceivedRow, ReplayError, Signature

_RECEIVED = "SELECT id, batch, sha256, signer, encrypted, received_at FROM registry_batches "


def _received(row: Any) -> ReceivedRow:
    return ReceivedRow(row[0], row[1], row[2], row[3], bool(row[4]), row[5])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SQLiteRegistry:
    """The ``registry_batches``, ``ds_signatures`` and ``batch_results`` tables."""

    if TYPE_CHECKING:
        def _write(self) -> Any: ...  # a context manager yielding the connection
        def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...
        def _append(self, db: Any, batch: str | None, card: int | None,
                    kind: str, data: dict[str, Any]) -> None: ...

    def received(self, registry_id: str) -> ReceivedRow | None:
        """The batch file received with this registry batch id, if any."""
        rows = self._read(_RECEIVED + "WHERE id = ?", (registry_id,))
        return _received(rows[0]) if rows else None

    def received_for(self, batch: str) -> ReceivedRow | None:
        """The signed file a cardline batch was created from."""
        rows = self._read(_RECEIVED + "WHERE batch = ?", (batch,))
        return _received(rows[0]) if rows else None

    def receive(self, row: ReceivedRow, *, actor: str | None) -> None:
        """Record a verified batch file (see ``RegistryPort``)."""
        with self._write() as db:
            importing = db.execute(
                "SELECT i.batch IS NOT NULL FROM batches b LEFT JOIN imports i "
                "ON i.batch = b.name WHERE b.name = ?", (row.batch,)).fetchone()
            known = db.execute(_RECEIVED + "WHERE id = ?", (row.registry_id,)).fetchone()
            if known is not None and known[1] == row.batch and importing and importing[0] \
                    and known[2] == row.sha256:
                return  # carrying on with the same file's unfinished import
            if known is not None and db.execute("SELECT 1 FROM batches WHERE name = ?",
                                                (known[1],)).fetchone():
                raise ReplayError(row.registry_id, known[1])
            if importing is not None:
                raise BatchExistsError(row.batch)
            # an id whose batch was discarded (an import never finished) may come again
            db.execute("DELETE FROM registry_batches WHERE id = ?", (row.registry_id,))
            db.execute("INSERT INTO registry_batches (id, batch, sha256, signer, encrypted, "
                       "received_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (row.registry_id, row.batch, row.sha256, row.signer, int(row.encrypted),
                        row.received_at))
            self._append(db, row.batch, None, "registry.received", {
                "registry_batch": row.registry_id, "sha256": row.sha256, "signer": row.signer,
                "encrypted": row.encrypted, "actor": actor})

    def record_signatures(self, signatures: Sequence[Signature]) -> None:
        """Append signature records (one transaction)."""
        if not signatures:
            return
        with self._write() as db:
            db.executemany(
                "INSERT INTO ds_signatures (at, ds, document_number, batch, application_id, "
                "command) VALUES (?, ?, ?, ?, ?, ?)",
                [(s.at, s.ds, s.document_number, s.batch, s.application_id, s.command)
                 for s in signatures])

    def signatures(self, ds: str) -> list[Signature]:
        """Every signature a DS key made, in order."""
        return [Signature(r[0], r[1], r[2], r[3], r[4], r[5]) for r in self._read(
            "SELECT ds, document_number, at, command, batch, application_id FROM ds_signatures "
            "WHERE ds = ? ORDER BY id", (ds,))]

    def results_document(self, batch: str) -> bytes | None:
        """The batch's signed issuance results, once made."""
        rows = self._read("SELECT document FROM batch_results WHERE batch = ?", (batch,))
        return bytes(rows[0][0]) if rows else None

    def keep_results(self, batch: str, document: bytes, *, actor: str | None) -> bytes:
        """Keep the first issuance results made for the batch (see ``RegistryPort``)."""
        digest = hashlib.sha256(document).hexdigest()
        with self._write() as db:
            kept = db.execute("SELECT document FROM batch_results WHERE batch = ?",
                              (batch,)).fetchone()
            if kept is not None:
                return bytes(kept[0])
            db.execute("INSERT INTO batch_results (batch, sha256, document, created_at) "
                       "VALUES (?, ?, ?, ?)", (batch, digest, document, _now()))
            self._append(db, batch, None, "batch.results", {"sha256": digest, "actor": actor})
        return document
