"""The line controller on real parts: pcscd with virtual encoders, emulated printers in their
own process speaking the printer protocol over pseudo-terminals, SoftHSM and QA."""

from __future__ import annotations

import threading
import time

import pytest

from applets.virtual.store import ChipStore
from hsm.errors import HSMError
from hsm.signer import DSSigner
from personalization.line.context import Outputs
from personalization.line.report import build_report, render_html
from personalization.prep import Preparer
from printers.emulator import write_control
from tests.personalization.line.conftest import Rig

pytestmark = [pytest.mark.pcscd, pytest.mark.softhsm]


def test_a_batch_runs_to_the_end_on_two_stations(rig: Rig, tmp_path) -> None:
    """Six cards on two stations: all handed out, printed faces written, stock reconciled
    with the printers' own counters, the batch closed and its personal data purged, the
    chain verified, and every chip passes QA again from the chip."""
    apps = rig.batch(6)
    result = rig.controller(parts=rig.parts()).run()
    assert result.finished and not result.errors
    report = build_report(rig.journal, "B1")
    assert report["applications"] == {"handed_out": 6, "failed": 0, "pending": 0}
    assert report["stock"]["reconciled"] and report["stock"]["printer_fed"] == 6
    assert {k: report["stock"][k] for k in ("fed", "handed_out", "rejected", "in_machine")} \
        == {"fed": 6, "handed_out": 6, "rejected": 0, "in_machine": 0}
    assert report["personal_data_purged"] and report["journal"]["chain_ok"]
    assert {c["station"] for c in report["cards"]} == {"station-1", "station-2"}
    assert {tuple(c["qa"]["protocols"]) for c in report["cards"]} == {("BAC", "PA", "AA")}
    assert rig.requalify(report, apps) == 6
    assert "<svg" in render_html(report)


def test_outputs_write_faces_and_chip_files(rig: Rig, tmp_path) -> None:
    """With outputs (the demo), each card gets front.png, back.png and the files QA read."""
    apps = rig.batch(2)
    parts = rig.parts()
    parts.outputs = Outputs(tmp_path / "out", dump_chips=True)
    assert rig.controller(parts=parts).run().finished
    for application in apps:
        folder = tmp_path / "out" / "cards" / application.application_id
        names = {p.name for p in folder.iterdir()}
        assert {"front.png", "back.png", "EF.COM.bin", "EF.DG1.bin", "EF.SOD.bin"} <= names


def _spoil_chip(rig: Rig, serial: str) -> None:
    """Make a blank in the feeder a defective chip: already locked, it refuses every write."""
    from applets.virtual.store import dump_memory, load_memory

    path = ChipStore(rig.bank.chips_dir)._path(serial)
    memory = load_memory(serial, path.read_bytes())
    memory.locked = True
    path.write_bytes(dump_memory(serial, memory))


class RefusesOnce:
    """The real DS signer, refusing its first signature as an HSM under load might (a plain
    SOD signer: it does not offer to follow DS rotations)."""

    def __init__(self, signer: DSSigner) -> None:
        self._signer, self.refused = signer, False

    @property
    def certificate_der(self) -> bytes:
        """The signer's DS certificate."""
        return self._signer.certificate_der

    @property
    def signature_algorithm(self) -> str:
        """The signer's algorithm."""
        return self._signer.signature_algorithm

    def sign(self, data: bytes) -> bytes:
        """Refuse once, then sign with the HSM."""
        if not self.refused:
            self.refused = True
            raise HSMError("CKR_DEVICE_ERROR (injected)")
        return self._signer.sign(data)


def _operator(rig: Rig, stop: threading.Event, cleared: list[str],
              then: dict[str, list[dict[str, object]]]) -> None:
    """Clear every station alarm a moment after it is raised, as the operator would, and
    inject the station's next fault from ``then`` (one per alarm cleared)."""
    seen = 0
    while not stop.wait(0.05):
        events = [e for e in rig.journal.events("B1") if e["kind"] == "station.alarm"]
        for event in events[seen:]:
            station = event["data"]["station"]
            time.sleep(0.1)
            follow = then.get(station, [])
            write_control(rig.printers.state_dir, station, follow.pop(0) if follow else {},
                          ["jam", "garbage", "ribbon_out_after", "cover_open"])
            cleared.append(f"{station}: {event['data']['alarm']}")
        seen = len(events)


def test_faults_during_a_batch_end_with_correct_accounting(rig: Rig) -> None:
    """Ribbon out then a jam on station-1, garbled replies on station-2, a chip that refuses
    to be written, an HSM that refuses once: each station stops on its alarm while the other
    goes on, the operator clears it, and the batch completes with every card accounted for."""
    apps = rig.batch(12)
    _spoil_chip(rig, rig.feeder("station-2")[0])
    parts = rig.parts()
    refusing = RefusesOnce(rig.hsm.signer)
    parts.preparer = Preparer(rig.profile, refusing)
    write_control(rig.printers.state_dir, "station-1", {"ribbon_out_after": 1}, [])
    stop, cleared = threading.Event(), []  # type: ignore[var-annotated]
    operator = threading.Thread(target=_operator, args=(
        rig, stop, cleared, {"station-1": [{"jam": "error"}]}))
    operator.start()
    garbled = threading.Timer(1.0, write_control, (rig.printers.state_dir, "station-2",
                                                   {"garbage": True}, []))
    try:
        garbled.start()
        result = rig.controller(parts=parts).run()
    finally:
        garbled.cancel()
        stop.set()
        operator.join()
    assert result.finished and not result.errors
    report = build_report(rig.journal, "B1")
    assert refusing.refused
    assert report["applications"]["handed_out"] == 12 and report["applications"]["pending"] == 0
    stock = report["stock"]
    assert stock["reconciled"], stock["differences"]
    assert stock["fed"] == stock["handed_out"] + stock["rejected"] and stock["in_machine"] == 0
    reasons = " ".join(report["reject_reasons"])
    assert "sign EF.SOD" in reasons  # the HSM refusal
    assert "generate Active Authentication key" in reasons  # the locked chip (SW 6985)
    assert "printing interrupted" in reasons  # the ribbon ran out mid-print: spoiled
    assert stock["rejected"] >= 3
    alarms = " ".join(cleared)
    assert "RIBBON" in alarms and "MECHANICAL" in alarms and "station-2" in alarms
    assert len({c["document_number"] for c in report["cards"]
                if c["state"] == "handed_out"}) == 12
    assert rig.requalify(report, apps) == 12
