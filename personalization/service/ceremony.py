"""Key ceremonies as security officers run them: a quorum of officers, each authenticating
with their own passphrase in the ceremony, and the CSCA on its own token whose PIN no one
knows.

At CSCA creation the CSCA token's PIN is split k-of-n (Shamir, ``hsm.quorum``) among the
officers named, each share sealed under that officer's passphrase and kept in the journal.
A ceremony that needs the CSCA reassembles the PIN in memory from k officers who each
authenticate there, opens the CSCA token, and drops the PIN when it ends. Every ceremony,
and every refusal, is an event of the journal's chain naming the acting officer and the
quorum; a refusal happens before any HSM is opened.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog

from common.errors import CardlineError
from hsm import ceremony
from hsm.certificates import certificate_to_pem, load_certificate
from hsm.errors import HSMError, QuorumError
from hsm.inventory import KeyRecord
from hsm.pkcs11 import HSM
from hsm.quorum import Share, combine, seal, share_context, split, unseal
from hsm.softhsm import ensure_quorum_token
from personalization.config import LineConfig
from personalization.journal import JournalPort, open_journal
from personalization.journal.people_port import people as people_of
from personalization.service import audit
from personalization.service.errors import ServiceError
from personalization.service.keys import CSCAName, open_hsm, open_inventory, prepare_module
from personalization.service.people import Person, Refused, read_passphrase_file, verify_officers

_log = structlog.get_logger()
CSCA_PIN_ENV = "CARDLINE_CSCA_PIN"  # a real HSM's CSCA token PIN, read once at `keys init`


@dataclass(frozen=True, slots=True)
class Credential:
    """An officer taking part in a ceremony, with the passphrase they authenticate with."""

    name: str
    passphrase: str = field(repr=False)


def officer_credential(spec: str) -> Credential:
    """``NAME:PASSPHRASE_FILE`` as given to ``--officer``."""
    name, colon, file = spec.partition(":")
    if not colon or not name.strip() or not file:
        raise ServiceError(f"--officer {spec.split(':')[0]!r}: give NAME:PASSPHRASE_FILE")
    return Credential(name.strip(), read_passphrase_file(Path(file)))


@dataclass(frozen=True, slots=True)
class Quorum:
    """The officers who authenticated in this ceremony, the acting one among them."""

    journal: JournalPort
    acting: Person
    officers: tuple[str, ...]
    passphrases: dict[str, str] = field(repr=False)

    def note(self, kind: str, **data: object) -> None:
        """An event of this ceremony in the journal's chain."""
        self.journal.note(None, kind, actor=self.acting.name, role="officer",
                          officers=list(self.officers), **data)


def _refuse(journal: JournalPort, acting: Person, what: str, reason: str) -> Refused:
    journal.note(None, "people.refused", actor=acting.name, action=f"keys.{what}",
                 reason=reason)
    return Refused(f"key ceremony `{what}` refused: {reason}")


@contextmanager
def quorum(config: LineConfig, acting: Person, credentials: Sequence[Credential],
           what: str) -> Iterator[Quorum]:
    """Open the journal and authenticate every officer named; refuse (audited, nothing
    opened) unless ``keys.quorum`` different officers did, the acting person among them."""
    with open_journal(config.journal.url) as journal:
        officers = verify_officers(people_of(journal), config,
                                   [(c.name, c.passphrase) for c in credentials])
        names = tuple(dict.fromkeys(p.name for p in officers))
        k = config.keys.quorum
        if acting.name not in names:
            raise _refuse(journal, acting, what, f"{acting.name!r} runs the ceremony, so must "
                          "be one of its officers (--officer NAME:PASSPHRASE_FILE)")
        if len(names) < k:
            raise _refuse(journal, acting, what, f"needs {k} different officers; {len(names)} "
                          "authenticated (the same officer twice counts once)")
        passphrases = {c.name: c.passphrase for c in credentials if c.name in names}
        yield Quorum(journal, acting, names, passphrases)
    _checkpoint(config)


def _checkpoint(config: LineConfig) -> None:
    """A signed checkpoint of the chain the ceremony wrote to (once the line token holds an
    audit key): a ceremony's record is vouched for by a signature at once."""
    try:
        audit.checkpoint(config)
    except CardlineError as exc:  # the ceremony stands; `audit verify` says what is wrong
        _log.warning("keys.ceremony.no_checkpoint", reason=str(exc))


