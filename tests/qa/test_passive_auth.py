"""The trust store and the Document Signer checks that do not need a chip."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from hsm.certificates import certificate_to_pem
from qa.errors import TrustStoreError
from qa.passive_auth import TrustStore, check_certificate, check_usage_period, signer_facts
from qa.reasons import Reason
from tests.qa.cards import AT, DAY, PKI, make_csca, make_ds, new_key


def test_trust_store_reads_every_pem_block(tmp_path: Path) -> None:
    """Two CSCA certificates in one PEM file and one in another are all trusted."""
    first, second, third = PKI(), PKI(), PKI()
    (tmp_path / "a.pem").write_text(certificate_to_pem(first.csca_der)
                                    + certificate_to_pem(second.csca_der))
    (tmp_path / "b.pem").write_text(certificate_to_pem(third.csca_der))
    store = TrustStore.from_files([tmp_path / "a.pem", tmp_path / "b.pem"])
    assert store.certificates == (first.csca_der, second.csca_der, third.csca_der)


@pytest.mark.parametrize("content", [b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\n"
                                     b"AAAA\n-----END CERTIFICATE-----\n"])
def test_unusable_trust_store_is_an_operational_error(tmp_path: Path, content: bytes) -> None:
    """Empty or malformed trust files raise TrustStoreError naming the file."""
    path = tmp_path / "csca.pem"
    path.write_bytes(content)
    with pytest.raises(TrustStoreError, match=r"csca\.pem"):
        TrustStore.from_files([path])


def test_missing_trust_file(tmp_path: Path) -> None:
    """A trust file that does not exist raises TrustStoreError."""
    with pytest.raises(TrustStoreError, match=r"missing\.pem"):
        TrustStore.from_files([tmp_path / "missing.pem"])


def test_ds_checks_at_their_boundaries() -> None:
    """Valid through the last second of the usage period, outside one second later."""
    pki = PKI()
    trust = TrustStore((pki.csca_der,))
    facts = signer_facts(pki.ds_der, trust)
    end = facts.usage[1]
    assert end is not None
    assert check_usage_period(facts, end) == []
    late = check_usage_period(facts, end + timedelta(seconds=1))
    assert [f.reason for f in late] == [Reason.DS_OUTSIDE_USAGE_PERIOD]
    assert check_certificate(pki.ds_der, trust, AT, "ID") == ([], [])


def test_csca_no_longer_valid() -> None:
    """A DS still valid but issued by a CSCA whose certificate expired fails csca_not_valid."""
    key = new_key()
    csca = make_csca(key, validity=(AT - 400 * DAY, AT - DAY))
    ds = make_ds(csca, key, new_key())
    found, _ = check_certificate(ds, TrustStore((csca,)), AT, "ID")
    assert [f.reason for f in found] == [Reason.CSCA_NOT_VALID]


def test_garbage_ds_certificate() -> None:
    """Bytes that are not a certificate fail ds_certificate_invalid, nothing else."""
    found, usage = check_certificate(b"\x30\x03\x02\x01\x01", TrustStore((PKI().csca_der,)), AT,
                                     "ID")
    assert [f.reason for f in found] == [Reason.DS_CERTIFICATE_INVALID] and usage == []
