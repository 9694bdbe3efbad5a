"""The audit trail's export: one file an outsider checks offline — with openssl and a hash
recomputation, or with ``cardline audit verify --export`` — without the database."""

from __future__ import annotations

import json
import re
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO, TextIOWrapper
from pathlib import Path
from typing import IO

from hsm.auditcert import (
    certificate_pem,
    certificates_from_pem,
    fingerprint,
)
from hsm.errors import CertificateError
from personalization.config import LineConfig
from personalization.journal.audit_port import (
    AuditEvent,
    AuditPort,
    Checkpoint,
    parse_statement,
    statement,
)
from personalization.service.audit import (
    AuditResult,
    Finding,
    Problem,
    audit_journal,
    now,
    result_of,
    signed_findings,
    trusted_findings,
    uncovered,
    walk_chains,
)
from personalization.service.batches import open_journal
from personalization.service.errors import ServiceError

__all__ = ["Exported", "export", "export_line", "verify_export"]

_ROOT = "audit"
_VERIFY_TXT = """\
cardline audit trail export
===========================

Exported {exported_at}: {events} events in {chains} chain(s), {checkpoints} signed checkpoint(s).
Audit certificate(s), SHA-256 of the DER:
{fingerprints}
Compare these with the fingerprint recorded when the audit key was made (the journal event
`audit.key`, the line's key ceremony records) before trusting anything below: whoever can
rewrite this file can also put their own certificate in it.

  openssl x509 -in audit.pem -noout -fingerprint -sha256

Contents
--------
  events.jsonl        one event per line, every chain in order of seq, the `journal` chain
                      first; fields chain, seq, at, batch, card, kind, actor, data, prev, hash.
                      `data` is the event's JSON text exactly as it was hashed; `actor` is the
                      account name of the person who caused the event (null when none did).
  heads.json          each chain's head (seq, hash) when the export was made.
  checkpoints/*.txt   checkpoint statements, UTF-8:
                        cardline audit checkpoint
                        chain=<chain>
                        seq=<seq>
                        head=<hash of event seq of that chain>
                        at=<when it was signed, ISO 8601 UTC>
  checkpoints/*.p7s   a detached CMS SignedData (DER, RFC 5652) over the .txt beside it,
                      ECDSA P-256 with SHA-256, signed by the audit key in the line's HSM.
  audit.pem           the self-signed audit certificate(s).

1. Verify each checkpoint's signature
-------------------------------------
  cd {root}
  for p in checkpoints/*.p7s; do
    openssl cms -verify -binary -inform DER -in "$p" -content "${{p%.p7s}}.txt" \\
      -CAfile audit.pem -purpose any -out /dev/null || echo "BAD: $p"
  done

Each must print "Verification successful" (OpenSSL 3.0: "CMS Verification successful").

2. Recompute the event hashes
-----------------------------
For each chain, in order of seq, starting with prev = 64 times "0":
  hash = SHA-256 (hex, lower case) of the UTF-8 bytes of the JSON array
         [prev, seq, at, batch, card, kind, data]
  written with no spaces (separators "," and ":"), non-ASCII characters as themselves (not
  \\u escapes), and strings escaped as JSON requires (\\" \\\\ \\b \\f \\n \\r \\t, other control
  characters as \\u00xx); batch and card are null when absent, seq and card are integers.
  In Python: json.dumps([prev, seq, at, batch, card, kind, data], ensure_ascii=False,
                        separators=(",", ":")).
Each event's `prev` must be the previous event's `hash`, its `hash` the value computed, its
seq one more than the previous one; the last event of each chain must be the head in
heads.json. Then every checkpoint's head must be the hash of event <seq> of its chain: an
event changed and every later hash recomputed no longer reaches the head a checkpoint signed.

3. All of it at once
--------------------
  cardline audit verify --export FILE [--certificate audit-you-trust.pem]

checks the signatures, the hashes, the heads and the checkpoints, offline, without any
database; it exits 0 when the trail holds and 1 naming the first bad event by seq and chain.
"""


@dataclass(frozen=True, slots=True)
class Exported:
    """An export written: where, and what it holds."""

    path: Path
    events: int
    checkpoints: int


def _actor(data: str) -> str | None:
    """The account name of the person who caused an event, when one did."""
    if '"actor"' not in data:
        return None
    actor = json.loads(data).get("actor")
    return actor if isinstance(actor, str) else None


def _event_line(event: AuditEvent) -> bytes:
    return (json.dumps({"chain": event.chain, "seq": event.seq, "at": event.at,
                        "batch": event.batch, "card": event.card, "kind": event.kind,
                        "actor": _actor(event.data), "data": event.data, "prev": event.prev,
                        "hash": event.hash}, ensure_ascii=False) + "\n").encode("utf-8")


def _add(tar: tarfile.TarFile, name: str, data: bytes | IO[bytes], mtime: float,
         size: int | None = None) -> None:
    """One owner-only member of the export; a file object is read for ``size`` bytes."""
    info = tarfile.TarInfo(f"{_ROOT}/{name}")
    info.mode, info.mtime = 0o600, mtime
    if isinstance(data, bytes):
        info.size = len(data)
        tar.addfile(info, BytesIO(data))
    else:
        info.size = size or 0
        tar.addfile(info, data)


def _checkpoint_name(index: int, point: Checkpoint) -> str:
    return f"checkpoints/{index:06d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', point.chain)}-{point.seq}"


