"""``cardline demo``: the whole line on the embedded default, from synthetic applications to
handed-out cards, with a report."""

from __future__ import annotations

import json
import queue
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from applets.virtual.bank import EncoderBank
from applets.virtual.errors import VirtualError
from hsm import ceremony
from hsm.errors import HSMError
from personalization import demo
from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.cli.common import ConfigOption, console, fail, line_config
from personalization.cli.keys import open_hsm, open_inventory, open_signer
from personalization.config import LineConfig
from personalization.errors import PersonalizationError
from personalization.prep import Preparer
from personalization.profile import load_profile
from personalization.synth import synthesize
from qa.passive_auth import TrustStore

DEMO_OFFICERS = ("Demo Officer A", "Demo Officer B")


def _ensure_keys(config: LineConfig) -> str:
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
            table.add_row(f"{group}.{key}", str(value))
    console.print(table)


def demo_command(
    cards: Annotated[int, typer.Option("--cards", "-n", min=1, help="applications")] = 8,
    stations: Annotated[int, typer.Option("--stations", "-k", min=1, max=8,
                                          help="printer + encoder stations")] = 2,
    timing: Annotated[str, typer.Option(help="fast (no mechanical delays) or realistic")] = "fast",
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("demo-out"),
    dump_chips: Annotated[bool, typer.Option("--dump-chips",
                                             help="also write the files QA read")] = False,
    seed: Annotated[int, typer.Option(help="seed of the synthetic applications")] = 1,
    config: ConfigOption = Path("line.yaml"),
) -> None:
    """Run the line on the embedded default and write OUT/report.json, report.html, csca.pem,
    applications.jsonl and OUT/cards/<application_id>/front.png, back.png.

    Sets up what is missing (HSM keys, pcscd with virtual encoders, emulated printers).
    """
    if timing not in ("fast", "realistic"):
        fail("--timing must be fast or realistic")
    line_cfg = line_config(config)
    try:
        profile = load_profile(line_cfg.profile, config.resolve().parent)
        out.mkdir(parents=True, exist_ok=True)
        csca_pem = _ensure_keys(line_cfg)
        (out / "csca.pem").write_text(csca_pem, encoding="ascii")
        synthesize(cards, seed, out / "applications.jsonl")
        intake = read_applications(out / "applications.jsonl", profile.intake_rules(),
                                   date.today())
        apps = [a for _, a in intake.valid]
        work: queue.Queue[tuple[Application, int]] = queue.Queue()
        for application in apps:
            work.put((application, 0))
        bank = EncoderBank(line_cfg.data_dir / "demo-line", stations,
                           line_cfg.simulation.base_port, timing=timing)
        with console.status(f"running {len(apps)} cards on {stations} stations…"), bank, \
                open_inventory(line_cfg) as inventory, \
                open_signer(line_cfg, inventory) as signer:
            line = demo.DemoLine(profile, Preparer(profile, signer),
                                 TrustStore.from_pem(csca_pem.encode("ascii")), out, dump_chips,
                                 work)
            demo.run_line(line, bank, stations, cards * demo.MAX_ATTEMPTS, timing == "realistic")
    except (PersonalizationError, HSMError, VirtualError, OSError) as exc:
        fail(str(exc))
    result = demo.report(line, f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}", apps)
    (out / "report.json").write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n",
                                     encoding="utf-8")
    (out / "report.html").write_text(demo.render_html(result), encoding="utf-8")
    _summary(result)
    console.print(f"report: {out / 'report.json'}, {out / 'report.html'}; cards: {out / 'cards'}")
