"""One card's QA, start to end: lock, access, read-back, data, passive and active authentication.

Order matters: the lock probes go first, in plain, because any plain APDU after BAC would end
the secure-messaging session (ICAO 9303-11 §9.8.6). A failed card is a :class:`Verdict`
with reasons; only operational trouble (reader or card gone) raises, as :class:`QAError`.
Whatever else goes wrong while judging a card — a protocol error, bytes no parser accepts, the
deadline — ends its check with a failing verdict whose last reason says why.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from applets.emrtd.lds.files import DATA_GROUPS, EF_COM, EF_SOD
from applets.emrtd.lds.sod import SOD
from applets.emrtd.sm import SecureTransport
from applets.iso7816.sw import SW
from applets.transport.base import Transport
from applets.transport.pcsc import ReaderError
from common.errors import CardlineError
from qa import active_auth, checks, passive_auth, readback
from qa.checks import Expected
from qa.errors import QAError, ReaderUnavailableError
from qa.passive_auth import EAC_PROTECTED, TrustStore
from qa.readback import DocumentKeys, FileCaps, FileReader
from qa.reasons import Finding, Reason

_log = structlog.get_logger()
RNG = Callable[[int], bytes]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Policy:
    """In line (the defaults) every check fails a card; a QA desk relaxes two of them."""

    require_active_authentication: bool = True
    usage_period_is_failure: bool = True  # False at a desk: an old card's DS key has retired


@dataclass(frozen=True)
class Verdict:
    """The result of one card's QA."""

    reasons: tuple[Finding, ...]
    warnings: tuple[Finding, ...] = ()
    skipped: tuple[str, ...] = ()
    files: dict[str, bytes] = field(default_factory=dict, repr=False)
    apdus: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    ds_serial: str | None = None  # the serial (hex) of the DS certificate in the chip's SOD

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return not self.reasons

    @property
    def codes(self) -> list[str]:
        """The reason codes, in the order found."""
        return [finding.code for finding in self.reasons]

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` / journal form; file sizes only, never their personal content."""
        return {
            "verdict": "pass" if self.passed else "fail",
            "reasons": [f.as_dict() for f in self.reasons],
            "warnings": [f.as_dict() for f in self.warnings],
            "skipped": list(self.skipped),
            "files": {name: len(data) for name, data in self.files.items()},
            "apdus": self.apdus,
            "ms": round(self.timings_ms.get("total", 0.0), 3),
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            # which DS signed the card: what `keys affected` finds the cards of a revoked DS by
            "ds_serial": self.ds_serial,
        }


class _Run:
    """The mutable state of one verification (findings, timings)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.start = self.mark = clock()
        self.reasons: list[Finding] = []
        self.warnings: list[Finding] = []
        self.skipped: list[str] = []
        self.timings: dict[str, float] = {}
        self.ds_serial: str | None = None

    def lap(self, name: str) -> None:
        now = self.clock()
        self.timings[name] = (now - self.mark) * 1000.0
        self.mark = now

    def add(self, findings: list[Finding]) -> None:
        self.reasons += [f for f in findings if f not in self.reasons]

    def verdict(self, files: dict[str, bytes], apdus: int) -> Verdict:
        self.timings["total"] = (self.clock() - self.start) * 1000.0
        return Verdict(tuple(self.reasons), tuple(self.warnings), tuple(self.skipped),
                       dict(files), apdus, dict(self.timings), self.ds_serial)


def _read_groups(files: FileReader, sod: SOD | None, com: bytes | None) -> None:
    """Every data group the SOD (or, failing it, EF.COM) names, except the EAC-protected."""
    numbers = set(sod.dg_hashes) if sod is not None else set()
    listed = passive_auth.com_groups(com) if com is not None else set()
    numbers |= listed if isinstance(listed, set) else set()
    for number in sorted(numbers - EAC_PROTECTED):
        files.read(DATA_GROUPS[number])


def _passive(run: _Run, sod: SOD, files: FileReader, trust: TrustStore, at: datetime,
             document_code: str | None, policy: Policy) -> None:
    read = {DATA_GROUPS_BY_NAME[n]: d for n, d in files.files.items() if n in DATA_GROUPS_BY_NAME}
    missing = [DATA_GROUPS_BY_NAME[n] for n in files.missing if n in DATA_GROUPS_BY_NAME]
    run.add(passive_auth.check_hashes(sod, read, missing))
    run.add(passive_auth.check_com(files.files.get(EF_COM.name), sod))
    ds = passive_auth.signer_certificate(sod)
    if ds is None:
        run.add([Finding(Reason.SOD_MALFORMED, "no certificate matches the SignerInfo")])
        return
    run.ds_serial = passive_auth.certificate_serial(ds)
    run.add(passive_auth.check_signature(sod, ds))
    found, usage = passive_auth.check_certificate(ds, trust, at, document_code)
    run.add(found)
    if policy.usage_period_is_failure:
        run.add(usage)
    else:
        run.warnings += usage
    skipped = sorted(set(sod.dg_hashes) & EAC_PROTECTED)
    run.skipped += [f"DG{n} hash (EAC-protected, not readable with BAC)" for n in skipped]


DATA_GROUPS_BY_NAME = {info.name: number for number, info in DATA_GROUPS.items()}


def _access(run: _Run, counter: readback.CountingTransport, keys: DocumentKeys,
            rng: RNG) -> tuple[SecureTransport, readback.ReadPlan] | None:
    """Select, lock probes, BAC; None when the card cannot be read at all."""
    sw = readback.select_application(counter)
    if sw != SW.OK:
        run.add([Finding(Reason.READ_FAILED, f"LDS1 application not selectable (SW {sw:04X})")])
        return None
    plan = readback.read_plan(counter)
    run.add(checks.probe_lock(counter))
    session = readback.open_session(counter, keys, rng)
    run.lap("access")
    if isinstance(session, Finding):
        run.add([session])
        return None
    return SecureTransport(counter, session), plan


def _check(run: _Run, files: FileReader, keys: DocumentKeys, trust: TrustStore, at: datetime,
           rng: RNG, expected: Expected | None, policy: Policy) -> None:
    secure = files.transport
    com, sod_raw = files.read(EF_COM), files.read(EF_SOD)
    sod = passive_auth.read_sod(sod_raw)
    _read_groups(files, sod if not isinstance(sod, Finding) else None, com)
    run.lap("read")
    if files.failure is not None:
        run.add([files.failure])
    found, skipped, document_code = checks.check_data(files.files, keys, expected)
    run.add(found)
    run.skipped += skipped
    if isinstance(sod, Finding):
        run.add([sod])
    else:
        _passive(run, sod, files, trust, at, document_code, policy)
    run.lap("passive")
    dg15 = files.files.get(DATA_GROUPS[15].name)
    if (dg15 is not None or policy.require_active_authentication) and files.failure is None:
        run.add(active_auth.check_active_authentication(
            secure, dg15, files.files.get(DATA_GROUPS[14].name), rng))
    elif dg15 is None:
        run.skipped.append("Active Authentication (no DG15, not required)")
    run.lap("active")


def _cut_short(run: _Run, exc: Exception) -> None:
    """The check ends here: ``exc`` becomes the card's last reason."""
    reason = readback.reason_for(exc)
    # Our errors' messages are written to be non-personal; another library's could quote a
    # field of the chip (a name, a date), so only its type is kept.
    detail = str(exc)[:200] if isinstance(exc, CardlineError) else type(exc).__name__
    run.add([Finding(reason, detail)])
    _log.info("qa_cut_short", reason=reason.value, error=type(exc).__name__)


def verify_card(
    transport: Transport, keys: DocumentKeys, trust: TrustStore, *, at: datetime,
    expected: Expected | None = None, policy: Policy = Policy(),
    rng: RNG = secrets.token_bytes, clock: Clock = time.perf_counter,
    deadline_s: float | None = None, max_file_bytes: FileCaps | None = None,
) -> Verdict:
    """QA one card in ``transport``'s reader; ``at`` is the (timezone-aware) check time.

    ``deadline_s``: seconds on ``clock`` from the start of this check after which no further
    APDU is sent and the card fails with ``deadline`` (None: no limit). ``max_file_bytes``: the
    cap on each file's declared size, one for all or by file name (``{"EF.DG2": 15000}``),
    else :data:`qa.readback.DEFAULT_MAX_FILE_BYTES`. Only a reader or card that went away
    raises (:class:`ReaderUnavailableError`); anything else wrong gives a failing verdict.
    """
    if at.tzinfo is None:
        raise QAError("the check time must be timezone-aware (UTC)")
    run = _Run(clock)
    deadline = None if deadline_s is None else run.start + deadline_s
    guard = readback.GuardedTransport(transport, deadline, clock)
    files: dict[str, bytes] = {}
    try:
        access = _access(run, guard, keys, rng)
        if access is not None:
            reader = FileReader(*access, max_file_bytes)
            files = reader.files  # filled as it reads: what was read survives a cut-short check
            _check(run, reader, keys, trust, at, rng, expected, policy)
    except ReaderError as exc:
        raise ReaderUnavailableError(exc.reader, exc.reason) from exc
    except Exception as exc:  # any other failure is this card's verdict, not the caller's
        _cut_short(run, exc)
    verdict = run.verdict(files, guard.count)
    _log.info("qa_verdict", verdict="pass" if verdict.passed else "fail",
              reasons=verdict.codes, apdus=verdict.apdus, ms=round(verdict.timings_ms["total"], 2))
    return verdict
