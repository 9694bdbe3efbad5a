"""The EAC read flow against the virtual chip: PACE (CAN, MRZ) or BAC, CA, TA, DG3, and each
failure's own error."""

from __future__ import annotations

from datetime import date

import pytest

from applets.emrtd import cvc, eac_reader
from applets.emrtd.cvc import ISRights
from applets.emrtd.eac_reader import (
    BACAccess,
    BACRefusedError,
    CardAccessError,
    DG3UnreadableError,
    EACReason,
    PACEAccess,
    PACERefusedError,
    TARefusedError,
    TerminalCredentials,
    read_eac,
)
from applets.emrtd.lds.files import DG3
from applets.emrtd.perso import AccessProtocols
from applets.transport.base import DirectTransport
from applets.virtual.card import VirtualEMRTD
from common.curves import SECP384R1
from tests.applets.eac_cards import (
    CAN,
    DG1,
    DG3_SAMPLE,
    DOB,
    DOC,
    DOE,
    EACCard,
    personalize_eac,
    pki,
)
from tests.applets.test_perso import open_session, personalize, sample_files


@pytest.fixture(scope="module", params=[13, 12], ids=["brainpoolP256r1", "P-256"])
def chip(request: pytest.FixtureRequest) -> EACCard:
    return personalize_eac(VirtualEMRTD(f"R{request.param}"), request.param)


def fresh(chip: EACCard) -> DirectTransport:
    chip.card.power_on()
    return DirectTransport(chip.card)


@pytest.mark.parametrize("access", [PACEAccess.can(CAN), PACEAccess.mrz(DOC, DOB, DOE)],
                         ids=["CAN", "MRZ"])
def test_pace_ca_ta_reads_dg3(chip, access):
    """PACE, CA and TA run in order and DG3 reads back as written (the BSI 2008 sample)."""
    result = read_eac(fresh(chip), access, terminal=pki().terminal())
    assert result.protocols == ("PACE", "CA", "TA")
    assert result.files[DG3.name] == DG3_SAMPLE and result.files["EF.DG1"] == DG1
    assert result.files["EF.CardAccess"] == chip.card_access
    assert result.pace is not None and result.pace.parameter_id == chip.parameter_id


def test_pace_and_ca_without_terminal_leave_dg3_unread(chip):
    """Without an inspection system only PACE and CA run, and DG3 is not in the result."""
    result = read_eac(fresh(chip), PACEAccess.can(CAN))
    assert result.protocols == ("PACE", "CA") and DG3.name not in result.files


@pytest.mark.parametrize("access", [PACEAccess.can("654321"),
                                    PACEAccess.mrz(DOC, DOB, "300102")], ids=["CAN", "MRZ"])
def test_wrong_password_is_pace_refused(chip, access):
    """A wrong CAN or MRZ fails PACE at the token step (6300) with reason pace_refused."""
    with pytest.raises(PACERefusedError) as caught:
        read_eac(fresh(chip), access, terminal=pki().terminal())
    assert caught.value.reason is EACReason.PACE_REFUSED and caught.value.sw == 0x6300
    assert not chip.card.secure_session


def test_unknown_parameter_id_is_card_access_error(chip):
    """Asking for a domain the chip's EF.CardAccess does not offer stops before PACE."""
    with pytest.raises(CardAccessError):
        read_eac(fresh(chip), PACEAccess.can(CAN, parameter_id=14))


def _foreign_terminal(car: str) -> TerminalCredentials:
    """A DV certificate signed by a CVCA key the chip does not trust, under ``car``."""
    own = pki()
    dv = own.issue("other", car, "dv", "VNDV000001", own.dv.body.chat.role)
    good = own.terminal()
    return TerminalCredentials((dv, good.chain[1]), good.signer)


@pytest.mark.parametrize("terminal", [
    _foreign_terminal("XXCVCA00001"),
    _foreign_terminal("VNCVCA00001"),
    pki().terminal(expiry=date(2030, 5, 31)),
], ids=["unknown-CAR", "foreign-DV", "expired-IS"])
def test_bad_chain_is_ta_refused_and_dg3_not_read(chip, terminal):
    """An IS chain from an unknown CVCA, or an expired IS certificate: ta_refused, no DG3."""
    with pytest.raises(TARefusedError) as caught:
        read_eac(fresh(chip), PACEAccess.can(CAN), terminal=terminal)
    assert caught.value.sw not in (None, 0x9000)
    assert chip.card.status.rights is ISRights.NONE