def _csca_pin(config: LineConfig, q: Quorum, what: str) -> str:
    """The CSCA token's PIN, reassembled from the shares of the officers present."""
    token = config.keys.csca_token
    rows = q.journal.shares(token)
    if not rows:
        raise ServiceError(f"the CSCA token {token!r} has no officers' shares: run "
                           "`cardline keys init` first")
    needed = rows[0].quorum
    held = [row for row in rows if row.officer in q.officers]
    if len(held) < needed:
        holders = ", ".join(sorted(row.officer for row in rows))
        raise _refuse(q.journal, q.acting, what, f"{needed} of the officers holding a share "
                      f"of the CSCA PIN must take part ({holders}); {len(held)} did")
    try:
        shares = [Share.from_bytes(unseal(row.share, q.passphrases[row.officer],
                                          share_context(token, row.officer))) for row in held]
        return combine(shares).decode("utf-8")
    except QuorumError as exc:
        raise _refuse(q.journal, q.acting, what, f"the officers' shares do not open the CSCA "
                      f"token: {exc}") from exc


@contextmanager
def _csca_token(config: LineConfig, pin: str) -> Iterator[HSM]:
    prepare_module(config)
    with HSM(config.hsm.module, config.keys.csca_token, pin, sessions=1) as hsm:
        yield hsm


@contextmanager
def csca_token(config: LineConfig, q: Quorum, what: str) -> Iterator[HSM]:
    """The CSCA's own token, opened with the PIN the quorum's shares reassemble (also the
    home of the CVCA key); the PIN is dropped once the token is open."""
    pin = _csca_pin(config, q, what)
    with _csca_token(config, pin) as hsm:
        del pin
        yield hsm


def refuse(q: Quorum, what: str, reason: str) -> Refused:
    """A refusal of ceremony ``what`` by the quorum's acting officer, in the journal."""
    return _refuse(q.journal, q.acting, what, reason)


def now() -> datetime:
    """This second, in UTC: when a ceremony happens."""
    return _now()


def _new_csca_pin(config: LineConfig) -> str:
    """The PIN of a CSCA token made for this ceremony (embedded SoftHSM), or of one a real
    HSM's own tools initialised (``CARDLINE_CSCA_PIN``, read once, then split)."""
    if config.hsm.pin_source == "embedded":
        _, pin = ensure_quorum_token(config.data_dir, config.keys.csca_token)
        if pin is None:
            raise ServiceError(
                f"the CSCA token {config.keys.csca_token!r} exists but no officer holds a share "
                "of its PIN (a ceremony was cut off): delete that token and run `keys init` again")
        return pin
    pin = os.environ.get(CSCA_PIN_ENV)
    if not pin:
        raise ServiceError(f"initialise the CSCA token {config.keys.csca_token!r} with your "
                           f"HSM's tools and give its PIN once in {CSCA_PIN_ENV}; it is split "
                           "among the officers and kept nowhere")
    return pin


def _split_among(config: LineConfig, q: Quorum, pin: str, *, after: int) -> int:
    k = config.keys.quorum
    token = config.keys.csca_token
    shares = split(pin.encode("utf-8"), k, len(q.officers))
    sealed = [(name, seal(share.to_bytes(), q.passphrases[name], share_context(token, name)))
              for name, share in zip(q.officers, shares, strict=True)]
    generation: int = q.journal.put_shares(token, k, sealed, actor=q.acting.name, after=after)
    return generation


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def init_csca(config: LineConfig, acting: Person, credentials: Sequence[Credential],
              name: CSCAName | None = None) -> KeyRecord:
    """Create the CSCA on its own token: the token's PIN is split among the officers named
    (k = ``keys.quorum`` of them open it later); then the audit key on the line token."""
    name = name or CSCAName()
    with quorum(config, acting, credentials, "init") as q:
        with open_inventory(config) as inventory:
            if inventory.active("CSCA") is not None:
                raise _refuse(q.journal, acting, "init", "an active CSCA exists already; "
                              "replace it with `cardline keys rollover`")
        rows = q.journal.shares(config.keys.csca_token)
        if rows:  # shares were split, the CSCA never made: the quorum opens the token again
            pin = _csca_pin(config, q, "init")
        else:
            pin = _new_csca_pin(config)
            _split_among(config, q, pin, after=0)
        with _csca_token(config, pin) as csca_hsm, open_inventory(config) as inventory:
            record = ceremony.init_csca(
                csca_hsm, inventory, officers=q.officers, at=_now(),
                label=config.hsm.csca_label, country=name.country, icao_code=name.icao_code,
                common_name=name.common_name, algorithm=config.hsm.algorithm,
                ec_parameters=config.hsm.ec_parameters, quorum=config.keys.quorum)
        del pin
        q.note("keys.csca_created", label=record.label, token=config.keys.csca_token,
               holders=len(q.officers), quorum=config.keys.quorum)
        _ensure_audit_key(config, q.journal)
    return record