def export(journal: AuditPort, out: Path, *, at: datetime | None = None) -> Exported:
    """Write the whole trail into ONE tar file ``out`` (owner-only) from one snapshot: the
    events as JSON Lines naming their actor, the heads, each checkpoint's statement and CMS
    signature, the audit certificates as PEM, and VERIFY.txt (how to check it with openssl,
    and how the hashes are recomputed). Events pass through a temporary file, not memory."""
    moment = at or now()
    with ExitStack() as stack:
        spool = stack.enter_context(tempfile.TemporaryFile())
        with journal.audit_snapshot() as snapshot:
            heads, points = snapshot.heads(), snapshot.checkpoints()
            certificates = [key.certificate for key in snapshot.audit_keys()]
            count = sum(spool.write(_event_line(e)) > 0 for e in snapshot.events())
        size = spool.tell()
        spool.seek(0)
        with _replacing(out) as file, tarfile.open(fileobj=file, mode="w") as tar:
            stamp = moment.timestamp()
            _add(tar, "VERIFY.txt", _verify_text(moment, count, heads, points,
                                                 certificates).encode("utf-8"), stamp)
            _add(tar, "audit.pem", "".join(map(certificate_pem, certificates)).encode("ascii"),
                 stamp)
            _add(tar, "heads.json", _heads_json(heads, moment), stamp)
            _add(tar, "events.jsonl", spool, stamp, size)
            for index, point in enumerate(points, 1):
                name = _checkpoint_name(index, point)
                _add(tar, f"{name}.txt", statement(point.chain, point.seq, point.head, point.at),
                     stamp)
                _add(tar, f"{name}.p7s", point.signature, stamp)
    return Exported(out, count, len(points))


def _verify_text(moment: datetime, events: int, heads: Mapping[str, tuple[int, str]],
                 points: Sequence[Checkpoint], certificates: Sequence[bytes]) -> str:
    prints = "".join(f"  {fingerprint(c)}\n" for c in certificates) or "  (none)\n"
    return _VERIFY_TXT.format(exported_at=moment.isoformat(), events=events, chains=len(heads),
                              checkpoints=len(points), fingerprints=prints, root=_ROOT)


def _heads_json(heads: Mapping[str, tuple[int, str]], moment: datetime) -> bytes:
    return json.dumps({"exported_at": moment.isoformat(),
                       "chains": {c: {"seq": s, "hash": h} for c, (s, h) in sorted(heads.items())}},
                      indent=2).encode("utf-8") + b"\n"


@contextmanager
def _replacing(out: Path) -> Iterator[IO[bytes]]:
    """A new owner-only file that becomes ``out`` only once fully written."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.",
                                         delete=False) as file:
            try:
                yield file
                file.flush()
            except BaseException:
                Path(file.name).unlink(missing_ok=True)
                raise
        Path(file.name).replace(out)
    except OSError as exc:
        raise ServiceError(f"cannot write the audit export {out}: {exc.strerror}") from exc


def export_line(config: LineConfig, out: Path) -> Exported:
    """:func:`export` of the line's journal."""
    with open_journal(config) as journal:
        return export(audit_journal(journal), out)


def _read(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    try:
        member = tar.extractfile(f"{_ROOT}/{name}")
    except KeyError:
        member = None
    if member is None:
        raise ServiceError(f"the audit export has no {_ROOT}/{name}: not a cardline export")
    return member


def _exported_events(tar: tarfile.TarFile, findings: list[Finding]) -> Iterator[AuditEvent]:
    for line in TextIOWrapper(_read(tar, "events.jsonl"), encoding="utf-8"):
        raw = json.loads(line)
        event = AuditEvent(raw["chain"], raw["seq"], raw["at"], raw["batch"], raw["card"],
                           raw["kind"], raw["data"], raw["prev"], raw["hash"])
        if raw.get("actor") != _actor(event.data):
            findings.append(Finding(Problem.ACTOR, event.chain, event.seq,
                                    {"actor": raw.get("actor")}))
        yield event


def _exported_checkpoints(tar: tarfile.TarFile) -> Iterator[Checkpoint]:
    for name in sorted(tar.getnames()):
        if not (name.startswith(f"{_ROOT}/checkpoints/") and name.endswith(".txt")):
            continue
        text = _read(tar, name.removeprefix(f"{_ROOT}/")).read()
        signature = _read(tar, name.removeprefix(f"{_ROOT}/").removesuffix(".txt") + ".p7s")
        try:
            chain, seq, head, at = parse_statement(text)
        except ValueError:
            chain, seq, head, at = name, 0, "", ""  # its signature cannot verify either
        yield Checkpoint(chain, seq, head, at, "", signature.read())


def verify_export(path: Path, *, trusted: Sequence[bytes] | None = None) -> AuditResult:
    """Check an export offline, with no database: each checkpoint's CMS signature under the
    export's audit certificate (or only ``trusted`` ones), every chain re-hashed and held to
    its exported head and to its checkpoints, and each event's ``actor`` against its data."""
    try:
        with tarfile.open(path, "r:*") as tar:
            certificates = certificates_from_pem(_read(tar, "audit.pem").read())
            heads = {chain: (int(h["seq"]), str(h["hash"])) for chain, h in json.loads(
                _read(tar, "heads.json").read())["chains"].items()}
            points = list(_exported_checkpoints(tar))
            usable = [c for c in certificates if trusted is None or c in trusted]
            good, findings = signed_findings(points, lambda _: usable)
            findings += trusted_findings(certificates, trusted)
            events, chain_findings = walk_chains(_exported_events(tar, findings), heads, good)
    except (OSError, tarfile.TarError, ValueError, KeyError, TypeError,
            CertificateError) as exc:
        raise ServiceError(f"{path}: not a readable cardline audit export: {exc}") from exc
    return result_of(events, len(points), [*findings, *chain_findings],
                   uncovered(heads, good), certificates)
