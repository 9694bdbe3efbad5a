"""`cardline keys`: key ceremonies for security officers, under a quorum."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from personalization.cli.common import (
    ConfigOption,
    JsonOption,
    command_group,
    console,
    err_console,
    line_setup,
    reported,
)
from personalization.config import DEFAULT_CONFIG, LineConfig
from personalization.service import ceremony, eac, keys, results
from personalization.service.keys import CSCAName
from personalization.service.people import Person, acting

app = command_group(
    help="Key ceremonies in the HSM: the CSCA on its own token (creation, rollover), Document "
    "Signer (DS) keys, revocation, CRLs and master lists; the EAC keys for fingerprints (CVCA, "
    "DV, the QA desk's inspection system; certifying outside inspection systems); listing keys "
    "and exporting the CSCA and CVCA certificates. Each ceremony needs keys.quorum different "
    "officers, each with their own passphrase: `--officer NAME:PASSPHRASE_FILE`, repeated.",
    no_args_is_help=True,
)

OfficerOption = Annotated[
    list[str],
    typer.Option("--officer", help="an officer taking part, as NAME:PASSPHRASE_FILE (repeat it "
                 "for each; keys.quorum different officers, you among them)"),
]
OutOption = Annotated[Path, typer.Option("--out", help="file to write")]


def _officers(specs: list[str]) -> list[ceremony.Credential]:
    return [ceremony.officer_credential(spec) for spec in specs]


def _acting(config: LineConfig) -> Person:
    return acting(config, "keys.ceremony")


@app.command("setup-embedded")
def setup_embedded(config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Create the embedded SoftHSM token under data_dir (when hsm.pin_source is 'embedded')."""
    config = line_setup(config_path).config
    with reported():
        conf = keys.setup_embedded(config)
    if conf is None:
        console.print("hsm.pin_source is not 'embedded': nothing to set up (use your HSM's tools)")
        return
    console.print(f"embedded SoftHSM token {config.hsm.token!r} ready ({conf})", markup=False)


@app.command("init")
def init(officer: OfficerOption, config_path: ConfigOption = DEFAULT_CONFIG,
         common_name: Annotated[str, typer.Option(help="CSCA commonName")] = "CSCA Vietnam",
         country: Annotated[str, typer.Option(help="ISO 3166 alpha-2 countryName")] = "VN",
         icao_code: Annotated[str, typer.Option(help="ICAO 3-letter code (MRZ)")] = "VNM") -> None:
    """Create the CSCA on its own token. The token's PIN is split among the officers named
    (each share sealed under that officer's passphrase); keys.quorum of them open it later."""
    config = line_setup(config_path).config
    with reported():
        person = _acting(config)
        record = ceremony.init_csca(config, person, _officers(officer),
                                    CSCAName(common_name, country, icao_code))
    console.print(f"CSCA {record.label!r} created ({record.algorithm}) on token "
                  f"{config.keys.csca_token!r}; its PIN is split among "
                  f"{len(record.officers)} officers", markup=False)


@app.command("new-ds")
def new_ds(
    officer: OfficerOption, config_path: ConfigOption = DEFAULT_CONFIG,
    usage_days: Annotated[int | None, typer.Option(help="DS key usage period in days, at most "
                                                   "hsm.ds_usage_days (the policy)")] = None,
    max_documents: Annotated[int | None, typer.Option(help="documents before the DS retires, at "
                                                      "most hsm.ds_max_documents")] = None,
) -> None:
    """Create and activate a new DS key on the line token, certified by the CSCA; retires the
    previous DS."""
    config = line_setup(config_path).config
    with reported():
        person = _acting(config)
        record = ceremony.new_ds(config, person, _officers(officer), usage_days=usage_days,
                                 max_documents=max_documents)
    console.print(f"DS {record.label!r} active until {record.not_after:%Y-%m-%d} "
                  f"or {record.max_documents} documents", markup=False)


