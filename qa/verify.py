"""One card's QA, start to end: lock, access, read-back, data, passive and active authentication.

Order matters: the lock probes go first, in plain, because any plain APDU after BAC or PACE
would end the secure-messaging session (ICAO 9303-11 §9.8.6). A failed card is a
:class:`Verdict` with reasons; only operational trouble (reader or card gone) raises, as
:class:`QAError`. Whatever else goes wrong while judging a card — a protocol error, bytes no
parser accepts, the deadline — ends its check with a failing verdict whose last reason says why.

Two access paths, chosen by the caller. BAC (``access=None``): today's chips. EAC
(:class:`~qa.eac.EACAccess`): EF.CardAccess in plain, the lock probes, PACE with the CAN or the
MRZ (BAC only where the chip offers no PACE and the caller allows it), the LDS files, passive
authentication, then Chip Authentication with DG14's key — trusted only once passive
authentication passed (ICAO 9303-11 §6.2) — Terminal Authentication, DG3 against the SOD and
the application (TR-03110-1 §2.4), and Active Authentication when the chip has DG15.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime

import structlog

from applets.emrtd.lds.files import EF_CARD_ACCESS, EF_COM, EF_SOD
from applets.transport.base import Transport
from applets.transport.pcsc import ReaderError
from common.errors import CardlineError
from qa import checks, passive_auth, readback
from qa.checks import Expected
from qa.eac import EACAccess, Password
from qa.eac_verify import eac_check, open_eac
from qa.errors import QAError, ReaderUnavailableError
from qa.passive_auth import EAC_PROTECTED, TrustStore
from qa.readback import DocumentKeys, FileCaps, FileReader
from qa.reasons import Finding
from qa.steps import RNG, active, open_bac, passive, read_groups, unread
from qa.verdict import IN_LINE, Clock, Policy, Run, Verdict

__all__ = ["Policy", "Verdict", "verify_card"]
_log = structlog.get_logger()


def _check(run: Run, files: FileReader, keys: DocumentKeys, trust: TrustStore, at: datetime,
           rng: RNG, expected: Expected | None, policy: Policy) -> None:
    secure = files.transport
    com, sod_raw = files.read(EF_COM), files.read(EF_SOD)
    sod = passive_auth.read_sod(sod_raw)
    read_groups(files, sod if not isinstance(sod, Finding) else None, com)
    run.lap("read")
    if files.failure is not None:
        run.add([files.failure])
    found, skipped, document_code = checks.check_data(files.files, keys, expected)
    run.add(found)
    run.skipped += skipped
    if expected is not None and expected.fingerprints is not None:
        run.skipped.append("DG3 against the application (EAC-protected, not readable with BAC)")
    if isinstance(sod, Finding):
        run.add([sod])
    else:
        passive(run, sod, files, trust, at, document_code, policy)
        unread(run, sod, EAC_PROTECTED, "EAC-protected, not readable with BAC")
    run.lap("passive")
    active(run, files, secure, rng, policy)


def _cut_short(run: Run, exc: Exception) -> None:
    """The check ends here: ``exc`` becomes the card's last reason."""
    reason = readback.reason_for(exc)
    # Our errors' messages are written to be non-personal; another library's could quote a
    # field of the chip (a name, a date), so only its type is kept.
    detail = str(exc)[:200] if isinstance(exc, CardlineError) else type(exc).__name__
    run.add([Finding(reason, detail)])
    _log.info("qa_cut_short", reason=reason.value, error=type(exc).__name__)


def verify_card(
    transport: Transport, keys: DocumentKeys | None, trust: TrustStore, *, at: datetime,
    expected: Expected | None = None, policy: Policy = IN_LINE,
    rng: RNG = secrets.token_bytes, clock: Clock = time.perf_counter,
    deadline_s: float | None = None, max_file_bytes: FileCaps | None = None,
    access: EACAccess | None = None,
) -> Verdict:
    """QA one card in ``transport``'s reader; ``at`` is the (timezone-aware) check time.

    ``access``: None reads the chip with BAC and ``keys``; an :class:`~qa.eac.EACAccess` runs
    PACE, passive authentication, CA, TA and DG3 (``keys`` may then be None when the CAN is
    the password and BAC is not allowed: DG1 is not compared with access keys).

    ``deadline_s``: seconds on ``clock`` from the start of this check after which no further
    APDU is sent and the card fails with ``deadline`` (None: no limit). ``max_file_bytes``: the
    cap on each file's declared size, one for all or by file name (``{"EF.DG2": 15000}``),
    else :data:`qa.readback.DEFAULT_MAX_FILE_BYTES`. Only a reader or card that went away
    raises (:class:`ReaderUnavailableError`); anything else wrong gives a failing verdict.
    """
    if at.tzinfo is None:
        raise QAError("the check time must be timezone-aware (UTC)")
    if keys is None and (access is None or access.password is not Password.CAN
                         or access.allow_bac):
        raise QAError("document keys are needed for BAC and for PACE with the MRZ")
    run = Run(clock)
    deadline = None if deadline_s is None else run.start + deadline_s
    guard = readback.GuardedTransport(transport, deadline, clock)
    files: dict[str, bytes] = {}
    try:
        if access is None and keys is not None:
            opened = open_bac(run, guard, keys, rng)
            if opened is not None:
                reader = FileReader(*opened, max_file_bytes)
                files = reader.files  # filled as it reads: what was read survives a cut short
                _check(run, reader, keys, trust, at, rng, expected, policy)
        elif access is not None:
            session = open_eac(run, guard, keys, access, rng)
            if session is not None:
                reader = FileReader(session.secure, session.plan, max_file_bytes)
                if session.card_access is not None:
                    reader.files[EF_CARD_ACCESS.name] = session.card_access
                files = reader.files
                eac_check(run, reader, session, keys, trust, at, rng, expected, policy, access)
    except ReaderError as exc:
        raise ReaderUnavailableError(exc.reader, exc.reason) from exc
    except Exception as exc:  # any other failure is this card's verdict, not the caller's
        _cut_short(run, exc)
    verdict = run.verdict(files, guard.count)
    _log.info("qa_verdict", verdict="pass" if verdict.passed else "fail",
              reasons=verdict.codes, protocols=verdict.protocols, apdus=verdict.apdus,
              ms=round(verdict.timings_ms["total"], 2))
    return verdict
