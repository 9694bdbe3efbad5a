"""Line figures for ``cardline bench``: the journaled controller on a simulated line.

- ``line_cards_per_s``: cards handed out per second with 8 stations, fast timing, full QA and
  the journal; ``controller_cpu_ms_per_card``: CPU of the controller's process per card;
  ``line_fast_vs_bound``: the same against 8 bare station cycles (fast timing: what is left
  is software and pcscd, which notices a vpcd card arriving or leaving only at its 400 ms
  presence poll).
- ``line_vs_bound``: with realistic timing, throughput over the bound set by the slowest
  station type, measured in the same run: one card driven through one station's physical
  steps (feed, encode, QA, print, eject) with no journal and no scheduler gives the station's
  cycle; the bound is ``stations / cycle`` (the shared HSM, thousands of signatures a second,
  is never the slower one here).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from applets.transport.pcsc import PCSCTransport
from applets.virtual.bank import EncoderBank
from hsm.certificates import certificate_to_pem
from personalization.applications.model import Application
from personalization.benchkit import BenchHSM, bench_applications, eac_access
from personalization.encoder import EncoderStation
from personalization.face import card_face, card_layout
from personalization.journal import Journal
from personalization.line.controller import LineController, LineParts
from personalization.line.signatures import signature_recorder
from personalization.line.station import StationSpec
from personalization.prep import Preparer, build_dg13, document_number
from personalization.profile import DocumentProfile
from personalization.simline import PrinterLine
from printers.driver import PrinterDriver
from printers.face import render_card
from printers.link import SerialLink
from qa.checks import Expected, fingerprints_of
from qa.errors import QAError
from qa.passive_auth import TrustStore
from qa.readback import keys_from_fields
from qa.verify import verify_card


@dataclass(frozen=True, slots=True)
class LineRun:
    """One measured batch."""

    cards: int
    seconds: float
    cpu_seconds: float
    cycle_s: float | None = None  # one station's bare cycle, when measured


def line_parts(profile: DocumentProfile, hsm: BenchHSM) -> LineParts:
    trust = TrustStore.from_pem(certificate_to_pem(hsm.csca_der).encode("ascii"))
    return LineParts(Preparer(profile, hsm.signer), profile, card_layout(profile), trust,
                     poll_s=0.1, eac=hsm.eac)


def bare_cycle(spec: StationSpec, parts: LineParts, hsm: BenchHSM, root: Path,
               cycles: int) -> float:
    """Cards through one station's physical steps, with none of the controller; the median
    seconds per card (back-to-back cards wait for pcscd's presence polls as a line does)."""
    applications = bench_applications(root / "bare", parts.profile, cycles, seed=99)
    with PrinterDriver(SerialLink(spec.printer_port), spec.name) as printer, \
            PCSCTransport(spec.reader) as reader:
        printer.set_host_error_mode()
        return statistics.median(_one_bare_card(printer, reader, spec, parts, hsm, app)
                                 for app in applications)


def _one_bare_card(printer: PrinterDriver, reader: PCSCTransport, spec: StationSpec,
                   parts: LineParts, hsm: BenchHSM, application: Application) -> float:
    profile = parts.profile
    data = parts.preparer.card_data(application)
    expected = Expected(mrz=data.mrz.text, dg13=build_dg13(application, profile),
                        dg2_image=application.portrait.jpeg,
                        fingerprints=fingerprints_of(data.data_groups.get(3)))
    start = time.perf_counter()
    serial = printer.feed_to_encoder()
    reader.wait_for_card(5)
    EncoderStation(spec.name, reader, parts.preparer,
                   hsm.eac.material if hsm.eac else None).personalize(data, serial)
    reader.reconnect(reset=True)
    verdict = verify_card(reader, keys_from_fields(*data.bac_key), parts.trust,
                          at=datetime.now(UTC), expected=expected,
                          access=eac_access(hsm, data))
    if not verdict.passed:
        raise QAError("the bench card fails QA: " + ", ".join(verdict.codes))
    rendered = render_card(card_face(application, data.mrz, profile), parts.layout)
    printer.release_from_encoder()
    printer.print_card(rendered)
    printer.eject()
    reader.wait_for_removal(5)
    return time.perf_counter() - start


def run_line(root: Path, profile: DocumentProfile, hsm: BenchHSM, *, stations: int,
             cards: int, timing: str, base_port: int, bare_cycles: int,
             during: Callable[[], AbstractContextManager[object]] | None = None) -> LineRun:
    """Run one batch of ``cards`` on ``stations`` simulated stations; measure it.
    ``during``: a context the run happens in, entered once the batch exists and the bare
    cycle is measured (the line's parts all up), left when the controller is done."""
    bank = EncoderBank(root / "bank", stations, base_port, timing=timing)
    names = {f"station-{i + 1}": i for i in range(stations)}
    blanks = cards // stations + bare_cycles + 6
    apps = bench_applications(root, profile, cards)
    parts = line_parts(profile, hsm)
    with bank, PrinterLine(root / "bank", names, bank.host_socket, bank.chips_dir, timing,
                           blanks) as printers, Journal(root / "journal.db") as journal:
        specs = [StationSpec(n, printers.port(n), bank.reader_name(i)) for n, i in names.items()]
        cycle = bare_cycle(specs[0], parts, hsm, root, bare_cycles) if bare_cycles else None
        journal.create_batch("bench", source="bench", profile=profile.name, max_attempts=3,
                             valid=[(n, a, document_number(a)) for n, a in enumerate(apps)],
                             invalid=[])
        # the controller's preparer records each signature, as a production run does
        recorded = replace(parts, preparer=Preparer(
            profile, hsm.signer, signature_recorder(journal, "bench", "bench")))
        controller = LineController(journal, "bench", specs, recorded)
        with during() if during is not None else nullcontext():
            cpu = time.process_time()
            result = controller.run()
            cpu = time.process_time() - cpu
    return LineRun(result.handed_out, result.seconds, cpu, cycle)
