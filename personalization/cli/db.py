"""`cardline db`: a local development PostgreSQL for a journal several lines share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from personalization.cli.common import (
    ConfigOption,
    JsonOption,
    command_group,
    console,
    line_config,
    reported,
)
from personalization.config import DEFAULT_CONFIG
from personalization.service import db

app = command_group(help="A local development PostgreSQL cluster for the journal, under the "
                         "line's data folder: several lines on this machine share it.",
                    no_args_is_help=True)
FolderOption = Annotated[Path | None, typer.Option(
    "--folder", help="the cluster's folder (default: <data_dir>/postgres of the line)")]
RoleOption = Annotated[db.Role, typer.Option(
    "--role", help="line: what a line.yaml names; owner: the role that runs migrations")]
ImmediateOption = Annotated[bool, typer.Option(
    "--immediate", help="stop at once, without a shutdown checkpoint (as a crash would)")]


def _folder(config: Path, folder: Path | None) -> Path:
    """``--folder``, else the line's ``<data_dir>/postgres``."""
    return db.cluster_folder(None if folder else line_config(config), folder)


def _say(text: str) -> None:
    """One line for a person, never wrapped (a URL must stay whole to be copied)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command()
def start(config: ConfigOption = DEFAULT_CONFIG, folder: FolderOption = None) -> None:
    """Create (the first time) and start the cluster, migrate the journal's database, and
    print the `journal.url` to put in each line's `line.yaml` (it names a password file, it
    holds no password). As root the server runs as `postgres`, which is granted passage
    (a POSIX ACL, search only) through the folders above the cluster and nothing more."""
    line = None if folder else line_config(config)
    with reported():
        started = db.start(db.cluster_folder(line, folder),
                           data_dir=line.data_dir if line else None)
    for granted in started.granted:
        _say(f"gave the postgres user passage (ACL u:postgres:x) through {granted}")
    done = {"running": "already running", "stopped": "started", "absent": "created and started"}
    _say(f"PostgreSQL cluster {started.status.folder}: {done[started.was]}")
    _say("journal.url for each line's line.yaml:")
    _say(str(started.status.line_url))


@app.command()
def stop(config: ConfigOption = DEFAULT_CONFIG, folder: FolderOption = None,
         immediate: ImmediateOption = False) -> None:
    """Stop the cluster's server; nothing to do when it is not running."""
    where = _folder(config, folder)
    with reported():
        was = db.stop(where, immediate=immediate)
    done = {"running": "stopped", "stopped": "was not running", "absent": "there is none"}
    _say(f"PostgreSQL cluster {where}: {done[was]}")


@app.command()
def status(config: ConfigOption = DEFAULT_CONFIG, folder: FolderOption = None,
           as_json: JsonOption = False) -> None:
    """Whether the cluster is running, stopped or absent; its folder, its socket, and the URLs
    for the lines and for the owner (who runs migrations)."""
    with reported():
        found = db.status(_folder(config, folder))
    if as_json:
        console.print_json(json.dumps(found.as_dict()))
        return
    for key, value in found.as_dict().items():
        _say(f"{key}: {value if value is not None else '—'}")


@app.command()
def url(config: ConfigOption = DEFAULT_CONFIG, folder: FolderOption = None,
        role: RoleOption = "line") -> None:
    """Print the URL of the journal's database as the lines' role (or the owner's)."""
    with reported():
        found = db.url(_folder(config, folder), role)
    _say(found)


@app.command()
def migrate(url: Annotated[str, typer.Argument(
        help="postgresql://OWNER@HOST/DATABASE?…, its password in a passfile, not here")]) -> None:
    """Bring a journal database (a factory's own server) to this cardline's schema, as the
    database's owner, so the lines may open it as `cardline_line`. `start` does this for
    the local cluster."""
    with reported():
        done = db.migrate(url)
    _say(f"journal {done.where}: schema v{done.version}")