@app.command("revoke-ds")
def revoke_ds(label: Annotated[str, typer.Argument(help="the DS key label")],
              officer: OfficerOption,
              reason: Annotated[str, typer.Option(help="RFC 5280 reason: keyCompromise, "
                                                  "superseded, cessationOfOperation, …")],
              config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Revoke a DS key: every running line stops signing with it within a second; the next
    CRL lists it; `keys affected` lists its cards."""
    config = line_setup(config_path).config
    with reported():
        person = acting(config, "keys.revoke", label)
        ceremony.revoke_ds(config, person, _officers(officer), label, reason)
    console.print(f"DS {label!r} revoked ({reason}); issue a CRL with `cardline keys crl`",
                  markup=False)


@app.command("crl")
def crl(officer: OfficerOption, out: OutOption, config_path: ConfigOption = DEFAULT_CONFIG,
        next_update_days: Annotated[int, typer.Option(help="days until the next CRL (at most "
                                                      "90, ICAO 9303-12)")] = 30) -> None:
    """Issue a CRL of every revoked DS, signed by the CSCA (DER)."""
    config = line_setup(config_path).config
    with reported():
        person = _acting(config)
        number = ceremony.issue_crl(config, person, _officers(officer), out,
                                    next_update_days=next_update_days)
    console.print(f"CRL number {number} written to {out}", markup=False)


@app.command("export-master-list")
def export_master_list(officer: OfficerOption, out: OutOption,
                       config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Write the CSCA master list: a CMS SignedData of the CSCA certificates, signed by a
    master-list signer the CSCA certifies (DER)."""
    config = line_setup(config_path).config
    with reported():
        person = _acting(config)
        count = ceremony.export_master_list(config, person, _officers(officer), out)
    console.print(f"master list of {count} CSCA certificate(s) written to {out}", markup=False)


@app.command("rollover")
def rollover(officer: OfficerOption,
             out: Annotated[Path, typer.Option("--out", help="folder for the new CSCA and the "
                                               "two link certificates")],
             config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Replace the CSCA: a new CSCA key and certificate, link certificates both ways (old
    signs new, new signs old); the old CSCA retires."""
    config = line_setup(config_path).config
    with reported():
        person = _acting(config)
        rolled = ceremony.rollover(config, person, _officers(officer), out)
    console.print(f"CSCA {rolled.new.label!r} active; csca.pem and the link certificates "
                  f"written to {out}", markup=False)


@app.command("resplit")
def resplit(officer: OfficerOption, config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Split the CSCA token's PIN again among exactly the officers named (when an officer
    leaves or joins): a quorum of the current holders must be among them."""
    config = line_setup(config_path).config
    with reported():
        person = _acting(config)
        generation = ceremony.resplit(config, person, _officers(officer))
    console.print(f"CSCA PIN split again among {len(officer)} officers (generation "
                  f"{generation})", markup=False)


@app.command("affected")
def affected(label: Annotated[str, typer.Argument(help="the DS key label")],
             config_path: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """List the document numbers of handed-out cards signed by a DS (for re-issue)."""
    config = line_setup(config_path).config
    with reported():
        acting(config, "keys.revoke", label)
        numbers = ceremony.affected(config, label)
    if as_json:
        console.print_json(json.dumps({"label": label, "documents": numbers}))
        return
    for number in numbers:
        console.print(number, markup=False)
    err_console.print(f"{len(numbers)} card(s) signed by {label}", markup=False)


@app.command("factory")
def factory(out: Annotated[Path, typer.Option("--out", help="folder for the certificates")],
            config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Make the factory's keys on the line token once (FACTORY-SIGN signs issuance results,
    FACTORY-ENC receives encrypted batches) and write their certificates for the registry."""
    config = line_setup(config_path).config
    with reported():
        acting(config, "keys.ceremony", "FACTORY")
        sign, enc = results.factory_keys(config, out)
    console.print(f"factory certificates written: {sign} (results), {enc} (encryption)",
                  markup=False)


@app.command("list")
def list_keys(config_path: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """List the keys of the inventory with status, usage window and signature counts."""
    config = line_setup(config_path).config
    with reported():
        rows = keys.key_rows(keys.list_keys(config))
    if as_json:
        console.print_json(json.dumps(rows))
        return
    columns = ("label", "role", "algorithm", "status", "signed", "max_documents",
               "usage_not_after")
    table = Table(*columns, title="HSM keys")
    for row in rows:
        table.add_row(*(str(row[c]) for c in columns))
    console.print(table)


@app.command("move-in")
def move_in(config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Move this line's keys from its own file into the inventory the lines share in the
    PostgreSQL journal (once, the line stopped; its DS retires in the file)."""
    config = line_setup(config_path).config
    with reported():
        acting(config, "keys.ceremony")
        moved = keys.move_in(config)
    console.print(f"moved into the shared inventory: {', '.join(moved) or 'nothing (it has them)'}",
                  markup=False)


@app.command("export-csca")
def export_csca(out: Annotated[Path, typer.Option("--out", help="PEM file to write")],
                config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Write the active CSCA certificate as PEM (for the PKD, master list and QA trust store)."""
    config = line_setup(config_path).config
    with reported():
        pem_text = keys.export_csca_pem(config)
    out.write_text(pem_text, encoding="ascii")
    console.print(f"CSCA certificate written to {out}", markup=False)


@app.command("eac-init")
def eac_init(officer: OfficerOption, config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Create the EAC keys: the CVCA (self-signed CV certificate with domain parameters, on
    the CSCA's token), the domestic DV it certifies, and the QA desk's inspection-system key
    the DV certifies (both on the line token). Curve, holder names and validity come from
    the eac section of line.yaml. Run `keys init` first."""
    config = line_setup(config_path).config
    with reported():
        person = _acting(config)
        made = eac.init(config, person, _officers(officer))
    for record in (made.cvca, made.dv, made.qa_is):
        if record is not None:
            console.print(f"{record.role} {record.label!r} valid until "
                          f"{record.not_after:%Y-%m-%d}", markup=False)


@app.command("eac-renew")
def eac_renew(officer: OfficerOption, config_path: ConfigOption = DEFAULT_CONFIG,
              is_only: Annotated[bool, typer.Option("--is-only", help="renew only the QA "
                                                    "desk's inspection-system key")] = False,
              ) -> None:
    """Renew the DV (certified by the CVCA) and the QA desk's inspection-system key (certified
    by the new DV) before their certificates expire; the previous ones retire."""
    config = line_setup(config_path).config
    with reported():
        person = _acting(config)
        made = eac.renew(config, person, _officers(officer), dv=not is_only)
    for record in (made.dv, made.qa_is):
        if record is not None:
            console.print(f"{record.role} {record.label!r} valid until "
                          f"{record.not_after:%Y-%m-%d}", markup=False)


@app.command("eac-rollover")
def eac_rollover(officer: OfficerOption,
                 out: Annotated[Path, typer.Option("--out", help="folder for the new CVCA "
                                                   "certificate and the link certificate")],
                 config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Replace the CVCA: a new CVCA key and self-signed certificate (cvca.cvcert), the link
    certificate signed by the old CVCA key (link.cvcert, for chips that trust the old one),
    then a new DV and QA inspection-system key under it; the old CVCA retires."""
    config = line_setup(config_path).config
    with reported():
        person = _acting(config)
        made = eac.rollover(config, person, _officers(officer), out)
    label = made.cvca.label if made.cvca is not None else "?"
    console.print(f"CVCA {label!r} active; cvca.cvcert and link.cvcert written to {out}",
                  markup=False)


@app.command("export-cvca")
def export_cvca(out: Annotated[Path, typer.Option("--out", help="file to write (DER CV "
                                                  "certificate)")],
                config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Write the active CVCA certificate (DER CV certificate): the trust point of the chips
    and of every inspection system that reads their fingerprints."""
    config = line_setup(config_path).config
    with reported():
        der = eac.export_cvca(config)
    out.write_bytes(der)
    console.print(f"CVCA certificate written to {out}", markup=False)


@app.command("issue-is")
def issue_is(
    officer: OfficerOption,
    public_key: Annotated[Path, typer.Option("--public-key", help="the inspection system's EC "
                                             "public key (PEM), on the CVCA's curve")],
    rights: Annotated[str, typer.Option(help="what it may read: dg3, dg4 or dg3,dg4")],
    days: Annotated[int, typer.Option(help="validity in days, at most eac.is_days")],
    out: Annotated[Path, typer.Option("--out", help="folder for cvca.cvcert, dv.cvcert and "
                                      "is.cvcert")],
    holder: Annotated[str | None, typer.Option(help="holder mnemonic of its CHR (default "
                                               "eac.partner_mnemonic)")] = None,
    config_path: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Certify an outside inspection system's public key with the DV (a border authority or a
    partner QA lab that reads fingerprints): writes the CVCA and DV certificates as they are
    and the new IS certificate."""
    config = line_setup(config_path).config
    with reported():
        person = _acting(config)
        holder_ref = eac.issue_is(config, person, _officers(officer),
                                  eac.ISOrder(public_key, rights, days, holder), out)
    console.print(f"IS certificate {holder_ref} ({rights}, {days} days) written to {out}, "
                  f"with its chain", markup=False)
