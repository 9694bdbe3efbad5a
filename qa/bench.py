"""The QA figures of ``cardline bench``: milliseconds and APDUs of one full card check.

Measured on a personalized card (in production: a zero-latency virtual card behind pcscd) and
compared by the caller with the raw APDU round trip of the same run:
``qa_ms_per_card ≤ 1.3 × qa_apdus_per_card × apdu_roundtrip_ms``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from applets.transport.base import Transport
from qa.checks import Expected
from qa.eac import EACAccess
from qa.errors import QAError
from qa.passive_auth import TrustStore
from qa.readback import DocumentKeys
from qa.verify import verify_card

WARM_UP = 2  # first checks pay for imports, the DS certificate check and the cipher set-up


@dataclass(frozen=True, slots=True)
class Check:
    """One timed check: its milliseconds and APDUs, the card's own processing meanwhile
    (0 when not asked for) and what ``after`` measured right after it (0 when not given)."""

    ms: float
    apdus: int
    card_ms: float
    after: float


def checks(transport: Transport, keys: DocumentKeys | None, trust: TrustStore, *,
           at: datetime, cards: int = 20, expected: Expected | None = None,
           card_ms: Callable[[], float] | None = None, access: EACAccess | None = None,
           after: Callable[[], float] | None = None) -> list[Check]:
    """Check the card in ``transport`` ``cards`` times after ``WARM_UP`` untimed checks
    (``access``: the EAC check, PACE to DG3, instead of BAC); raise if one fails.

    ``card_ms`` (read around each check, outside its timing) gives the card's own processing
    time so far; ``after`` runs right after each check, also outside it (the bench times the
    bare wire there, so each check has its floor from the same moment)."""
    if cards < 1:
        raise ValueError("cards must be at least 1")
    done: list[Check] = []
    for index in range(WARM_UP + cards):
        before = card_ms() if card_ms is not None else 0.0
        verdict = verify_card(transport, keys, trust, at=at, expected=expected,
                              access=access)
        if not verdict.passed:
            raise QAError("the bench card fails QA: " + ", ".join(verdict.codes))
        spent = card_ms() - before if card_ms is not None else 0.0
        measured = after() if after is not None else 0.0
        if index >= WARM_UP:
            done.append(Check(verdict.timings_ms["total"], verdict.apdus, spent, measured))
    return done


def measure(transport: Transport, keys: DocumentKeys | None, trust: TrustStore, *,
            at: datetime, cards: int = 20, expected: Expected | None = None,
            access: EACAccess | None = None) -> dict[str, float]:
    """Median ms and APDUs per check of ``cards`` checks (see :func:`checks`)."""
    done = checks(transport, keys, trust, at=at, cards=cards, expected=expected,
                  access=access)
    return {"qa_ms_per_card": round(statistics.median(c.ms for c in done), 3),
            "qa_apdus_per_card": float(statistics.median(c.apdus for c in done))}
