"""The QA service called directly: access keys, trust stores and batch reports, no reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hsm.certificates import certificate_to_pem
from personalization.service.errors import NotFound, ServiceError
from personalization.service.qa import access_keys, qa_report, trust_store
from qa.errors import TrustStoreError
from tests.qa.cards import PKI

ROOT = Path(__file__).resolve().parents[3]


def test_keys_need_the_mrz_or_all_three_fields() -> None:
    """Without an MRZ and with only some of the fields, the message names what to give."""
    with pytest.raises(ServiceError, match="give --mrz, or all of"):
        access_keys(document_number="093047064", birth="930105")


def test_malformed_keys_are_a_service_error() -> None:
    """A date that is not YYMMDD is refused as access keys, before any reader is touched."""
    with pytest.raises(ServiceError, match=r"^access keys: "):
        access_keys(document_number="093047064", birth="1993-01-05", expiry="330105")


def test_fields_give_keys_without_expected_mrz() -> None:
    """Keys from the three fields expect no particular MRZ on the chip."""
    access = access_keys(document_number="093047064", birth="930105", expiry="330105")
    assert access.expected.mrz is None


def test_no_default_trust_store_says_how_to_export(tmp_path: Path) -> None:
    """Without files and without <data_dir>/csca.pem the error names `keys export-csca`."""
    text = (ROOT / "line.yaml").read_text(encoding="utf-8")
    (tmp_path / "line.yaml").write_text(
        text.replace("data_dir: .cardline", f"data_dir: {tmp_path / 'data'}"), encoding="utf-8")
    with pytest.raises(NotFound, match=r"export-csca --out .*data/csca\.pem"):
        trust_store(config=tmp_path / "line.yaml")


def test_default_trust_store_is_the_data_dir_csca(tmp_path: Path) -> None:
    """With <data_dir>/csca.pem present and no files given, that certificate is trusted."""
    pki = PKI()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "csca.pem").write_text(certificate_to_pem(pki.csca_der))
    text = (ROOT / "line.yaml").read_text(encoding="utf-8")
    (tmp_path / "line.yaml").write_text(
        text.replace("data_dir: .cardline", f"data_dir: {tmp_path / 'data'}"), encoding="utf-8")
    trust = trust_store(config=tmp_path / "line.yaml")
    assert trust.store.certificates == (pki.csca_der,)
    assert trust.paths == (tmp_path / "data" / "csca.pem",)


def test_a_file_without_certificates_is_a_trust_store_error(tmp_path: Path) -> None:
    """A given file that holds no certificate raises the QA package's TrustStoreError."""
    (tmp_path / "x.pem").write_text("not a certificate\n")
    with pytest.raises(TrustStoreError, match=r"x\.pem"):
        trust_store([tmp_path / "x.pem"])


def test_report_counts_verdicts_and_writes_html(tmp_path: Path) -> None:
    """Two verdicts, one failed: counts and failures by reason; the HTML page is written."""
    failed = {"code": "bac_failed", "message": "BAC failed"}
    lines = [{"card": "A", "verdict": "pass", "reasons": [], "apdus": 10},
             {"card": "B", "verdict": "fail", "reasons": [failed], "apdus": 4}]
    (tmp_path / "v.jsonl").write_text("".join(json.dumps(v) + "\n" for v in lines) + "\n")
    report = qa_report(tmp_path / "v.jsonl", "B1", html=tmp_path / "r.html")
    assert (report["cards"], report["passed"], report["failed"]) == (2, 1, 1)
    assert report["failures_by_reason"] == {"bac_failed": 1}
    assert "B1" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_report_names_the_bad_line(tmp_path: Path) -> None:
    """A line that is not a verdict with a card key raises ServiceError naming its number."""
    (tmp_path / "v.jsonl").write_text('{"card": "A", "verdict": "pass"}\n{"verdict": "x"}\n')
    with pytest.raises(ServiceError, match="line 2: not a verdict with a 'card' key"):
        qa_report(tmp_path / "v.jsonl", "B1")


def test_report_of_a_missing_file(tmp_path: Path) -> None:
    """A verdicts file that cannot be read raises ServiceError saying so."""
    with pytest.raises(ServiceError, match=r"cannot read .*none\.jsonl"):
        qa_report(tmp_path / "none.jsonl", "B1")
