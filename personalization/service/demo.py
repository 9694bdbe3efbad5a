"""The demo: the whole line on the embedded default, from synthetic applications to handed-out
cards and a report, on a private encoder bank, printers and journal under
``<data_dir>/demo-line``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from applets.virtual.bank import EncoderBank
from personalization.applications.intake import read_applications
from personalization.config import LineConfig
from personalization.journal import open_journal
from personalization.line.context import Outputs
from personalization.line.controller import RunResult
from personalization.line.station import StationSpec
from personalization.prep import build_mrz, card_access_number
from personalization.service import batches, demopeople, line
from personalization.service.batches import Tick
from personalization.service.demopeople import ensure_keys
from personalization.service.setup import LineSetup
from personalization.simline import PrinterLine
from personalization.synth import synthesize


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``cardline demo`` was asked for."""

    cards: int = 8
    stations: int = 2
    timing: Literal["fast", "realistic"] = "fast"
    out: Path = Path("demo-out")
    dump_chips: bool = False
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class DemoStart:
    """The demo batch, as it is about to run."""

    batch: str
    cards: int
    seed: int


@dataclass(frozen=True, slots=True)
class DemoResult:
    """How the demo ended: the run, the batch report and where the outputs are."""

    start: DemoStart
    run: RunResult
    report: dict[str, Any]
    report_files: tuple[Path, Path]
    cards_dir: Path
    qa_desk: list[str]


def journal_url(config: LineConfig) -> str:
    """The demo's own journal."""
    return f"sqlite:///{config.data_dir / 'demo-line' / 'journal.db'}"


def dashboard_setup(setup: LineSetup) -> LineSetup:
    """The line as the demo's dashboard sees it: the demo's own journal, with the demo
    accounts in it (their passphrase files are the ones ``ensure_people`` wrote)."""
    config = setup.config.model_copy(update={"journal": setup.config.journal.model_copy(
        update={"url": journal_url(setup.config)})})
    (config.data_dir / "demo-line").mkdir(parents=True, exist_ok=True)
    demopeople.ensure_people(config)
    return LineSetup(config, setup.base)


def _demo_line(config: LineConfig, options: DemoOptions) -> tuple[EncoderBank, PrinterLine]:
    folder = config.data_dir / "demo-line"
    # the line's own chip store, so `cardline line up` can put a demo card on the QA desk
    bank = EncoderBank(folder, options.stations, config.simulation.base_port,
                       timing=options.timing, chips_dir=config.data_dir / "chips")
    names = {f"station-{i + 1}": i for i in range(options.stations)}
    blanks = max(10, -(-options.cards * config.controller.max_attempts // options.stations) + 5)
    return bank, PrinterLine(folder, names, bank.host_socket, bank.chips_dir, options.timing,
                             blanks)


def run_demo(setup: LineSetup, options: DemoOptions,
             on_start: Callable[[DemoStart], None] | None = None,
             on_tick: Tick | None = None) -> DemoResult:
    """Set up what is missing (HSM keys, pcscd with virtual encoders, emulated printers),
    synthesize applications, create a batch in the demo's journal, run it through the
    journaled line controller, and write OUT/report.json, report.html, csca.pem,
    applications.jsonl and OUT/cards/<application_id>/front.png, back.png.

    ``on_start(DemoStart)`` is called once the batch exists, before the line runs.
    """
    config, out = setup.config, options.out
    name = f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "csca.pem").write_text(ensure_keys(config), encoding="ascii")
    bank, printers = _demo_line(config, options)
    seed = options.seed
    if seed is None:  # the same people twice would be quarantined: they hold cards
        with open_journal(journal_url(config)) as journal:
            seed = len(journal.batches()) + 1
    synthesize(options.cards, seed, out / "applications.jsonl")
    setup, registry = demopeople.trusting_demo(setup)  # the demo's registry signs the batch
    signed = registry.sign_file(out / "applications.jsonl", out / "applications.p7m", name)
    with bank, printers, open_journal(journal_url(config)) as journal:
        created = batches.create(setup, signed, name, journal=journal)
        start = DemoStart(name, created.accepted, seed)
        if on_start is not None:
            on_start(start)
        specs = [StationSpec(n, printers.port(n), bank.reader_name(i))
                 for n, i in printers.stations.items()]
        run = batches.run(setup, name, specs=specs, outputs=Outputs(out, options.dump_chips),
                          on_tick=on_tick, journal=journal)
        result = batches.report(config, name, journal=journal)
    files = batches.write_report(result, out)
    return DemoResult(start, run, result, files, out / "cards",
                      qa_desk(setup, result, out / "applications.jsonl", out / "csca.pem"))


def qa_desk(setup: LineSetup, report: dict[str, Any], applications: Path,
            csca: Path) -> list[str]:
    """The commands that put the demo's first handed-out card on the QA desk (the line's
    first encoder) and check it there: an EAC chip by PACE with its CAN (the MRZ where the
    CAN is a random one printed on the card), then CA, TA and DG3 as the desk's inspection
    system; a BAC chip with the MRZ. The demo's applicants are synthetic, so their MRZ and
    CAN may be shown."""
    handed = [c for c in report["cards"] if c["state"] == "handed_out"]
    if not handed:
        return []
    card = handed[0]
    intake = read_applications(applications, setup.profile().intake_rules(), date.today())
    application = next(a for _, a in intake.valid
                       if a.application_id == card["application_id"])
    profile = setup.profile()
    mrz = build_mrz(application, profile).text
    access = f'--mrz "{mrz}"'
    if profile.chip.eac:
        can = card_access_number(application, profile)
        access = (f"--can {can} {access}" if profile.chip.can == "personal-id-last6"
                  else f"--pace {access}")
    reader = line.encoder_bank(setup.config).reader_name(0)
    phrase = demopeople.passphrase_file(setup.config, demopeople.OPERATOR)
    with contextlib.suppress(ValueError):  # shown relative to where the demo ran, if inside
        phrase = phrase.relative_to(Path.cwd())
    return [f"cardline login {demopeople.OPERATOR} --passphrase-file {phrase}",
            "cardline line up",
            f"cardline line insert {card['chip_serial']} --reader 0",
            f'cardline qa verify --reader "{reader}" {access} --trust {csca}',
            f"cardline line remove {card['chip_serial']}",
            "cardline logout"]