def _ensure_audit_key(config: LineConfig, journal: JournalPort) -> None:
    with open_hsm(config) as line_hsm:
        audit.ensure_audit_key(config, line_hsm, journal)


@dataclass(frozen=True, slots=True)
class Policy:
    """A DS key's bounds: the configured policy, lowered (never raised) by the ceremony."""

    usage_days: int
    max_documents: int


def ds_policy(config: LineConfig, usage_days: int | None,
              max_documents: int | None) -> Policy:
    """The policy of ``hsm.ds_usage_days`` / ``hsm.ds_max_documents``, lowered by options."""
    days, most = config.hsm.ds_usage_days, config.hsm.ds_max_documents
    if usage_days is not None:
        if not 0 < usage_days <= days:
            raise ServiceError(f"--usage-days {usage_days}: the DS policy allows 1 to {days} "
                               "days (hsm.ds_usage_days); a ceremony may lower it, not raise it")
        days = usage_days
    if max_documents is not None:
        if not 0 < max_documents <= most:
            raise ServiceError(f"--max-documents {max_documents}: the DS policy allows 1 to "
                               f"{most} documents (hsm.ds_max_documents); a ceremony may lower "
                               "it, not raise it")
        most = max_documents
    return Policy(days, most)


def new_ds(config: LineConfig, acting: Person, credentials: Sequence[Credential], *,
           usage_days: int | None = None, max_documents: int | None = None,
           ) -> KeyRecord:
    """A new DS key on the line token, certified by the CSCA on its token (opened by the
    quorum's shares), active at once; the previous DS retires."""
    policy = ds_policy(config, usage_days, max_documents)
    with quorum(config, acting, credentials, "new-ds") as q:
        pin = _csca_pin(config, q, "new-ds")
        with open_hsm(config) as line_hsm, _csca_token(config, pin) as csca_hsm, \
                open_inventory(config) as inventory:
            del pin
            record = ceremony.new_ds(
                line_hsm, inventory, csca_hsm=csca_hsm, officers=q.officers, at=_now(),
                usage_days=policy.usage_days, max_documents=policy.max_documents,
                algorithm=config.hsm.algorithm, label_prefix=config.hsm.ds_label_prefix,
                ec_parameters=config.hsm.ec_parameters, quorum=config.keys.quorum)
        q.note("keys.ds_created", label=record.label, usage_days=policy.usage_days,
               max_documents=policy.max_documents)
    return record


def revoke_ds(config: LineConfig, acting: Person, credentials: Sequence[Credential],
              label: str, reason: str) -> KeyRecord:
    """Revoke a DS: every running line stops signing with it within a second (the line
    stops with the reason until a new DS is made); the next CRL lists it."""
    with quorum(config, acting, credentials, "revoke-ds") as q, \
            open_inventory(config) as inventory:
        try:
            record = ceremony.revoke_ds(inventory, label, reason=reason, officers=q.officers,
                                        at=_now(), quorum=config.keys.quorum)
        except HSMError as exc:
            raise _refuse(q.journal, acting, "revoke-ds", str(exc)) from exc
        q.note("keys.ds_revoked", label=label, reason=reason,
               serial=f"{int(load_certificate(record.certificate).serial_number):x}")
    return record


