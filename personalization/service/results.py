"""Issuance results back to the registry: for each application of a closed batch, what became
of it (issued, failed, quarantined, with reason codes), the card and its chip, dates, the DS
certificate, the card it superseded — and no other personal data. Signed (CMS SignedData,
DER) by the factory's key in the HSM, made once per batch and kept in the journal, so every
later call gives the same bytes and the registry can import them twice without harm.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from common.files import write_private
from hsm.auditcert import certificate_pem
from hsm.errors import HSMError
from hsm.factory import ensure_factory_keys, factory_certificates, sign_results
from personalization.config import LineConfig
from personalization.service.batches import open_journal
from personalization.service.errors import ServiceError
from personalization.service.keys import open_hsm

__all__ = ["Results", "factory_keys", "issuance_results"]

FORMAT = "cardline-issuance-results/1"


@dataclass(frozen=True, slots=True)
class Results:
    """The signed results of a batch, where they were written, and what they count."""

    batch: str
    out: Path
    document: bytes
    counts: dict[str, int]


def _content(batch: str, registry_id: str | None, rows: list[dict[str, object]]) -> bytes:
    header = {"format": FORMAT, "batch": batch, "registry_batch": registry_id,
              "records": len(rows),
              "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
    lines = [json.dumps(header, ensure_ascii=False, sort_keys=True)]
    lines += [json.dumps(row, ensure_ascii=False, sort_keys=True) for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _counts(document_rows: list[dict[str, object]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in document_rows:
        status = str(row.get("status"))
        counts[status] = counts.get(status, 0) + 1
    return counts


def issuance_results(config: LineConfig, batch: str, out: Path, *,
                     actor: str | None = None) -> Results:
    """Write the signed issuance results of closed ``batch`` to ``out`` (owner-only: they
    list document numbers and chip serials): made and kept the first time, the same bytes
    after."""
    with open_journal(config, sealed=True) as journal:  # quarantine reasons are sealed on PG
        info = journal.batch(batch)
        if info.state != "closed":
            raise ServiceError(f"batch {batch!r} is {info.state}: issuance results are made "
                               "once a batch is closed (every application settled)")
        rows = journal.issuance_results(batch)
        document = journal.results_document(batch)
        if document is None:
            received = journal.received_for(batch)
            content = _content(batch, received.registry_id if received else None, rows)
            try:
                with open_hsm(config) as hsm:
                    keys = factory_certificates(hsm)
                    if keys is None:
                        raise ServiceError("this line has no factory signing key: a security "
                                           "officer makes it with `cardline keys factory`")
                    signed = sign_results(hsm, keys, content, datetime.now(UTC))
            except HSMError as exc:
                raise ServiceError(f"cannot sign the issuance results: HSM: {exc}") from exc
            document = journal.keep_results(batch, signed, actor=actor)
    try:
        write_private(out, document)
    except OSError as exc:
        raise ServiceError(f"cannot write {out}: {exc.strerror}") from exc
    return Results(batch, out, document, _counts(rows))


def factory_keys(config: LineConfig, out: Path) -> tuple[Path, Path]:
    """The factory's two keys on the line token, made once: FACTORY-SIGN signs issuance
    results, FACTORY-ENC is what the registry encrypts batches to. Their certificates are
    written to ``out`` (factory-sign.pem, factory-enc.pem) for the registry."""
    try:
        with open_hsm(config) as hsm:
            keys = ensure_factory_keys(hsm, line=config.line, now=datetime.now(UTC))
    except HSMError as exc:
        raise ServiceError(f"cannot make the factory keys: HSM: {exc}") from exc
    out.mkdir(parents=True, exist_ok=True)
    sign, enc = out / "factory-sign.pem", out / "factory-enc.pem"
    try:
        sign.write_text(certificate_pem(keys.sign_certificate), encoding="ascii")
        enc.write_text(certificate_pem(keys.enc_certificate), encoding="ascii")
    except OSError as exc:
        raise ServiceError(f"cannot write to {out}: {exc.strerror}") from exc
    return sign, enc
