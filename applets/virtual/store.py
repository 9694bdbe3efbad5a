"""Persistent memory of virtual chips: one ``<serial>.chip`` JSON file per card.

Each state-changing command rewrites the chip's file by atomic replace (write a temporary
file, then ``os.replace``), so the file is always one whole snapshot. There is no fsync per
APDU: the simulation models the chip's EEPROM, not a power loss of the host. A real EEPROM
write cut short leaves file CONTENT partly written; that is modelled by the chip's own state
(an unfinished perso leaves a partly written card that then fails QA), not by this file.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
from datetime import date
from pathlib import Path
from typing import Any

from applets.emrtd import curves
from applets.emrtd.cvc import CHAT, Reference, Role
from applets.emrtd.ta import ChainKey
from applets.errors import CardError
from applets.virtual.card import RNG, ChipMemory, VirtualEMRTD
from applets.virtual.hostile import Hostile
from applets.virtual.memory import AccessProtocols, CAKey

SUFFIX = ".chip"
FORMAT = 1
_SERIAL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ChipStoreError(CardError):
    """A chip file is missing, malformed, or a serial is not acceptable."""

    def __init__(self, serial: str, reason: str) -> None:
        self.serial = serial
        super().__init__(f"chip {serial!r}: {reason}")


def dump_memory(serial: str, memory: ChipMemory) -> bytes:
    """The JSON snapshot of a chip's memory (hex for bytes)."""
    keys = memory.bac_keys
    document: dict[str, Any] = {
        "format": FORMAT, "serial": serial, "locked": memory.locked,
        "bac_keys": [keys[0].hex(), keys[1].hex()] if keys else None,
        "aa_scalar": memory.aa_scalar.hex() if memory.aa_scalar else None,
        "files": {f"{fid:04X}": content.hex() for fid, content in memory.files.items()},
    }
    if memory.hostile is not None:  # absent for every well-behaved chip
        document["hostile"] = memory.hostile.value
    document.update(_dump_eac(memory))
    return json.dumps(document, separators=(",", ":")).encode("ascii")


def _dump_trust_point(key: ChainKey) -> dict[str, Any]:
    return {"reference": str(key.reference), "point": key.point.hex(), "curve": key.curve.oid,
            "algorithm": key.algorithm, "role": int(key.role), "chat_oid": key.chat.oid,
            "chat": key.chat.template.hex(),
            "issuer_role": None if key.issuer_role is None else int(key.issuer_role)}


def _load_trust_point(raw: dict[str, Any]) -> ChainKey:
    issuer = raw["issuer_role"]
    return ChainKey(Reference.parse(raw["reference"]), bytes.fromhex(raw["point"]),
                    curves.by_oid(raw["curve"]), raw["algorithm"], Role(raw["role"]),
                    CHAT(raw["chat_oid"], bytes.fromhex(raw["chat"])),
                    None if issuer is None else Role(issuer))


def _dump_eac(memory: ChipMemory) -> dict[str, Any]:
    """The PACE/EAC state, each key only when set (a BAC-only chip's file is unchanged)."""
    values: dict[str, Any] = {
        "mf_files": {f"{fid:04X}": content.hex() for fid, content in memory.mf_files.items()}
        or None,
        "access": None if memory.access is AccessProtocols.BAC else memory.access.value,
        "document_number": memory.document_number,
        "pace_mrz": memory.pace_mrz.hex() if memory.pace_mrz else None,
        "pace_can": memory.pace_can,
        "ca_key": [memory.ca_key.curve_oid, memory.ca_key.scalar.hex()]
        if memory.ca_key else None,
        "trust_point": _dump_trust_point(memory.trust_point) if memory.trust_point else None,
        "chip_date": memory.chip_date.isoformat() if memory.chip_date else None,
    }
    return {key: value for key, value in values.items() if value is not None}


def _load_eac(document: dict[str, Any], memory: ChipMemory) -> None:
    """Fill ``memory`` with the PACE/EAC state of a snapshot (absent keys keep defaults)."""
    get = document.get
    memory.mf_files = {int(fid, 16): bytearray.fromhex(v)
                       for fid, v in (get("mf_files") or {}).items()}
    memory.access = AccessProtocols(get("access") or AccessProtocols.BAC.value)
    memory.document_number = get("document_number")
    mrz, day = get("pace_mrz"), get("chip_date")
    memory.pace_mrz = bytes.fromhex(mrz) if mrz else None
    memory.pace_can = get("pace_can")
    key = get("ca_key")
    memory.ca_key = CAKey(key[0], bytes.fromhex(key[1])) if key else None
    point = get("trust_point")
    memory.trust_point = _load_trust_point(point) if point else None
    memory.chip_date = date.fromisoformat(day) if day else None


