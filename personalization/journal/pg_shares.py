"""Officers' sealed shares of a token PIN in the PostgreSQL journal (a mixin of the
adapter); the shares' events go into the journal's own chain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from personalization.journal.port import ConflictError
from personalization.journal.shares_port import ShareRow


class PostgresShares:
    """The ``key_shares`` table."""

    if TYPE_CHECKING:
        def _write(self) -> Any: ...  # a context manager yielding a cursor
        def _read(self, query: Any, params: Sequence[Any] = ()) -> list[Any]: ...
        def _append(self, cur: Any, batch: str | None, card: int | None,
                    kind: str, data: dict[str, Any], chain: str = ...) -> None: ...

    def shares(self, token: str) -> list[ShareRow]:
        """The shares in force for ``token`` (its newest generation)."""
        rows = self._read("SELECT token, generation, officer, quorum, share, created_at "
                          "FROM key_shares WHERE token = %s AND generation = (SELECT "
                          "max(generation) FROM key_shares WHERE token = %s) ORDER BY officer",
                          (token, token))
        return [ShareRow(r["token"], int(r["generation"]), r["officer"], int(r["quorum"]),
                         bytes(r["share"]), r["created_at"]) for r in rows]

    def put_shares(self, token: str, quorum: int, sealed: Sequence[tuple[str, bytes]], *,
                   actor: str, after: int) -> int:
        """Store a new generation of shares with its event (see ``SharesPort``)."""
        at = datetime.now(UTC).isoformat(timespec="seconds")
        with self._write() as cur:
            # one ceremony at a time per token: the lock ends with the transaction
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('key_shares:' || %s))", (token,))
            now = cur.execute("SELECT coalesce(max(generation), 0) AS g FROM key_shares "
                              "WHERE token = %s", (token,)).fetchone()["g"]
            if now != after:
                raise ConflictError(f"the shares of token {token!r} were re-split by another "
                                    "ceremony meanwhile; start again")
            generation = int(now) + 1
            cur.executemany("INSERT INTO key_shares (token, generation, officer, quorum, share, "
                            "created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                            [(token, generation, officer, quorum, share, at)
                             for officer, share in sealed])
            self._append(cur, None, None, "keys.shares_split", {
                "actor": actor, "token": token, "generation": generation, "quorum": quorum,
                "holders": sorted(officer for officer, _ in sealed)})
        return generation
