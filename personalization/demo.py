"""The demo line: synthetic applications through virtual encoders, emulated printers, the HSM
and QA — the same interfaces a factory uses (PC/SC readers, serial printers, PKCS#11).

A simple in-order runner, one thread per station: feed a blank to the encoder, personalize it,
verify it over PC/SC, then print and eject it — or reject it and try the application again on
a new blank (bounded). It keeps no journal; the journaled controller is a separate piece.
"""

from __future__ import annotations

import html
import json
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from applets.transport.pcsc import PCSCTransport
from applets.virtual.bank import EncoderBank
from applets.virtual.host import HostClient
from applets.virtual.store import ChipStore
from personalization.applications.model import Application
from personalization.encoder import EncodeError, EncoderStation
from personalization.face import card_face, card_layout
from personalization.prep import CardData, Preparer, build_dg13
from personalization.profile import DocumentProfile
from printers.driver import PrinterDriver
from printers.emulator import PrinterEmulator
from printers.errors import PrinterError
from printers.face import render_card
from printers.link import SerialLink
from printers.machine import FAST, REALISTIC
from qa.checks import Expected
from qa.passive_auth import TrustStore
from qa.readback import keys_from_fields
from qa.verify import verify_card

_log = structlog.get_logger(__name__)
MAX_ATTEMPTS = 2


@dataclass(slots=True)
class CardRecord:
    """One physical card fed (a requeued application appears once per attempt)."""

    application_id: str
    document_number: str
    chip_serial: str
    station: str
    state: str
    qa: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


class ChipArrival:
    """The printer's encoding station seen by the card host: the card the printer moved to the
    station is the chip the PC/SC reader sees."""

    def __init__(self, client: HostClient, reader_index: int) -> None:
        self._client, self._index = client, reader_index

    def card_arrived(self, chip_serial: str) -> None:
        """Plug the chip into the reader."""
        self._client.insert(self._index, chip_serial)

    def card_left(self, chip_serial: str) -> None:
        """Take it out (the card host persists the chip first)."""
        self._client.remove(self._index)


@dataclass(slots=True)
class DemoLine:
    """Everything a station thread needs."""

    profile: DocumentProfile
    preparer: Preparer
    trust: TrustStore
    out: Path
    dump_chips: bool
    work: queue.Queue[tuple[Application, int]]
    records: list[CardRecord] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _qa(transport: PCSCTransport, data: CardData, application: Application,
        line: DemoLine) -> dict[str, Any]:
    transport.reconnect(reset=True)  # a fresh session, as a separate QA terminal would have
    keys = keys_from_fields(*data.bac_key)
    expected = Expected(mrz=data.mrz.text, dg13=build_dg13(application, line.profile),
                        dg2_image=application.portrait.jpeg)
    verdict = verify_card(transport, keys, line.trust, at=datetime.now(UTC), expected=expected)
    if line.dump_chips and verdict.passed:
        folder = line.out / "cards" / application.application_id
        folder.mkdir(parents=True, exist_ok=True)
        for name, body in verdict.files.items():
            (folder / f"{name}.bin").write_bytes(body)
    return verdict.as_dict()


def _one_card(name: str, driver: PrinterDriver, transport: PCSCTransport,
              station: EncoderStation, line: DemoLine, application: Application) -> CardRecord:
    start = time.perf_counter()
    data = line.preparer.card_data(application)
    serial = driver.feed_to_encoder()
    record = CardRecord(application.application_id, data.document_number, serial, name,
                        "rejected")
    try:
        transport.wait_for_card(5)
        station.personalize(data, serial)
        record.qa = _qa(transport, data, application, line)
    except EncodeError as exc:
        record.error = f"{exc.step}: {exc.reason}"
    if record.qa.get("verdict") == "pass":
        face = card_face(application, data.mrz, line.profile)
        rendered = render_card(face, card_layout(line.profile))
        driver.release_from_encoder()
        driver.print_card(rendered)
        driver.eject()
        folder = line.out / "cards" / application.application_id
        folder.mkdir(parents=True, exist_ok=True)
        rendered.front.save(folder / "front.png")
        rendered.back.save(folder / "back.png")
        record.state = "handed_out"
    else:
        driver.reject()
    transport.wait_for_removal(5)
    record.seconds = time.perf_counter() - start
    return record


