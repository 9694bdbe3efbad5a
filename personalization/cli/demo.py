"""``cardline demo``: the whole line on the embedded default, from synthetic applications to
handed-out cards, with a report."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from applets.virtual.bank import EncoderBank
from applets.virtual.errors import VirtualError
from hsm import ceremony
from hsm.errors import HSMError
from personalization.applications.intake import read_applications
from personalization.cli.batch import run_batch, write_report
from personalization.cli.common import ConfigOption, console, fail, line_config
from personalization.cli.keys import open_hsm, open_inventory
from personalization.config import LineConfig
from personalization.errors import PersonalizationError
from personalization.journal import Journal
from personalization.line.context import Outputs
from personalization.line.report import build_report
from personalization.line.station import StationSpec
from personalization.prep import document_number
from personalization.profile import load_profile
from personalization.simline import PrinterLine
from personalization.synth import synthesize

DEMO_OFFICERS = ("Demo Officer A", "Demo Officer B")


def ensure_keys(config: LineConfig) -> str:
    """A CSCA and an active DS on the embedded token; returns the CSCA certificate as PEM."""
    with open_inventory(config) as inventory:
        if inventory.active("CSCA") is None or inventory.active("DS") is None:
            now = datetime.now(UTC).replace(microsecond=0)
            with open_hsm(config) as hsm:
                if inventory.active("CSCA") is None:
                    ceremony.init_csca(hsm, inventory, officers=DEMO_OFFICERS, at=now,
                                       label=config.hsm.csca_label,
                                       algorithm=config.hsm.algorithm,
                                       ec_parameters=config.hsm.ec_parameters)
                ceremony.new_ds(hsm, inventory, officers=DEMO_OFFICERS, at=now,
                                usage_days=config.hsm.ds_usage_days,
                                max_documents=config.hsm.ds_max_documents,
                                algorithm=config.hsm.algorithm,
                                label_prefix=config.hsm.ds_label_prefix,
                                ec_parameters=config.hsm.ec_parameters)
        return ceremony.export_csca_pem(inventory)


def _summary(result: dict[str, Any]) -> None:
    table = Table(title=f"batch {result['batch']}")
    for column in ("", "count"):
        table.add_column(column)
    for group in ("applications", "stock"):
        for key, value in result[group].items():
            if isinstance(value, int) and not isinstance(value, bool):
                table.add_row(f"{group}.{key}", str(value))
    console.print(table)


def _demo_line(config: LineConfig, stations: int, timing: str, cards: int,
               ) -> tuple[EncoderBank, PrinterLine]:
    """The demo's own encoder bank and printers, under ``<data_dir>/demo-line``."""
    folder = config.data_dir / "demo-line"
    bank = EncoderBank(folder, stations, config.simulation.base_port, timing=timing)
    names = {f"station-{i + 1}": i for i in range(stations)}
    blanks = max(10, -(-cards * config.controller.max_attempts // stations) + 5)
    return bank, PrinterLine(folder, names, bank.host_socket, bank.chips_dir, timing, blanks)


def demo_command(
    cards: Annotated[int, typer.Option("--cards", "-n", min=1, help="applications")] = 8,
    stations: Annotated[int, typer.Option("--stations", "-k", min=1, max=8,
                                          help="printer + encoder stations")] = 2,
    timing: Annotated[str, typer.Option(help="fast (no mechanical delays) or realistic")] = "fast",
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("demo-out"),
    dump_chips: Annotated[bool, typer.Option("--dump-chips",
                                             help="also write the files QA read")] = False,
    seed: Annotated[int | None, typer.Option(
        help="seed of the synthetic applications (default: one more than the demo batches "
             "so far, so each demo issues new people's cards)")] = None,
    config: ConfigOption = Path("line.yaml"),
) -> None:
    """Run the main job on the embedded default and write OUT/report.json, report.html,
    csca.pem, applications.jsonl and OUT/cards/<application_id>/front.png, back.png.

    Sets up what is missing (HSM keys, pcscd with virtual encoders, emulated printers), creates
    a batch in the demo's own journal and runs it through the journaled line controller.
    """
    if timing not in ("fast", "realistic"):
        fail("--timing must be fast or realistic")
    line_cfg = line_config(config)
    name = f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    try:
        profile = load_profile(line_cfg.profile, config.resolve().parent)
        out.mkdir(parents=True, exist_ok=True)
        (out / "csca.pem").write_text(ensure_keys(line_cfg), encoding="ascii")
        bank, printers = _demo_line(line_cfg, stations, timing, cards)
        if seed is None:  # the same people twice would be quarantined: they hold cards
            with Journal(bank.data_dir / "journal.db") as journal:
                seed = len(journal.batches()) + 1
        synthesize(cards, seed, out / "applications.jsonl")
        intake = read_applications(out / "applications.jsonl", profile.intake_rules(),
                                   date.today())
        valid = [(line, a, document_number(a)) for line, a in intake.valid]
        with bank, printers, Journal(bank.data_dir / "journal.db") as journal:
            journal.create_batch(name, source=str(out / "applications.jsonl"),
                                 profile=profile.name,
                                 max_attempts=line_cfg.controller.max_attempts, valid=valid,
                                 invalid=intake.invalid)
            specs = [StationSpec(n, printers.port(n), bank.reader_name(i))
                     for n, i in printers.stations.items()]
            console.print(f"{name}: {len(valid)} cards (seed {seed}) on {stations} "
                          f"station(s), {timing} timing", highlight=False)
            run = run_batch(line_cfg, profile, name, journal, specs,
                            Outputs(out, dump_chips), show=console.is_terminal)
            result = build_report(journal, name)
    except (PersonalizationError, HSMError, VirtualError, OSError) as exc:
        fail(str(exc))
    write_report(result, out)
    _summary(result)
    console.print(f"report: {out / 'report.json'}, {out / 'report.html'}; cards: {out / 'cards'}")
    if run.errors or not run.finished:
        fail("the demo batch did not finish: " + "; ".join(run.errors))
