"""``cardline bench``: speed figures, each a ratio against its physical bound in the same run.

Sections (each self-contained, on throwaway parts, never touching a line's keys or chips):
- ``prep``: data preparation vs raw HSM signatures with the same key (SoftHSM, one process);
- ``encode``: personalization through the real pcscd vs the raw APDU round trip, and vs its
  floor: the same commands replayed back to back to fresh blanks (wire plus the chip's work);
- ``qa``: full QA verification vs the raw APDU round trip, and vs its floor: the wire plus the
  chip's own processing for the check, as the card host measures it;
- ``printers``: card-face rendering time and bytes sent to the printer per card;
- ``line``: the journaled controller with 8 stations, fast timing (cards/s, CPU per card);
- ``line-realistic``: with realistic timing, throughput over the slowest station type's bound;
- ``intake``: ``batch create``'s import on every core against one worker, its peak memory at
  two batch sizes and its longest write transaction (``intakebench.py``);
- ``intake-line``: the realistic line's throughput over its bound while a batch is imported
  into the same journal;
- ``dashboard``: the dashboard's status API under 20 live streams and 20 pollers while the
  realistic line runs, against the same request alone, and the line's throughput over its
  bound meanwhile (``dashbench.py``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.transport.pcsc import PCSCTransport
from applets.virtual.bank import EncoderBank
from applets.virtual.bench import measure_roundtrip_ms
from applets.virtual.store import ChipStore
from hsm.bench import measure_signs_per_second
from hsm.certificates import certificate_to_pem
from personalization import dashbench, fleetline, intakebench, linebench
from personalization.applications.model import Application
from personalization.applications.stream import default_workers
from personalization.benchkit import BenchHSM, bench_applications, bench_hsm
from personalization.encoder import EncodedCard, EncoderStation
from personalization.face import card_face, card_layout
from personalization.prep import CardData, Preparer, build_dg13, build_mrz, prepare_all
from personalization.profile import DocumentProfile
from printers.bench import measure as measure_printer
from qa.bench import measure as measure_qa
from qa.checks import Expected
from qa.passive_auth import TrustStore
from qa.readback import keys_from_fields

BENCH_BASE_PORT = 30600  # clear of the demo line (31000) and the test bank (30100)
Figures = dict[str, Any]


@dataclass(slots=True)
class BenchContext:
    """What the sections share: a scratch folder, the profile, applications, the HSM."""

    root: Path
    profile: DocumentProfile
    applications: list[Application]
    hsm: BenchHSM
    seconds: float
    cards: int
    bank: EncoderBank | None = None
    roundtrip_ms: float | None = None
    encoded: list[tuple[str, CardData]] = field(default_factory=list)  # (chip serial, data)


def prep_section(ctx: BenchContext) -> Figures:
    """Prepared cards per second (DG1, DG2 of ~15 KB, DG13, COM, SOD signed) vs raw signs."""
    signs = measure_signs_per_second(ctx.hsm.signer, ctx.seconds)
    preparer = Preparer(ctx.profile, ctx.hsm.signer)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < ctx.seconds:
        count += sum(1 for _ in prepare_all(preparer, ctx.applications))  # the `prep` path
    rate = count / (time.perf_counter() - start)
    dg2 = statistics.mean(len(preparer.card_data(a).data_groups[2]) for a in ctx.applications[:10])
    return {"prep_cards_per_s": round(rate, 1), "hsm_signs_per_s": round(signs, 1),
            "prep_vs_hsm": round(rate / signs, 3), "prep_dg2_bytes": round(dg2)}


def _card_busy_ms(bank: EncoderBank) -> float:
    """The virtual card's own processing so far in encoder 0 (read between cards, untimed)."""
    return bank.client().work()[0].busy_s * 1000.0


class _Recorder:
    """A transport that keeps the commands it carries (to replay one card's traffic)."""

    def __init__(self, inner: PCSCTransport) -> None:
        self.inner = inner
        self.commands: list[CommandAPDU] = []

    @property
    def max_command_data(self) -> int:
        """The inner path's limit."""
        return self.inner.max_command_data

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        """Keep and forward."""
        self.commands.append(command)
        return self.inner.transmit(command)


def _arrive(bank: EncoderBank, transport: PCSCTransport, serial: str) -> None:
    bank.client().insert(0, serial)
    transport.wait_for_card(5)


def _leave(bank: EncoderBank, transport: PCSCTransport) -> None:
    bank.client().remove(0)
    transport.wait_for_removal(5)


