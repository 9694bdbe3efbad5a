"""Reject reasons: codes with details inside, prose rendered at the edge in English (the
wording the line always used) and Vietnamese."""

from __future__ import annotations

import pytest

from personalization.reasons import (
    Code,
    Reason,
    encode_failed,
    preparation_failed,
    qa_failed,
    render,
)

ENGLISH = [
    (encode_failed("lock", 0x6985), "encode: lock failed (SW 6985)"),
    (encode_failed("sign EF.SOD in the HSM", None), "encode: sign EF.SOD in the HSM failed"),
    (Reason(Code.NO_CHIP), "encode: no chip answered at the encoder"),
    (qa_failed(["dg2_mismatch", "aa_failed"]), "qa: dg2_mismatch, aa_failed"),
    (Reason(Code.ENCODING_INTERRUPTED), "in doubt: encoding interrupted, chip not as prepared"),
    (Reason(Code.LEFT_ENCODER_BEFORE_QA), "in doubt: card left the encoder before QA passed"),
    (Reason(Code.PRINTING_INTERRUPTED), "in doubt: printing interrupted"),
    (Reason(Code.CARD_MISSING, {"state": "printing"}),
     "card missing from the printer while printing"),
    (preparation_failed(ValueError("x")), "preparation: ValueError"),
    (Reason(Code.UNEXPLAINED, {"event": "failed"}), "failed"),
    (Reason(Code.LINE_ABANDONED, {"line": "line-2", "by": "an"}),
     "in doubt on line-2, whose machines an declared emptied"),
    (Reason.from_dict("encode: lock failed (SW 6985)"), "encode: lock failed (SW 6985)"),
]


@pytest.mark.parametrize(("reason", "text"), ENGLISH)
def test_english_is_the_wording_the_line_always_used(reason: Reason, text: str) -> None:
    """Each code renders in English exactly as the line wrote its reasons before codes."""
    assert render(reason) == render(reason, "en") == text


@pytest.mark.parametrize(("reason", "text"), ENGLISH)
def test_a_reason_survives_the_journal_form(reason: Reason, text: str) -> None:
    """as_dict / from_dict round-trip every reason, equal and with the same hash."""
    back = Reason.from_dict(reason.as_dict())
    assert back == reason and hash(back) == hash(reason)


def test_every_code_has_both_languages() -> None:
    """Every code renders in Vietnamese, and differently from English (a reason journaled
    as plain text before codes stays as it was written)."""
    for reason, english in ENGLISH:
        vietnamese = render(reason, "vi")
        assert vietnamese
        if reason.code != Code.TEXT:
            assert vietnamese != english
    assert {r.code for r, _ in ENGLISH} == set(Code)


def test_vietnamese_names_the_step_and_keeps_the_status_word() -> None:
    """The encoder's steps and card states are put into Vietnamese; codes and SW stay."""
    assert render(encode_failed("lock", 0x6985), "vi") == \
        "ghi chip: bước khoá chip thất bại (SW 6985)"
    assert render(encode_failed("write EF.DG2", None), "vi") == "ghi chip: bước ghi EF.DG2 thất bại"
    assert render(qa_failed(["aa_failed"]), "vi") == "kiểm tra chất lượng không đạt: aa_failed"


def test_reasons_of_one_kind_group_without_their_status_word() -> None:
    """Two chips refusing the same step with different status words are one kind."""
    first, second = encode_failed("lock", 0x6985), encode_failed("lock", 0x6A82)
    assert first != second and first.kind == second.kind
    assert render(first.kind) == "encode: lock failed"
    assert qa_failed(["aa_failed"]).kind == qa_failed(["aa_failed"])


def test_a_code_from_a_newer_cardline_still_renders() -> None:
    """An unknown code shows as itself with its details rather than failing the report."""
    assert render(Reason("laser_fault", {"head": 2})) == "laser_fault (head=2)"
    assert render(Reason("laser_fault"), "vi") == "laser_fault"
