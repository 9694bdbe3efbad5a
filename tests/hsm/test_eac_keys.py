"""The EAC PKI in a throwaway SoftHSM token: CVCA, DV and QA inspection-system keys made in the
HSM, their CV certificates checked by our verifier and by openpace's cvc-print, the key
policy, outside IS certificates and their refusals, the CVCA link certificate, the QA signer."""

from __future__ import annotations

import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11

from applets.emrtd import cvc
from applets.emrtd.cvc import CVCertificate, ISRights, Role
from common import curves
from hsm import eac
from hsm.errors import CeremonyError
from hsm.inventory import MIGRATIONS, KeyInventory
from hsm.pkcs11 import HSM
from personalization.config import EACConfig
from personalization.service import eacpki
from personalization.service.eacpki import Ceremony, EACRequestError, ISRequest

from .conftest import OFFICERS

pytestmark = pytest.mark.softhsm
TA = eacpki.TA_ALGORITHM
# cvc-print checks validity against today's date: the ceremonies happen now
AT = datetime.now(UTC).replace(microsecond=0)


def _make(hsm: HSM, inventory: KeyInventory, policy: EACConfig) -> list[CVCertificate]:
    c = Ceremony.of(OFFICERS, AT)
    records = [eacpki.init_cvca(hsm, inventory, policy, c),
               eacpki.new_dv(hsm, hsm, inventory, policy, c),
               eacpki.new_qa_is(hsm, inventory, policy, c)]
    return [CVCertificate.decode(r.certificate) for r in records]


def _cvc_print(path: Path, trust: Path) -> str:
    done = subprocess.run(["cvc-print", "--cvc", str(path), "--cvc-dir", str(trust)],
                          capture_output=True, text=True, timeout=10, check=True)
    return done.stdout


def _trust_dir(folder: Path, certificates: list[CVCertificate]) -> Path:
    folder.mkdir(exist_ok=True)
    for cert in certificates:
        (folder / str(cert.body.chr)).write_bytes(cert.encode())
    return folder


def _ec_key(curve: ec.EllipticCurve) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(curve)
    point = key.public_key().public_bytes(serialization.Encoding.X962,
                                          serialization.PublicFormat.UncompressedPoint)
    return key, point


@pytest.mark.parametrize("curve", ["brainpoolP256r1", "P-256"])
def test_chain_verifies_with_ours_and_cvc_print(hsm: HSM, inventory: KeyInventory,
                                                tmp_path: Path, curve: str) -> None:
    """The CVCA (self-signed, domain parameters), DV and QA IS verify up the chain, with the
    roles, rights, references and validity of the policy, by cvc.verify and by cvc-print."""
    policy = EACConfig(curve=curve)
    cvca, dv, qa = _make(hsm, inventory, policy)
    named = curves.BRAINPOOL_P256R1 if curve == "brainpoolP256r1" else curves.SECP256R1
    assert cvca.body.public_key.domain is not None
    assert cvca.body.public_key.domain.curve() is named
    assert dv.body.public_key.domain is None and qa.body.public_key.domain is None
    cvc.verify(cvca, cvca.body.public_key.point, named)
    cvc.verify(dv, cvca.body.public_key.point, named)
    cvc.verify(qa, dv.body.public_key.point, named)
    with pytest.raises(cvc.SignatureError):
        cvc.verify(qa, cvca.body.public_key.point, named)
    assert [str(c.body.chr) for c in (cvca, dv, qa)] == [
        "VNCVCACCCD00001", "VNDVCCCD00001", "VNISQADESK00001"]
    assert (cvca.body.car, dv.body.car, qa.body.car) == (cvca.body.chr, cvca.body.chr,
                                                         dv.body.chr)
    assert [c.body.chat.role for c in (cvca, dv, qa)] == [Role.CVCA, Role.DV_DOMESTIC,
                                                         Role.TERMINAL]
    assert qa.body.chat.rights is ISRights.DG3
    assert cvca.body.expiry - cvca.body.effective == timedelta(days=1095)
    assert dv.body.expiry - dv.body.effective == timedelta(days=90)
    assert qa.body.expiry - qa.body.effective == timedelta(days=30)
    trust = _trust_dir(tmp_path / "trust", [cvca, dv, qa])
    for cert in (cvca, dv, qa):
        text = _cvc_print(trust / str(cert.body.chr), trust)
        assert "certificate verified" in text and f"CHR: {cert.body.chr}" in text
    assert "Read fingerprint" in _cvc_print(trust / str(qa.body.chr), trust)


def test_private_keys_stay_in_the_hsm(hsm: HSM, inventory: KeyInventory) -> None:
    """Every EAC private key was made in the HSM, is sensitive and never extractable; its
    value cannot be read."""
    _make(hsm, inventory, EACConfig())
    records = [r for r in inventory.all_keys() if r.role in eac.EAC_ROLES]
    assert [r.role for r in records] == ["CVCA", "DV", "IS"]
    for record in records:
        attributes = hsm.key_attributes(record.label, record.key_id)
        assert attributes.sensitive and attributes.always_sensitive and attributes.local
        assert not attributes.extractable and attributes.never_extractable
        eac.check_key(hsm, record.label, record.key_id)
        with hsm.session() as session:
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=record.label)
            with pytest.raises(p11.AttributeSensitive):
                key[Attribute.VALUE]
    trail = [(e.action, e.officers) for e in inventory.audit_trail()]
    assert trail == [("init-cvca", OFFICERS), ("new-dv", OFFICERS), ("new-qa-is", OFFICERS)]


