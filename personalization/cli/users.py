"""`cardline users`, `login`, `logout`, `whoami`: accounts and who is acting."""

from __future__ import annotations

import getpass
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
    fail,
    line_setup,
    reported,
)
from personalization.config import DEFAULT_CONFIG, ROLES
from personalization.service import people

app = command_group(
    help="Accounts: the first admin (`bootstrap`), then an admin adds, lists and disables "
    "accounts and resets passphrases. Roles: operator, qa, officer, auditor, admin (an admin "
    "holds no other role).",
    no_args_is_help=True,
)

PassphraseFile = Annotated[Path | None, typer.Option(
    "--passphrase-file", help="read the (new) passphrase from this file instead of prompting: "
    "owner-only (chmod 600), one trailing newline ignored")]
NameArgument = Annotated[str, typer.Argument(help="the account name")]


def _new_passphrase(path: Path | None) -> str:
    """A new passphrase from ``path``, or typed twice (hidden)."""
    if path is not None:
        with reported():
            return people.read_passphrase_file(path)
    first = getpass.getpass("new passphrase (12 characters or more): ")
    if getpass.getpass("the same again: ") != first:
        fail("the two passphrases differ; nothing was changed")
    return first


def _passphrase(path: Path | None, prompt: str) -> str:
    """A passphrase from ``path``, or typed once (hidden)."""
    if path is not None:
        with reported():
            return people.read_passphrase_file(path)
    return getpass.getpass(prompt)


@app.command("bootstrap")
def bootstrap(name: NameArgument, passphrase_file: PassphraseFile = None,
              config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Create the first admin of this journal (once; an admin adds everyone else)."""
    config = line_setup(config_path).config
    passphrase = _new_passphrase(passphrase_file)
    with reported():
        person = people.bootstrap(config, name, passphrase)
    console.print(f"admin {person.name!r} created: log in with `cardline login {person.name}`",
                  markup=False)


@app.command("add")
def add(name: NameArgument,
        role: Annotated[list[str], typer.Option("--role", help=f"a role ({', '.join(ROLES)}); "
                                                "repeat for several")],
        passphrase_file: PassphraseFile = None,
        config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Add an account with its roles and first passphrase (admin)."""
    config = line_setup(config_path).config
    with reported():
        actor = people.acting(config, "users.manage")
    passphrase = _new_passphrase(passphrase_file)
    with reported():
        account = people.add(config, actor, name, role, passphrase)
    console.print(f"account {account.name!r} added ({', '.join(account.roles)})", markup=False)


@app.command("list")
def list_accounts(config_path: ConfigOption = DEFAULT_CONFIG,
                  as_json: JsonOption = False) -> None:
    """List the accounts with their roles and state (admin)."""
    config = line_setup(config_path).config
    with reported():
        accounts = people.list_accounts(config, people.acting(config, "users.manage"))
    if as_json:
        console.print_json(json.dumps([a.as_dict() for a in accounts]))
        return
    table = Table("name", "roles", "state", "created by", "created (UTC)", title="accounts")
    for account in accounts:
        state = "disabled" if account.disabled else "enabled"
        if account.locked_until is not None:
            state += f", locked until {account.locked_until:%Y-%m-%d %H:%M} UTC"
        table.add_row(account.name, ", ".join(account.roles), state, account.created_by,
                      f"{account.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@app.command("disable")
def disable(name: NameArgument, config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Disable an account and end its sessions (admin)."""
    config = line_setup(config_path).config
    with reported():
        account = people.disable(config, people.acting(config, "users.manage"), name)
    console.print(f"account {account.name!r} disabled", markup=False)


@app.command("passwd")
def passwd(
    name: Annotated[str | None, typer.Argument(help="whose passphrase an admin resets "
                                               "(default: your own)")] = None,
    passphrase_file: PassphraseFile = None,
    old_passphrase_file: Annotated[Path | None, typer.Option(
        "--old-passphrase-file", help="your current passphrase, when changing your own")] = None,
    config_path: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Change your own passphrase, or (admin) reset another account's."""
    config = line_setup(config_path).config
    with reported():
        actor = people.current_person(config)
    target = name or actor.name
    old = _passphrase(old_passphrase_file, "current passphrase: ") \
        if target == actor.name else None
    new = _new_passphrase(passphrase_file)
    with reported():
        people.passwd(config, actor, target, new, old=old)
    console.print(f"passphrase of {target!r} changed", markup=False)


def login(name: Annotated[str | None, typer.Argument(help="the account name (default: "
                                                     "asked)")] = None,
          passphrase_file: Annotated[Path | None, typer.Option(
              "--passphrase-file", help="read the passphrase from this file (owner-only)")
          ] = None,
          config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Log in to this line until the end of the current shift."""
    config = line_setup(config_path).config
    account = name or typer.prompt("account")
    passphrase = _passphrase(passphrase_file, "passphrase: ")
    with reported():
        session = people.login(config, account, passphrase)
    console.print(f"logged in as {session.person.name!r} ({', '.join(session.person.roles)}) "
                  f"until {session.expires_at:%Y-%m-%d %H:%M} (end of shift)", markup=False)


def logout(config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """End your session on this line."""
    config = line_setup(config_path).config
    with reported():
        account = people.logout(config)
    console.print(f"{account!r} logged out", markup=False)


def whoami(config_path: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Show who is acting on this line, with which roles and until when."""
    config = line_setup(config_path).config
    with reported():
        identity = people.whoami(config)
    person, until = identity.person, identity.expires_at
    if as_json:
        console.print_json(json.dumps({
            "name": person.name, "roles": list(person.roles), "source": identity.source,
            "expires_at": None if until is None else until.isoformat()}))
        return
    how = f"session until {until:%Y-%m-%d %H:%M}" if until is not None else \
        f"from {people.USER_ENV}"
    console.print(f"{person.name} ({', '.join(person.roles)}); {how}", markup=False)
