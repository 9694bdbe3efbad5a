"""The dashboard's reads without a browser: key warnings and CRL due dates, the audit view
by actor, and the Watch's answers to an unknown batch or a stranger's token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from personalization.service.dashboard import Watch, audit_view, keys_view
from personalization.service.errors import NotFound
from personalization.service.setup import LineSetup
from tests.support.crew import enrol
from tests.support.embedded import embedded_line

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _key(label: str, *, ends_in_days: float, signed: int = 0, limit: int | None = 1000,
         status: str = "active", role: str = "DS") -> dict[str, object]:
    return {"label": label, "role": role, "algorithm": "ecdsa-p256", "status": status,
            "signed": signed, "max_documents": limit,
            "usage_not_before": (NOW - timedelta(days=10)).isoformat(),
            "usage_not_after": (NOW + timedelta(days=ends_in_days)).isoformat(),
            "created_at": NOW.isoformat(), "officers": ["minh", "thu"]}


def test_keys_are_flagged_before_they_run_out_of_days_or_documents() -> None:
    view = keys_view([_key("DS-OK", ends_in_days=90, signed=10),
                      _key("DS-SOON", ends_in_days=12),
                      _key("DS-FULL", ends_in_days=90, signed=950),
                      _key("DS-OVER", ends_in_days=-1),
                      _key("DS-OLD", ends_in_days=-1, status="retired"),
                      _key("CSCA", ends_in_days=1000, limit=None, role="CSCA")], [], now=NOW)
    warnings = {row["label"]: row["warnings"] for row in view["keys"]}
    assert warnings == {"DS-OK": [], "DS-SOON": ["expires_soon"], "DS-FULL": ["near_limit"],
                        "DS-OVER": ["expired"], "DS-OLD": [], "CSCA": []}
    usage = {row["label"]: row["usage"] for row in view["keys"]}
    assert usage["DS-FULL"] == 0.95 and usage["CSCA"] is None
    assert view["crl_due"] is None and not view["crl_overdue"]


def test_the_next_crl_is_due_at_the_newest_crls_next_update() -> None:
    crls = [{"number": 2, "issued_at": (NOW - timedelta(days=40)).isoformat(),
             "next_update": (NOW - timedelta(days=10)).isoformat(), "officers": []},
            {"number": 1, "issued_at": (NOW - timedelta(days=80)).isoformat(),
             "next_update": (NOW - timedelta(days=50)).isoformat(), "officers": []}]
    view = keys_view([], crls, now=NOW)
    assert view["crl_due"] == crls[0]["next_update"] and view["crl_overdue"]
    fresh = [{**crls[0], "next_update": (NOW + timedelta(days=20)).isoformat()}]
    assert not keys_view([], fresh, now=NOW)["crl_overdue"]


def test_the_audit_view_lists_the_newest_events_first_by_actor() -> None:
    events = [{"seq": n, "at": f"2026-11-30T0{n}:00:00", "card": None, "kind": "people.acted",
               "data": {"actor": "an" if n % 2 else "quy", "action": "batch.control",
                        "target": "B1"}} for n in range(1, 6)]
    view = audit_view({"ok": True}, events)  # type: ignore[arg-type]
    assert [e["seq"] for e in view["events"]] == [5, 4, 3, 2, 1]
    assert view["actors"] == {"an": 3, "quy": 2}


def test_a_watch_knows_no_stranger_and_no_unknown_batch(tmp_path: Path) -> None:
    config = embedded_line(tmp_path)
    enrol(config)
    watch = Watch(LineSetup.load(config).config)
    try:
        assert watch.current_batch() is None
        assert watch.snapshot(None, "en")["batch"] is None
        assert watch.person("ab" * 32) is None and watch.person("not hex") is None
        with pytest.raises(NotFound, match="no batch named"):
            watch.snapshot("NOPE", "en")
        with pytest.raises(NotFound):
            watch.qa_card("NOPE", 1, "en")
        assert watch.audit()["verdict"]["ok"]
    finally:
        watch.close()
