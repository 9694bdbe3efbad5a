"""Throwaway parts for ``cardline bench``: a private SoftHSM token with a CSCA and a DS, and
validated synthetic applications, so benchmarks never touch a line's real keys or counts."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from hsm.ceremony import init_csca, new_ds
from hsm.inventory import InventoryPort, KeyInventory
from hsm.pkcs11 import HSM
from hsm.signer import DSSigner
from hsm.softhsm import throwaway_token
from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.line.context import LineEAC
from personalization.prep import CardData
from personalization.profile import DocumentProfile
from personalization.synth import synthesize
from qa.eac import EACAccess

BENCH_TOKEN = "cardline-bench"  # noqa: S105 -- a token label, not a secret
BENCH_OFFICERS = ("bench officer 1", "bench officer 2")


@dataclass(frozen=True, slots=True)
class BenchHSM:
    """An open DS signer on a private token, and where its CSCA certificate is."""

    signer: DSSigner
    csca_der: bytes
    data_dir: Path
    module: str
    token: str
    pin: str
    eac: LineEAC | None = None  # the trust point and QA terminal, for an EAC profile


# Makes the EAC PKI on the bench token and returns what a line holds of it (the service layer
# gives it: ``personalization.service.eacline.bench_pki``, ceremonies being a service's).
EACMaker = Callable[[HSM, InventoryPort, datetime], LineEAC]


@contextmanager
def bench_hsm(root: Path, algorithm: str = "ecdsa-p256", *,
              eac: EACMaker | None = None) -> Iterator[BenchHSM]:
    """A fresh SoftHSM token under ``root`` with a CSCA and a DS of a million documents, and
    with ``eac`` the EAC PKI a line making EAC chips holds: a CVCA (the chips' trust point),
    a DV and the QA desk's inspection-system key, as ``keys eac-init`` makes them."""
    now = datetime.now(UTC)
    with throwaway_token(root / "hsm-data", BENCH_TOKEN) as token, \
            KeyInventory(token.data_dir / "hsm" / "inventory.db") as inventory, \
            HSM(token.module, token.label, token.pin) as hsm:
        csca = init_csca(hsm, inventory, officers=BENCH_OFFICERS, at=now,
                         label="CSCA-BENCH", algorithm=algorithm)
        new_ds(hsm, inventory, officers=BENCH_OFFICERS, at=now, usage_days=30,
               max_documents=10_000_000, algorithm=algorithm, label_prefix="DS-BENCH")
        line_eac = eac(hsm, inventory, now) if eac is not None else None
        with DSSigner(token.module, token.label, token.pin, inventory, block=4096) as signer:
            yield BenchHSM(signer, csca.certificate, token.data_dir, token.module, token.label,
                           token.pin, line_eac)


def bench_applications(root: Path, profile: DocumentProfile, count: int,
                       seed: int = 2026) -> list[Application]:
    """``count`` synthesized applications, validated with the profile's rules."""
    path = root / "apps" / "applications.jsonl"
    synthesize(count, seed, path)
    result = read_applications(path, profile.intake_rules(), date.today())
    return [application for _, application in result.valid]


@contextmanager
def scratch(prefix: str = "cardline-bench-") -> Iterator[Path]:
    """A temporary folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        yield Path(name)


def eac_access(hsm: BenchHSM, data: CardData) -> EACAccess | None:
    """How QA opens a bench card: PACE with its CAN, then CA and TA as the QA desk's
    inspection system (DG3 read back), as inline QA does; None for a BAC-only chip."""
    if hsm.eac is None or data.can is None:
        return None
    assert hsm.eac.qa_terminal is not None  # bench_hsm makes it  # noqa: S101
    return EACAccess.by_can(data.can, hsm.eac.qa_terminal)
