"""The LDS1 elementary files: file identifiers, short file identifiers and tags.

ICAO 9303-10 Table 38 (LDS1 files) and Table 31 (application identifiers); the EAC files
EF.CardAccess (9303-10 and 9303-11 §4.4, in the master file) and EF.CVCA (BSI TR-03110,
in the eMRTD application).
"""

from __future__ import annotations

from dataclasses import dataclass

from applets.errors import CardError

LDS1_AID = bytes.fromhex("A0000002471001")  # ICAO 9303-10 Table 31


@dataclass(frozen=True, slots=True)
class EFInfo:
    """One LDS1 elementary file."""

    name: str
    fid: int
    sfi: int
    tag: int | None
    dg: int | None = None
    master_file: bool = False  # in the MF rather than the eMRTD application

    @property
    def fid_bytes(self) -> bytes:
        """The two-byte file identifier as SELECT sends it."""
        return self.fid.to_bytes(2, "big")


def _dg(number: int, tag: int) -> EFInfo:
    return EFInfo(f"EF.DG{number}", 0x0100 + number, number, tag, number)


# ICAO 9303-10 Table 38: DG1..DG16 are 0101..0110 with SFI 01..10.
_DG_TAGS = {1: 0x61, 2: 0x75, 3: 0x63, 4: 0x76, 5: 0x65, 6: 0x66, 7: 0x67, 8: 0x68,
            9: 0x69, 10: 0x6A, 11: 0x6B, 12: 0x6C, 13: 0x6D, 14: 0x6E, 15: 0x6F, 16: 0x70}
DATA_GROUPS: dict[int, EFInfo] = {n: _dg(n, t) for n, t in _DG_TAGS.items()}
EF_COM = EFInfo("EF.COM", 0x011E, 0x1E, 0x60)
EF_SOD = EFInfo("EF.SOD", 0x011D, 0x1D, 0x77)
DG3 = DATA_GROUPS[3]  # fingers (FID 0103, SFI 03, tag 63), read only after Terminal Authentication
# EF.CardAccess (PACE SecurityInfos, read always) and EF.CVCA (the CARs for Terminal
# Authentication) share FID 011C and SFI 1C, one in the master file, one in the application.
EF_CARD_ACCESS = EFInfo("EF.CardAccess", 0x011C, 0x1C, None, master_file=True)
EF_CVCA = EFInfo("EF.CVCA", 0x011C, 0x1C, None)

_LDS1 = (EF_COM, EF_SOD, *DATA_GROUPS.values())
BY_NAME: dict[str, EFInfo] = {ef.name: ef for ef in (*_LDS1, EF_CARD_ACCESS, EF_CVCA)}
# The LDS1 files of the application by FID (011C is two files, so the EAC files are not here).
BY_FID: dict[int, EFInfo] = {ef.fid: ef for ef in _LDS1}
BY_TAG: dict[int, EFInfo] = {ef.tag: ef for ef in BY_NAME.values() if ef.tag is not None}


def by_name(name: str) -> EFInfo:
    """Look a file up by its name (``EF.DG1``, ``EF.SOD``…)."""
    try:
        return BY_NAME[name]
    except KeyError as exc:
        raise CardError(f"unknown LDS file {name!r}") from exc


def dg_for_tag(tag: int) -> int:
    """The data group number of a DG tag (0x61 → 1, 0x75 → 2)."""
    ef = BY_TAG.get(tag)
    if ef is None or ef.dg is None:
        raise CardError(f"tag {tag:02X} is not a data group tag")
    return ef.dg
