"""Officers' sealed shares of a token PIN in the SQLite journal (a mixin of the adapter)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from personalization.journal.port import ConflictError
from personalization.journal.shares_port import ShareRow


class SQLiteShares:
    """The ``key_shares`` table."""

    if TYPE_CHECKING:
        def _write(self) -> Any: ...  # a context manager yielding the connection
        def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...
        def _append(self, db: Any, batch: str | None, card: int | None,
                    kind: str, data: dict[str, Any]) -> None: ...

    def shares(self, token: str) -> list[ShareRow]:
        """The shares in force for ``token`` (its newest generation)."""
        rows = self._read("SELECT token, generation, officer, quorum, share, created_at "
                          "FROM key_shares WHERE token = ? AND generation = (SELECT "
                          "max(generation) FROM key_shares WHERE token = ?) ORDER BY officer",
                          (token, token))
        return [ShareRow(r[0], int(r[1]), r[2], int(r[3]), bytes(r[4]), r[5]) for r in rows]

    def put_shares(self, token: str, quorum: int, sealed: Sequence[tuple[str, bytes]], *,
                   actor: str, after: int) -> int:
        """Store a new generation of shares with its event (see ``SharesPort``)."""
        at = datetime.now(UTC).isoformat(timespec="seconds")
        with self._write() as db:
            now = db.execute("SELECT coalesce(max(generation), 0) FROM key_shares "
                             "WHERE token = ?", (token,)).fetchone()[0]
            if now != after:
                raise ConflictError(f"the shares of token {token!r} were re-split by another "
                                    "ceremony meanwhile; start again")
            generation = int(now) + 1
            db.executemany("INSERT INTO key_shares (token, generation, officer, quorum, share, "
                           "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                           [(token, generation, officer, quorum, share, at)
                            for officer, share in sealed])
            self._append(db, None, None, "keys.shares_split", {
                "actor": actor, "token": token, "generation": generation, "quorum": quorum,
                "holders": sorted(officer for officer, _ in sealed)})
        return generation


