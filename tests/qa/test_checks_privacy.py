"""QA details name the data group, the field and the rule, never a chip value: they land in
the journal (``cards.qa``), in report.json and on the console."""

from __future__ import annotations

import json
from pathlib import Path

from applets.emrtd.lds.dg1 import encode_dg1
from qa.checks import check_data
from qa.readback import DocumentKeys, keys_from_mrz

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "lds"
SPECIMEN = "".join(json.loads((VECTORS / "td1_mrz.json").read_text(encoding="utf-8"))[0]["lines"])
BIRTH, EXPIRY = SPECIMEN[30:36], SPECIMEN[38:44]


def _details(mrz: str, keys: DocumentKeys) -> str:
    findings, _, _ = check_data({"EF.DG1": encode_dg1(mrz)}, keys, None)
    return " | ".join(f.detail or "" for f in findings)


def test_a_wrong_check_digit_in_dg1_quotes_no_value() -> None:
    """A DG1 whose birth-date check digit is wrong is reported by field and rule only."""
    wrong = "0" if SPECIMEN[36] != "0" else "1"
    mrz = SPECIMEN[:36] + wrong + SPECIMEN[37:]
    detail = _details(mrz, keys_from_mrz(SPECIMEN))
    assert "date of birth" in detail and "check digit" in detail
    for value in (BIRTH, f"'{wrong}'", f"expected {SPECIMEN[36]}"):
        assert value not in detail


def test_dg1_against_other_keys_names_fields_not_values() -> None:
    """A DG1 differing from the access keys names the differing fields, not their values."""
    keys = DocumentKeys("X12345678", "010101", EXPIRY)
    detail = _details(SPECIMEN, keys)
    assert "document number" in detail and "date of birth" in detail
    for value in ("X12345678", "010101", BIRTH, SPECIMEN[5:14].rstrip("<")):
        assert value not in detail
