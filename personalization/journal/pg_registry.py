"""The registry's boundary in the PostgreSQL journal (a mixin of the adapter): signed batch
files received, DS signatures, issuance results."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from personalization.journal.port import BatchExistsError
from personalization.journal.registry_port import ReceivedRow, ReplayError, Signature

_RECEIVED = "SELECT id, batch, sha256, signer, encrypted, received_at FROM registry_batches "


def _received(row: Any) -> ReceivedRow:
    return ReceivedRow(row["id"], row["batch"], row["sha256"], row["signer"],
                       bool(row["encrypted"]), row["received_at"])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class PostgresRegistry:
    """The ``registry_batches``, ``ds_signatures`` and ``batch_results`` tables."""

    if TYPE_CHECKING:
        def _write(self) -> Any: ...  # a context manager yielding a cursor
        def _read(self, query: Any, params: Sequence[Any] = ()) -> list[Any]: ...
        def _append(self, cur: Any, batch: str | None, card: int | None,
                    kind: str, data: dict[str, Any], chain: str = ...) -> None: ...

    def received(self, registry_id: str) -> ReceivedRow | None:
        """The batch file received with this registry batch id, if any."""
        rows = self._read(_RECEIVED + "WHERE id = %s", (registry_id,))
        return _received(rows[0]) if rows else None

    def received_for(self, batch: str) -> ReceivedRow | None:
        """The signed file a cardline batch was created from."""
        rows = self._read(_RECEIVED + "WHERE batch = %s", (batch,))
        return _received(rows[0]) if rows else None

    def receive(self, row: ReceivedRow, *, actor: str | None) -> None:
        """Record a verified batch file (see ``RegistryPort``)."""
        with self._write() as cur:
            # one receiver per registry id at a time: the lock ends with the transaction
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('registry:' || %s))",
                        (row.registry_id,))
            importing = cur.execute(
                "SELECT i.batch IS NOT NULL AS importing FROM batches b LEFT JOIN imports i "
                "ON i.batch = b.name WHERE b.name = %s", (row.batch,)).fetchone()
            known = cur.execute(_RECEIVED + "WHERE id = %s", (row.registry_id,)).fetchone()
            if known is not None and known["batch"] == row.batch and importing \
                    and importing["importing"] and known["sha256"] == row.sha256:
                return  # carrying on with the same file's unfinished import
            if known is not None and cur.execute("SELECT 1 FROM batches WHERE name = %s",
                                                 (known["batch"],)).fetchone():
                raise ReplayError(row.registry_id, known["batch"])
            if importing is not None:
                raise BatchExistsError(row.batch)
            # an id whose batch was discarded (an import never finished) may come again
            cur.execute("DELETE FROM registry_batches WHERE id = %s", (row.registry_id,))
            cur.execute("INSERT INTO registry_batches (id, batch, sha256, signer, encrypted, "
                        "received_at) VALUES (%s, %s, %s, %s, %s, %s)",
                        (row.registry_id, row.batch, row.sha256, row.signer, row.encrypted,
                         row.received_at))
            self._append(cur, row.batch, None, "registry.received", {
                "registry_batch": row.registry_id, "sha256": row.sha256, "signer": row.signer,
                "encrypted": row.encrypted, "actor": actor})

    def record_signatures(self, signatures: Sequence[Signature]) -> None:
        """Append signature records (one transaction)."""
        if not signatures:
            return
        with self._write() as cur:
            cur.executemany(
                "INSERT INTO ds_signatures (at, ds, document_number, batch, application_id, "
                "command) VALUES (%s, %s, %s, %s, %s, %s)",
                [(s.at, s.ds, s.document_number, s.batch, s.application_id, s.command)
                 for s in signatures])

    def signatures(self, ds: str) -> list[Signature]:
        """Every signature a DS key made, in order."""
        return [Signature(r["ds"], r["document_number"], r["at"], r["command"], r["batch"],
                          r["application_id"]) for r in self._read(
            "SELECT ds, document_number, at, command, batch, application_id FROM ds_signatures "
            "WHERE ds = %s ORDER BY id", (ds,))]

    def results_document(self, batch: str) -> bytes | None:
        """The batch's signed issuance results, once made."""
        rows = self._read("SELECT document FROM batch_results WHERE batch = %s", (batch,))
        return bytes(rows[0]["document"]) if rows else None

    def keep_results(self, batch: str, document: bytes, *, actor: str | None) -> bytes:
        """Keep the first issuance results made for the batch (see ``RegistryPort``)."""
        digest = hashlib.sha256(document).hexdigest()
        with self._write() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('results:' || %s))", (batch,))
            kept = cur.execute("SELECT document FROM batch_results WHERE batch = %s",
                               (batch,)).fetchone()
            if kept is not None:
                return bytes(kept["document"])
            cur.execute("INSERT INTO batch_results (batch, sha256, document, created_at) "
                        "VALUES (%s, %s, %s, %s)", (batch, digest, document, _now()))
            self._append(cur, batch, None, "batch.results", {"sha256": digest, "actor": actor})
        return document
