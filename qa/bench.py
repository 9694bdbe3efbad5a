"""The QA figures of ``cardline bench``: milliseconds and APDUs of one full card check.

Measured on a personalized card (in production: a zero-latency virtual card behind pcscd) and
compared by the caller with the raw APDU round trip of the same run:
``qa_ms_per_card ≤ 1.3 × qa_apdus_per_card × apdu_roundtrip_ms``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from datetime import datetime

from applets.transport.base import Transport
from qa.checks import Expected
from qa.eac import EACAccess
from qa.errors import QAError
from qa.passive_auth import TrustStore
from qa.readback import DocumentKeys
from qa.verify import Verdict, verify_card

WARM_UP = 2  # first checks pay for imports, the DS certificate check and the cipher set-up


def measure(transport: Transport, keys: DocumentKeys | None, trust: TrustStore, *,
            at: datetime, cards: int = 20, expected: Expected | None = None,
            card_ms: Callable[[], float] | None = None,
            access: EACAccess | None = None) -> dict[str, float]:
    """Check the card in ``transport`` ``cards`` times; median ms and APDUs per check
    (``access``: the EAC check, PACE to DG3, instead of BAC).

    ``card_ms`` (read between checks, outside the timing) gives the card's own processing time
    so far; with it the result also holds ``qa_card_ms``, the median per check.
    """
    if cards < 1:
        raise ValueError("cards must be at least 1")
    verdicts: list[Verdict] = []
    card: list[float] = []
    for index in range(WARM_UP + cards):
        before = card_ms() if card_ms is not None else 0.0
        verdict = verify_card(transport, keys, trust, at=at, expected=expected,
                              access=access)
        if not verdict.passed:
            raise QAError("the bench card fails QA: " + ", ".join(verdict.codes))
        if index >= WARM_UP:
            verdicts.append(verdict)
            card.append(card_ms() - before if card_ms is not None else 0.0)
    figures = {
        "qa_ms_per_card": round(statistics.median(v.timings_ms["total"] for v in verdicts), 3),
        "qa_apdus_per_card": float(statistics.median(v.apdus for v in verdicts)),
    }
    if card_ms is not None:
        figures["qa_card_ms"] = statistics.median(card)
    return figures
