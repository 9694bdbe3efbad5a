"""The registry's side of the factory: application batches arrive signed (CMS SignedData,
``.p7m``; optionally encrypted to the factory's key in the HSM) and are verified before a
single record is read; each closed batch's issuance results go back signed.

A signed file's content is JSON Lines whose first line names the registry's batch:
``{"registry_batch": "ID"}``. That id is received once: a second file with it is a replay.
The records are read from a private copy of the verified content (owner-only, under
``data_dir/intake``, removed when the command ends); every record keeps its line number in the
registry's file, and relative photo paths still resolve beside the registry's file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import cms as asn1_cms

from common.files import write_private
from hsm.auditcert import certificates_from_pem
from hsm.cmsfile import Opened, Refused, open_signed
from hsm.errors import CertificateError, HSMError
from hsm.factory import factory_certificates, factory_decrypt
from personalization.applications.intake import IntakeRules
from personalization.applications.lines import REGISTRY_HEADER, registry_header
from personalization.config import LineConfig
from personalization.journal.registry_port import ReceivedRow
from personalization.service.errors import ServiceError
from personalization.service.keys import open_hsm

__all__ = ["Received", "RegistryRefused", "embedded_default", "receive", "staged_path"]

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_HEADER_BYTES = 4096


class RegistryRefused(ServiceError):  # noqa: N818 - what the file is: refused
    """A batch file refused before any record of it was read."""


def embedded_default(config: LineConfig) -> bool:
    """The one-machine embedded default (SoftHSM PIN file, SQLite journal): the only place an
    unsigned batch may be accepted, for demos and tests of the line itself."""
    return config.hsm.pin_source == "embedded" and config.journal.url.startswith("sqlite:")


@dataclass(frozen=True, slots=True)
class Received:
    """A batch file as the intake reads it: the JSON Lines file, the folder its relative
    photo paths resolve in, and (signed) the registry's batch id and the signer."""

    records: Path
    base: Path
    registry_id: str | None
    sha256: str
    opened: Opened | None

    @property
    def signed(self) -> bool:
        """Verified against ``registry.trust``."""
        return self.opened is not None

    def rules(self, policy: IntakeRules) -> IntakeRules:
        """The intake rules for this file: a signed one names each photo file with the
        SHA-256 of its bytes, so that the signature covers the photos too."""
        return replace(policy, photo_digests=self.signed)

    def row(self, batch: str) -> ReceivedRow:
        """The journal's record of this file received as ``batch``."""
        if self.opened is None or self.registry_id is None:
            raise ValueError("an unsigned file is not received from the registry")
        return ReceivedRow(self.registry_id, batch, self.sha256, self.opened.signer,
                           self.opened.encrypted,
                           datetime.now(UTC).isoformat(timespec="seconds"))


def _trust(config: LineConfig) -> list[bytes]:
    if not config.registry.trust:
        raise RegistryRefused("registry.trust lists no certificate: the factory trusts no "
                              "registry signature yet; add the registry's certificate (PEM) to "
                              "line.yaml")
    certificates: list[bytes] = []
    for path in config.registry.trust:
        try:
            found = certificates_from_pem(path.read_bytes())
        except (OSError, ValueError, CertificateError) as exc:
            raise RegistryRefused(f"registry.trust: cannot read certificates from {path}: "
                                  f"{exc}") from exc
        if not found:
            raise RegistryRefused(f"registry.trust: {path} holds no certificate")
        certificates += found
    return certificates


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    try:
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise ServiceError(f"{file}: cannot read: {exc.strerror}") from exc
    return digest.hexdigest()


def _read(file: Path, limit: int, *, first: bool = False) -> bytes:
    """The file's bytes (refused above ``limit``), or with ``first`` its first byte only."""
    try:
        with file.open("rb") as handle:
            if first:
                return handle.read(1)
            data = handle.read(limit + 1)
    except FileNotFoundError as exc:
        raise ServiceError(f"{file}: no such file") from exc
    except OSError as exc:
        raise ServiceError(f"{file}: cannot read: {exc.strerror}") from exc
    if len(data) > limit:
        raise RegistryRefused(f"{file}: refused: larger than registry.max_file_mb "
                              f"({limit >> 20} MiB)")
    return data


