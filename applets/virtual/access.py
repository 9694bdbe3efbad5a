"""The chip's security status and its per-file access rules.

ICAO 9303-11 §4.3–4.4 and BSI TR-03110-1 §2.4: once the chip is locked, EF.CardAccess (in the
master file) is read always, in plain; the LDS1 files need a secure-messaging session opened
by BAC or PACE; DG3 and DG4 need, in addition, Terminal Authentication whose effective CHAT
grants them (TR-03110-3 C.4.1), else ``6982``. While personalizing, every file is open.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from applets.emrtd.cvc import ISRights
from applets.emrtd.lds.files import DATA_GROUPS, DG3
from applets.iso7816.sw import SW

DG4 = DATA_GROUPS[4]


class Session(Enum):
    """The access control that opened the current secure-messaging session."""

    NONE = "none"
    BAC = "BAC"
    PACE = "PACE"


class Directory(Enum):
    """The current dedicated file (ISO 7816-4 §5.3)."""

    MF = "master file"
    APPLICATION = "eMRTD application"


class Rule(Enum):
    """What a locked chip asks before it hands out a file."""

    ALWAYS = "always"  # EF.CardAccess
    SECURE_MESSAGING = "secure messaging"  # the LDS1 files and EF.CVCA
    DG3 = "terminal authentication with DG3 rights"
    DG4 = "terminal authentication with DG4 rights"


_RIGHTS = {Rule.DG3: ISRights.DG3, Rule.DG4: ISRights.DG4}


@dataclass
class SecurityStatus:
    """Which session is open, whether Chip Authentication ran, what TA granted."""

    session: Session = Session.NONE
    chip_authenticated: bool = False
    rights: ISRights = ISRights.NONE

    def open(self, session: Session) -> None:
        """A new session (BAC or PACE) starts with no EAC state."""
        self.session, self.chip_authenticated, self.rights = session, False, ISRights.NONE

    def close(self) -> None:
        """Secure messaging ended (ICAO 9303-11 §9.8.6): every right is gone."""
        self.open(Session.NONE)


def rule_for(directory: Directory, fid: int) -> Rule:
    """The access rule of one file."""
    if directory is Directory.MF:
        return Rule.ALWAYS  # only EF.CardAccess lives in the master file
    if fid == DG3.fid:
        return Rule.DG3
    if fid == DG4.fid:
        return Rule.DG4
    return Rule.SECURE_MESSAGING


def session_refusal(status: SecurityStatus, directory: Directory, locked: bool) -> int | None:
    """``6982`` for any file of a locked application while no session is open."""
    if locked and directory is Directory.APPLICATION and status.session is Session.NONE:
        return SW.SECURITY_STATUS_NOT_SATISFIED
    return None


def read_refusal(status: SecurityStatus, directory: Directory, fid: int,
                 locked: bool) -> int | None:
    """The status word refusing a READ BINARY of ``fid``, or None when it is allowed."""
    refused = session_refusal(status, directory, locked)
    if refused is not None or not locked:
        return refused
    needed = _RIGHTS.get(rule_for(directory, fid))
    if needed is not None and not status.rights & needed:
        return SW.SECURITY_STATUS_NOT_SATISFIED  # TR-03110-1 §2.4: DG3/DG4 before TA
    return None
