"""The registry's boundary as the journal keeps it: each signed batch file received (by the
registry's batch id, so a second file with that id is a replay), each EF.SOD a DS key signed,
and each closed batch's signed issuance results, written once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from personalization.errors import PersonalizationError


class ReplayError(PersonalizationError):
    """A registry batch id already received for another batch."""

    def __init__(self, registry_id: str, batch: str) -> None:
        super().__init__(f"registry batch {registry_id!r} was already received (cardline batch "
                         f"{batch!r}): a file is accepted once; ask the registry for a new batch")
        self.registry_id = registry_id
        self.batch = batch


@dataclass(frozen=True, slots=True)
class ReceivedRow:
    """One signed batch file the registry sent."""

    registry_id: str
    batch: str
    sha256: str
    signer: str
    encrypted: bool
    received_at: str


@dataclass(frozen=True, slots=True)
class Signature:
    """One EF.SOD signed: which DS key, for which document, when, by what."""

    ds: str
    document_number: str
    at: str
    command: str
    batch: str | None = None
    application_id: str | None = None


class RegistryPort(Protocol):
    """What the registry boundary needs of the journal."""

    def received(self, registry_id: str) -> ReceivedRow | None:
        """The batch file received with this registry batch id, if any."""
        ...

    def received_for(self, batch: str) -> ReceivedRow | None:
        """The signed file a cardline batch was created from (None: accepted unsigned)."""
        ...

    def receive(self, row: ReceivedRow, *, actor: str | None) -> None:
        """Record a verified batch file about to be imported as ``row.batch``, with a
        ``registry.received`` event, in one transaction. Carrying on with an unfinished import
        of the same file under the same name is allowed; an id already received for a batch
        that exists raises :class:`ReplayError`; a batch name already taken by another import
        raises ``BatchExistsError``."""
        ...

    def record_signatures(self, signatures: Sequence[Signature]) -> None:
        """Append signature records (one transaction)."""
        ...

    def signatures(self, ds: str) -> list[Signature]:
        """Every signature a DS key made, in order."""
        ...

    def results_document(self, batch: str) -> bytes | None:
        """The batch's signed issuance results, once made."""
        ...

    def keep_results(self, batch: str, document: bytes, *, actor: str | None) -> bytes:
        """Keep ``document`` as the batch's issuance results unless some are kept already;
        returns the ones kept (the first ones, whoever made them), with a ``batch.results``
        event the first time."""
        ...
