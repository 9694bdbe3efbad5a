"""The EAC path of a card's QA (ICAO 9303-11 §4.4, §6.2; BSI TR-03110-1 §2.4): EF.CardAccess
in plain, the lock probes, PACE (or BAC where the chip offers no PACE and the caller allows
it), the LDS files, passive authentication, then Chip Authentication with DG14's key — trusted
only once passive authentication passed — Terminal Authentication, DG3 against the SOD and
the application, and Active Authentication when the chip has DG15.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from applets.emrtd import eac_reader, ta
from applets.emrtd.eac_reader import (
    CAFailedError,
    CardAccessError,
    PACERefusedError,
    TARefusedError,
)
from applets.emrtd.lds.files import DATA_GROUPS, DG3, EF_COM, EF_SOD
from applets.emrtd.lds.securityinfos import CardAccess
from applets.emrtd.lds.sod import SOD
from applets.emrtd.perso import select_applet_command, select_master_file_command
from applets.emrtd.sm import SecureTransport
from applets.iso7816.sw import SW
from qa import checks, eac, passive_auth, readback
from qa.checks import Expected
from qa.eac import EACAccess
from qa.passive_auth import TrustStore
from qa.readback import DocumentKeys, FileReader
from qa.reasons import Finding, Reason
from qa.steps import RNG, active, open_bac, passive, prepare, read_groups, unread
from qa.verdict import Policy, Run


@dataclass(frozen=True, slots=True)
class EACSession:
    """An open EAC session: its transport, read plan, TA's ID_PICC and EF.CardAccess."""

    secure: SecureTransport
    plan: readback.ReadPlan
    id_picc: bytes = field(repr=False)
    card_access: bytes | None


def _fall_back_to_bac(run: Run, counter: readback.CountingTransport, keys: DocumentKeys | None,
                      access: EACAccess, refusal: Finding, rng: RNG) -> EACSession | None:
    """BAC on a chip that offers no PACE, where the caller allows it."""
    if not access.allow_bac or keys is None:
        run.add([refusal])
        return None
    opened = open_bac(run, counter, keys, rng, refused=Reason.BAC_REFUSED)
    if opened is None:
        return None
    return EACSession(*opened, ta.id_picc_bac(keys.document_number), None)


_SM_ABORTED = (SW.SM_DATA_OBJECTS_MISSING, SW.SM_DATA_OBJECTS_INCORRECT)


def _card_access(counter: readback.CountingTransport) -> tuple[bytes, CardAccess]:
    """EF.CardAccess; once more, after a SELECT MF, when a previous session was still open
    (the plain SELECT ended it, ICAO 9303-11 §9.8.6, and the chip may still be in the
    application). A chip that refuses the MF SELECT (a CCCD answers 6D00) fails as it is."""
    try:
        return eac_reader.read_card_access(counter)
    except CardAccessError as exc:
        if exc.sw not in _SM_ABORTED:
            raise
    counter.transmit(select_master_file_command())
    return eac_reader.read_card_access(counter)


def open_eac(run: Run, counter: readback.CountingTransport, keys: DocumentKeys | None,
             access: EACAccess, rng: RNG) -> EACSession | None:
    """EF.CardAccess in plain (selected by FID, no MF SELECT first), the lock probes, PACE,
    then the application under secure messaging; None when the chip cannot be read at all."""
    try:
        raw, infos = _card_access(counter)
        parameters = eac_reader.choose_pace(infos)
    except CardAccessError as exc:
        return _fall_back_to_bac(run, counter, keys, access, eac.finding_for(exc), rng)
    plan = prepare(run, counter)
    if plan is None:
        return None
    try:
        result = eac_reader.open_pace(counter, access.pace(keys), parameters, rng)
    except PACERefusedError as exc:
        run.add([eac.finding_for(exc)])
        return None
    run.protocols.append("PACE")
    run.lap("access")
    secure = SecureTransport(counter, result.session)
    sw = secure.transmit(select_applet_command()).sw
    if sw != SW.OK:
        run.add([Finding(Reason.READ_FAILED, f"LDS1 application not selectable (SW {sw:04X})")])
        return None
    return EACSession(secure, plan, result.id_picc, raw)


