"""The steps both access paths share: select and probe in plain, BAC, reading the groups,
passive and active authentication; each adds its findings to the check's :class:`Run`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from applets.emrtd.lds.files import DATA_GROUPS, EF_COM
from applets.emrtd.lds.sod import SOD
from applets.emrtd.sm import SecureTransport
from applets.iso7816.sw import SW
from applets.transport.base import Transport
from qa import active_auth, checks, passive_auth, readback
from qa.passive_auth import EAC_PROTECTED, TrustStore
from qa.readback import DocumentKeys, FileReader
from qa.reasons import Finding, Reason
from qa.verdict import Policy, Run

RNG = Callable[[int], bytes]


def read_groups(files: FileReader, sod: SOD | None, com: bytes | None) -> None:
    """Every data group the SOD (or, failing it, EF.COM) names, except the EAC-protected."""
    numbers = set(sod.dg_hashes) if sod is not None else set()
    listed = passive_auth.com_groups(com) if com is not None else set()
    numbers |= listed if isinstance(listed, set) else set()
    for number in sorted(numbers - EAC_PROTECTED):
        files.read(DATA_GROUPS[number])


def passive(run: Run, sod: SOD, files: FileReader, trust: TrustStore, at: datetime,
             document_code: str | None, policy: Policy) -> bool:
    """Passive authentication of the SOD and the groups read; True when nothing failed."""
    before = len(run.reasons)
    read = {DATA_GROUPS_BY_NAME[n]: d for n, d in files.files.items() if n in DATA_GROUPS_BY_NAME}
    missing = [DATA_GROUPS_BY_NAME[n] for n in files.missing if n in DATA_GROUPS_BY_NAME]
    run.add(passive_auth.check_hashes(sod, read, missing))
    run.add(passive_auth.check_com(files.files.get(EF_COM.name), sod))
    ds = passive_auth.signer_certificate(sod)
    if ds is None:
        run.add([Finding(Reason.SOD_MALFORMED, "no certificate matches the SignerInfo")])
        return False
    run.ds_serial = passive_auth.certificate_serial(ds)
    run.add(passive_auth.check_signature(sod, ds))
    found, usage = passive_auth.check_certificate(ds, trust, at, document_code)
    run.add(found)
    if policy.usage_period_is_failure:
        run.add(usage)
    else:
        run.warnings += usage
    passed = len(run.reasons) == before
    if passed:
        run.protocols.append("PA")
    return passed


def unread(run: Run, sod: SOD, numbers: frozenset[int], why: str) -> None:
    run.skipped += [f"DG{n} hash ({why})" for n in sorted(set(sod.dg_hashes) & numbers)]


DATA_GROUPS_BY_NAME = {info.name: number for number, info in DATA_GROUPS.items()}


def prepare(run: Run, counter: readback.CountingTransport) -> readback.ReadPlan | None:
    """Select the application, learn the read plan, probe the lock, all in plain."""
    sw = readback.select_application(counter)
    if sw != SW.OK:
        run.add([Finding(Reason.READ_FAILED, f"LDS1 application not selectable (SW {sw:04X})")])
        return None
    plan = readback.read_plan(counter)
    run.add(checks.probe_lock(counter))
    return plan


def open_bac(run: Run, counter: readback.CountingTransport, keys: DocumentKeys, rng: RNG,
             refused: Reason = Reason.BAC_FAILED,
             ) -> tuple[SecureTransport, readback.ReadPlan] | None:
    """Select, lock probes, BAC; None when the card cannot be read at all."""
    plan = prepare(run, counter)
    if plan is None:
        return None
    session = readback.open_session(counter, keys, rng)
    run.lap("access")
    if isinstance(session, Finding):
        run.add([Finding(refused, session.detail) if session.reason is Reason.BAC_FAILED
                 else session])
        return None
    run.protocols.append("BAC")
    return SecureTransport(counter, session), plan


def active(run: Run, files: FileReader, secure: Transport, rng: RNG, policy: Policy) -> None:
    """Active Authentication when the chip has DG15 or the policy requires it."""
    dg15 = files.files.get(DATA_GROUPS[15].name)
    if (dg15 is not None or policy.require_active_authentication) and files.failure is None:
        found = active_auth.check_active_authentication(
            secure, dg15, files.files.get(DATA_GROUPS[14].name), rng)
        run.add(found)
        if not found:
            run.protocols.append("AA")
    elif dg15 is None:
        run.skipped.append("Active Authentication (no DG15, not required)")
    run.lap("active")
