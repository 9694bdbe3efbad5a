"""QA over PC/SC: check a chip at a QA desk, dump its files, report on a batch's verdicts.

A card that fails QA is a :class:`Verdict` with reasons; the errors raised here mean QA could
not be done at all (malformed keys, no trust store, no reader or card, a file not writable,
no inspection-system key for an EAC chip).

BAC chips are opened with the MRZ keys, as before; EAC chips with PACE (the CAN, or the MRZ),
then Chip and Terminal Authentication with the desk's inspection-system key in the HSM
(:func:`personalization.service.eac.qa_terminal`), which lets the desk read DG3.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from applets.emrtd.eac_reader import TerminalCredentials
from applets.transport.pcsc import PCSCTransport, ReaderError
from personalization.config import DEFAULT_CONFIG, LineConfig
from personalization.journal import open_journal
from personalization.service import eac
from personalization.service.errors import NotFound, ServiceError
from personalization.service.setup import LineSetup
from qa.checks import Expected
from qa.eac import EACAccess, Password, check_can, terminal_credentials
from qa.errors import QAError
from qa.passive_auth import TrustStore
from qa.readback import DocumentKeys, keys_from_fields, keys_from_mrz, normalize_mrz
from qa.report import CardVerdict, build_report, render_html
from qa.verify import Policy, Verdict, verify_card

__all__ = ["AccessKeys", "Dump", "Trust", "TrustStore", "Verdict", "access_keys", "desk_terminal",
           "dump_card", "qa_report", "trust_store", "verify_chip"]


@dataclass(frozen=True, slots=True)
class AccessKeys:
    """How the desk opens a chip and what the chip must then hold: the MRZ keys (None with
    the CAN alone), the PACE password (None: BAC), the CAN, and whether an EAC check may fall
    back to BAC on a chip that offers no PACE."""

    keys: DocumentKeys | None
    expected: Expected
    password: Password | None = None
    can: str | None = field(default=None, repr=False)
    allow_bac: bool = False


@dataclass(frozen=True, slots=True)
class Trust:
    """The CSCA certificates QA trusts and the files they came from."""

    store: TrustStore
    paths: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class Dump:
    """A chip read into a folder: its verdict and the summary.json written beside its files."""

    out: Path
    verdict: Verdict
    summary: dict[str, Any]


def _mrz_keys(mrz: str | None, document_number: str | None, birth: str | None,
              expiry: str | None) -> tuple[DocumentKeys, Expected] | None:
    """Keys from the full TD1 MRZ (then also checked against DG1), or from its three fields."""
    if mrz is not None:
        return keys_from_mrz(mrz), Expected(mrz=normalize_mrz(mrz))
    if document_number is None and birth is None and expiry is None:
        return None
    if document_number is None or birth is None or expiry is None:
        raise ServiceError("give --mrz, or all of --document-number, --birth and --expiry")
    return keys_from_fields(document_number, birth, expiry), Expected()


def access_keys(mrz: str | None = None, document_number: str | None = None,
                birth: str | None = None, expiry: str | None = None, *,
                can: str | None = None, pace: bool = False,
                allow_bac: bool = False) -> AccessKeys:
    """How to open the chip: BAC with the MRZ keys (as before); PACE with ``can``, or with
    the MRZ when ``pace``; ``allow_bac`` lets an EAC check use BAC on a chip without PACE."""
    try:
        found = _mrz_keys(mrz, document_number, birth, expiry)
        if can is not None and pace:
            raise ServiceError("give --can or --pace (PACE with the MRZ), not both")
        if can is None and not pace:
            if allow_bac:
                raise ServiceError("--allow-bac goes with --can or --pace")
            if found is None:
                raise ServiceError("give --mrz, or all of --document-number, --birth and "
                                   "--expiry, or --can for an EAC chip")
            return AccessKeys(*found)
        if found is None and (pace or allow_bac):
            raise ServiceError("PACE with the MRZ and the BAC fallback need --mrz, or all of "
                               "--document-number, --birth and --expiry")
        keys, expected = found or (None, Expected())
        if can is not None:
            return AccessKeys(keys, expected, Password.CAN, check_can(can.strip()), allow_bac)
        return AccessKeys(keys, expected, Password.MRZ, None, allow_bac)
    except QAError as exc:
        raise ServiceError(f"access keys: {exc}") from exc


def trust_store(paths: Sequence[Path] = (), *, config: Path | None = None) -> Trust:
    """The CSCA certificates of ``paths``; without any, ``<data_dir>/csca.pem`` of the line
    configured in ``config`` (``.cardline/csca.pem`` without a configuration)."""
    if not paths:
        data_dir = Path(".cardline")
        if config is not None:
            data_dir = LineSetup.load(config).config.data_dir
        default = data_dir / "csca.pem"
        if not default.is_file():
            raise NotFound(f"no trust store: give --trust CSCA.pem, or export the CSCA with "
                           f"`cardline keys export-csca --out {default}`")
        paths = [default]
    return Trust(TrustStore.from_files(paths), tuple(paths))


@contextmanager
def _reader(name: str, wait: float) -> Iterator[PCSCTransport]:
    try:
        with PCSCTransport(name) as transport:
            if not transport.connected:
                transport.wait_for_card(wait)
            yield transport
    except ReaderError as exc:
        raise ServiceError(f"{exc} (is the reader attached and a card in it?)") from exc


@contextmanager
def desk_terminal(config: Path | None = None) -> Iterator[TerminalCredentials]:
    """The QA desk's inspection system while the block runs: its CV chain (from the DV down;
    the chip holds the CVCA) and its HSM-backed signer, of the line configured in ``config``."""
    setup = LineSetup.load(config or DEFAULT_CONFIG)
    with eac.qa_terminal(setup.config) as key:
        try:
            terminal = terminal_credentials(key.chain, key.sign)
        except QAError as exc:
            raise ServiceError(f"the QA desk's inspection-system chain: {exc}") from exc
        yield terminal


@contextmanager
def _eac_access(access: AccessKeys, config: Path | None) -> Iterator[EACAccess | None]:
    if access.password is None:
        yield None
        return
    with desk_terminal(config) as terminal:
        yield EACAccess(access.password, terminal, access.can, access.allow_bac)


def verify_chip(reader: str, access: AccessKeys, trust: TrustStore, *, wait: float = 0.0,
                require_aa: bool = True, at: datetime | None = None,
                deadline_s: float | None = None, config: Path | None = None) -> Verdict:
    """Check the chip in ``reader``: access (BAC, or PACE then CA and TA with the desk's
    inspection-system key from the line in ``config``), passive and active authentication,
    lock, DG1, DG3.

    ``wait`` is how many seconds to wait for a card; a DS key past its usage period is a
    warning, not a failure (an old card at a desk); past ``deadline_s`` seconds the check
    stops and the card fails with ``deadline``.
    """
    policy = Policy(require_active_authentication=require_aa, usage_period_is_failure=False)
    with _eac_access(access, config) as eac_access, _reader(reader, wait) as transport:
        return verify_card(transport, access.keys, trust, at=at or datetime.now(UTC),
                           expected=access.expected, policy=policy, rng=secrets.token_bytes,
                           deadline_s=deadline_s, access=eac_access)


def _summary(verdict: Verdict, reader: str) -> dict[str, Any]:
    files = {name: {"file": f"{name}.bin", "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest()}
             for name, data in verdict.files.items()}
    return {**verdict.as_dict(), "reader": reader, "files": files}


def dump_card(reader: str, out: Path, access: AccessKeys, trust: TrustStore, *,
              wait: float = 0.0, config: Path | None = None) -> Dump:
    """Read every file of the chip in ``reader`` into ``out`` (exact bytes) with summary.json."""
    verdict = verify_chip(reader, access, trust, wait=wait, require_aa=False, config=config)
    summary = _summary(verdict, reader)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in verdict.files.items():
            (out / f"{name}.bin").write_bytes(data)
        (out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    except OSError as exc:
        raise ServiceError(f"cannot write to {out}: {exc.strerror}") from exc
    return Dump(out, verdict, summary)


def _read_verdicts(path: Path) -> list[CardVerdict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ServiceError(f"cannot read {path}: {exc.strerror}") from exc
    cards: list[CardVerdict] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            cards.append((str(record["card"]), record))
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceError(f"{path} line {number}: not a verdict with a 'card' key") from exc
    return cards


def qa_report(verdicts: Path, batch: str, *, html: Path | None = None,
              at: datetime | None = None) -> dict[str, Any]:
    """The QA report of a batch from its verdicts (JSON Lines, each with a 'card' key).

    Counts, failures by reason, each failed card with its reasons; with ``html``, the page too.
    """
    report = build_report(batch, _read_verdicts(verdicts), at or datetime.now(UTC))
    if html is not None:
        try:
            html.write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            raise ServiceError(f"cannot write {html}: {exc.strerror}") from exc
    return report


def signoff(config: LineConfig, person: str, batch: str) -> dict[str, Any]:
    """QA's sign-off of a finished batch: an event of the journal's chain naming who signed
    off and the counts they signed off on; refused for a batch still open or signed off."""
    with open_journal(config.journal.url) as journal:
        info = journal.batch(batch)
        if info.state != "closed":
            raise ServiceError(f"batch {batch!r} is not finished: QA signs off a closed batch")
        if any(e["kind"] == "qa.signed_off" for e in journal.events(batch)):
            raise ServiceError(f"batch {batch!r} is signed off already")
        counts = {"handed_out": info.applications["handed_out"],
                  "failed": info.applications["failed"]}
        journal.note(batch, "qa.signed_off", actor=person, role="qa", **counts)
    return {"batch": batch, "by": person, **counts}
