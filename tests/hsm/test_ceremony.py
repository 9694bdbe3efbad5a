"""Key ceremonies on SoftHSM: dual control, labels, certificates, DS rotation."""

from __future__ import annotations

import pytest

from hsm import certificates as certs
from hsm.ceremony import check_officers, export_csca_pem, init_csca, new_ds, years_after
from hsm.errors import CeremonyError
from hsm.inventory import KeyInventory, KeyRecord
from hsm.pkcs11 import HSM

from .conftest import AT, OFFICERS, make_ds

pytestmark = pytest.mark.softhsm


@pytest.mark.parametrize("officers", [("Alice",), ("Alice", "alice "), ("Alice", ""),
                                      ("Alice", "ALICE", "alice")])
def test_ceremony_needs_two_distinct_officers(officers: tuple[str, ...]) -> None:
    """One officer, the same officer twice (in any case), or an empty name are refused."""
    with pytest.raises(CeremonyError):
        check_officers(officers)


def test_a_quorum_of_k_counts_distinct_officers() -> None:
    """k of n: three different officers meet a quorum of 3; two (one named twice) do not;
    a quorum below two is never accepted."""
    assert check_officers(("A", "B", "C"), 3) == ("A", "B", "C")
    assert check_officers(("A", "B", "a"), 2) == ("A", "B")
    with pytest.raises(CeremonyError, match="needs 3 different officers; 2 took part"):
        check_officers(("A", "B", "b"), 3)
    with pytest.raises(CeremonyError, match="at least two"):
        check_officers(("A", "B"), 1)


def test_init_csca_refuses_a_single_officer(hsm: HSM, inventory: KeyInventory) -> None:
    """init_csca with one officer creates nothing."""
    with pytest.raises(CeremonyError):
        init_csca(hsm, inventory, officers=("Alice",), at=AT)
    assert inventory.all_keys() == []


def test_csca_record_and_certificate(csca: KeyRecord, inventory: KeyInventory) -> None:
    """The CSCA is active and self-signed; its ceremony is audited with both officers."""
    assert csca.status == "active" and csca.role == "CSCA"
    certs.verify_certificate_signature(csca.certificate, csca.certificate)
    assert (csca.not_before, csca.not_after) == (AT, years_after(AT, 5))
    audit = inventory.audit_trail()
    assert audit[0].action == "init-csca" and audit[0].officers == OFFICERS
    assert "BEGIN CERTIFICATE" in export_csca_pem(inventory)


def test_second_csca_is_refused(hsm: HSM, inventory: KeyInventory, csca: KeyRecord) -> None:
    """A second init while a CSCA is active is refused (a CSCA is replaced by rollover)."""
    with pytest.raises(CeremonyError, match="rollover"):
        init_csca(hsm, inventory, officers=OFFICERS, at=AT, label="CSCA-2")


def test_new_ds_needs_a_csca(hsm: HSM, inventory: KeyInventory) -> None:
    """new_ds without an active CSCA is refused with a hint."""
    with pytest.raises(CeremonyError, match="keys init"):
        make_ds(hsm, inventory)


def test_new_ds_certificate_and_rotation(hsm: HSM, inventory: KeyInventory,
                                         csca: KeyRecord) -> None:
    """Each new DS is certified by the CSCA, labelled by date and number, and retires the last."""
    first = make_ds(hsm, inventory)
    second = make_ds(hsm, inventory)
    assert (first.label, second.label) == ("DS-VNM-20260301-1", "DS-VNM-20260301-2")
    assert inventory.get(first.label).status == "retired"
    assert inventory.get(second.label).status == "active"
    certs.verify_certificate_signature(second.certificate, csca.certificate)
    assert certs.document_types(second.certificate) == {"ID"}
    assert certs.private_key_usage_period(second.certificate) == (second.not_before,
                                                                  second.not_after)
    assert [e.action for e in inventory.audit_trail()] == ["init-csca", "new-ds", "new-ds"]


def test_new_ds_refuses_bad_parameters(hsm: HSM, inventory: KeyInventory,
                                       csca: KeyRecord) -> None:
    """Unknown algorithms and non-positive limits are refused."""
    with pytest.raises(CeremonyError):
        new_ds(hsm, inventory, officers=OFFICERS, at=AT, usage_days=90, max_documents=10,
               algorithm="dsa-1024")
    with pytest.raises(CeremonyError):
        new_ds(hsm, inventory, officers=OFFICERS, at=AT, usage_days=0, max_documents=10)