def _station(name: str, port: str, reader: str, line: DemoLine) -> None:
    with PrinterDriver(SerialLink(port), name) as driver, PCSCTransport(reader) as transport:
        driver.set_host_error_mode()
        station = EncoderStation(name, transport, line.preparer)
        while True:
            try:
                application, attempt = line.work.get_nowait()
            except queue.Empty:
                return
            try:
                record = _one_card(name, driver, transport, station, line, application)
            except PrinterError as exc:
                _log.warning("demo.printer_fault", station=name, error=exc.__class__.__name__)
                line.work.put((application, attempt))
                return  # the station stops; the others go on
            with line.lock:
                line.records.append(record)
            if record.state != "handed_out" and attempt + 1 < MAX_ATTEMPTS:
                line.work.put((application, attempt + 1))


def run_line(line: DemoLine, bank: EncoderBank, stations: int, blanks_per_station: int,
             realistic: bool) -> None:
    """Start one emulated printer per station and run the stations until the work is done."""
    chips = ChipStore(bank.chips_dir)
    client = bank.client()
    emulators = []
    try:
        threads = []
        for index in range(stations):
            name = f"station-{index + 1}"
            blanks = chips.create_blanks(blanks_per_station, f"S{index + 1}-")
            emulator = PrinterEmulator(name, blanks=blanks, timing=REALISTIC if realistic
                                       else FAST, station=ChipArrival(client, index),
                                       state_dir=line.out / "printers")
            emulators.append(emulator.__enter__())
            port = emulator.serve_pty()
            threads.append(threading.Thread(target=_station, name=name, args=(
                name, port, bank.reader_name(index), line)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for emulator in emulators:
            emulator.__exit__(None, None, None)


def report(line: DemoLine, batch: str, applications: list[Application]) -> dict[str, Any]:
    """The report.json shape of the line issue: every card fed, applications, stock."""
    cards = [asdict(r) for r in line.records]
    handed = {r.application_id for r in line.records if r.state == "handed_out"}
    tried = {r.application_id for r in line.records}
    failed = tried - handed
    fed = len(line.records)
    out = sum(1 for r in line.records if r.state == "handed_out")
    return {
        "batch": batch,
        "cards": cards,
        "applications": {"handed_out": len(handed), "failed": len(failed),
                         "pending": len(applications) - len(tried)},
        "stock": {"fed": fed, "handed_out": out, "rejected": fed - out, "in_machine": 0},
    }


def _row(card: dict[str, Any]) -> str:
    reasons = ", ".join(r["code"] for r in card["qa"].get("reasons", [])) or card["error"] or ""
    cells = (card["application_id"], card["chip_serial"], card["station"], card["state"],
             reasons, f"{card['seconds']:.2f}")
    return "<tr>" + "".join(f"<td class='{html.escape(card['state'])}'>{html.escape(c)}</td>"
                            for c in cells) + "</tr>"


def render_html(summary: dict[str, Any]) -> str:
    """A page a person reads: counts, then one row per card fed (values escaped)."""
    rows = "".join(_row(card) for card in summary["cards"])
    counts = html.escape(json.dumps({k: summary[k] for k in ("applications", "stock")}))
    return (
        "<!doctype html><meta charset='utf-8'><title>cardline demo "
        f"{html.escape(summary['batch'])}</title><style>body{{font-family:sans-serif}}"
        "td,th{padding:2px 8px}.handed_out{color:green}.rejected{color:#b00}</style>"
        f"<h1>Batch {html.escape(summary['batch'])}</h1><p><code>{counts}</code></p>"
        "<table><tr><th>application</th><th>chip</th><th>station</th><th>state</th>"
        f"<th>reasons</th><th>s</th></tr>{rows}</table>"
    )
