"""Test cards for QA: CSCA / DS certificates signed with in-process keys, and chips personalized
through the real perso profile (PersoClient) over any transport — good ones and bad ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from applets.emrtd.lds.com import encode_com
from applets.emrtd.lds.files import BY_FID, DATA_GROUPS, EF_COM, EF_SOD
from applets.emrtd.lds.sod import SODBuilder
from applets.emrtd.perso import PersoClient
from applets.transport.base import Transport
from hsm import certificates as certs
from hsm.ecparams import explicit_spki
from personalization.applications.model import Application
from personalization.encoder import write_chip
from personalization.prep import CardData, Preparer, build_dg13
from personalization.profile import DocumentProfile
from qa.checks import Expected
from qa.readback import DocumentKeys, keys_from_fields
from tests.support.signers import SoftwareSigner

AT = datetime(2026, 11, 24, 9, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
Groups = dict[int, bytes]


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The key's SubjectPublicKeyInfo DER."""
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def signer_of(key: ec.EllipticCurvePrivateKey) -> certs.Signer:
    """A certificate ``sign`` callable over an in-process key."""
    return lambda tbs: key.sign(tbs, ec.ECDSA(hashes.SHA256()))


def make_csca(key: ec.EllipticCurvePrivateKey, name: str = "CSCA Vietnam",
              validity: tuple[datetime, datetime] = (AT - 365 * DAY, AT + 5000 * DAY)) -> bytes:
    """A CSCA certificate of the 9303-12 profile."""
    return certs.build_csca_certificate(
        spki_der=spki(key), serial_number=7, country="VN", icao_code="VNM", common_name=name,
        name_serial="1", validity=validity, usage=(validity[0], validity[0] + 1800 * DAY),
        sign=signer_of(key))


def make_ds(csca_der: bytes, csca_key: ec.EllipticCurvePrivateKey,
            ds_key: ec.EllipticCurvePrivateKey,
            validity: tuple[datetime, datetime] = (AT - DAY, AT + 3700 * DAY),
            usage: tuple[datetime, datetime] = (AT - DAY, AT + 90 * DAY),
            doc_types: tuple[str, ...] = ("ID",)) -> bytes:
    """A Document Signer certificate issued by the CSCA."""
    return certs.build_ds_certificate(
        spki_der=spki(ds_key), serial_number=4242, csca_der=csca_der, icao_code="VNM",
        common_name="Document Signer VNM", name_serial="20261124001", validity=validity,
        usage=usage, doc_types=doc_types, sign=signer_of(csca_key))


def without_document_type(ds_der: bytes, csca_der: bytes,
                          csca_key: ec.EllipticCurvePrivateKey) -> bytes:
    """The same DS certificate re-signed without its DocumentType extension."""
    tbs = certs.load_certificate(ds_der)["tbs_certificate"]
    kept = tuple(e for e in tbs["extensions"] if e["extn_id"].dotted != "2.23.136.1.1.6.2")
    validity = (tbs["validity"]["not_before"].native, tbs["validity"]["not_after"].native)
    builder = certs.TBSBuilder(
        tbs["serial_number"].native, tbs["issuer"], tbs["subject"], validity,
        explicit_spki(bytes(tbs["subject_public_key_info"].dump())),
        certs.subject_public_key_info(csca_der), kept)
    return builder.sign(signer_of(csca_key))


@dataclass
class PKI:
    """One CSCA and its Document Signer."""

    csca_key: ec.EllipticCurvePrivateKey = field(default_factory=new_key)
    ds_key: ec.EllipticCurvePrivateKey = field(default_factory=new_key)
    csca_der: bytes = b""
    ds_der: bytes = b""

    def __post_init__(self) -> None:
        self.csca_der = self.csca_der or make_csca(self.csca_key)
        self.ds_der = self.ds_der or make_ds(self.csca_der, self.csca_key, self.ds_key)

    def signer(self, ds_der: bytes | None = None) -> SoftwareSigner:
        """The DS as an SODSigner (optionally with another certificate for the same key)."""
        return SoftwareSigner(self.ds_key, ds_der or self.ds_der)


@dataclass
class Prepared:
    """A prepared application: card data, the BAC keys and what QA must find on the chip."""

    data: CardData
    keys: DocumentKeys
    expected: Expected


def prepare(profile: DocumentProfile, application: Application, pki: PKI) -> Prepared:
    """Card data for one application, as the line prepares it."""
    data = Preparer(profile, pki.signer()).card_data(application)
    expected = Expected(mrz=data.mrz.text, dg13=build_dg13(application, profile),
                        dg2_image=application.portrait.jpeg)
    return Prepared(data, keys_from_fields(*data.bac_key), expected)


def personalize(transport: Transport, prepared: Prepared, signer: SoftwareSigner, *,
                lock: bool = True, before_sign: Callable[[Groups], None] | None = None,
                after_sign: Callable[[Groups], None] | None = None) -> Groups:
    """Personalize a blank chip with the encoder's own sequence; hooks make it a bad card.

    Only sealing differs from the encoder: EF.COM lists the groups actually written and EF.SOD
    is signed by ``signer``, so a hook can drop or change a group before or after signing.
    """
    written: Groups = {}

    def seal(chip_groups: Groups) -> dict[str, bytes]:
        groups = {**prepared.data.data_groups, **chip_groups}
        if before_sign is not None:
            before_sign(groups)
        written[EF_COM.fid] = encode_com([DATA_GROUPS[n].tag or 0 for n in sorted(groups)])
        written.update({DATA_GROUPS[n].fid: body for n, body in groups.items()})
        written[EF_SOD.fid] = SODBuilder(signer).build(groups)
        if after_sign is not None:
            after_sign(written)
        return {BY_FID[fid].name: body for fid, body in written.items()}

    client = PersoClient(transport)
    client.select_applet()
    write_chip(client, seal, prepared.data.bac_key, lambda step: None)
    if lock:
        client.lock()
    return written
