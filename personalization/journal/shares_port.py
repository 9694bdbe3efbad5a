"""Officers' shares of a token PIN, as the journal keeps them: each sealed under its
officer's own passphrase (``hsm.quorum``), so the database holds nothing that opens the
token without a quorum of officers. A re-split writes a new generation; the newest is in
force."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ShareRow:
    """One officer's sealed share of a token's PIN."""

    token: str
    generation: int
    officer: str
    quorum: int
    share: bytes
    created_at: str


class SharesPort(Protocol):
    """What the ceremonies need of the journal to keep the shares."""

    def shares(self, token: str) -> list[ShareRow]:
        """The shares in force for ``token`` (its newest generation); empty when none."""
        ...

    def put_shares(self, token: str, quorum: int, sealed: Sequence[tuple[str, bytes]], *,
                   actor: str, after: int) -> int:
        """Store a new generation of ``token``'s shares (officer, sealed share) and append a
        ``keys.shares_split`` event naming the holders (never a share), in one transaction.
        ``after`` is the generation the caller saw (0: none); another ceremony that split in
        between makes this one fail with ``ConflictError``. Returns the new generation."""
        ...
