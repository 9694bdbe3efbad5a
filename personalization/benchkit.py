"""Throwaway parts for ``cardline bench``: a private SoftHSM token with a CSCA and a DS, and
validated synthetic applications, so benchmarks never touch a line's real keys or counts."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from hsm.ceremony import init_csca, new_ds
from hsm.inventory import KeyInventory
from hsm.pkcs11 import HSM
from hsm.signer import DSSigner
from hsm.softhsm import throwaway_token
from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.profile import DocumentProfile
from personalization.synth import synthesize

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


@contextmanager
def bench_hsm(root: Path, algorithm: str = "ecdsa-p256") -> Iterator[BenchHSM]:
    """A fresh SoftHSM token under ``root`` with a CSCA and a DS of a million documents."""
    now = datetime.now(UTC)
    with throwaway_token(root / "hsm-data", BENCH_TOKEN) as token, \
            KeyInventory(token.data_dir / "hsm" / "inventory.db") as inventory:
        with HSM(token.module, token.label, token.pin) as hsm:
            csca = init_csca(hsm, inventory, officers=BENCH_OFFICERS, at=now,
                             label="CSCA-BENCH", algorithm=algorithm)
            new_ds(hsm, inventory, officers=BENCH_OFFICERS, at=now, usage_days=30,
                   max_documents=10_000_000, algorithm=algorithm, label_prefix="DS-BENCH")
        with DSSigner(token.module, token.label, token.pin, inventory, block=4096) as signer:
            yield BenchHSM(signer, csca.certificate, token.data_dir, token.module, token.label,
                           token.pin)


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