def load_memory(serial: str, raw: bytes) -> ChipMemory:
    """Parse a snapshot written by :func:`dump_memory`."""
    try:
        document = json.loads(raw)
        if document["format"] != FORMAT or document["serial"] != serial:
            raise ValueError("format or serial does not match")
        keys = document["bac_keys"]
        scalar = document["aa_scalar"]
        mode = document.get("hostile")
        memory = ChipMemory(
            files={int(fid, 16): bytearray.fromhex(v) for fid, v in document["files"].items()},
            bac_keys=(bytes.fromhex(keys[0]), bytes.fromhex(keys[1])) if keys else None,
            aa_scalar=bytes.fromhex(scalar) if scalar else None,
            locked=bool(document["locked"]),
            hostile=Hostile(mode) if mode is not None else None,
        )
        _load_eac(document, memory)
        return memory
    except (ValueError, KeyError, TypeError, IndexError, CardError) as exc:
        raise ChipStoreError(serial, f"memory file is malformed: {exc}") from exc


class ChipStore:
    """A directory of virtual chips, each persisted after every state-changing command."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, serial: str) -> Path:
        if not _SERIAL.match(serial):
            raise ChipStoreError(serial, "serial must be 1–64 of A–Z a–z 0–9 _ -")
        return self.directory / f"{serial}{SUFFIX}"

    def _write(self, serial: str, memory: ChipMemory) -> None:
        path = self._path(serial)
        # One temporary name per writer thread, so two flushes never trip over each other.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_bytes(dump_memory(serial, memory))
        os.replace(temporary, path)  # atomic: readers see the old or the new snapshot

    @property
    def store_id(self) -> str:
        """This store's own random id (made once, kept in the store), so serials it gives out
        never repeat another store's, as a real chip's serial is unique to that chip."""
        path = self.directory / ".store-id"
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".store-id.{os.getpid()}.{threading.get_ident()}")
            temporary.write_text(secrets.token_hex(4).upper(), encoding="ascii")
            try:
                os.link(temporary, path)  # whole or not at all; the first store id wins
            except FileExistsError:
                pass
            finally:
                temporary.unlink()
        return path.read_text(encoding="ascii").strip()

    def exists(self, serial: str) -> bool:
        """True when a chip with this serial is in the store."""
        return self._path(serial).is_file()

    def serials(self) -> list[str]:
        """All serials, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(p.name[: -len(SUFFIX)] for p in self.directory.glob(f"*{SUFFIX}"))

    def create_blanks(self, count: int, prefix: str) -> list[str]:
        """Create ``count`` blank chips numbered after the highest serial with this prefix."""
        self.directory.mkdir(parents=True, exist_ok=True)
        taken = [s[len(prefix):] for s in self.serials() if s.startswith(prefix)]
        start = max((int(t) for t in taken if t.isdigit()), default=0) + 1
        created = [f"{prefix}{number:08d}" for number in range(start, start + count)]
        for serial in created:
            self._write(serial, ChipMemory())
        return created

    def open(
        self, serial: str, rng: RNG = secrets.token_bytes, max_command_data: int = 65535,
        write_through: bool = True,
    ) -> VirtualEMRTD:
        """The chip with this serial; its memory is written back after every change, or, with
        ``write_through=False``, at power-off and reset (the card host also flushes at removal)."""
        path = self._path(serial)
        try:
            memory = load_memory(serial, path.read_bytes())
        except FileNotFoundError as exc:
            raise ChipStoreError(serial, "no such chip") from exc
        return VirtualEMRTD(serial, memory, rng, max_command_data,
                            on_change=lambda m: self._write(serial, m),
                            write_through=write_through)

    def set_hostile(self, serial: str, mode: Hostile | None) -> None:
        """Make a stored chip misbehave once locked (a test mode), or behave again with None."""
        try:
            memory = load_memory(serial, self._path(serial).read_bytes())
        except FileNotFoundError as exc:
            raise ChipStoreError(serial, "no such chip") from exc
        memory.hostile = mode
        self._write(serial, memory)

    def remove(self, serial: str) -> None:
        """Delete a chip's memory file."""
        try:
            self._path(serial).unlink()
        except FileNotFoundError as exc:
            raise ChipStoreError(serial, "no such chip") from exc
