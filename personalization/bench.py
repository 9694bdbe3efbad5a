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
from applets.virtual.bench import roundtrip_ms
from applets.virtual.store import ChipStore
from hsm.bench import measure_signs_per_second
from hsm.certificates import certificate_to_pem
from personalization import dashbench, fleetline, intakebench, linebench
from personalization.applications.model import Application
from personalization.applications.stream import default_workers
from personalization.benchkit import (
    BenchHSM,
    EACMaker,
    bench_applications,
    bench_hsm,
    eac_access,
)
from personalization.encoder import EncodedCard, EncoderStation
from personalization.face import card_face, card_layout
from personalization.prep import CardData, Preparer, build_dg13, build_mrz, prepare_all
from personalization.profile import DocumentProfile
from printers.bench import measure as measure_printer
from qa.bench import checks as qa_checks
from qa.checks import Expected, fingerprints_of
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


def spread(name: str, samples: list[float], digits: int = 3) -> Figures:
    """A figure as the median of its samples, with their min–max beside it (``NAME_range``)."""
    return {name: round(statistics.median(samples), digits),
            f"{name}_range": [round(min(samples), digits), round(max(samples), digits)]}


PREP_SLICES = 16  # pairs of (raw signatures, preparation) slices the prep figures come from


def prep_section(ctx: BenchContext) -> Figures:
    """Prepared cards per second (DG1, DG2 of ~15 KB, DG3 when the profile has it, DG13,
    COM, SOD signed) vs raw signatures with the same key, in pairs of short slices taken back
    to back so each preparation rate meets the signing rate of the same moment; the figure is
    the median pair's ratio."""
    preparer = Preparer(ctx.profile, ctx.hsm.signer)
    sum(1 for _ in prepare_all(preparer, ctx.applications))  # warm-up: imports, caches
    slice_s = ctx.seconds / 8  # 0.25 s by default: the section takes 2 × 2 × seconds
    signs: list[float] = []
    rates: list[float] = []
    for _ in range(PREP_SLICES):
        signs.append(measure_signs_per_second(ctx.hsm.signer, slice_s))
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < slice_s:
            count += sum(1 for _ in prepare_all(preparer, ctx.applications))  # the `prep` path
        rates.append(count / (time.perf_counter() - start))
    sizes = [preparer.card_data(a).data_groups for a in ctx.applications[:10]]
    figures = {**spread("prep_cards_per_s", rates, 1), **spread("hsm_signs_per_s", signs, 1),
               **spread("prep_vs_hsm", [r / h for r, h in zip(rates, signs, strict=True)]),
               "prep_dg2_bytes": round(statistics.mean(len(dgs[2]) for dgs in sizes))}
    if 3 in ctx.profile.data_groups:
        figures["prep_dg3_bytes"] = round(statistics.mean(len(dgs[3]) for dgs in sizes))
    return figures


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


def _replay_ms(transport: PCSCTransport, commands: list[CommandAPDU]) -> float:
    """The floor of one card's traffic: its exact commands sent back to back to a fresh blank,
    no terminal work between them (the chip does all its work again, key generation
    included)."""
    started = time.perf_counter()
    for command in commands:
        transport.transmit(command).check("replayed command")
    return (time.perf_counter() - started) * 1000.0


WIRE_PROBES = 40  # round trips in each burst that times the bare wire between two runs


