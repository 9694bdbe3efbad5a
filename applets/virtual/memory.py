"""The virtual eMRTD's EEPROM: what a chip keeps across power cycles.

Two directories (ISO 7816-4 §5.3): the master file, holding EF.CardAccess (ICAO 9303-11
§4.4, FID 011C, read always), and the eMRTD application (ICAO 9303-10 §4.1: the LDS1 files
and EF.CVCA, whose FID is also 011C). Next to the files: the access secrets (BAC keys, PACE
passwords), the access protocols the chip offers, the on-chip Active and Chip Authentication
keys, and the Terminal Authentication trust point and current date (BSI TR-03110-3 §2.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import Enum

from applets.emrtd.lds.files import BY_FID, EF_CARD_ACCESS, EF_CVCA
from applets.emrtd.perso import AccessProtocols
from applets.emrtd.ta import ChainKey
from applets.virtual.hostile import Hostile

__all__ = ["APPLICATION_FIDS", "MF_FIDS", "AccessProtocols", "CAKey", "ChipMemory", "Lifecycle"]
# The FIDs CREATE FILE accepts in each directory.
MF_FIDS = frozenset({EF_CARD_ACCESS.fid})
APPLICATION_FIDS = frozenset({*BY_FID, EF_CVCA.fid})


class Lifecycle(Enum):
    """Where the chip is in its life."""

    BLANK = "blank"
    PERSONALIZING = "personalizing"
    LOCKED = "locked"


@dataclass(frozen=True, slots=True)
class CAKey:
    """The Chip Authentication static key pair, generated on the chip (its private scalar)."""

    curve_oid: str
    scalar: bytes = field(repr=False)


@dataclass
class ChipMemory:
    """Everything the chip keeps across power cycles (its EEPROM)."""

    files: dict[int, bytearray] = field(default_factory=dict)  # the eMRTD application
    bac_keys: tuple[bytes, bytes] | None = None
    aa_scalar: bytes | None = None  # the AA private key: never returned by any command
    locked: bool = False
    hostile: Hostile | None = None  # a test mode: how the chip misbehaves once locked
    mf_files: dict[int, bytearray] = field(default_factory=dict)  # the master file
    access: AccessProtocols = AccessProtocols.BAC
    document_number: str | None = None  # from the BAC seed: TA's ID_PICC after BAC
    pace_mrz: bytes | None = field(default=None, repr=False)  # K = SHA-1(MRZ information)
    pace_can: str | None = field(default=None, repr=False)
    ca_key: CAKey | None = None
    trust_point: ChainKey | None = None
    chip_date: date | None = None

    @property
    def lifecycle(self) -> Lifecycle:
        """BLANK until the first write, LOCKED after LOCK."""
        if self.locked:
            return Lifecycle.LOCKED
        written = (self.files or self.mf_files or self.bac_keys or self.aa_scalar
                   or self.pace_mrz or self.pace_can or self.ca_key or self.trust_point
                   or self.chip_date or self.access is not AccessProtocols.BAC)
        return Lifecycle.PERSONALIZING if written else Lifecycle.BLANK

    def ready_to_lock(self) -> bool:
        """A chip is locked only when a reader can open it with the protocols it offers."""
        if self.access.bac and self.bac_keys is None:
            return False
        has_password = self.pace_mrz is not None or self.pace_can is not None
        return not self.access.pace or (has_password and EF_CARD_ACCESS.fid in self.mf_files)