def _enveloped(data: bytes) -> bool:
    """The file is CMS EnvelopedData (encrypted to a recipient)."""
    try:
        info = asn1_cms.ContentInfo.load(data)
        return bool(info["content_type"].native == "enveloped_data")
    except (ValueError, TypeError):
        return False


def _verify(config: LineConfig, file: Path, data: bytes) -> Opened:
    trust = _trust(config)
    now = datetime.now(UTC)
    try:
        if not _enveloped(data):
            return open_signed(data, trust=trust, now=now, max_bytes=len(data))
        with open_hsm(config) as hsm:
            keys = factory_certificates(hsm)
            if keys is None:
                raise RegistryRefused(f"{file}: refused: it is encrypted, and this line has no "
                                      "factory decryption key (`cardline keys factory` makes "
                                      "it)")
            return open_signed(data, trust=trust, now=now, max_bytes=len(data),
                               decrypt=factory_decrypt(hsm, keys))
    except Refused as exc:
        raise RegistryRefused(f"{file}: refused: {exc}") from exc
    except HSMError as exc:
        raise ServiceError(f"{file}: cannot decrypt: HSM: {exc}") from exc


def _header(file: Path, content: bytes) -> str:
    """The registry batch id the signed content's header line names."""
    end = content.find(b"\n", 0, _HEADER_BYTES)
    header = registry_header(content[: end if end >= 0 else _HEADER_BYTES])
    registry_id = None if header is None else header.get(REGISTRY_HEADER)
    if not isinstance(registry_id, str):
        raise RegistryRefused(f"{file}: refused: the signed content does not start with the "
                              f'registry\'s header line {{"{REGISTRY_HEADER}": "ID"}}')
    if not _ID.fullmatch(registry_id):
        raise RegistryRefused(f"{file}: refused: the registry batch id in its header is not "
                              "1-64 letters, digits or . _ : -")
    return registry_id


def staged_path(config: LineConfig, registry_id: str) -> Path:
    """Where the private copy of a registry batch's records is while it is imported (the
    same place each time, so a killed import carries on from the same file)."""
    name = hashlib.sha256(registry_id.encode()).hexdigest()[:32]
    return config.data_dir / "intake" / f"{name}.jsonl"


def _staged(config: LineConfig, registry_id: str, content: bytes) -> Path:
    """A private copy of the verified records (the header line is skipped by the reader)."""
    path = staged_path(config, registry_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, content)
    return path


@contextmanager
def receive(config: LineConfig, file: Path, *, unsigned: bool = False) -> Iterator[Received]:
    """Verify ``file`` before reading any record of it and yield what the intake reads.

    A CMS file is verified against ``registry.trust`` (and decrypted with the factory's key
    first when it is encrypted); any failure raises :class:`RegistryRefused` with the reason.
    A plain file is accepted only with ``unsigned`` on the embedded default. The private copy
    of a signed file's records is removed when the block ends."""
    if _read(file, 0, first=True) != b"\x30":  # not DER: no CMS at all
        if not unsigned:
            raise RegistryRefused(f"{file}: refused: unsigned; the registry signs every batch "
                                  "file (CMS SignedData, .p7m) with a certificate in "
                                  "registry.trust")
        if not embedded_default(config):
            raise RegistryRefused("--unsigned is for the embedded default only (hsm.pin_source: "
                                  "embedded, a SQLite journal); a factory line takes signed "
                                  "batches")
        yield Received(file, file.parent, None, _sha256(file), None)  # read as it streams
        return
    data = _read(file, config.registry.max_file_mb << 20)
    digest = hashlib.sha256(data).hexdigest()
    opened = _verify(config, file, data)
    del data  # the verified content is what is read from here on
    registry_id = _header(file, opened.content)
    with ExitStack() as stack:
        staged = _staged(config, registry_id, opened.content)
        stack.callback(staged.unlink, missing_ok=True)
        yield Received(staged, file.parent, registry_id, digest, opened)
