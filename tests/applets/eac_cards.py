"""EAC test chips: a small CV PKI and chips personalized in-process (no pcscd)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from applets.emrtd import cvc, eac_oids
from applets.emrtd.cvc import CHAT, ISRights, Reference, Role
from applets.emrtd.eac_reader import TerminalCredentials
from applets.emrtd.lds.cvca import encode_cvca
from applets.emrtd.lds.dg14 import active_authentication_info, encode_dg14
from applets.emrtd.lds.files import DATA_GROUPS, DG3, EF_COM, EF_CVCA
from applets.emrtd.lds.securityinfos import (
    ChipAuthenticationInfo,
    ChipAuthenticationPublicKeyInfo,
    PACEInfo,
    TerminalAuthenticationInfo,
    encode_card_access,
)
from applets.emrtd.perso import AccessProtocols, PersoClient
from applets.iso7816 import tlv
from applets.transport.base import DirectTransport
from applets.virtual.card import VirtualEMRTD
from common.curves import BRAINPOOL_P256R1, SECP256R1, Curve

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "eac"
DG3_SAMPLE = (VECTORS / "DG3_bsi2008.bin").read_bytes()  # BSI 2008 sample, via JMRTD
DOC, DOB, DOE = "C03005988", "900101", "300101"
CAN = "123456"
DAY = date(2030, 6, 1)  # the chip's date at personalization
PACE_OID = eac_oids.ID_PACE_ECDH_GM_AES_CBC_CMAC_128
PARAMETER_IDS = {13: BRAINPOOL_P256R1, 12: SECP256R1}
COM = bytes.fromhex("60145F0104303130365F36063034303030305C026175")
DG1 = tlv.encode(0x61, tlv.encode(0x5F1F, b"IDVNM0300598856012345678901<<<" * 3))


@dataclass(frozen=True)
class PKI:
    """A CVCA, a domestic DV under it, and inspection-system credentials."""

    curve: Curve
    algorithm: str
    keys: dict[str, ec.EllipticCurvePrivateKey]

    def point(self, name: str) -> bytes:
        numbers = self.keys[name].public_key().public_numbers()
        size = self.curve.size
        return b"\x04" + numbers.x.to_bytes(size, "big") + numbers.y.to_bytes(size, "big")

    def issue(self, signer: str, car: str, subject: str, chr_: str, role: Role,
              rights: ISRights = ISRights.DG3 | ISRights.DG4,
              effective: date = date(2030, 1, 1),
              expiry: date = date(2031, 1, 1)) -> cvc.CVCertificate:
        """A certificate for ``keys[subject]`` signed by ``keys[signer]``."""
        domain = cvc.DomainParameters.from_curve(self.curve) if role is Role.CVCA else None
        body = cvc.CertificateBody(
            Reference.parse(car), cvc.PublicKey(self.algorithm, self.point(subject), domain),
            Reference.parse(chr_), CHAT.inspection_system(role, rights), effective, expiry)
        return cvc.sign_body(body, cvc.software_signer(self.keys[signer], self.algorithm))

    @property
    def cvca(self) -> cvc.CVCertificate:
        return self.issue("cvca", "VNCVCA00001", "cvca", "VNCVCA00001", Role.CVCA,
                          effective=date(2029, 1, 1), expiry=date(2033, 1, 1))

    @property
    def dv(self) -> cvc.CVCertificate:
        return self.issue("cvca", "VNCVCA00001", "dv", "VNDV000001", Role.DV_DOMESTIC)

    def terminal(self, rights: ISRights = ISRights.DG3 | ISRights.DG4,
                 expiry: date = date(2031, 1, 1), dv: str = "dv") -> TerminalCredentials:
        """An inspection system under the DV ``dv`` (its chain from the trust point down)."""
        is_cert = self.issue(dv, "VNDV000001", "is", "VNIS000001", Role.TERMINAL, rights,
                             expiry=expiry)
        signer = cvc.software_signer(self.keys["is"], self.algorithm)
        return TerminalCredentials((self.dv, is_cert), signer)


@cache
def pki(curve: Curve = SECP256R1) -> PKI:
    """One PKI per curve for the whole test session (key generation is the slow part)."""
    algorithm = (eac_oids.ID_TA_ECDSA_SHA_384 if curve.size > 32
                 else eac_oids.ID_TA_ECDSA_SHA_256)
    names = ("cvca", "dv", "is", "other")
    return PKI(curve, algorithm, {n: ec.generate_private_key(curve.crypto_curve())
                                  for n in names})


def card_access(parameter_id: int) -> bytes:
    """EF.CardAccess with one PACEInfo (ECDH-GM, AES-128)."""
    return encode_card_access([PACEInfo(PACE_OID, parameter_id)])


def dg14(curve: Curve, ca_point: bytes, parameter_id: int) -> bytes:
    """DG14 with the on-chip CA key (explicit parameters), PACEInfo, TA info and AA info."""
    return encode_dg14([ChipAuthenticationInfo(), ChipAuthenticationPublicKeyInfo(curve, ca_point),
                        PACEInfo(PACE_OID, parameter_id), TerminalAuthenticationInfo(),
                        active_authentication_info()])


@dataclass
class EACCard:
    """A personalized chip and what was written to it."""

    card: VirtualEMRTD
    files: dict[int, bytes]
    card_access: bytes
    parameter_id: int


def personalize_eac(card: VirtualEMRTD, parameter_id: int = 13,
                    protocols: AccessProtocols = AccessProtocols.PACE,
                    trust: PKI | None = None, chip_date: date = DAY, lock: bool = True,
                    max_command_data: int = 65535) -> EACCard:
    """The whole EAC perso: access protocols, CA key, files, EF.CardAccess, secrets, trust
    point, date, lock."""
    curve = PARAMETER_IDS[parameter_id]
    trust = trust or pki()
    client = PersoClient(DirectTransport(card, max_command_data))
    client.select_applet()
    client.set_access_protocols(protocols)
    ca_point = client.generate_ca_key(curve)
    files = {EF_COM.fid: COM, DATA_GROUPS[1].fid: DG1, DG3.fid: DG3_SAMPLE,
             DATA_GROUPS[14].fid: dg14(curve, ca_point, parameter_id),
             EF_CVCA.fid: encode_cvca([str(trust.cvca.body.chr)])}
    for fid, data in files.items():
        client.put_file(fid, data)
    access = card_access(parameter_id)
    client.put_card_access(access)
    client.generate_aa_key()
    client.put_bac_seed(DOC, DOB, DOE)
    client.put_pace_mrz(DOC, DOB, DOE)
    client.put_can(CAN)
    client.put_trust_point(trust.cvca)
    client.put_chip_date(chip_date)
    if lock:
        client.lock()
    card.power_on()
    return EACCard(card, files, access, parameter_id)