def test_outside_inspection_system_certified_and_refused(hsm: HSM,
                                                         inventory: KeyInventory) -> None:
    """An outside key gets a DG3+DG4 IS certificate under the DV; too many days, an unknown
    right, a key on another curve and a lone officer are each refused."""
    policy = EACConfig()
    cvca, dv, _ = _make(hsm, inventory, policy)
    _, point = _ec_key(ec.BrainpoolP256R1())
    request = ISRequest(point, eacpki.parse_rights("dg3,dg4"), 30, "ISBORDER")
    chain = eacpki.issue_is(hsm, inventory, policy, request, Ceremony.of(OFFICERS, AT))
    assert chain[:2] == (cvca.encode(), dv.encode())
    issued = CVCertificate.decode(chain[2])
    cvc.verify(issued, dv.body.public_key.point, curves.BRAINPOOL_P256R1)
    assert issued.body.chat.rights is ISRights.DG3 | ISRights.DG4
    assert str(issued.body.chr) == "VNISBORDER00001" and issued.body.public_key.point == point
    with pytest.raises(EACRequestError, match="1 to 30 days") as too_long:
        eacpki.issue_is(hsm, inventory, policy, ISRequest(point, ISRights.DG3, 31, "ISB"),
                        Ceremony.of(OFFICERS, AT))
    assert too_long.value.code == "validity"
    with pytest.raises(EACRequestError, match="'dg5'"):
        eacpki.parse_rights("dg3,dg5")
    other = _ec_key(ec.SECP256R1())[0].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(EACRequestError, match="secp256r1") as wrong:
        eacpki.load_public_point(other, curves.BRAINPOOL_P256R1)
    assert wrong.value.code == "curve"
    with pytest.raises(CeremonyError, match="2 different officers"):
        Ceremony.of((OFFICERS[0], OFFICERS[0].upper()), AT)


def test_link_certificate_joins_old_and_new_cvca(hsm: HSM, inventory: KeyInventory,
                                                 tmp_path: Path) -> None:
    """The rollover's link certificate verifies under the old CVCA key (ours and cvc-print)
    and carries the new key; the new CVCA is self-signed and certifies the next DV."""
    policy = EACConfig()
    old, _, _ = _make(hsm, inventory, policy)
    later = Ceremony.of(OFFICERS, AT + timedelta(days=700))
    rolled = eacpki.rollover_cvca(hsm, inventory, policy, later)
    new = CVCertificate.decode(rolled.new.certificate)
    link = CVCertificate.decode(rolled.link)
    curve = curves.BRAINPOOL_P256R1
    cvc.verify(link, old.body.public_key.point, curve)
    cvc.verify(new, new.body.public_key.point, curve)
    assert link.body.public_key == new.body.public_key and link.body.chr == new.body.chr
    assert link.body.car == old.body.chr and str(new.body.chr) == "VNCVCACCCD00002"
    assert inventory.active("CVCA") == rolled.new
    assert inventory.get(rolled.previous.label).status == "retired"
    trust = _trust_dir(tmp_path / "trust", [old])
    (tmp_path / "link").write_bytes(rolled.link)
    assert "certificate verified" in _cvc_print(tmp_path / "link", trust)
    dv = CVCertificate.decode(eacpki.new_dv(hsm, hsm, inventory, policy, later).certificate)
    assert dv.body.car == new.body.chr
    cvc.verify(dv, new.body.public_key.point, curve)


def test_qa_signer_signs_for_its_certificate(hsm: HSM, inventory: KeyInventory) -> None:
    """The QA desk's signer (SHA-256, CKM_ECDSA in the HSM) gives r ‖ s that verify under the
    IS certificate's key; its chain is CVCA, DV, IS."""
    cvca, dv, qa = _make(hsm, inventory, EACConfig())
    terminal = eacpki.qa_terminal(hsm, inventory, AT + timedelta(days=1))
    assert terminal.chain == (cvca.encode(), dv.encode(), qa.encode())
    assert terminal.holder == str(qa.body.chr) and terminal.curve is curves.BRAINPOOL_P256R1
    message = b"ID_PICC || r_PICC || Comp(PK_PCD)"
    signature = terminal.sign(message)
    assert len(signature) == 64
    cvc.verify_plain(qa.body.public_key.point, terminal.curve, TA, message, signature)
    with pytest.raises(cvc.SignatureError):
        cvc.verify_plain(qa.body.public_key.point, terminal.curve, TA, message + b"!", signature)
    with pytest.raises(CeremonyError, match="outside its certificate's validity"):
        eacpki.qa_terminal(hsm, inventory, AT + timedelta(days=40))


def test_an_inventory_of_before_eac_takes_eac_keys(tmp_path: Path, hsm: HSM) -> None:
    """A version 1 inventory file (CSCA and DS only) migrates with its keys and audit trail
    intact, and then stores EAC keys."""
    path = tmp_path / "old" / "inventory.db"
    path.parent.mkdir()
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[0][2]:
        db.execute(statement)
    db.execute("INSERT INTO keys VALUES ('CSCA-1', '00', 'CSCA', 'ecdsa-p256', x'30', "
               "'2026-01-01T00:00:00+00:00', '2031-01-01T00:00:00+00:00', NULL, 0, 'active', "
               "'2026-01-01T00:00:00+00:00', 'a,b')")
    db.execute("INSERT INTO audit (at, action, key_label, officers, detail) VALUES "
               "('2026-01-01T00:00:00+00:00', 'init-csca', 'CSCA-1', 'a,b', '')")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with KeyInventory(path) as inventory:
        assert [r.label for r in inventory.all_keys()] == ["CSCA-1"]
        _make(hsm, inventory, EACConfig())
        assert [r.role for r in inventory.all_keys()] == ["CSCA", "CVCA", "DV", "IS"]
        assert inventory.audit_trail()[0].action == "init-csca"
