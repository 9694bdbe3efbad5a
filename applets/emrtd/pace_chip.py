"""The chip's end of PACE-GM-ECDH (ICAO 9303-11 §4.4; TR-03110-3 App. B.1): a pure responder.

It takes MSE:Set AT and the four GENERAL AUTHENTICATE commands and answers each with the
status word a chip gives; the virtual eMRTD routes those commands here and, once
:attr:`PACEResponder.result` is set, protects everything after it with the new session.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from applets.emrtd import ec
from applets.emrtd.pace import (
    CHAINING,
    RNG,
    PACECheck,
    PACEError,
    PACEParameters,
    PACEResult,
    PACEStep,
    Password,
    auth_token,
    decode_public,
    dynamic_data,
    encrypt_nonce,
    mapped_generator,
    password_key,
    public_key,
    random_scalar,
    session_keys,
)
from applets.emrtd.sm import SecureMessaging
from applets.errors import TLVError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.iso7816.sw import SW

_SET_AT_TAGS = frozenset({0x80, 0x83, 0x84})
_IGNORED_TAGS = frozenset({0x7F4C, 0x67})  # CHAT and auxiliary data of EAC2 terminals
_STEPS = (PACEStep.NONCE, PACEStep.MAP, PACEStep.AGREE, PACEStep.TOKENS)


@dataclass(slots=True)
class _Run:
    """One run between MSE:Set AT and the last GENERAL AUTHENTICATE."""

    parameters: PACEParameters
    password: Password
    step: int = 0  # index into _STEPS of the GENERAL AUTHENTICATE expected next
    nonce: bytes = b""
    generator: ec.Point | None = None
    own: bytes = b""  # PK_DH,IC
    terminal: bytes = b""  # PK_DH,IFD
    keys: tuple[bytes, bytes] = (b"", b"")


def _sw(sw: int) -> ResponseAPDU:
    return ResponseAPDU(b"", sw)


def _fields(data: bytes) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for obj in tlv.iterate(data):
        if obj.tag in _IGNORED_TAGS:
            continue
        if obj.tag not in _SET_AT_TAGS or obj.tag in found:
            raise TLVError(f"unexpected tag {obj.tag:X} in MSE:Set AT")
        found[obj.tag] = obj.value
    return found


class PACEResponder:
    """The chip's PACE state machine for the PACEInfos it offers and the passwords it knows."""

    def __init__(self, offers: Sequence[PACEParameters], passwords: Sequence[Password],
                 rng: RNG = secrets.token_bytes) -> None:
        self.offers = tuple(offers)
        self.passwords = tuple(passwords)
        self.rng = rng
        self.result: PACEResult | None = None  # set by a successful last step
        self._run: _Run | None = None

    def process(self, command: CommandAPDU) -> ResponseAPDU:
        """Answer MSE:Set AT (INS 22) or GENERAL AUTHENTICATE (INS 86)."""
        if command.ins == 0x22:
            return self.set_at(command)
        if command.ins == 0x86:
            return self.general_authenticate(command)
        return _sw(SW.INS_NOT_SUPPORTED)

    def set_at(self, command: CommandAPDU) -> ResponseAPDU:
        """MSE:Set AT: choose the protocol and password; 84 may be left out if unambiguous."""
        self._run, self.result = None, None
        if (command.p1, command.p2) != (0xC1, 0xA4):
            return _sw(SW.INCORRECT_P1P2)
        try:
            fields = _fields(command.data)
        except TLVError:
            return _sw(SW.WRONG_DATA)
        parameters = self._offer(fields.get(0x80), fields.get(0x84))
        if parameters is None:  # TR-03110-3 App. B.1: algorithm not supported → 6A80
            return _sw(SW.WRONG_DATA)
        password = self._password(fields.get(0x83))
        if password is None:  # TR-03110-3 App. B.1: password reference not found → 6A88
            return _sw(SW.REFERENCE_DATA_NOT_FOUND)
        self._run = _Run(parameters, password)
        return _sw(SW.OK)

    def _offer(self, oid: bytes | None, parameter_id: bytes | None) -> PACEParameters | None:
        found = [o for o in self.offers if o.oid_value == oid]
        if parameter_id is not None:
            wanted = int.from_bytes(parameter_id, "big")
            found = [o for o in found if o.parameter_id == wanted]
        return found[0] if len(found) == 1 else None

    def _password(self, reference: bytes | None) -> Password | None:
        if reference is None or len(reference) != 1:
            return None
        return next((p for p in self.passwords if p.kind == reference[0]), None)

    def general_authenticate(self, command: CommandAPDU) -> ResponseAPDU:
        """One step; any failure aborts the run (a new MSE:Set AT starts over)."""
        run, self._run = self._run, None
        if run is None or not _in_order(run, command):
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        if command.p1 or command.p2:
            return _sw(SW.INCORRECT_P1P2)
        step = _STEPS[run.step]
        try:
            answer = self._HANDLERS[step](self, run, dynamic_data(step, command.data, _TAGS[step]))
        except PACEError as exc:
            # ICAO 9303-11 §4.4.1: a wrong password shows as T_IFD mismatch → 6300
            bad_token = exc.check is PACECheck.BAD_TOKEN
            return _sw(SW.VERIFICATION_FAILED if bad_token else SW.WRONG_DATA)
        run.step += 1
        if step is not PACEStep.TOKENS:
            self._run = run
        return ResponseAPDU(tlv.encode(0x7C, answer), SW.OK)

    def _nonce(self, run: _Run, _: bytes) -> bytes:
        cipher = run.parameters.cipher
        run.nonce = self.rng(cipher.key_length)  # ICAO 9303-11 §4.4.1 step 1: random s
        return tlv.encode(0x80, encrypt_nonce(password_key(run.password, cipher), run.nonce,
                                              cipher))

    def _map(self, run: _Run, data: bytes) -> bytes:
        curve = run.parameters.curve
        terminal = decode_public(PACEStep.MAP, curve, data)
        key = random_scalar(curve, self.rng)
        own = public_key(curve, key, ec.generator(curve), PACEStep.MAP)
        run.generator = mapped_generator(curve, key, terminal, run.nonce)
        return tlv.encode(0x82, ec.encode_point(curve, own))

    def _agree(self, run: _Run, data: bytes) -> bytes:
        curve = run.parameters.curve
        terminal = decode_public(PACEStep.AGREE, curve, data)
        if run.generator is None:
            raise PACEError(PACECheck.MALFORMED, PACEStep.AGREE, "no mapped generator")
        key = random_scalar(curve, self.rng)
        run.own = ec.encode_point(curve, public_key(curve, key, run.generator, PACEStep.AGREE))
        if hmac.compare_digest(run.own, data):  # TR-03110-2 PACE step 3: PK_DH,IFD ≠ PK_DH,IC
            raise PACEError(PACECheck.SAME_KEY, PACEStep.AGREE)
        run.terminal = data
        run.keys = session_keys(curve, key, terminal, run.parameters.cipher)
        return tlv.encode(0x84, run.own)

    def _authenticate(self, run: _Run, token: bytes) -> bytes:
        ks_enc, ks_mac = run.keys
        # ICAO 9303-11 §4.4.1 step 4: T_IFD is the MAC over the chip's ephemeral key
        if not hmac.compare_digest(token, auth_token(ks_mac, run.parameters, run.own)):
            raise PACEError(PACECheck.BAD_TOKEN, PACEStep.TOKENS, "T_IFD does not verify")
        session = SecureMessaging(ks_enc, ks_mac, 0, run.parameters.cipher)
        self.result = PACEResult(session, run.parameters, run.password.kind, run.own,
                                 run.terminal)
        return tlv.encode(0x86, auth_token(ks_mac, run.parameters, run.terminal))

    _HANDLERS: ClassVar[dict[PACEStep, Callable[[PACEResponder, _Run, bytes], bytes]]] = {
        PACEStep.NONCE: _nonce, PACEStep.MAP: _map, PACEStep.AGREE: _agree,
        PACEStep.TOKENS: _authenticate,
    }


_TAGS: dict[PACEStep, int | None] = {
    PACEStep.NONCE: None, PACEStep.MAP: 0x81, PACEStep.AGREE: 0x83, PACEStep.TOKENS: 0x85,
}


def _in_order(run: _Run, command: CommandAPDU) -> bool:
    """TR-03110-3 App. B.1: steps 1–3 come chained (CLA 10), the last one unchained (CLA 00)."""
    chained = bool(command.cla & CHAINING)
    return (command.cla & ~CHAINING) == 0 and chained == (_STEPS[run.step] is not PACEStep.TOKENS)
