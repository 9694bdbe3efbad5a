"""What security officers deliver to the outside world, made in SoftHSM by the ceremony code
and checked with openssl: a DS certified from its own request, revocation, CRLs, master
lists and a CSCA rollover with link certificates."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from hsm import certificates as certs
from hsm.ceremony import (
    init_csca,
    issue_crl,
    master_list,
    new_ds,
    revocations,
    revoke_ds,
    rollover_csca,
)
from hsm.crl import crl_revoked_serials
from hsm.errors import CeremonyError, KeyRetired
from hsm.inventory import KeyInventory, KeyRecord
from hsm.masterlist import read_master_list
from hsm.pkcs11 import HSM
from hsm.signer import DSSigner

from .conftest import AT, OFFICERS, TOKEN
from .conftest import Token as SoftToken

pytestmark = pytest.mark.softhsm


@pytest.fixture
def named_csca(hsm: HSM, inventory: KeyInventory) -> KeyRecord:
    """A CSCA with named-curve parameters (OpenSSL 3 refuses explicit ones in chains)."""
    return init_csca(hsm, inventory, officers=OFFICERS, at=AT, label="CSCA-VNM",
                     ec_parameters="named")


def _ds(hsm: HSM, inventory: KeyInventory, at=AT) -> KeyRecord:  # type: ignore[no-untyped-def]
    return new_ds(hsm, inventory, officers=OFFICERS, at=at, usage_days=90, max_documents=100,
                  label_prefix="DS-VNM", ec_parameters="named")


def _pem(path: Path, der: bytes) -> Path:
    path.write_text(certs.certificate_to_pem(der), encoding="ascii")
    return path


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False,
                          timeout=30)


def test_a_ds_is_certified_from_its_own_request_and_verifies_with_openssl(
        hsm: HSM, inventory: KeyInventory, named_csca: KeyRecord, tmp_path: Path) -> None:
    """The CSCA certifies exactly the key that signed the request; openssl verifies the DS
    certificate against the CSCA."""
    ds = _ds(hsm, inventory)
    assert certs.subject_public_key_info(ds.certificate) == hsm.public_key_info(ds.label)
    done = _openssl("verify", "-CAfile", str(_pem(tmp_path / "csca.pem", named_csca.certificate)),
                    "-attime", str(int((AT + timedelta(days=1)).timestamp())),
                    str(_pem(tmp_path / "ds.pem", ds.certificate)))
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr


def test_a_revoked_ds_is_on_the_crl_and_its_signer_stops(
        token: SoftToken, hsm: HSM, inventory: KeyInventory, named_csca: KeyRecord,
        tmp_path: Path) -> None:
    """Revocation: the signer refuses the key within its status interval; the CRL lists the
    serial with its reason and openssl verifies the CRL with the CSCA; revoking twice or
    revoking the CSCA is refused."""
    ds = _ds(hsm, inventory)
    with DSSigner(token.module, TOKEN, token.pin, inventory, clock=lambda: AT,
                  status_every_s=0.0) as signer:
        signer.sign(b"before")
        revoke_ds(inventory, ds.label, reason="keyCompromise", officers=OFFICERS, at=AT)
        with pytest.raises(KeyRetired, match="revoked"):
            signer.sign(b"after")
    with pytest.raises(CeremonyError, match="revoked already"):
        revoke_ds(inventory, ds.label, reason="keyCompromise", officers=OFFICERS, at=AT)
    with pytest.raises(CeremonyError, match="CSCA key"):
        revoke_ds(inventory, named_csca.label, reason="superseded", officers=OFFICERS, at=AT)
    with pytest.raises(CeremonyError, match="not one of"):
        revoke_ds(inventory, ds.label, reason="bored", officers=OFFICERS, at=AT)
    serial = int(certs.load_certificate(ds.certificate).serial_number)
    assert [r.serial for r in revocations(inventory)] == [serial]
    crl = issue_crl(hsm, inventory, officers=OFFICERS, at=AT + timedelta(hours=1), number=1)
    assert crl_revoked_serials(crl) == {serial: "keyCompromise"}
    (tmp_path / "v.crl").write_bytes(crl)
    text = _openssl("crl", "-inform", "DER", "-in", str(tmp_path / "v.crl"), "-noout", "-text")
    assert f"{serial:X}" in text.stdout.replace(":", "").upper() and "Key Compromise" in text.stdout
    check = _openssl("crl", "-inform", "DER", "-in", str(tmp_path / "v.crl"), "-noout",
                     "-CAfile", str(_pem(tmp_path / "csca.pem", named_csca.certificate)))
    assert check.returncode == 0 and "verify OK" in (check.stdout + check.stderr), check.stderr
    with pytest.raises(CeremonyError, match="needs 2 different officers"):
        issue_crl(hsm, inventory, officers=("An", "an"), at=AT, number=2)


def test_the_master_list_holds_every_csca_and_openssl_verifies_it(
        hsm: HSM, inventory: KeyInventory, named_csca: KeyRecord, tmp_path: Path) -> None:
    """After a rollover the master list carries both CSCA certificates; it is a CMS signed
    by a master-list signer the CSCA certified, which openssl verifies to the CSCA."""
    rolled = rollover_csca(hsm, inventory, officers=OFFICERS, at=AT + timedelta(days=1),
                           label="CSCA-VNM-2", ec_parameters="named")
    signed = master_list(hsm, inventory, officers=OFFICERS, at=AT + timedelta(days=2),
                         ec_parameters="named")
    assert set(read_master_list(signed)) == {named_csca.certificate, rolled.new.certificate}
    (tmp_path / "ml.der").write_bytes(signed)
    done = _openssl("cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "ml.der"),
                    "-CAfile", str(_pem(tmp_path / "new.pem", rolled.new.certificate)),
                    "-purpose", "any", "-attime",
                    str(int((AT + timedelta(days=2, hours=1)).timestamp())),
                    "-out", str(tmp_path / "content.der"))
    assert done.returncode == 0 and "Verification successful" in done.stderr, done.stderr


def test_rollover_links_old_and_new_both_ways(hsm: HSM, inventory: KeyInventory,
                                              named_csca: KeyRecord, tmp_path: Path) -> None:
    """The new CSCA is active, the old retired; each link certificate verifies with openssl
    under the other CSCA; DS keys made afterwards are certified by the new CSCA."""
    at = AT + timedelta(days=1)
    rolled = rollover_csca(hsm, inventory, officers=OFFICERS, at=at, label="CSCA-VNM-2",
                           ec_parameters="named")
    assert inventory.active("CSCA") == rolled.new
    assert inventory.get(named_csca.label).status == "retired"
    when = str(int((at + timedelta(hours=1)).timestamp()))
    for link, issuer in ((rolled.new_by_old, named_csca.certificate),
                         (rolled.old_by_new, rolled.new.certificate)):
        done = _openssl("verify", "-partial_chain", "-attime", when, "-CAfile",
                        str(_pem(tmp_path / "issuer.pem", issuer)),
                        str(_pem(tmp_path / "link.pem", link)))
        assert done.returncode == 0, done.stderr
    ds = _ds(hsm, inventory, at=at + timedelta(hours=2))
    certs.verify_certificate_signature(ds.certificate, rolled.new.certificate)