def encode_section(ctx: BenchContext) -> Figures:
    """APDUs and milliseconds per personalized card, against the raw round trip and against
    the floor of the same traffic, in pairs: each card's recorded commands replayed at once to
    a fresh blank, and a burst of bare round trips right after, so each card is compared with
    its own floor and wire measured at the same moment (a 2-core machine's load drifts)."""
    bank = _bank(ctx)
    preparer = Preparer(ctx.profile, ctx.hsm.signer)
    store = ChipStore(bank.chips_dir)
    serials = store.create_blanks(ctx.cards + 1, "BENCH")  # the first also learns the limits
    blanks = store.create_blanks(ctx.cards + 1, "REPLAY")
    station_eac = ctx.hsm.eac.material if ctx.hsm.eac else None
    encode: list[float] = []
    floor: list[float] = []
    wire: list[float] = []
    cards: list[EncodedCard] = []
    with PCSCTransport(bank.reader_name(0)) as transport:
        recorder = _Recorder(transport)
        station = EncoderStation("bench", recorder, preparer, station_eac)
        apps = ctx.applications
        for i, (serial, blank) in enumerate(zip(serials, blanks, strict=True)):
            data = preparer.card_data(apps[i % len(apps)])
            _arrive(bank, transport, serial)
            recorder.commands.clear()
            card = station.personalize(data, serial)
            ctx.encoded.append((serial, data))
            _leave(bank, transport)
            _arrive(bank, transport, blank)
            replayed = _replay_ms(transport, recorder.commands)
            rt = roundtrip_ms(transport, WIRE_PROBES)
            _leave(bank, transport)
            if i:  # the first card and its replay warm the path up
                cards.append(card)
                encode.append(card.seconds * 1000.0)
                floor.append(replayed)
                wire.append(card.apdus * rt)
    ctx.roundtrip_ms = statistics.median(w / c.apdus for w, c in zip(wire, cards, strict=True))
    apdus = statistics.mean(c.apdus for c in cards)
    minimum = statistics.mean(c.min_apdus for c in cards)
    return {"apdu_roundtrip_ms": round(ctx.roundtrip_ms, 4),
            "encode_apdus_per_card": round(apdus, 2),
            "min_apdus_per_card": round(minimum, 2),
            "encode_apdus_vs_min": round(apdus / minimum, 3),
            **spread("encode_ms_per_card", encode),
            **spread("encode_floor_ms", floor),
            **spread("encode_ms_vs_wire", [e / w for e, w in zip(encode, wire, strict=True)]),
            **spread("encode_floor_vs_wire", [f / w for f, w in zip(floor, wire, strict=True)]),
            **spread("encode_ms_vs_floor", [e / f for e, f in zip(encode, floor, strict=True)])}


def qa_section(ctx: BenchContext) -> Figures:
    """Full QA of a personalized card, each check against its floor: the wire (its APDUs at
    the bare round trip, timed in a burst right after it) plus the chip's own processing for
    it, as the card host measures it. QA's traffic cannot be replayed (every BAC or PACE
    session has fresh keys), so the floor leaves out only the bytes in flight."""
    if not ctx.encoded:
        encode_section(ctx)
    bank, (serial, data) = _bank(ctx), ctx.encoded[-1]
    application = next(a for a in ctx.applications if a.application_id == data.application_id)
    trust = TrustStore.from_pem(certificate_to_pem(ctx.hsm.csca_der).encode("ascii"))
    expected = Expected(mrz=data.mrz.text, dg13=build_dg13(application, ctx.profile),
                        dg2_image=application.portrait.jpeg,
                        fingerprints=fingerprints_of(data.data_groups.get(3)))
    with PCSCTransport(bank.reader_name(0)) as transport:
        _arrive(bank, transport, serial)
        done = qa_checks(transport, keys_from_fields(*data.bac_key), trust,
                         at=datetime.now(UTC), cards=ctx.cards * 2, expected=expected,
                         card_ms=lambda: _card_busy_ms(bank), access=eac_access(ctx.hsm, data),
                         after=lambda: roundtrip_ms(transport, WIRE_PROBES))
        _leave(bank, transport)  # pcscd has seen the reader empty before anyone reuses it
    wire = [c.apdus * c.after for c in done]
    floor = [w + c.card_ms for w, c in zip(wire, done, strict=True)]
    ms = [c.ms for c in done]
    return {"qa_apdus_per_card": float(statistics.median(c.apdus for c in done)),
            "qa_protocols": "+".join(("PACE", "CA", "TA")) if ctx.hsm.eac else "BAC",
            **spread("qa_ms_per_card", ms),
            **spread("qa_card_ms_per_card", [c.card_ms for c in done]),
            **spread("qa_floor_ms", floor),
            **spread("qa_ms_vs_wire", [m / w for m, w in zip(ms, wire, strict=True)]),
            **spread("qa_floor_vs_wire", [f / w for f, w in zip(floor, wire, strict=True)]),
            **spread("qa_ms_vs_floor", [m / f for m, f in zip(ms, floor, strict=True)])}


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
        cards: int = 12, applications: int = 40, eac: EACMaker | None = None) -> Figures:
    """Run the named sections; return their figures (``eac``: makes the EAC PKI of a profile
    whose chips speak PACE)."""
    apps = bench_applications(root, profile, applications)
    figures: Figures = {}
    with bench_hsm(root, eac=eac) as hsm:
        ctx = BenchContext(root, profile, apps, hsm, seconds, cards)
        try:
            for name in sections:
                figures.update(SECTIONS[name](ctx))
        finally:
            if ctx.bank is not None:
                ctx.bank.down()
    return figures
