"""The encoder station: personalize one chip through its PC/SC encoder.

Order of work (each step checked; any failure raises :class:`EncodeError` naming the station,
the chip, the step and the status word, and the card is then to be rejected):

1. SELECT the applet; learn the largest chunk once per station (GET DATA 7F66).
2. The chip generates its Active Authentication key; DG14 and DG15 are built from it.
3. EF.SOD is signed in the HSM over every DG — before any file is written, so an HSM refusal
   leaves a blank-but-keyed, unlocked card and never a locked card without a SOD.
4. CREATE + write EF.COM, the DGs and EF.SOD at the largest chunk.
5. PUT DATA the BAC seed from the MRZ; LOCK.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import structlog

from applets.emrtd import perso
from applets.emrtd.lds import files
from applets.emrtd.lds.dg14 import encode_dg14_aa
from applets.emrtd.lds.dg15 import encode_dg15_ec_point
from applets.errors import CardError, StatusWordError
from applets.transport.base import Transport
from hsm.errors import HSMError
from personalization.errors import PersonalizationError
from personalization.prep import CardData, Preparer

_log = structlog.get_logger(__name__)


class EncodeError(PersonalizationError):
    """Personalization of one chip failed; the card must be rejected."""

    def __init__(self, station: str, chip_serial: str, step: str, reason: str,
                 sw: int | None = None) -> None:
        self.station, self.chip_serial, self.step, self.sw = station, chip_serial, step, sw
        self.reason = reason
        status = f" (SW {sw:04X})" if sw is not None else ""
        super().__init__(f"station {station}, chip {chip_serial}: {step} failed{status}: {reason}")


@dataclass(frozen=True, slots=True)
class EncodedCard:
    """What was written to one chip, and what it cost."""

    chip_serial: str
    files: dict[str, bytes]
    aa_public_point: bytes
    apdus: int
    min_apdus: int
    chunk: int
    seconds: float


def chip_files(data: CardData, com: bytes, sod: bytes, chip_groups: dict[int, bytes]) -> dict[
        str, bytes]:
    """Every file of the card by name, in the order they are written."""
    groups = {**data.data_groups, **chip_groups}
    out = {"EF.COM": com}
    out.update({files.DATA_GROUPS[n].name: groups[n] for n in sorted(groups)})
    out["EF.SOD"] = sod
    return out


def aa_groups(point: bytes) -> dict[int, bytes]:
    """DG14 and DG15 of a chip whose Active Authentication public key is ``point``."""
    return {14: encode_dg14_aa(), 15: encode_dg15_ec_point(point)}


Seal = Callable[[dict[int, bytes]], dict[str, bytes]]
"""Given the chip's DG14 and DG15: EF.SOD signed, and every file of the card in write order."""


def write_chip(client: perso.PersoClient, seal: Seal, bac_key: tuple[str, str, str],
               step: Callable[[str], None]) -> tuple[bytes, dict[str, bytes]]:
    """Steps 2 to 5 but LOCK on a selected applet; returns the AA public point and the files.

    ``step`` is told each step's name before it runs, so a failure can be named.
    """
    step("generate Active Authentication key")
    point = client.generate_aa_key()
    step("sign EF.SOD in the HSM")
    written = seal(aa_groups(point))
    for name, body in written.items():
        step(f"write {name}")
        client.put_file(files.by_name(name).fid, body)
    step("set BAC seed")
    client.put_bac_seed(*bac_key)
    return point, written


class EncoderStation:
    """One encoder (a PC/SC reader in a printer's encoding module) and what it needs."""

    def __init__(self, name: str, transport: Transport, preparer: Preparer) -> None:
        self.name = name
        self._transport = transport
        self._preparer = preparer
        self._chunk: int | None = None  # learnt from the first card, kept for the station

    def personalize(self, data: CardData, chip_serial: str) -> EncodedCard:
        """Write, sign, seed and lock one chip; raise :class:`EncodeError` on any failure."""
        start = time.perf_counter()
        client = perso.PersoClient(self._transport, chunk=self._chunk)
        steps = ["select applet"]  # the last one names the step that failed
        try:
            client.select_applet()
            steps.append("read chip limits")
            chunk = self._chunk = client.max_chunk()
            point, written = write_chip(client, partial(self._seal, data), data.bac_key,
                                        steps.append)
            steps.append("lock")
            client.lock()
        except StatusWordError as exc:
            self._chunk = None  # the next card may differ: ask its limits again
            raise self._failed(chip_serial, steps[-1], exc, exc.sw) from exc
        except (CardError, HSMError) as exc:
            raise self._failed(chip_serial, steps[-1], exc, None) from exc
        by_fid = {files.by_name(n).fid: body for n, body in written.items()}
        minimum = perso.min_apdus(by_fid, chunk)
        elapsed = time.perf_counter() - start
        _log.info("encoder.personalized", station=self.name, apdus=client.apdu_count,
                  ms=round(elapsed * 1000, 2))
        return EncodedCard(chip_serial, written, point, client.apdu_count, minimum, chunk,
                           elapsed)

    def _seal(self, data: CardData, chip_groups: dict[int, bytes]) -> dict[str, bytes]:
        """EF.SOD signed in the HSM over every DG, then EF.COM, the DGs and EF.SOD by name."""
        sod = self._preparer.sign(data, chip_groups)
        return chip_files(data, self._preparer.com(data, with_chip_groups=True), sod, chip_groups)

    def _failed(self, chip_serial: str, step: str, exc: Exception, sw: int | None) -> EncodeError:
        _log.warning("encoder.failed", station=self.name, step=step,
                     sw=None if sw is None else f"{sw:04X}", error=exc.__class__.__name__)
        return EncodeError(self.name, chip_serial, step, str(exc), sw)
