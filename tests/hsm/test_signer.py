"""DSSigner on SoftHSM: key policy at start, counting, rotation by count and date, threads."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta

import pkcs11
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hsm.certificates import subject_public_key_info, verify_signature
from hsm.errors import KeyNotFound, KeyPolicyViolation, KeyRetired
from hsm.inventory import AuditEntry, KeyInventory, KeyRecord
from hsm.pkcs11 import HSM
from hsm.signer import DSSigner

from .conftest import AT, Token, make_ds

pytestmark = pytest.mark.softhsm


def _signer(token: Token, inventory: KeyInventory, at: datetime = AT, **kwargs: object) -> DSSigner:
    return DSSigner(token.module, token.label, token.pin, inventory, clock=lambda: at,
                    **kwargs)  # type: ignore[arg-type]


def test_signer_signs_with_the_active_ds(token: Token, inventory: KeyInventory,
                                         ds: KeyRecord) -> None:
    """The signer exposes the DS certificate and its signatures verify under it."""
    with _signer(token, inventory) as signer:
        assert signer.certificate_der == ds.certificate
        assert signer.signature_algorithm == "ecdsa-with-SHA256"
        signature = signer.sign(b"signed attributes")
    spki = subject_public_key_info(ds.certificate)
    verify_signature(spki, "ecdsa-with-SHA256", signature, b"signed attributes")


def test_rsa_pss_ds_signs(token: Token, hsm: HSM, inventory: KeyInventory,
                          csca: KeyRecord) -> None:
    """An RSA-PSS DS key signs and its signature verifies under its certificate."""
    ds = make_ds(hsm, inventory, algorithm="rsa-pss-2048")
    with _signer(token, inventory) as signer:
        assert signer.signature_algorithm == "rsassa-pss-sha256"
        signature = signer.sign(b"data")
    spki = subject_public_key_info(ds.certificate)
    verify_signature(spki, "rsassa-pss-sha256", signature, b"data")


def test_rotation_by_count(token: Token, hsm: HSM, inventory: KeyInventory,
                           csca: KeyRecord) -> None:
    """With max_documents=3 the 4th sign raises KeyRetired; after new-ds signing works again."""
    make_ds(hsm, inventory, max_documents=3)
    with _signer(token, inventory) as signer:
        for _ in range(3):
            signer.sign(b"doc")
        with pytest.raises(KeyRetired, match="cardline keys new-ds"):
            signer.sign(b"doc")
    make_ds(hsm, inventory, max_documents=3)
    with _signer(token, inventory) as signer:
        signer.sign(b"doc")


def test_rotation_by_date(token: Token, inventory: KeyInventory, ds: KeyRecord) -> None:
    """After the usage period, signing raises KeyRetired and the key is retired."""
    later = AT + timedelta(days=90)
    with _signer(token, inventory, at=later) as signer, pytest.raises(KeyRetired):
        signer.sign(b"doc")
    assert inventory.get(ds.label).status == "retired"
    with pytest.raises(KeyRetired), _signer(token, inventory):
        pass  # no active DS left


def test_counts_continue_after_reopen(token: Token, inventory: KeyInventory,
                                      ds: KeyRecord) -> None:
    """Signature counts persist across signer restarts."""
    with _signer(token, inventory, block=2) as signer:
        for _ in range(3):
            signer.sign(b"doc")
    assert inventory.get(ds.label).signed == 3
    with _signer(token, inventory, block=2) as signer:
        signer.sign(b"doc")
    assert inventory.get(ds.label).signed == 4


def test_threads_sign_concurrently_through_the_pool(token: Token, inventory: KeyInventory,
                                                    ds: KeyRecord) -> None:
    """Four threads over a pool of two sessions sign 50 documents each; all verify."""
    results: list[tuple[bytes, bytes]] = []
    errors: list[BaseException] = []
    with _signer(token, inventory, sessions=2) as signer:
        def work(n: int) -> None:
            try:
                for i in range(50):
                    data = f"{n}-{i}".encode()
                    results.append((data, signer.sign(data)))
            except BaseException as exc:  # reported below
                errors.append(exc)
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors and len(results) == 200
    spki = subject_public_key_info(ds.certificate)
    for data, signature in results:
        verify_signature(spki, "ecdsa-with-SHA256", signature, data)
    assert inventory.get(ds.label).signed == 200


def _bad_record(label: str) -> KeyRecord:
    return KeyRecord(label, b"\x09", "DS", "ecdsa-p256", b"", AT, AT + timedelta(days=9), 10, 0,
                     "active", AT, ("a", "b"))


def _store(inventory: KeyInventory, record: KeyRecord) -> None:
    inventory.add_key(record, AuditEntry(AT, "test", record.label, ("a", "b"), ""), supersede=True)


def test_imported_extractable_key_is_refused(token: Token, hsm: HSM,
                                             inventory: KeyInventory) -> None:
    """A private key created with C_CreateObject (LOCAL false, extractable) is refused."""
    software = ec.generate_private_key(ec.SECP256R1())
    with hsm.session() as session:
        session.create_object({
            pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY,
            pkcs11.Attribute.KEY_TYPE: pkcs11.KeyType.EC,
            pkcs11.Attribute.TOKEN: True, pkcs11.Attribute.PRIVATE: True,
            pkcs11.Attribute.SENSITIVE: True, pkcs11.Attribute.EXTRACTABLE: True,
            pkcs11.Attribute.SIGN: True, pkcs11.Attribute.LABEL: "IMPORTED",
            pkcs11.Attribute.ID: b"\x09",
            pkcs11.Attribute.EC_PARAMS: pkcs11.util.ec.encode_named_curve_parameters("secp256r1"),
            pkcs11.Attribute.VALUE: software.private_numbers().private_value.to_bytes(32, "big"),
        })
    _store(inventory, _bad_record("IMPORTED"))
    with pytest.raises(KeyPolicyViolation) as caught, _signer(token, inventory):
        pass
    assert "EXTRACTABLE" in caught.value.attribute or "LOCAL" in caught.value.attribute


def test_non_sensitive_key_is_refused(token: Token, hsm: HSM, inventory: KeyInventory) -> None:
    """A key generated with SENSITIVE=False is refused at start."""
    with hsm.session() as session:
        session.generate_keypair(
            pkcs11.KeyType.EC, id=b"\x09", label="LOOSE", store=True,
            public_template={pkcs11.Attribute.EC_PARAMS:
                             pkcs11.util.ec.encode_named_curve_parameters("secp256r1")},
            private_template={pkcs11.Attribute.SENSITIVE: False,
                              pkcs11.Attribute.EXTRACTABLE: False, pkcs11.Attribute.SIGN: True})
    _store(inventory, _bad_record("LOOSE"))
    with pytest.raises(KeyPolicyViolation, match="SENSITIVE"), _signer(token, inventory):
        pass


def test_key_without_sign_is_refused(token: Token, hsm: HSM, inventory: KeyInventory) -> None:
    """A key generated with SIGN=False is refused at start (a real refusal, no fault injection)."""
    with hsm.session() as session:
        session.generate_keypair(
            pkcs11.KeyType.EC, id=b"\x09", label="NOSIGN", store=True,
            public_template={pkcs11.Attribute.EC_PARAMS:
                             pkcs11.util.ec.encode_named_curve_parameters("secp256r1")},
            private_template={pkcs11.Attribute.SIGN: False, pkcs11.Attribute.SENSITIVE: True,
                              pkcs11.Attribute.EXTRACTABLE: False})
    _store(inventory, _bad_record("NOSIGN"))
    with pytest.raises(KeyPolicyViolation, match="SIGN"), _signer(token, inventory):
        pass


def test_certificate_must_match_hsm_key(token: Token, hsm: HSM, inventory: KeyInventory,
                                        ds: KeyRecord) -> None:
    """A DS record whose certificate belongs to another key is refused at start."""
    hsm.generate_keypair("ODD", b"\x07", "ecdsa-p256")
    _store(inventory, replace(ds, label="ODD", key_id=b"\x07"))
    with pytest.raises(KeyPolicyViolation, match="differs"), _signer(token, inventory):
        pass


def test_destroyed_key_refuses_signing(token: Token, hsm: HSM, inventory: KeyInventory,
                                       ds: KeyRecord) -> None:
    """If the DS key object is destroyed while the signer runs, sign raises KeyNotFound."""
    with _signer(token, inventory) as signer:
        signer.sign(b"first")
        with hsm.session() as session:
            session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=ds.label).destroy()
        for _ in range(2):  # a cached handle and a fresh lookup both fail
            with pytest.raises(KeyNotFound):
                signer.sign(b"after")


def test_a_running_signer_follows_a_ds_rotation(token: Token, hsm: HSM, inventory: KeyInventory,
                                                ds: KeyRecord) -> None:
    """A ceremony elsewhere makes a new DS active: the key in use is refused at once (its
    status is read again), the signer moves to the new key after the same policy checks, and
    a pinned old key never signs again, so no certificate travels with another key's signature."""
    with _signer(token, inventory, block=64, status_every_s=0.0) as signer:
        old = signer.pinned()
        old.sign(b"before")
        with KeyInventory(inventory.path) as elsewhere:  # the officers' own connection
            new = make_ds(hsm, elsewhere)
        with pytest.raises(KeyRetired):
            old.sign(b"after the ceremony")
        assert signer.follow_rotation() and signer.label == new.label
        assert not signer.follow_rotation()  # nothing newer now
        with pytest.raises(KeyRetired, match="superseded"):
            old.sign(b"stale")
        current = signer.pinned()
        assert current.certificate_der == new.certificate
        signature = current.sign(b"after")
    verify_signature(subject_public_key_info(new.certificate), "ecdsa-with-SHA256", signature,
                     b"after")
    # The old key's reservation went back: it counts the one document it signed.
    assert inventory.get(ds.label).signed == 1 and inventory.get(ds.label).status == "retired"
    assert inventory.get(new.label).signed == 1


def test_a_retired_key_without_successor_is_not_followed(token: Token, inventory: KeyInventory,
                                                         ds: KeyRecord) -> None:
    """Retired by hand with no newer DS: the signer stays and keeps refusing."""
    with _signer(token, inventory, status_every_s=0.0) as signer:
        signer.sign(b"one")
        inventory.retire(ds.label, "suspected compromise", AT)
        with pytest.raises(KeyRetired):
            signer.sign(b"two")
        assert not signer.follow_rotation()
    with pytest.raises(KeyRetired), _signer(token, inventory, key_label=ds.label):
        pass  # nor does the retired label open by name