def issue_crl(config: LineConfig, acting: Person, credentials: Sequence[Credential], out: Path,
              *, next_update_days: int = 30) -> int:
    """A CRL of every revoked DS, signed by the CSCA, written DER to ``out``; its number."""
    if not 1 <= next_update_days <= 90:
        raise ServiceError("--next-update-days: 1 to 90 (ICAO 9303-12: a CRL at least every "
                           "90 days)")
    with quorum(config, acting, credentials, "crl") as q:
        pin = _csca_pin(config, q, "crl")
        with _csca_token(config, pin) as csca_hsm, open_inventory(config) as inventory:
            del pin
            number = 1 + sum(1 for e in inventory.audit_trail() if e.action == "crl")
            der = ceremony.issue_crl(csca_hsm, inventory, officers=q.officers, at=_now(),
                                     number=number, next_update_days=next_update_days,
                                     quorum=config.keys.quorum)
            revoked = len(ceremony.revocations(inventory))
        out.write_bytes(der)
        q.note("keys.crl_issued", number=number, revoked=revoked, next_update_days=next_update_days)
    return number


def export_master_list(config: LineConfig, acting: Person, credentials: Sequence[Credential],
                       out: Path) -> int:
    """The CSCA master list (CMS, DER) written to ``out``; how many CSCA certificates."""
    with quorum(config, acting, credentials, "export-master-list") as q:
        pin = _csca_pin(config, q, "export-master-list")
        with _csca_token(config, pin) as csca_hsm, open_inventory(config) as inventory:
            del pin
            der = ceremony.master_list(csca_hsm, inventory, officers=q.officers, at=_now(),
                                       ec_parameters=config.hsm.ec_parameters,
                                       quorum=config.keys.quorum)
            count = sum(1 for r in inventory.all_keys() if r.role == "CSCA")
        out.write_bytes(der)
        q.note("keys.master_list_signed", csca_certificates=count)
    return count


def rollover(config: LineConfig, acting: Person, credentials: Sequence[Credential],
             out: Path, name: CSCAName | None = None) -> ceremony.Rollover:
    """A new CSCA on the CSCA token; writes the new CSCA and both link certificates (PEM) to
    the folder ``out``."""
    name = name or CSCAName()
    with quorum(config, acting, credentials, "rollover") as q:
        pin = _csca_pin(config, q, "rollover")
        with _csca_token(config, pin) as csca_hsm, open_inventory(config) as inventory:
            del pin
            at = _now()
            count = sum(1 for r in inventory.all_keys() if r.role == "CSCA")
            rolled = ceremony.rollover_csca(
                csca_hsm, inventory, officers=q.officers, at=at,
                label=f"{config.hsm.csca_label}-{count + 1}", country=name.country,
                icao_code=name.icao_code, common_name=name.common_name,
                ec_parameters=config.hsm.ec_parameters, quorum=config.keys.quorum)
        out.mkdir(parents=True, exist_ok=True)
        for file, der in (("csca.pem", rolled.new.certificate),
                          ("link-new-by-old.pem", rolled.new_by_old),
                          ("link-old-by-new.pem", rolled.old_by_new)):
            (out / file).write_text(certificate_to_pem(der), encoding="ascii")
        q.note("keys.csca_rolled_over", label=rolled.new.label)
    return rolled


def resplit(config: LineConfig, acting: Person, credentials: Sequence[Credential]) -> int:
    """Split the CSCA PIN again among exactly the officers named (say, when one leaves): a
    quorum of the current holders among them opens it; each named officer gets a new share.
    Returns the new generation."""
    with quorum(config, acting, credentials, "resplit") as q:
        rows = q.journal.shares(config.keys.csca_token)
        pin = _csca_pin(config, q, "resplit")
        generation = _split_among(config, q, pin, after=rows[0].generation)
        del pin
    return generation


def affected(config: LineConfig, label: str) -> list[str]:
    """The document numbers of handed-out cards whose chip QA found signed by DS ``label``
    (for re-issue after a revocation), from the journal."""
    with open_inventory(config) as inventory:
        record = inventory.get(label)
    serial = f"{int(load_certificate(record.certificate).serial_number):x}"
    found: list[str] = []
    with open_journal(config.journal.url) as journal:
        for batch in journal.batches():
            found += [card.document_number for card in journal.cards(batch.name)
                      if card.state.value == "handed_out" and card.qa is not None
                      and card.qa.get("ds_serial") == serial]
    return sorted(set(found))
