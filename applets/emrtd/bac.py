"""Basic Access Control of ICAO 9303-11 §9.7 / §4.3 (worked example: Appendix D.2–D.3).

Pure key derivation and cryptogram math, a terminal-side sequencer over a :class:`Transport`
and the card-side state machine the virtual eMRTD runs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from applets.emrtd import crypto
from applets.emrtd.errors import BACError
from applets.emrtd.lds.checkdigit import check_digit
from applets.emrtd.sm import SecureMessaging
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.iso7816.sw import SW
from applets.transport.base import Transport

RNG = Callable[[int], bytes]
NONCE = 8
KEY_MATERIAL = 16
CRYPTOGRAM = 2 * NONCE + KEY_MATERIAL + crypto.MAC_LENGTH  # 40 = E(32) ‖ M(8)


def mrz_information(document_number: str, date_of_birth: str, date_of_expiry: str) -> str:
    """ICAO 9303-11 §9.7.2: docNo (padded to 9 with '<') ‖ cd ‖ DOB ‖ cd ‖ DOE ‖ cd."""
    number = document_number.strip().upper().ljust(9, "<")
    fields = (number, date_of_birth, date_of_expiry)
    return "".join(field + check_digit(field) for field in fields)


def key_seed(mrz_info: str) -> bytes:
    """ICAO 9303-11 §9.7.2: K_seed = SHA-1(MRZ_information)[0:16]."""
    digest = hashlib.sha1(mrz_info.encode("ascii")).digest()  # noqa: S324 - mandated by §9.7.2
    return digest[:KEY_MATERIAL]


def document_keys(mrz_info: str, adjust_parity: bool = False) -> tuple[bytes, bytes]:
    """K_enc and K_mac of a document (KDF counters 1 and 2), optionally parity-adjusted."""
    seed = key_seed(mrz_info)
    keys = crypto.kdf(seed, 1), crypto.kdf(seed, 2)
    if adjust_parity:
        return crypto.adjust_parity(keys[0]), crypto.adjust_parity(keys[1])
    return keys


def seal(k_enc: bytes, k_mac: bytes, plain: bytes) -> bytes:
    """E = 3DES-CBC(K_enc, plain); M = retail MAC(K_mac, pad(E)); return E ‖ M."""
    encrypted = crypto.des3_encrypt(k_enc, plain)
    return encrypted + crypto.retail_mac(k_mac, crypto.pad(encrypted))


def unseal(k_enc: bytes, k_mac: bytes, cryptogram: bytes) -> bytes:
    """Check the MAC of E ‖ M in constant time and return the decrypted E."""
    if len(cryptogram) != CRYPTOGRAM:
        raise BACError(f"cryptogram of {len(cryptogram)} bytes ({CRYPTOGRAM} expected)")
    encrypted, mac = cryptogram[:-8], cryptogram[-8:]
    if not hmac.compare_digest(crypto.retail_mac(k_mac, crypto.pad(encrypted)), mac):
        raise BACError("cryptogram MAC does not verify")
    return crypto.des3_decrypt(k_enc, encrypted)


def session(k_ifd: bytes, k_ic: bytes, rnd_ic: bytes, rnd_ifd: bytes) -> SecureMessaging:
    """ICAO 9303-11 §9.7.4: K_seed = K.IFD ⊕ K.IC; SSC = RND.IC[4:8] ‖ RND.IFD[4:8]."""
    seed = bytes(a ^ b for a, b in zip(k_ifd, k_ic, strict=True))
    ssc = int.from_bytes(rnd_ic[4:8] + rnd_ifd[4:8], "big")
    return SecureMessaging(crypto.kdf(seed, 1), crypto.kdf(seed, 2), ssc)


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def perform_bac(transport: Transport, mrz_info: str, rng: RNG) -> SecureMessaging:
    """Terminal side of BAC: GET CHALLENGE, EXTERNAL AUTHENTICATE, verify, session keys."""
    k_enc, k_mac = document_keys(mrz_info)
    challenge = transport.transmit(CommandAPDU(0x00, 0x84, 0x00, 0x00, ne=NONCE))
    if challenge.sw != SW.OK or len(challenge.data) != NONCE:
        raise BACError(f"GET CHALLENGE refused with SW {challenge.sw:04X}", challenge.sw)
    rnd_ic, rnd_ifd, k_ifd = challenge.data, rng(NONCE), rng(KEY_MATERIAL)
    data = seal(k_enc, k_mac, rnd_ifd + rnd_ic + k_ifd)
    answer = transport.transmit(CommandAPDU(0x00, 0x82, 0x00, 0x00, data, ne=CRYPTOGRAM))
    if answer.sw != SW.OK:
        raise BACError(f"EXTERNAL AUTHENTICATE refused with SW {answer.sw:04X}", answer.sw)
    plain = unseal(k_enc, k_mac, answer.data)
    # ICAO 9303-11 §4.3.3.2: the IFD checks that the chip echoed RND.IFD and its own RND.IC
    if not (_same(plain[:NONCE], rnd_ic) & _same(plain[NONCE : 2 * NONCE], rnd_ifd)):
        raise BACError("chip did not echo the nonces")
    return session(k_ifd, plain[2 * NONCE :], rnd_ic, rnd_ifd)


class BACCard:
    """Card side of BAC: issues one challenge, checks the terminal's cryptogram, answers."""

    def __init__(self, k_enc: bytes, k_mac: bytes, rng: RNG) -> None:
        self.k_enc = k_enc
        self.k_mac = k_mac
        self.rng = rng
        self._rnd_ic: bytes | None = None

    def get_challenge(self, command: CommandAPDU) -> ResponseAPDU:
        """GET CHALLENGE: an 8-byte RND.IC, remembered for the next EXTERNAL AUTHENTICATE."""
        if command.data or command.ne != NONCE:
            return ResponseAPDU(b"", SW.WRONG_LENGTH)
        self._rnd_ic = self.rng(NONCE)
        return ResponseAPDU(self._rnd_ic, SW.OK)

    def external_authenticate(
        self, command: CommandAPDU
    ) -> tuple[ResponseAPDU, SecureMessaging | None]:
        """EXTERNAL AUTHENTICATE: on success the response and the new SM session."""
        rnd_ic, self._rnd_ic = self._rnd_ic, None  # a challenge is good for one attempt only
        if len(command.data) != CRYPTOGRAM:
            return ResponseAPDU(b"", SW.WRONG_LENGTH), None
        if rnd_ic is None:
            return ResponseAPDU(b"", SW.CONDITIONS_NOT_SATISFIED), None
        try:
            plain = unseal(self.k_enc, self.k_mac, command.data)
        except BACError:
            return ResponseAPDU(b"", SW.SECURITY_STATUS_NOT_SATISFIED), None
        if not _same(plain[NONCE : 2 * NONCE], rnd_ic):
            return ResponseAPDU(b"", SW.SECURITY_STATUS_NOT_SATISFIED), None
        rnd_ifd, k_ifd, k_ic = plain[:NONCE], plain[2 * NONCE :], self.rng(KEY_MATERIAL)
        answer = seal(self.k_enc, self.k_mac, rnd_ic + rnd_ifd + k_ic)
        return ResponseAPDU(answer, SW.OK), session(k_ifd, k_ic, rnd_ic, rnd_ifd)
