"""The chip's EAC commands: PACE, Chip Authentication v1 and Terminal Authentication v1.

- PACE (ICAO 9303-11 §4.4): MSE:Set AT ``00 22 C1 A4`` and the chained GENERAL AUTHENTICATEs,
  answered in plain by :class:`~applets.emrtd.pace_chip.PACEResponder` with the PACEInfos of
  the chip's own EF.CardAccess and its MRZ and CAN passwords; the session that follows is AES
  secure messaging from SSC 0.
- CA v1 (9303-11 §6.2; TR-03110-3 B.11.1–2), under secure messaging: MSE:Set AT
  ``00 22 41 A4`` then GENERAL AUTHENTICATE ``7C {80 PK_PCD}``; the answer travels under the old
  keys, the next command under the new ones with SSC 0.
- TA v1 (TR-03110-3 B.11.3–6), under secure messaging and after CA: MSE:Set DST ``81 B6``,
  PSO:Verify Certificate ``2A 00 BE``, MSE:Set AT ``81 A4``, GET CHALLENGE, EXTERNAL
  AUTHENTICATE over ID_PICC ‖ r_PICC ‖ Comp(PK_PCD); the chain decisions are
  :class:`~applets.emrtd.ta.TAChip`'s. A refusal keeps the secure-messaging session (it is no
  SM error, 9303-11 §9.8.6); TA can be tried again.

The object lives for one power-on; the card asks :meth:`EACChip.take_session` after each
command whether secure messaging switches keys.
"""

from __future__ import annotations

from collections.abc import Callable

from applets.emrtd import ca, curves
from applets.emrtd.cvc import ISRights
from applets.emrtd.lds import asn1
from applets.emrtd.lds.files import EF_CARD_ACCESS
from applets.emrtd.lds.securityinfos import decode_card_access
from applets.emrtd.pace import (
    PACEError,
    PACEParameters,
    PACEResult,
    Password,
    PasswordType,
    can_password,
)
from applets.emrtd.pace_chip import PACEResponder
from applets.emrtd.sm import SecureMessaging
from applets.emrtd.ta import CHALLENGE, TAChip, TAError, comp, id_picc_bac
from applets.errors import CardError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.iso7816.sw import SW
from applets.virtual.access import SecurityStatus, Session
from applets.virtual.memory import ChipMemory

RNG = Callable[[int], bytes]
Changed = Callable[[int], None]  # bytes of EEPROM written
_CA_OIDS = {asn1.oid(oid)[2:]: oid for oid in ca.SUITES}  # MSE tag 80 carries the OID's value


def _sw(code: int, data: bytes = b"") -> ResponseAPDU:
    return ResponseAPDU(data, code)


def _value(data: bytes, tag: int) -> bytes:
    """The value of the single data object ``tag`` filling ``data``."""
    return tlv.decode_single(data, tag).value


def pace_offers(memory: ChipMemory) -> list[PACEParameters]:
    """The PACE protocols the chip's EF.CardAccess offers that it can run (ECDH-GM with a
    standardized domain parameter id)."""
    content = memory.mf_files.get(EF_CARD_ACCESS.fid)
    if not memory.access.pace or content is None:
        return []
    offers = []
    for info in decode_card_access(bytes(content)).pace_infos:
        if info.parameter_id is None:
            continue
        try:
            offers.append(PACEParameters(info.protocol, info.parameter_id))
        except PACEError:
            continue
    return offers


def pace_passwords(memory: ChipMemory) -> list[Password]:
    """The MRZ and CAN passwords set at personalization."""
    passwords = []
    if memory.pace_mrz is not None:
        passwords.append(Password(PasswordType.MRZ, memory.pace_mrz))
    if memory.pace_can is not None:
        passwords.append(can_password(memory.pace_can))
    return passwords


