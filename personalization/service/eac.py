"""The EAC PKI as security officers and QA use it: creating the CVCA, DV and the QA desk's
inspection-system key, renewing the DV and the QA key, the CVCA rollover, exporting the CVCA,
certifying an outside inspection system, and the QA desk's Terminal Authentication key.

Every ceremony needs ``keys.quorum`` officers, each authenticating with their own passphrase
(:func:`personalization.service.ceremony.quorum`); the CVCA key sits on the CSCA's own token,
opened by the quorum's shares of its PIN; the DV and IS keys on the line token. A request the
policy (``eac`` in line.yaml) refuses is refused before any token is opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from applets.emrtd import cvc
from hsm import eac
from hsm.errors import HSMError
from hsm.inventory import KeyRecord
from personalization.config import LineConfig
from personalization.service import eacline, eacpki
from personalization.service.ceremony import Credential, csca_token, now, quorum, refuse
from personalization.service.eacpki import Ceremony, ISRequest, TerminalKey
from personalization.service.errors import ServiceError
from personalization.service.keys import open_hsm, open_inventory
from personalization.service.people import Person

CHAIN_FILES = ("cvca.cvcert", "dv.cvcert", "is.cvcert")


@dataclass(frozen=True)
class EACKeys:
    """The keys a ceremony made (each None when it made no such key)."""

    cvca: KeyRecord | None
    dv: KeyRecord | None
    qa_is: KeyRecord | None
    link: bytes | None = None


def _ceremony(config: LineConfig, officers: tuple[str, ...]) -> Ceremony:
    return Ceremony.of(officers, now(), quorum=config.keys.quorum)


def init(config: LineConfig, acting: Person, credentials: Sequence[Credential]) -> EACKeys:
    """The CVCA (on the CSCA's token), the domestic DV and the QA desk's IS key (on the line
    token), each certificate verified under its issuer, all in one ceremony."""
    with quorum(config, acting, credentials, "eac-init") as q:
        with open_inventory(config) as inventory:
            if inventory.active(eac.CVCA) is not None:
                raise refuse(q, "eac-init", "an active CVCA exists already; renew the DV with "
                             "`cardline keys eac-renew` or replace the CVCA with "
                             "`cardline keys eac-rollover`")
        with csca_token(config, q, "eac-init") as cvca_hsm, open_hsm(config) as line_hsm, \
                open_inventory(config) as inventory:
            c = _ceremony(config, q.officers)
            cvca = eacpki.init_cvca(cvca_hsm, inventory, config.eac, c)
            dv = eacpki.new_dv(line_hsm, cvca_hsm, inventory, config.eac, c)
            qa_is = eacpki.new_qa_is(line_hsm, inventory, config.eac, c)
        q.note("keys.eac_created", cvca=cvca.label, dv=dv.label, qa_is=qa_is.label,
               curve=config.eac.curve)
    return EACKeys(cvca, dv, qa_is)


def renew(config: LineConfig, acting: Person, credentials: Sequence[Credential], *,
          dv: bool = True) -> EACKeys:
    """A new QA desk IS key, and first a new DV (certified by the CVCA) unless ``dv`` is
    False: the DV's certificate runs ``eac.dv_days``, the IS's ``eac.is_days``."""
    with quorum(config, acting, credentials, "eac-renew") as q:
        c = _ceremony(config, q.officers)
        with open_hsm(config) as line_hsm, open_inventory(config) as inventory:
            new_dv = None
            if dv:
                with csca_token(config, q, "eac-renew") as cvca_hsm:
                    new_dv = eacpki.new_dv(line_hsm, cvca_hsm, inventory, config.eac, c)
            qa_is = eacpki.new_qa_is(line_hsm, inventory, config.eac, c)
        q.note("keys.eac_renewed", dv=new_dv.label if new_dv else None, qa_is=qa_is.label)
    return EACKeys(None, new_dv, qa_is)


def rollover(config: LineConfig, acting: Person, credentials: Sequence[Credential],
             out: Path) -> EACKeys:
    """A new CVCA (self-signed) and its link certificate signed by the previous CVCA key, then
    a new DV and QA IS key under it; writes ``cvca.cvcert`` (self-signed) and ``link.cvcert``
    to the folder ``out``."""
    with quorum(config, acting, credentials, "eac-rollover") as q:
        c = _ceremony(config, q.officers)
        with csca_token(config, q, "eac-rollover") as cvca_hsm, open_hsm(config) as line_hsm, \
                open_inventory(config) as inventory:
            rolled = eacpki.rollover_cvca(cvca_hsm, inventory, config.eac, c)
            dv = eacpki.new_dv(line_hsm, cvca_hsm, inventory, config.eac, c)
            qa_is = eacpki.new_qa_is(line_hsm, inventory, config.eac, c)
        out.mkdir(parents=True, exist_ok=True)
        (out / "cvca.cvcert").write_bytes(rolled.new.certificate)
        (out / "link.cvcert").write_bytes(rolled.link)
        q.note("keys.cvca_rolled_over", old=rolled.previous.label, new=rolled.new.label,
               dv=dv.label, qa_is=qa_is.label)
    return EACKeys(rolled.new, dv, qa_is, rolled.link)


def export_cvca(config: LineConfig) -> bytes:
    """The active CVCA's self-signed CV certificate (DER): the chips' trust point."""
    return eacline.active_cvca(config)


@dataclass(frozen=True)
class ISOrder:
    """What `keys issue-is` was asked: a PEM public key file, rights, days, holder mnemonic."""

    public_key: Path
    rights: str
    days: int
    holder: str | None = None


def _request(config: LineConfig, order: ISOrder) -> ISRequest:
    """The order checked against the policy and the CVCA's curve (nothing opened but the
    inventory)."""
    rights = eacpki.parse_rights(order.rights)
    eacpki.check_days(order.days, config.eac.is_days, "eac.is_days")
    holder = eacpki.check_holder(order.holder or config.eac.partner_mnemonic)
    with open_inventory(config) as inventory:
        dv = inventory.active(eac.DV)
    if dv is None:
        raise ServiceError("there is no active DV; security officers create it with "
                           "`cardline keys eac-init`")
    try:
        pem = order.public_key.read_bytes()
    except OSError as exc:
        raise ServiceError(f"--public-key {order.public_key}: {exc.strerror}") from exc
    point = eacpki.load_public_point(pem, eacpki.curve_of(dv))
    return ISRequest(point, rights, order.days, holder)


def issue_is(config: LineConfig, acting: Person, credentials: Sequence[Credential],
             order: ISOrder, out: Path) -> str:
    """Certify an outside inspection system's key with the DV; writes ``cvca.cvcert``,
    ``dv.cvcert`` (as they are) and ``is.cvcert`` (new) to the folder ``out``. Returns the
    new certificate's holder reference (CHR)."""
    request = _request(config, order)
    with quorum(config, acting, credentials, "issue-is") as q:
        with open_hsm(config) as line_hsm, open_inventory(config) as inventory:
            try:
                chain = eacpki.issue_is(line_hsm, inventory, config.eac, request,
                                        _ceremony(config, q.officers))
            except HSMError as exc:
                raise refuse(q, "issue-is", str(exc)) from exc
        out.mkdir(parents=True, exist_ok=True)
        for name, der in zip(CHAIN_FILES, chain, strict=True):
            (out / name).write_bytes(der)
        holder = str(cvc.CVCertificate.decode(chain[-1]).body.chr)
        q.note("keys.is_certified", holder=holder, rights=order.rights, days=order.days)
    return holder


def qa_terminal(config: LineConfig) -> AbstractContextManager[TerminalKey]:
    """The QA desk's Terminal Authentication key while the block runs: its chain (CVCA, DV,
    IS; DER) and a signer (message → plain r ‖ s, SHA-256 then ECDSA in the HSM)."""
    return eacline.qa_terminal_key(config)