def test_chat_without_dg3_makes_dg3_unreadable(chip):
    """TA passes with a DG4-only CHAT, then DG3 answers 6982: dg3_unreadable."""
    with pytest.raises(DG3UnreadableError) as caught:
        read_eac(fresh(chip), PACEAccess.can(CAN), terminal=pki().terminal(ISRights.DG4))
    assert caught.value.sw == 0x6982 and chip.card.status.rights is ISRights.DG4


def test_wrong_signer_is_ta_refused(chip):
    """A terminal signing with a key other than its certificate's is refused."""
    good = pki().terminal()
    wrong = cvc.software_signer(pki().keys["other"], pki().algorithm)
    with pytest.raises(TARefusedError):
        read_eac(fresh(chip), PACEAccess.can(CAN), terminal=TerminalCredentials(good.chain,
                                                                                wrong))


def test_bac_refused_on_pace_only_and_accepted_on_pace_bac():
    """BAC is refused by a pace chip; a pace+bac chip runs BAC, CA, TA (ID_PICC = doc no.)."""
    pace_only = personalize_eac(VirtualEMRTD("B1"), protocols=AccessProtocols.PACE)
    access = BACAccess(DOC, DOB, DOE)
    with pytest.raises(BACRefusedError) as caught:
        read_eac(DirectTransport(pace_only.card), access)
    assert caught.value.sw == 0x6985
    both = personalize_eac(VirtualEMRTD("B2"), protocols=AccessProtocols.PACE_BAC)
    result = read_eac(DirectTransport(both.card), access, terminal=pki().terminal())
    assert result.protocols == ("BAC", "CA", "TA") and result.files[DG3.name] == DG3_SAMPLE
    both.card.power_on()
    assert read_eac(DirectTransport(both.card), PACEAccess.can(CAN)).protocols == ("PACE", "CA")


def test_card_access_reads_without_any_session(chip):
    """EF.CardAccess is selected by FID 011C right after power-on and read in plain."""
    raw, parsed = eac_reader.read_card_access(fresh(chip))
    assert raw == chip.card_access and parsed.pace_infos[0].parameter_id == chip.parameter_id


def test_bac_only_chip_has_no_card_access_and_still_reads_by_bac():
    """Today's BAC chip: EF.CardAccess is 6A82, BAC reads its files as before."""
    card = VirtualEMRTD("L1")
    personalize(card, sample_files(2000))
    card.power_on()
    with pytest.raises(CardAccessError) as caught:
        eac_reader.read_card_access(DirectTransport(card))
    assert caught.value.sw == 0x6A82
    result = read_eac(DirectTransport(card), BACAccess("L898902C", "690806", "940623"),
                      files=("EF.DG1",), run_ca=False)
    assert result.protocols == ("BAC",) and result.files["EF.DG1"] == sample_files()[0x0101]
    open_session(card)  # the old terminal path is unchanged


def test_large_chain_over_a_short_path_uses_command_chaining():
    """A P-384 PKI over a 255-byte reader path: trust point and certificates go chained."""
    trust = pki(SECP384R1)
    chip = personalize_eac(VirtualEMRTD("C1"), trust=trust, max_command_data=255)
    assert len(trust.dv.pso_data()) > 223  # more than one short SM command carries
    result = read_eac(DirectTransport(chip.card, 255), PACEAccess.can(CAN),
                      terminal=trust.terminal())
    assert result.protocols == ("PACE", "CA", "TA") and result.files[DG3.name] == DG3_SAMPLE


def test_passive_authentication_hook_runs_before_ca(chip):
    """``before_ca`` sees DG14 before Chip Authentication, and its error stops the read."""
    seen: list[str] = []

    def refuse(files):
        seen.extend(files)
        raise RuntimeError("passive authentication failed")
    with pytest.raises(RuntimeError):
        read_eac(fresh(chip), PACEAccess.can(CAN), terminal=pki().terminal(), before_ca=refuse)
    assert "EF.DG14" in seen and chip.card.status.chip_authenticated is False