class EACChip:
    """PACE, CA and TA state of one power-on, over the chip's memory and security status."""

    def __init__(self, memory: ChipMemory, status: SecurityStatus, rng: RNG,
                 changed: Changed) -> None:
        self.memory, self.status, self.rng, self.changed = memory, status, rng, changed
        self._pace: PACEResponder | None = None
        self._pending: SecureMessaging | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the session-bound state (a new session, or the old one ended)."""
        self._pace_result: PACEResult | None = None
        self._ca_oid: str | None = None
        self._pk_pcd: bytes | None = None  # the terminal's CA ephemeral key, for TA
        self._ta: TAChip | None = None

    def take_session(self) -> SecureMessaging | None:
        """The session PACE or CA just established, handed over once."""
        session, self._pending = self._pending, None
        return session

    # -- MSE:Set AT / Set DST -----------------------------------------------------------
    def manage(self, command: CommandAPDU, secure: bool) -> ResponseAPDU:
        """MSE (INS 22): PACE in plain; CA and TA under secure messaging."""
        p1p2 = (command.p1, command.p2)
        if p1p2 == (0xC1, 0xA4):
            return self._pace_command(command, secure)
        if not secure:
            return _sw(SW.SECURITY_STATUS_NOT_SATISFIED)
        try:
            if p1p2 == (0x41, 0xA4):
                return self._ca_set_at(command)
            if p1p2 in ((0x81, 0xB6), (0x81, 0xA4)):
                return self._ta_reference(command, dst=command.p2 == 0xB6)
        except CardError:  # TLV malformed, or a reference that is no text
            return _sw(SW.WRONG_DATA)
        return _sw(SW.INCORRECT_P1P2)

    def general_authenticate(self, command: CommandAPDU, secure: bool) -> ResponseAPDU:
        """GENERAL AUTHENTICATE (INS 86): PACE in plain, CA under secure messaging."""
        if not secure:
            return self._pace_command(command, secure)
        return self._ca_authenticate(command)

    # -- PACE -------------------------------------------------------------------------
    def _pace_command(self, command: CommandAPDU, secure: bool) -> ResponseAPDU:
        if not self.memory.locked or secure:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        if command.ins == 0x22 or self._pace is None:
            try:
                offers = pace_offers(self.memory)
            except CardError:  # an EF.CardAccess that does not parse offers nothing
                offers = []
            self._pace = PACEResponder(offers, pace_passwords(self.memory), self.rng)
        answer = self._pace.process(command)
        result, self._pace.result = self._pace.result, None
        if result is not None:
            self.status.open(Session.PACE)
            self.reset()
            self._pace_result, self._pending = result, result.session
        return answer

    # -- Chip Authentication ------------------------------------------------------------
    def _ca_set_at(self, command: CommandAPDU) -> ResponseAPDU:
        self._ca_oid = None
        fields = {obj.tag: obj.value for obj in tlv.iterate(command.data)}
        if self.memory.ca_key is None or 0x84 in fields:  # one key, without a key id
            return _sw(SW.REFERENCE_DATA_NOT_FOUND)
        oid = _CA_OIDS.get(fields.get(0x80, b""))
        if oid is None or set(fields) - {0x80}:
            return _sw(SW.WRONG_DATA)
        self._ca_oid = oid
        return _sw(SW.OK)

    def _ca_authenticate(self, command: CommandAPDU) -> ResponseAPDU:
        oid, self._ca_oid = self._ca_oid, None
        key = self.memory.ca_key
        if oid is None or key is None or command.cla or command.p1 or command.p2:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        try:
            point = _value(_value(command.data, 0x7C), 0x80)
            session = ca.chip_session(int.from_bytes(key.scalar, "big"), point,
                                      curves.by_oid(key.curve_oid), oid)
        except CardError:  # malformed data, or a point off the curve
            return _sw(SW.WRONG_DATA)
        self.status.chip_authenticated, self.status.rights = True, ISRights.NONE
        self._pk_pcd, self._ta, self._pending = point, None, session
        return _sw(SW.OK, tlv.encode(0x7C, b""))  # ICAO 9303-11 §6.2.3: an empty 7C

    # -- Terminal Authentication --------------------------------------------------------
    def _ta_chip(self) -> TAChip | None:
        if self._ta is None and self.memory.trust_point and self.memory.chip_date:
            self._ta = TAChip(self.memory.trust_point, self.memory.chip_date)
        return self._ta

    def _ta_reference(self, command: CommandAPDU, dst: bool) -> ResponseAPDU:
        chip = self._ta_chip()
        if chip is None:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        reference = _value(command.data, 0x83).decode("latin-1")
        try:
            if dst:
                chip.set_dst(reference)
            else:
                chip.set_at(reference)
        except TAError as exc:
            return _sw(exc.sw or SW.WRONG_DATA)
        return _sw(SW.OK)

    def verify_certificate(self, command: CommandAPDU) -> ResponseAPDU:
        """PSO:Verify Certificate ``00 2A 00 BE``; a link certificate or a later date is kept."""
        chip = self._ta_chip()
        if chip is None:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        if (command.p1, command.p2) != (0x00, 0xBE):
            return _sw(SW.INCORRECT_P1P2)
        try:
            chip.verify_certificate(command.data)
        except TAError as exc:
            return _sw(exc.sw or SW.WRONG_DATA)
        if (chip.trust_point, chip.current_date) != (self.memory.trust_point,
                                                    self.memory.chip_date):
            # TR-03110-3 §2.5: the new trust point and the later date are stored for good
            self.memory.trust_point, self.memory.chip_date = chip.trust_point, chip.current_date
            self.changed(len(chip.trust_point.point) + 6)
        return _sw(SW.OK)

    def get_challenge(self, command: CommandAPDU) -> ResponseAPDU:
        """GET CHALLENGE under secure messaging: r_PICC for TA."""
        chip = self._ta_chip()
        if chip is None:
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        if command.data or command.ne != CHALLENGE:
            return _sw(SW.WRONG_LENGTH)
        return _sw(SW.OK, chip.get_challenge(self.rng))

    def external_authenticate(self, command: CommandAPDU) -> ResponseAPDU:
        """EXTERNAL AUTHENTICATE under secure messaging: the terminal's signature; on success
        the effective CHAT's DG3/DG4 rights."""
        chip, id_picc = self._ta_chip(), self._id_picc()
        if chip is None or id_picc is None or self._pk_pcd is None:  # EAC v1: CA before TA
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        try:
            terminal = chip.external_authenticate(command.data, id_picc, comp(self._pk_pcd))
        except TAError as exc:
            return _sw(exc.sw or SW.VERIFICATION_FAILED)
        self.status.rights = terminal.rights
        return _sw(SW.OK)

    def _id_picc(self) -> bytes | None:
        """TR-03110-1 §2.4: Comp(PK_PICC) of PACE, or the document number after BAC."""
        if self.status.session is Session.PACE and self._pace_result is not None:
            return self._pace_result.id_picc
        if self.status.session is Session.BAC and self.memory.document_number is not None:
            return id_picc_bac(self.memory.document_number)
        return None
