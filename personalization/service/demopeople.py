"""The demo's people and keys on the embedded default: demo accounts (each with a random
passphrase in an owner-only file under ``<data_dir>/demo-people``), and the CSCA, a DS and the
EAC keys (CVCA, DV, the QA desk's inspection system) made by the demo's two officers in real
quorum ceremonies. Never on a configured real HSM."""

from __future__ import annotations

import secrets
from pathlib import Path

from common.files import write_private
from hsm.eac import CVCA as EAC_CVCA
from personalization.config import LineConfig
from personalization.demoregistry import DemoRegistry, ensure_demo_registry
from personalization.journal import open_journal
from personalization.journal.people_port import people as people_of
from personalization.people import Person
from personalization.service import ceremony, eac, people
from personalization.service.errors import ServiceError
from personalization.service.keys import csca_pem_or_explain, open_inventory
from personalization.service.setup import LineSetup

ADMIN = "demo-admin"
OPERATOR = "demo-operator"  # the demo's floor: runs the line and its QA desk
OFFICERS = ("demo-officer-1", "demo-officer-2")
AUDITOR = "demo-auditor"
ROLES: dict[str, tuple[str, ...]] = {
    OPERATOR: ("operator", "qa"), OFFICERS[0]: ("officer",), OFFICERS[1]: ("officer",),
    AUDITOR: ("auditor",)}


def folder(config: LineConfig) -> Path:
    """Where the demo accounts' passphrase files are."""
    return config.data_dir / "demo-people"


def passphrase_file(config: LineConfig, name: str) -> Path:
    """The passphrase file of a demo account."""
    return folder(config) / f"{name}.pass"


def _phrase(config: LineConfig, name: str) -> str:
    """A demo account's passphrase: its file's, or a new random one written there."""
    path = passphrase_file(config, name)
    if path.exists():
        return people.read_passphrase_file(path)
    phrase = secrets.token_urlsafe(18)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, phrase + "\n")
    return phrase


def ensure_people(config: LineConfig) -> None:
    """The demo accounts, created once in the journal ``config`` names (the embedded
    default's, or the PostgreSQL journal of a demo with several lines), with the passphrases
    of their files: refused when that journal has accounts of its own (a real deployment is
    not the demo's to change)."""
    if config.hsm.pin_source != "embedded":
        raise ServiceError("the demo runs on the embedded default only (hsm.pin_source: "
                           "embedded); it never touches a configured HSM")
    with open_journal(config.journal.url) as journal:
        existing = {row.name for row in people_of(journal).accounts()}
    wanted = {ADMIN, *ROLES}
    if existing and existing != wanted:
        raise ServiceError("this journal has accounts that are not the demo's: the demo "
                           "creates its own accounts on a fresh embedded default only")
    phrases = {name: _phrase(config, name) for name in sorted(wanted)}
    if existing:
        return
    admin = people.bootstrap(config, ADMIN, phrases[ADMIN])
    for name, roles in ROLES.items():
        people.add(config, admin, name, roles, phrases[name])


def operator_env(config: LineConfig) -> dict[str, str]:
    """The environment a demo line process acts in: as the demo operator."""
    return {"CARDLINE_USER": OPERATOR,
            "CARDLINE_PASSPHRASE": people.read_passphrase_file(passphrase_file(config, OPERATOR))}


def officer_credentials(config: LineConfig) -> list[ceremony.Credential]:
    """The demo officers, as a ceremony takes them."""
    return [ceremony.Credential(name, people.read_passphrase_file(passphrase_file(config, name)))
            for name in OFFICERS]


def ensure_keys(config: LineConfig) -> str:
    """Demo accounts, then a CSCA, an active DS and the EAC keys (CVCA, DV, QA desk IS: a
    line on a PACE profile needs the trust point, its QA the terminal) made by the demo
    officers' quorum where missing; returns the CSCA certificate as PEM."""
    ensure_people(config)
    with open_inventory(config) as inventory:
        need_csca = inventory.active("CSCA") is None
        need_ds = need_csca or inventory.active("DS") is None
        need_eac = need_csca or inventory.active(EAC_CVCA) is None
    acting = Person(OFFICERS[0], ("officer",))
    if need_csca:
        ceremony.init_csca(config, acting, officer_credentials(config))
    if need_ds:
        ceremony.new_ds(config, acting, officer_credentials(config))
    if need_eac:  # the CVCA sits on the CSCA's token: made after it
        eac.init(config, acting, officer_credentials(config))
    with open_inventory(config) as inventory:
        return csca_pem_or_explain(inventory)


def trusting_demo(setup: LineSetup) -> tuple[LineSetup, DemoRegistry]:
    """The demo registry of the line's data_dir, and the line's setup trusting it (as the
    shipped ``line.yaml`` does; a test's own configuration may not list it)."""
    registry = ensure_demo_registry(setup.config.data_dir)
    trust = setup.config.registry.trust
    if registry.certificate.resolve() in {path.resolve() for path in trust}:
        return setup, registry
    config = setup.config.model_copy(update={"registry": setup.config.registry.model_copy(
        update={"trust": [*trust, registry.certificate]})})
    return LineSetup(config, setup.base), registry