def _replay_ms(bank: EncoderBank, transport: PCSCTransport, commands: list[CommandAPDU],
               serials: list[str]) -> float:
    """The floor of one card's traffic: its exact commands sent back to back, no terminal work
    between them, to fresh blanks (the chip does all its work again, key generation included)."""
    times: list[float] = []
    for serial in serials:
        _arrive(bank, transport, serial)
        started = time.perf_counter()
        for command in commands:
            transport.transmit(command).check("replayed command")
        times.append(time.perf_counter() - started)
        _leave(bank, transport)
    return statistics.median(times) * 1000.0


def _floor(prefix: str, ms: float, wire_ms: float, floor_ms: float) -> Figures:
    """The floor against the wire (above the goal ⇒ the goal is out of reach on this stack)
    and the run against the floor (what the terminal adds)."""
    return {f"{prefix}_floor_ms": round(floor_ms, 3),
            f"{prefix}_floor_vs_wire": round(floor_ms / wire_ms, 3),
            f"{prefix}_ms_vs_floor": round(ms / floor_ms, 3)}


def encode_section(ctx: BenchContext) -> Figures:
    """APDUs and milliseconds per personalized card, against the raw round trip and against
    the floor of the same traffic (the recorded commands replayed to fresh blanks)."""
    bank = _bank(ctx)
    probe = ChipStore(bank.chips_dir).create_blanks(1, "PROBE")[0]
    bank.client().insert(0, probe)
    roundtrip = measure_roundtrip_ms(bank.reader_name(0), 400)
    preparer = Preparer(ctx.profile, ctx.hsm.signer)
    serials = ChipStore(bank.chips_dir).create_blanks(ctx.cards, "BENCH")
    blanks = ChipStore(bank.chips_dir).create_blanks(max(3, ctx.cards // 2), "REPLAY")
    with PCSCTransport(bank.reader_name(0)) as transport:
        _leave(bank, transport)
        recorder = _Recorder(transport)
        station = EncoderStation("bench", recorder, preparer)
        apps = ctx.applications
        cards: list[EncodedCard] = []
        for i, serial in enumerate(serials):
            data = preparer.card_data(apps[i % len(apps)])
            _arrive(bank, transport, serial)
            recorder.commands.clear()
            cards.append(station.personalize(data, serial))
            ctx.encoded.append((serial, data))
            _leave(bank, transport)
        floor = _replay_ms(bank, transport, recorder.commands, blanks)
    ctx.roundtrip_ms = roundtrip
    measured = cards[1:] or cards  # the first card also learns the chip's limits
    apdus = statistics.mean(c.apdus for c in measured)
    minimum = statistics.mean(c.min_apdus for c in measured)
    ms = statistics.median(c.seconds * 1000 for c in measured)
    return {"apdu_roundtrip_ms": round(roundtrip, 4), "encode_apdus_per_card": round(apdus, 2),
            "min_apdus_per_card": round(minimum, 2),
            "encode_apdus_vs_min": round(apdus / minimum, 3),
            "encode_ms_per_card": round(ms, 3),
            "encode_ms_vs_wire": round(ms / (apdus * roundtrip), 3),
            **_floor("encode", ms, apdus * roundtrip, floor)}


def qa_section(ctx: BenchContext) -> Figures:
    """Full QA of a personalized card (zero-latency virtual card) against the raw round trip."""
    if not ctx.encoded:
        encode_section(ctx)
    bank, (serial, data) = _bank(ctx), ctx.encoded[-1]
    application = next(a for a in ctx.applications if a.application_id == data.application_id)
    trust = TrustStore.from_pem(certificate_to_pem(ctx.hsm.csca_der).encode("ascii"))
    expected = Expected(mrz=data.mrz.text, dg13=build_dg13(application, ctx.profile),
                        dg2_image=application.portrait.jpeg)
    with PCSCTransport(bank.reader_name(0)) as transport:
        _arrive(bank, transport, serial)
        figures = measure_qa(transport, keys_from_fields(*data.bac_key), trust,
                             at=datetime.now(UTC), cards=ctx.cards, expected=expected,
                             card_ms=lambda: _card_busy_ms(bank))
        _leave(bank, transport)  # pcscd has seen the reader empty before anyone reuses it
    wire = figures["qa_apdus_per_card"] * (ctx.roundtrip_ms or 1.0)
    card_ms = figures.pop("qa_card_ms")
    # QA's traffic cannot be replayed (every BAC session has fresh keys), so its floor is the
    # wire plus the chip's own work for the check, which leaves out the bytes in flight.
    return {**figures, "qa_ms_vs_wire": round(figures["qa_ms_per_card"] / wire, 3),
            "qa_card_ms_per_card": round(card_ms, 3),
            **_floor("qa", figures["qa_ms_per_card"], wire, wire + card_ms)}


def printers_section(ctx: BenchContext) -> Figures:
    """Rendering time and bytes on the wire for one card face (zero-timing emulator on a pty)."""
    application = ctx.applications[0]
    face = card_face(application, build_mrz(application, ctx.profile), ctx.profile)
    return measure_printer(face, card_layout(ctx.profile), cards=max(3, min(ctx.cards, 10)))


LINE_STATIONS = 8
LINE_CARDS_PER_STATION = 6
REALISTIC_STATIONS = 2
REALISTIC_CARDS_PER_STATION = 2


def _own_pcscd(ctx: BenchContext) -> None:
    """One pcscd per machine: the single-encoder bank of the other sections goes first."""
    if ctx.bank is not None:
        ctx.bank.down()
        ctx.bank = None


def line_section(ctx: BenchContext) -> Figures:
    """8 stations, fast timing, full QA, the journal: cards per second and CPU per card."""
    _own_pcscd(ctx)
    run = linebench.run_line(ctx.root / "line-fast", ctx.profile, ctx.hsm,
                             stations=LINE_STATIONS,
                             cards=LINE_STATIONS * LINE_CARDS_PER_STATION, timing="fast",
                             base_port=BENCH_BASE_PORT, bare_cycles=3)
    assert run.cycle_s is not None  # asked for  # noqa: S101
    throughput = run.cards / run.seconds
    return {
        "line_stations": LINE_STATIONS,
        "line_cards": run.cards,
        "line_cards_per_s": round(throughput, 2),
        "controller_cpu_ms_per_card": round(run.cpu_seconds / max(1, run.cards) * 1000, 2),
        "station_cycle_fast_s": round(run.cycle_s, 3),
        "line_fast_vs_bound": round(throughput / (LINE_STATIONS / run.cycle_s), 3),
    }


def line_realistic_section(ctx: BenchContext) -> Figures:
    """Realistic timing: throughput over ``stations / one station's bare cycle``."""
    _own_pcscd(ctx)
    run = linebench.run_line(ctx.root / "line-realistic", ctx.profile, ctx.hsm,
                             stations=REALISTIC_STATIONS,
                             cards=REALISTIC_STATIONS * REALISTIC_CARDS_PER_STATION,
                             timing="realistic", base_port=BENCH_BASE_PORT, bare_cycles=1)
    assert run.cycle_s is not None  # asked for  # noqa: S101
    throughput = run.cards / run.seconds
    bound = REALISTIC_STATIONS / run.cycle_s
    return {
        "station_cycle_s": round(run.cycle_s, 2),
        "line_realistic_cards_per_s": round(throughput, 4),
        "line_bound_cards_per_s": round(bound, 4),
        "line_vs_bound": round(throughput / bound, 3),
    }


def fleet_line_section(ctx: BenchContext) -> Figures:
    """Three lines × two stations at realistic timing on one PostgreSQL journal, over
    ``6 / one station's bare cycle`` (fleetline.py)."""
    _own_pcscd(ctx)
    return fleetline.fleet_line(ctx.root, ctx.profile, ctx.hsm, base_port=BENCH_BASE_PORT)


INTAKE_RECORDS = 4000  # the throughput file
INTAKE_SINGLE_RECORDS = 2000  # the same records on one worker (the same work per record)
INTAKE_MEMORY_RECORDS = (2000, 20_000)  # the two batch sizes of the memory figure


def intake_section(ctx: BenchContext) -> Figures:
    """``batch create``'s import in a process of its own: records/s on every core against one
    worker, peak memory at two batch sizes, the longest write transaction it held."""
    folder = ctx.root / "intake"
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {INTAKE_RECORDS, INTAKE_SINGLE_RECORDS, *INTAKE_MEMORY_RECORDS}
    files = {n: intakebench.repeated_file(folder, n) for n in sorted(sizes)}

    def run(count: int, workers: int | None, watch: bool = True) -> intakebench.ImportRun:
        journal = folder / f"journal-{count}-{workers or 'all'}-{watch}.db"
        return intakebench.measure_import(files[count], journal, ctx.profile.name, workers,
                                          watch=watch)

    every, one = run(INTAKE_RECORDS, None, False), run(INTAKE_SINGLE_RECORDS, 1, False)
    small, large = (run(n, None) for n in INTAKE_MEMORY_RECORDS)
    rate, single = every.records / every.seconds, one.records / one.seconds
    figures: Figures = {
        "intake_workers": default_workers(),
        "intake_apps_per_s": round(rate, 1),
        "intake_single_core_apps_per_s": round(single, 1),
        "intake_parallel_vs_single": round(rate / single, 3),
    }
    for run_, count in ((small, INTAKE_MEMORY_RECORDS[0]), (large, INTAKE_MEMORY_RECORDS[1])):
        figures[f"intake_peak_mb_{count}"] = round(run_.peak_mb, 1)
        figures[f"intake_peak_mb_per_1k_{count}"] = round(run_.peak_mb / (count / 1000), 2)
    return {**figures,
            "intake_memory_growth": round(large.peak_mb / small.peak_mb, 3),
            f"intake_apps_per_s_{INTAKE_MEMORY_RECORDS[1]}": round(
                large.records / large.seconds, 1),
            "intake_lock_max_ms": round(large.lock_max_ms, 1),
            "intake_writer_wait_max_ms": round(large.writer_wait_max_ms, 1)}


INTAKE_LINE_RECORDS = 20_000  # more than the line's run takes to import: they overlap


def intake_line_section(ctx: BenchContext) -> Figures:
    """The realistic line's throughput over its bound while a batch is being imported into
    the same journal (the import started first and still running when the line is done)."""
    _own_pcscd(ctx)
    folder = ctx.root / "intake-line"
    folder.mkdir(parents=True, exist_ok=True)
    apps = intakebench.repeated_file(folder, INTAKE_LINE_RECORDS, seed=7)
    line_root = ctx.root / "line-during-intake"
    with intakebench.importing(apps, line_root / "journal.db", ctx.profile.name,
                               "intake") as written:
        before = written()
        run = linebench.run_line(line_root, ctx.profile, ctx.hsm, stations=REALISTIC_STATIONS,
                                 cards=REALISTIC_STATIONS * REALISTIC_CARDS_PER_STATION,
                                 timing="realistic", base_port=BENCH_BASE_PORT, bare_cycles=1)
        during = written() - before
    assert run.cycle_s is not None  # asked for  # noqa: S101
    throughput = run.cards / run.seconds
    return {"intake_line_vs_bound": round(throughput / (REALISTIC_STATIONS / run.cycle_s), 3),
            "intake_line_records_imported_meanwhile": during,
            "intake_line_overlapped": during > 0 and during + before < INTAKE_LINE_RECORDS}


def dashboard_section(ctx: BenchContext) -> Figures:
    """The realistic line with the dashboard served on its journal, twenty screens' worth of
    clients on it: the status API's p95 against the same request alone, and the line's
    throughput over its bound meanwhile."""
    _own_pcscd(ctx)
    return dashbench.measure(ctx.root / "line-dashboard", ctx.profile, ctx.hsm,
                             stations=REALISTIC_STATIONS,
                             cards=REALISTIC_STATIONS * REALISTIC_CARDS_PER_STATION,
                             timing="realistic", base_port=BENCH_BASE_PORT)


def _bank(ctx: BenchContext) -> EncoderBank:
    if ctx.bank is None:
        ctx.bank = EncoderBank(ctx.root / "bank", 1, BENCH_BASE_PORT)
        ctx.bank.up()
    return ctx.bank


SECTIONS: dict[str, Callable[[BenchContext], Figures]] = {
    "prep": prep_section,
    "encode": encode_section,
    "qa": qa_section,
    "printers": printers_section,
    "line": line_section,
    "line-realistic": line_realistic_section,
    "intake": intake_section,
    "intake-line": intake_line_section,
    "fleet-line": fleet_line_section,
    "dashboard": dashboard_section,
}


def run(root: Path, profile: DocumentProfile, sections: list[str], *, seconds: float = 2.0,
        cards: int = 12, applications: int = 40) -> Figures:
    """Run the named sections; return their figures."""
    apps = bench_applications(root, profile, applications)
    figures: Figures = {}
    with bench_hsm(root) as hsm:
        ctx = BenchContext(root, profile, apps, hsm, seconds, cards)
        try:
            for name in sections:
                figures.update(SECTIONS[name](ctx))
        finally:
            if ctx.bank is not None:
                ctx.bank.down()
    return figures
