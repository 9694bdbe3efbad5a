"""Lock checks before access control, and data checks of what was read against what was prepared.

Lock: ICAO 9303-10 §4.5.4 (after personalization no LDS1 data may be written) and the
ICAO RF test standard part 3 unit ISO7816_B (a plain SELECT / READ BINARY before access
control is refused with 6982). Both probes are harmless on a good card: it refuses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from applets.emrtd.lds.dg1 import decode_dg1
from applets.emrtd.lds.dg2 import decode_dg2
from applets.emrtd.lds.dg3 import Compression, decode_dg3
from applets.emrtd.lds.dg13 import DG13, decode_dg13
from applets.emrtd.lds.files import DATA_GROUPS, EF_COM
from applets.emrtd.lds.mrz import TD1, parse_td1
from applets.emrtd.perso import create_file_command, select_file_command
from applets.errors import LDSError
from applets.iso7816.apdu import CommandAPDU
from applets.iso7816.sw import SW
from applets.transport.base import Transport
from qa.readback import DocumentKeys, normalize_mrz
from qa.reasons import Finding, Reason

# The probe for "personalization refused": CREATE FILE (JMRTD profile) of DG16, which no
# CCCD card carries. A locked chip refuses it (6985, or 6D00 when perso commands are gone).
_PERSO_PROBE = create_file_command(DATA_GROUPS[16].fid, 1)
_DATA_SW1 = (0x61, 0x6C)  # data would follow (61xx) or is offered with another Le (6Cxx)


def _gives_data(sw: int) -> bool:
    return sw in (SW.OK, 0x6282) or sw >> 8 in _DATA_SW1


def probe_lock(transport: Transport) -> list[Finding]:
    """Plain SELECT + READ of EF.COM must be refused, and so must a personalization command."""
    findings: list[Finding] = []
    selected = transport.transmit(select_file_command(EF_COM.fid))
    if selected.sw == SW.OK:
        read = transport.transmit(CommandAPDU(0x00, 0xB0, 0x00, 0x00, ne=256))
        if _gives_data(read.sw):
            findings.append(Finding(Reason.PLAIN_READ_ALLOWED, "EF.COM read without BAC"))
    created = transport.transmit(_PERSO_PROBE)
    if created.sw == SW.OK:
        findings.append(Finding(Reason.NOT_LOCKED, "CREATE FILE accepted"))
    return findings


@dataclass(frozen=True, slots=True)
class Expected:
    """What the chip must hold, as plain values (a QA desk has none of them).

    ``fingerprints``: the WSQ image prep wrote for each finger, by ISO/IEC 19794-4 finger
    position (2 right index, 7 left index); a finger missing with a reason is not a key.
    """

    mrz: str | None = field(default=None, repr=False)
    dg13: DG13 | None = field(default=None, repr=False)
    dg2_image: bytes | None = field(default=None, repr=False)
    fingerprints: Mapping[int, bytes] | None = field(default=None, repr=False)



def fingerprints_of(dg3: bytes | None) -> dict[int, bytes] | None:
    """What :attr:`Expected.fingerprints` holds for a DG3 as prepared: the WSQ image of each
    finger by finger position (None without DG3)."""
    if dg3 is None:
        return None
    return {finger.position: finger.image for record in decode_dg3(dg3).records
            for finger in record.fingers}
def read_td1(dg1: bytes | None) -> TD1 | Finding | None:
    """The MRZ of DG1 with its check digits verified; a finding when it does not decode."""
    if dg1 is None:
        return None
    try:
        return parse_td1(decode_dg1(dg1))
    except LDSError as exc:  # MRZError is an LDSError; its reason names the field, not data
        return Finding(Reason.DG_MALFORMED, f"DG1: {exc.reason}")


def check_dg1(td1: TD1, keys: DocumentKeys | None, expected: Expected) -> list[Finding]:
    """DG1 against the access keys (when the MRZ opened the chip) and the prepared MRZ (in
    line)."""
    findings: list[Finding] = []
    pairs = () if keys is None else (
        ("document number", td1.document_number, keys.document_number),
        ("date of birth", td1.date_of_birth, keys.date_of_birth),
        ("date of expiry", td1.date_of_expiry, keys.date_of_expiry))
    differing = [name for name, chip, key in pairs if chip != key]
    if differing:
        findings.append(Finding(Reason.DG1_MISMATCH, "differs from the access keys in "
                                + ", ".join(differing)))
    if expected.mrz is not None and td1.text != normalize_mrz(expected.mrz):
        findings.append(Finding(Reason.DG1_MISMATCH, "differs from the prepared MRZ"))
    return findings


def check_dg13(dg13: bytes | None, expected: DG13) -> list[Finding]:
    """DG13 decodes and equals the application, field by field (names only in the detail)."""
    if dg13 is None:
        return [Finding(Reason.DG13_MISMATCH, "DG13 not on the chip")]
    try:
        chip = decode_dg13(dg13)
    except LDSError as exc:
        return [Finding(Reason.DG_MALFORMED, f"DG13: {exc.reason}")]
    differing = [f.name for f in fields(DG13) if getattr(chip, f.name) != getattr(expected, f.name)]
    if differing:
        return [Finding(Reason.DG13_MISMATCH, "fields " + ", ".join(differing))]
    return []


def check_dg2(dg2: bytes | None, expected_image: bytes) -> list[Finding]:
    """DG2 decodes and its first facial image is byte for byte the prepared image."""
    if dg2 is None:
        return [Finding(Reason.DG2_MISMATCH, "DG2 not on the chip")]
    try:
        faces = decode_dg2(dg2).faces
    except LDSError as exc:
        return [Finding(Reason.DG_MALFORMED, f"DG2: {exc.reason}")]
    if not faces or faces[0].image != expected_image:
        return [Finding(Reason.DG2_MISMATCH, f"{len(faces)} image(s) on the chip")]
    return []


def _fingers(dg3: bytes) -> dict[int, bytes] | Finding:
    """The WSQ image of each finger position in DG3; a finding when it does not decode, a
    finger is not WSQ or a position repeats."""
    try:
        records = decode_dg3(dg3).records
    except LDSError as exc:
        return Finding(Reason.DG_MALFORMED, f"DG3: {exc.reason}")
    found: dict[int, bytes] = {}
    for record in records:
        for finger in record.fingers:
            if record.compression is not Compression.WSQ or finger.position in found:
                return Finding(Reason.DG3_MISMATCH, f"finger position {finger.position}: "
                               "not WSQ or more than one image")
            found[finger.position] = finger.image
    return found


def check_dg3(dg3: bytes | None, expected: Mapping[int, bytes]) -> list[Finding]:
    """DG3 holds exactly the expected fingers, each image byte for byte the prepared WSQ
    (positions only in the detail)."""
    if dg3 is None:
        return [Finding(Reason.DG3_MISMATCH, "DG3 not on the chip")]
    chip = _fingers(dg3)
    if isinstance(chip, Finding):
        return [chip]
    if set(chip) != set(expected):
        return [Finding(Reason.DG3_MISMATCH, f"finger positions {sorted(chip)} on the chip, "
                        f"{sorted(expected)} expected")]
    differing = [str(p) for p in sorted(expected) if chip[p] != expected[p]]
    if differing:
        return [Finding(Reason.DG3_MISMATCH, "image differs at finger position "
                        + ", ".join(differing))]
    return []


def check_data(files: Mapping[str, bytes], keys: DocumentKeys | None,
               expected: Expected | None) -> tuple[list[Finding], list[str], str | None]:
    """(findings, skipped checks, MRZ document code) of the Data checks."""
    findings: list[Finding] = []
    skipped: list[str] = []
    td1 = read_td1(files.get("EF.DG1"))
    if isinstance(td1, Finding):
        findings.append(td1)
    elif td1 is None:
        findings.append(Finding(Reason.DG_MISSING, "DG1"))  # ICAO 9303-10 §4.7: mandatory
    else:
        findings += check_dg1(td1, keys, expected or Expected())
    if keys is None:
        skipped.append("DG1 against the access keys (the chip was opened with its CAN)")
    if expected is None or expected.mrz is None:
        skipped.append("DG1 against the prepared MRZ (no MRZ given)" if keys is None else
                       "DG1 against the prepared MRZ (checked against the access keys only)")
    if expected is None or expected.dg13 is None:
        skipped.append("DG13 against the application (no application given)")
    else:
        findings += check_dg13(files.get("EF.DG13"), expected.dg13)
    if expected is None or expected.dg2_image is None:
        skipped.append("DG2 against the prepared image (no image given)")
    else:
        findings += check_dg2(files.get("EF.DG2"), expected.dg2_image)
    code = td1.document_code if isinstance(td1, TD1) else None
    return findings, skipped, code
