"""The verdict of one card's QA, the policy it was judged by, and the state of a check in
progress (findings, timings, the protocols that passed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qa.reasons import Finding

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Policy:
    """In line (the defaults) every check fails a card; a QA desk relaxes two of them."""

    require_active_authentication: bool = True
    usage_period_is_failure: bool = True  # False at a desk: an old card's DS key has retired


IN_LINE = Policy()


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
    # the protocols that ran and succeeded, in order: BAC or PACE, PA, CA, TA, AA
    protocols: tuple[str, ...] = ()

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
            "protocols": list(self.protocols),
            "files": {name: len(data) for name, data in self.files.items()},
            "apdus": self.apdus,
            "ms": round(self.timings_ms.get("total", 0.0), 3),
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            # which DS signed the card: what `keys affected` finds the cards of a revoked DS by
            "ds_serial": self.ds_serial,
        }


class Run:
    """The mutable state of one verification (findings, timings, protocols that passed)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.start = self.mark = clock()
        self.reasons: list[Finding] = []
        self.warnings: list[Finding] = []
        self.skipped: list[str] = []
        self.timings: dict[str, float] = {}
        self.ds_serial: str | None = None
        self.protocols: list[str] = []

    def lap(self, name: str) -> None:
        now = self.clock()
        self.timings[name] = (now - self.mark) * 1000.0
        self.mark = now

    def add(self, findings: list[Finding]) -> None:
        self.reasons += [f for f in findings if f not in self.reasons]

    def verdict(self, files: dict[str, bytes], apdus: int) -> Verdict:
        self.timings["total"] = (self.clock() - self.start) * 1000.0
        return Verdict(tuple(self.reasons), tuple(self.warnings), tuple(self.skipped),
                       dict(files), apdus, dict(self.timings), self.ds_serial,
                       tuple(self.protocols))
