"""Status words of ISO/IEC 7816-4 §5.1.3 and those ICAO 9303-11 assigns to secure messaging."""

from __future__ import annotations

from enum import IntEnum


class SW(IntEnum):
    """The status words cardline sends or expects."""

    OK = 0x9000
    VERIFICATION_FAILED = 0x6300
    EEPROM_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SM_NOT_SUPPORTED = 0x6882
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    DATA_INVALID = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED = 0x6986
    SM_DATA_OBJECTS_MISSING = 0x6987  # ICAO 9303-11 §9.8.6: expected SM DOs missing
    SM_DATA_OBJECTS_INCORRECT = 0x6988  # ICAO 9303-11 §9.8.6: SM DOs incorrect (bad MAC)
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1P2 = 0x6A86
    REFERENCE_DATA_NOT_FOUND = 0x6A88
    FILE_EXISTS = 0x6A89
    WRONG_P1P2 = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    UNKNOWN = 0x6F00


_MEANINGS: dict[int, str] = {
    SW.OK: "success",
    SW.VERIFICATION_FAILED: "verification failed",
    SW.EEPROM_FAILURE: "memory failure",
    SW.WRONG_LENGTH: "wrong length",
    SW.LOGICAL_CHANNEL_NOT_SUPPORTED: "logical channel not supported",
    SW.SM_NOT_SUPPORTED: "secure messaging not supported",
    SW.SECURITY_STATUS_NOT_SATISFIED: "security status not satisfied (access control needed)",
    SW.AUTH_METHOD_BLOCKED: "authentication method blocked",
    SW.DATA_INVALID: "referenced data invalid",
    SW.CONDITIONS_NOT_SATISFIED: "conditions of use not satisfied (chip locked?)",
    SW.COMMAND_NOT_ALLOWED: "command not allowed (no current EF)",
    SW.SM_DATA_OBJECTS_MISSING: "expected secure messaging data objects missing",
    SW.SM_DATA_OBJECTS_INCORRECT: "secure messaging data objects incorrect",
    SW.WRONG_DATA: "incorrect data field",
    SW.FUNCTION_NOT_SUPPORTED: "function not supported",
    SW.FILE_NOT_FOUND: "file or application not found",
    SW.RECORD_NOT_FOUND: "record not found",
    SW.NOT_ENOUGH_MEMORY: "not enough memory in file",
    SW.INCORRECT_P1P2: "incorrect P1 P2",
    SW.REFERENCE_DATA_NOT_FOUND: "referenced data not found",
    SW.FILE_EXISTS: "file already exists",
    SW.WRONG_P1P2: "wrong P1 P2 (offset beyond file)",
    SW.INS_NOT_SUPPORTED: "instruction not supported",
    SW.CLA_NOT_SUPPORTED: "class not supported",
    SW.UNKNOWN: "no precise diagnosis",
}


def describe(sw: int) -> str:
    """A human description of a status word, including the 61xx / 6Cxx / 63Cx families."""
    if sw in _MEANINGS:
        return _MEANINGS[sw]
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == 0x61:
        return f"{sw2 or 256} more response bytes available"
    if sw1 == 0x6C:
        return f"wrong Le, exact length is {sw2 or 256}"
    if sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
        return f"verification failed, {sw2 & 0x0F} tries left"
    if sw1 == 0x62 and sw2 == 0x82:
        return "end of file reached before Le bytes"
    return "unknown status word"
