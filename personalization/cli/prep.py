"""``cardline prep``: approved applications → the exact chip files of each card."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from hsm.errors import HSMError
from personalization.applications.intake import read_applications
from personalization.cli.common import ConfigOption, console, fail, line_config
from personalization.cli.keys import open_inventory, open_signer
from personalization.errors import PersonalizationError
from personalization.prep import Preparer, prepare_all
from personalization.profile import load_profile


def _write_card(out: Path, application_id: str, card_files: dict[str, bytes]) -> None:
    folder = out / application_id
    tmp = out / f".{application_id}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    for name, body in card_files.items():
        (tmp / f"{name}.bin").write_bytes(body)
    if folder.exists():
        for old in folder.iterdir():
            old.unlink()
        folder.rmdir()
    tmp.rename(folder)  # a card folder appears whole or not at all


def prep(
    applications: Annotated[Path, typer.Argument(help="approved applications (JSON Lines)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the prepared cards")],
    config: ConfigOption = Path("line.yaml"),
) -> None:
    """Prepare and sign the chip files of every valid application.

    Writes OUT/<application_id>/EF.COM.bin, EF.DG1.bin, EF.DG2.bin, EF.DG13.bin, EF.SOD.bin
    (exact bytes, tag and length included) and OUT/prep.json listing the prepared and the
    rejected applications with reasons. Invalid applications never stop the others.
    Signing uses the line's active Document Signer key in the HSM.
    """
    if not applications.is_file():
        fail(f"{applications}: no such file")
    line = line_config(config)
    try:
        profile = load_profile(line.profile, config.resolve().parent)
    except PersonalizationError as exc:
        fail(str(exc))
    intake = read_applications(applications, profile.intake_rules(), date.today())
    out.mkdir(parents=True, exist_ok=True)
    prepared: list[dict[str, Any]] = []
    try:
        with open_inventory(line) as inventory, open_signer(line, inventory) as signer:
            preparer = Preparer(profile, signer)
            apps = [application for _, application in intake.valid]
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("preparing", total=len(apps))
                for card in prepare_all(preparer, apps):
                    _write_card(out, card.data.application_id, card.files)
                    prepared.append({"application_id": card.data.application_id,
                                     "document_number": card.data.document_number,
                                     "files": sorted(card.files)})
                    progress.advance(task)
            ds_label = signer.label
    except HSMError as exc:
        fail(f"signing stopped after {len(prepared)} cards: {exc}")
    summary = {"prepared": prepared, "rejected": [r.as_dict() for r in intake.invalid],
               "document_signer": ds_label}
    (out / "prep.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n",
                                   encoding="utf-8")
    console.print(f"prepared [bold green]{len(prepared)}[/], rejected "
                  f"[bold {'red' if intake.invalid else 'green'}]{len(intake.invalid)}[/] "
                  f"→ {out}")
    raise typer.Exit(1 if intake.invalid else 0)