def eac_check(run: Run, files: FileReader, session: EACSession, keys: DocumentKeys | None,
              trust: TrustStore, at: datetime, rng: RNG, expected: Expected | None,
              policy: Policy, access: EACAccess) -> None:
    """Read, data checks, passive authentication; then, only if it passed, CA, TA, DG3, AA."""
    com, sod_raw = files.read(EF_COM), files.read(EF_SOD)
    sod = passive_auth.read_sod(sod_raw)
    read_groups(files, sod if not isinstance(sod, Finding) else None, com)
    run.lap("read")
    if files.failure is not None:
        run.add([files.failure])
        return
    found, skipped, document_code = checks.check_data(files.files, keys, expected)
    run.add(found)
    run.skipped += skipped
    if isinstance(sod, Finding):
        run.add([sod])
        trusted = False
    else:
        trusted = passive(run, sod, files, trust, at, document_code, policy)
    run.lap("passive")
    if isinstance(sod, Finding) or not trusted:
        run.skipped.append("Chip and Terminal Authentication, DG3 (passive authentication "
                           "failed: DG14's key is not trusted)")
        return
    unread(run, sod, frozenset({4}), "iris, not read")
    fingerprints = expected.fingerprints if expected is not None else None
    if _authenticate(run, files, session, sod, access, fingerprints, rng):
        active(run, files, files.transport, rng, policy)


def _authenticate(run: Run, files: FileReader, session: EACSession, sod: SOD,
                  access: EACAccess, fingerprints: Mapping[int, bytes] | None,
                  rng: RNG) -> bool:
    """CA with DG14's key, TA, then DG3; False when a step failed (AA is then not tried)."""
    dg14 = files.files.get(DATA_GROUPS[14].name)
    if "BAC" in run.protocols and not eac.has_ca_key(dg14):
        run.skipped.append("Chip and Terminal Authentication (a BAC chip without a Chip "
                           "Authentication key)")
        if fingerprints is not None:
            run.add(checks.check_dg3(None, fingerprints))
        return True
    if dg14 is None:
        run.add([Finding(Reason.CA_FAILED, "DG14 not on the chip")])
        return False
    try:
        secure, comp_pk_pcd = eac_reader.chip_authentication(session.secure, dg14, rng)
        files.transport = secure
        run.protocols.append("CA")
        eac_reader.terminal_authentication(secure, access.terminal, session.id_picc,
                                           comp_pk_pcd)
        run.protocols.append("TA")
    except (CAFailedError, TARefusedError) as exc:
        run.add([eac.finding_for(exc)])
        return False
    finally:
        run.lap("eac")
    return _dg3(run, files, sod, fingerprints)


def _dg3(run: Run, files: FileReader, sod: SOD, fingerprints: Mapping[int, bytes] | None) -> bool:
    """DG3 after TA: read, its hash against the SOD, its fingers against the application."""
    if 3 not in sod.dg_hashes and fingerprints is None:
        run.skipped.append("DG3 (not in the SOD, no fingerprints expected)")
        return True
    dg3 = eac.read_dg3(files.transport, files.plan,
                       readback.file_cap(files.max_file_bytes, DG3.name))
    run.lap("dg3")
    if isinstance(dg3, Finding):
        run.add([dg3])
        return False
    files.files[DG3.name] = dg3
    hashed = eac.check_dg3_hash(sod, dg3)
    run.add(hashed)
    if hashed and "PA" in run.protocols:
        run.protocols.remove("PA")
    if fingerprints is None:
        run.skipped.append("DG3 against the application (no fingerprints given)")
    else:
        run.add(checks.check_dg3(dg3, fingerprints))
    return True
