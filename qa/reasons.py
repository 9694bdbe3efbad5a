"""The stable reason codes of a failed QA check, each with a message a person understands.

Codes are part of the interface (``cardline qa verify --json``, the journal, batch reports):
never rename one, only add. A :class:`Finding` is one code plus a non-personal detail
(a data group number, a status word, a certificate field) — never an MRZ, name or key.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """Why a card failed QA (one code per kind of failure)."""

    BAC_FAILED = "bac_failed"
    READ_FAILED = "read_failed"
    SOD_MALFORMED = "sod_malformed"
    SOD_DIGEST_MISMATCH = "sod_digest_mismatch"
    SOD_SIGNATURE_INVALID = "sod_signature_invalid"
    DS_CERTIFICATE_INVALID = "ds_certificate_invalid"
    DS_NOT_TRUSTED = "ds_not_trusted"
    CSCA_NOT_VALID = "csca_not_valid"
    DS_EXPIRED = "ds_expired"
    DS_NOT_YET_VALID = "ds_not_yet_valid"
    DS_OUTSIDE_USAGE_PERIOD = "ds_outside_usage_period"
    DS_DOCUMENT_TYPE_MISSING = "ds_document_type_missing"
    DS_DOCUMENT_TYPE_MISMATCH = "ds_document_type_mismatch"
    DG_HASH_MISMATCH = "dg_hash_mismatch"
    DG_MISSING = "dg_missing"
    DG_UNSIGNED = "dg_unsigned"
    DG_MALFORMED = "dg_malformed"
    COM_INCONSISTENT = "com_inconsistent"
    AA_FAILED = "aa_failed"
    AA_KEY_MISSING = "aa_key_missing"
    DG1_MISMATCH = "dg1_mismatch"
    DG13_MISMATCH = "dg13_mismatch"
    DG2_MISMATCH = "dg2_mismatch"
    NOT_LOCKED = "not_locked"
    PLAIN_READ_ALLOWED = "plain_read_allowed"
    MALFORMED = "malformed"
    RESPONSE_TOO_LONG = "response_too_long"
    DEADLINE = "deadline"
    CARD_ACCESS_UNREADABLE = "card_access_unreadable"
    PACE_REFUSED = "pace_refused"
    BAC_REFUSED = "bac_refused"
    SM_FAILED = "sm_failed"
    CA_FAILED = "ca_failed"
    TA_REFUSED = "ta_refused"
    DG3_UNREADABLE = "dg3_unreadable"
    DG3_HASH_MISMATCH = "dg3_hash_mismatch"
    DG3_MISMATCH = "dg3_mismatch"

    @property
    def message(self) -> str:
        """The sentence shown to QA staff."""
        return MESSAGES[self]


MESSAGES: dict[Reason, str] = {
    Reason.BAC_FAILED: "The chip refused Basic Access Control with the keys from the MRZ.",
    Reason.READ_FAILED: "A file could not be read from the chip over secure messaging.",
    Reason.SOD_MALFORMED: "The security object (EF.SOD) is missing or not a valid ICAO SOD.",
    Reason.SOD_DIGEST_MISMATCH: "The SOD's signed digest does not match its list of hashes.",
    Reason.SOD_SIGNATURE_INVALID: "The SOD signature does not verify with its signer certificate.",
    Reason.DS_CERTIFICATE_INVALID: "The Document Signer certificate is malformed or misused.",
    Reason.DS_NOT_TRUSTED: "The Document Signer was not issued by a trusted CSCA.",
    Reason.CSCA_NOT_VALID: "The CSCA that issued the Document Signer is not valid now.",
    Reason.DS_EXPIRED: "The Document Signer certificate has expired.",
    Reason.DS_NOT_YET_VALID: "The Document Signer certificate is not valid yet.",
    Reason.DS_OUTSIDE_USAGE_PERIOD:
        "The card was signed outside the Document Signer's private key usage period.",
    Reason.DS_DOCUMENT_TYPE_MISSING:
        "The Document Signer certificate has no DocumentType extension.",
    Reason.DS_DOCUMENT_TYPE_MISMATCH:
        "The Document Signer is not allowed to sign this type of document.",
    Reason.DG_HASH_MISMATCH: "A data group differs from the one that was signed.",
    Reason.DG_MISSING: "A data group listed in the SOD is not on the chip.",
    Reason.DG_UNSIGNED: "A data group on the chip is not covered by the SOD.",
    Reason.DG_MALFORMED: "A data group on the chip cannot be decoded.",
    Reason.COM_INCONSISTENT: "EF.COM does not list the same data groups as the SOD.",
    Reason.AA_FAILED: "Active Authentication failed: the chip could not prove its key.",
    Reason.AA_KEY_MISSING: "The chip has no Active Authentication key (DG15).",
    Reason.DG1_MISMATCH: "The MRZ on the chip (DG1) differs from the prepared MRZ.",
    Reason.DG13_MISMATCH: "The personal data on the chip (DG13) differs from the application.",
    Reason.DG2_MISMATCH: "The portrait on the chip (DG2) differs from the prepared image.",
    Reason.NOT_LOCKED: "The chip accepted a personalization command: it is not locked.",
    Reason.PLAIN_READ_ALLOWED: "The chip let a file be read without access control.",
    Reason.MALFORMED: "The chip answered with bytes that do not parse (a broken TLV, a length "
                      "that disagrees with the content, an unknown structure).",
    Reason.RESPONSE_TOO_LONG: "The chip answered with more data than the command asked for.",
    Reason.DEADLINE: "The check did not finish in the time allowed for one card.",
    Reason.CARD_ACCESS_UNREADABLE:
        "The chip offers no PACE: EF.CardAccess is missing, unreadable or names no usable "
        "PACE protocol.",
    Reason.PACE_REFUSED: "The chip refused PACE with the CAN or MRZ given (wrong password?).",
    Reason.BAC_REFUSED: "The chip offers no PACE and refused the BAC fallback with the MRZ keys.",
    Reason.SM_FAILED: "A secure-messaging response failed its integrity check (MAC or "
                      "structure): the session was tampered with or broken.",
    Reason.CA_FAILED: "Chip Authentication failed: the chip did not prove the key in DG14.",
    Reason.TA_REFUSED: "The chip refused Terminal Authentication with this inspection "
                       "system's certificates.",
    Reason.DG3_UNREADABLE: "The fingerprints (DG3) could not be read after Terminal "
                           "Authentication.",
    Reason.DG3_HASH_MISMATCH: "The fingerprints on the chip (DG3) differ from the ones that "
                              "were signed.",
    Reason.DG3_MISMATCH: "The fingerprints on the chip (DG3) differ from the application's.",
}


# The same sentences in Vietnamese, for QA staff and the dashboard (every code has both).
MESSAGES_VI: dict[Reason, str] = {
    Reason.BAC_FAILED: "Chip từ chối Kiểm soát truy cập cơ bản (BAC) bằng khóa lấy từ MRZ.",
    Reason.READ_FAILED: "Không đọc được một tệp từ chip qua kênh bảo mật.",
    Reason.SOD_MALFORMED: "Đối tượng bảo mật (EF.SOD) bị thiếu hoặc không phải SOD ICAO hợp lệ.",
    Reason.SOD_DIGEST_MISMATCH: "Giá trị băm đã ký của SOD không khớp với danh sách giá trị băm.",
    Reason.SOD_SIGNATURE_INVALID: "Chữ ký SOD không xác minh được bằng chứng thư của người ký.",
    Reason.DS_CERTIFICATE_INVALID: "Chứng thư Document Signer bị lỗi định dạng hoặc dùng sai.",
    Reason.DS_NOT_TRUSTED: "Document Signer không do một CSCA tin cậy cấp.",
    Reason.CSCA_NOT_VALID: "CSCA cấp Document Signer hiện không còn hiệu lực.",
    Reason.DS_EXPIRED: "Chứng thư Document Signer đã hết hạn.",
    Reason.DS_NOT_YET_VALID: "Chứng thư Document Signer chưa có hiệu lực.",
    Reason.DS_OUTSIDE_USAGE_PERIOD:
        "Thẻ được ký ngoài thời hạn sử dụng khóa riêng của Document Signer.",
    Reason.DS_DOCUMENT_TYPE_MISSING:
        "Chứng thư Document Signer không có phần mở rộng DocumentType.",
    Reason.DS_DOCUMENT_TYPE_MISMATCH: "Document Signer không được phép ký loại giấy tờ này.",
    Reason.DG_HASH_MISMATCH: "Một nhóm dữ liệu khác với nhóm dữ liệu đã được ký.",
    Reason.DG_MISSING: "Một nhóm dữ liệu có trong SOD nhưng không có trên chip.",
    Reason.DG_UNSIGNED: "Một nhóm dữ liệu trên chip không được SOD bảo vệ.",
    Reason.DG_MALFORMED: "Không giải mã được một nhóm dữ liệu trên chip.",
    Reason.COM_INCONSISTENT: "EF.COM không liệt kê cùng các nhóm dữ liệu như SOD.",
    Reason.AA_FAILED: "Xác thực chủ động thất bại: chip không chứng minh được khóa của mình.",
    Reason.AA_KEY_MISSING: "Chip không có khóa Xác thực chủ động (DG15).",
    Reason.DG1_MISMATCH: "MRZ trên chip (DG1) khác với MRZ đã chuẩn bị.",
    Reason.DG13_MISMATCH: "Dữ liệu cá nhân trên chip (DG13) khác với hồ sơ.",
    Reason.DG2_MISMATCH: "Ảnh chân dung trên chip (DG2) khác với ảnh đã chuẩn bị.",
    Reason.NOT_LOCKED: "Chip chấp nhận một lệnh cá thể hóa: chip chưa được khóa.",
    Reason.PLAIN_READ_ALLOWED: "Chip cho đọc một tệp mà không cần kiểm soát truy cập.",
    Reason.MALFORMED: "Chip trả lời bằng dữ liệu không phân tích được (TLV hỏng, độ dài không "
                      "khớp nội dung, cấu trúc lạ).",
    Reason.RESPONSE_TOO_LONG: "Chip trả về nhiều dữ liệu hơn lệnh yêu cầu.",
    Reason.DEADLINE: "Việc kiểm tra không xong trong thời gian cho phép cho một thẻ.",
    Reason.CARD_ACCESS_UNREADABLE:
        "Chip không hỗ trợ PACE: EF.CardAccess bị thiếu, không đọc được hoặc không nêu giao "
        "thức PACE dùng được.",
    Reason.PACE_REFUSED: "Chip từ chối PACE với CAN hoặc MRZ đã nhập (sai mật khẩu?).",
    Reason.BAC_REFUSED: "Chip không hỗ trợ PACE và từ chối BAC dự phòng bằng khóa lấy từ MRZ.",
    Reason.SM_FAILED: "Một phản hồi của kênh bảo mật không qua được kiểm tra toàn vẹn (MAC "
                      "hoặc cấu trúc): phiên đã bị can thiệp hoặc bị hỏng.",
    Reason.CA_FAILED: "Xác thực chip (CA) thất bại: chip không chứng minh được khóa trong DG14.",
    Reason.TA_REFUSED: "Chip từ chối Xác thực thiết bị đọc (TA) với chứng thư của hệ thống "
                       "kiểm tra này.",
    Reason.DG3_UNREADABLE: "Không đọc được vân tay (DG3) sau Xác thực thiết bị đọc.",
    Reason.DG3_HASH_MISMATCH: "Vân tay trên chip (DG3) khác với vân tay đã được ký.",
    Reason.DG3_MISMATCH: "Vân tay trên chip (DG3) khác với vân tay trong hồ sơ.",
}


def message(code: str, lang: str = "en") -> str | None:
    """The sentence for a QA reason code in ``lang`` (``en`` or ``vi``); None for a code this
    version does not know."""
    try:
        reason = Reason(code)
    except ValueError:
        return None
    return MESSAGES_VI[reason] if lang == "vi" else MESSAGES[reason]


@dataclass(frozen=True, slots=True)
class Finding:
    """One failed check: its reason and a non-personal detail (``"DG2"``, ``"SW 6A82"``)."""

    reason: Reason
    detail: str = ""

    @property
    def code(self) -> str:
        """The stable reason code."""
        return self.reason.value

    @property
    def message(self) -> str:
        """The reason's message, with the detail when there is one."""
        base = self.reason.message
        return f"{base} ({self.detail})" if self.detail else base

    def as_dict(self) -> dict[str, str]:
        """``{"code": …, "message": …}`` as ``--json`` and the journal carry it."""
        return {"code": self.code, "message": self.message}
