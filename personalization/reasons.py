"""Why a card was rejected or an application failed: a code and its details, never prose.

Codes are kept by the journal, its events and batch reports: never rename one, only add.
Details carry no personal data — a step of the encoder, a status word, QA codes, an error
class, a card state. Prose is made at the edges only, by :func:`render`, in English or
Vietnamese.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

Lang = Literal["en", "vi"]


class Code(StrEnum):
    """What went wrong, one code per kind of trouble."""

    ENCODE_FAILED = "encode_failed"  # step, and the chip's status word (sw) when it gave one
    NO_CHIP = "no_chip"  # no chip answered at the encoder
    QA_FAILED = "qa_failed"  # qa: the QA reason codes (qa.reasons)
    ENCODING_INTERRUPTED = "encoding_interrupted"  # in doubt, chip not as prepared
    LEFT_ENCODER_BEFORE_QA = "left_encoder_before_qa"  # in doubt
    PRINTING_INTERRUPTED = "printing_interrupted"  # in doubt, caught at the print head
    CARD_MISSING = "card_missing"  # state: what the card was doing when it vanished
    PREPARATION_FAILED = "preparation_failed"  # error: the class of the error
    LINE_ABANDONED = "line_abandoned"  # line, by: its machines were declared emptied
    UNEXPLAINED = "unexplained"  # event: the event that named no reason
    TEXT = "text"  # text: a reason journaled before reasons had codes


# Details that vary between cards failing the same way: dropped when reasons are grouped.
_VOLATILE = frozenset({"sw"})


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason: a :class:`Code` (or a newer code this version does not know) and details."""

    code: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash(json.dumps(self.as_dict(), sort_keys=True))

    def as_dict(self) -> dict[str, Any]:
        """The journal's form: ``{"code": …, **details}``."""
        return {"code": self.code, **self.details}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any] | str) -> Reason:
        """A reason back from the journal; a plain string (journaled before codes) keeps its
        text under :attr:`Code.TEXT`."""
        if isinstance(value, str):
            return cls(Code.TEXT, {"text": value})
        return cls(str(value["code"]), {k: v for k, v in value.items() if k != "code"})

    @property
    def kind(self) -> Reason:
        """The reason without the details that differ card to card (the status word), so
        reasons of the same kind group together."""
        return Reason(self.code, {k: v for k, v in self.details.items() if k not in _VOLATILE})


def encode_failed(step: str, sw: int | None) -> Reason:
    """The encoder's ``step`` failed, with the chip's status word when it answered one."""
    return Reason(Code.ENCODE_FAILED, {"step": step} if sw is None else
                  {"step": step, "sw": f"{sw:04X}"})


def qa_failed(codes: list[str]) -> Reason:
    """QA found these (``qa.reasons``) codes."""
    return Reason(Code.QA_FAILED, {"qa": list(codes)})


def preparation_failed(error: BaseException) -> Reason:
    """The application's card data could not be built."""
    return Reason(Code.PREPARATION_FAILED, {"error": error.__class__.__name__})


# -- prose, at the edges only -----------------------------------------------------------------

_STEPS_VI = {
    "select applet": "chọn ứng dụng",
    "read chip limits": "đọc giới hạn của chip",
    "generate Active Authentication key": "sinh khoá Active Authentication",
    "sign EF.SOD in the HSM": "ký EF.SOD trong HSM",
    "set BAC seed": "ghi khoá BAC",
    "lock": "khoá chip",
    "set access protocols": "đặt giao thức truy cập",
    "generate Chip Authentication key": "sinh khoá Chip Authentication",
    "set PACE MRZ password": "ghi mật khẩu PACE (MRZ)",
    "set CAN": "ghi số truy cập thẻ (CAN)",
    "set trust point": "ghi điểm tin cậy (CVCA)",
    "set chip date": "đặt ngày của chip",
}
_STATES_VI = {
    "feeding": "đang nạp thẻ", "encoding": "đang ghi chip", "verifying": "đang kiểm tra",
    "printing": "đang in", "ejecting": "đang trả thẻ ra", "rejecting": "đang loại thẻ",
}


def _step_vi(step: str) -> str:
    if step.startswith("write "):
        return f"ghi {step[len('write '):]}"
    return _STEPS_VI.get(step, step)


def _sw(details: Mapping[str, Any]) -> str:
    return f" (SW {details['sw']})" if details.get("sw") else ""


_Text = Callable[[Mapping[str, Any]], str]
_TEXTS: dict[str, dict[Lang, _Text]] = {
    Code.ENCODE_FAILED: {
        "en": lambda d: f"encode: {d['step']} failed{_sw(d)}",
        "vi": lambda d: f"ghi chip: bước {_step_vi(d['step'])} thất bại{_sw(d)}"},
    Code.NO_CHIP: {
        "en": lambda d: "encode: no chip answered at the encoder",
        "vi": lambda d: "ghi chip: không có chip nào trả lời ở đầu ghi"},
    Code.QA_FAILED: {
        "en": lambda d: "qa: " + ", ".join(d["qa"]),
        "vi": lambda d: "kiểm tra chất lượng không đạt: " + ", ".join(d["qa"])},
    Code.ENCODING_INTERRUPTED: {
        "en": lambda d: "in doubt: encoding interrupted, chip not as prepared",
        "vi": lambda d: "chưa rõ: việc ghi chip bị gián đoạn, chip không đúng dữ liệu đã "
                        "chuẩn bị"},
    Code.LEFT_ENCODER_BEFORE_QA: {
        "en": lambda d: "in doubt: card left the encoder before QA passed",
        "vi": lambda d: "chưa rõ: thẻ đã rời đầu ghi trước khi kiểm tra đạt"},
    Code.PRINTING_INTERRUPTED: {
        "en": lambda d: "in doubt: printing interrupted",
        "vi": lambda d: "chưa rõ: việc in bị gián đoạn"},
    Code.CARD_MISSING: {
        "en": lambda d: f"card missing from the printer while {d['state']}",
        "vi": lambda d: "thẻ không còn trong máy in khi "
                        f"{_STATES_VI.get(d['state'], d['state'])}"},
    Code.PREPARATION_FAILED: {
        "en": lambda d: f"preparation: {d['error']}",
        "vi": lambda d: f"chuẩn bị dữ liệu thất bại: {d['error']}"},
    Code.LINE_ABANDONED: {
        "en": lambda d: f"in doubt on {d['line']}, whose machines {d['by']} declared emptied",
        "vi": lambda d: f"chưa rõ trên {d['line']}, dây chuyền mà {d['by']} đã xác nhận lấy "
                        "hết thẻ ra"},
    Code.UNEXPLAINED: {
        "en": lambda d: str(d["event"]),
        "vi": lambda d: f"{d['event']} (không rõ lý do)"},
    Code.TEXT: {"en": lambda d: str(d["text"]), "vi": lambda d: str(d["text"])},
}


def render(reason: Reason, lang: Lang = "en") -> str:
    """The reason as a person reads it, in English or Vietnamese (a code this version does
    not know: the code and its details)."""
    texts = _TEXTS.get(reason.code)
    if texts is None:
        details = ", ".join(f"{k}={v}" for k, v in sorted(reason.details.items()))
        return f"{reason.code} ({details})" if details else reason.code
    return texts[lang](reason.details)
