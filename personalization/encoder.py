"""The encoder station: personalize one chip through its PC/SC encoder.

Order of work (each step checked; any failure raises :class:`EncodeError` naming the station,
the chip, the step and the status word, and the card is then to be rejected):

1. SELECT the applet; learn the largest chunk once per station (GET DATA 7F66).
2. The chip generates its Active Authentication key; DG14 and DG15 are built from it.
3. EF.SOD is signed in the HSM over every DG — before any file is written, so an HSM refusal
   leaves a blank-but-keyed, unlocked card and never a locked card without a SOD.
4. CREATE + write EF.COM, the DGs and EF.SOD at the largest chunk.
5. PUT DATA the BAC seed from the MRZ; LOCK.

An EAC chip (a profile whose ``chip.access`` is ``pace`` or ``pace+bac``) also gets, in the
same pass: its access protocols (first), the Chip Authentication key generated on the chip
beside the AA key, a DG14 carrying PACEInfo, the CA key and CA info, TA info and AA info
(ICAO 9303-11 §9.2; BSI TR-03110-3 A.1), EF.CVCA naming the trust point, EF.CardAccess in
the master file, the PACE passwords (MRZ and CAN), the trust point and the chip's date —
the BAC seed only where BAC stays open.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import partial

import structlog

from applets.emrtd import curves, cvc, eac_oids, perso
from applets.emrtd.lds import files
from applets.emrtd.lds.cvca import encode_cvca
from applets.emrtd.lds.dg14 import active_authentication_info, encode_dg14, encode_dg14_aa
from applets.emrtd.lds.dg15 import encode_dg15_ec_point
from applets.emrtd.lds.securityinfos import (
    ChipAuthenticationInfo,
    ChipAuthenticationPublicKeyInfo,
    PACEInfo,
    SecurityInfo,
    TerminalAuthenticationInfo,
    encode_card_access,
)
from applets.errors import CardError, StatusWordError
from applets.transport.base import Transport
from hsm.errors import HSMError
from personalization.errors import PersonalizationError
from personalization.prep import CardData, Preparer
from personalization.profile import ChipSpec

_log = structlog.get_logger(__name__)


class EncodeError(PersonalizationError):
    """Personalization of one chip failed; the card must be rejected."""

    def __init__(self, station: str, chip_serial: str, step: str, reason: str,
                 sw: int | None = None) -> None:
        self.station, self.chip_serial, self.step, self.sw = station, chip_serial, step, sw
        self.reason = reason
        status = f" (SW {sw:04X})" if sw is not None else ""
        super().__init__(f"station {station}, chip {chip_serial}: {step} failed{status}: {reason}")


PACE_PROTOCOL = eac_oids.ID_PACE_ECDH_GM_AES_CBC_CMAC_128  # ICAO 9303-11 §9.2.1, AES-128


@dataclass(frozen=True)
class EACMaterial:
    """What every EAC chip of a line gets besides its own data: the trust point (the active
    CVCA's self-signed CV certificate, loaded once from the HSM inventory by the service
    layer) and the clock that sets the chip's date."""

    trust_point: cvc.CVCertificate
    today: Callable[[], date] = field(default=date.today)

    @classmethod
    def from_der(cls, cvca: bytes, today: Callable[[], date] = date.today) -> EACMaterial:
        """From the CVCA certificate's DER (``service.eac.export_cvca``)."""
        return cls(cvc.CVCertificate.decode(cvca), today)

    @property
    def car(self) -> str:
        """The trust point's reference, as EF.CVCA names it (TR-03110-3 A.1.2: the CHR of
        the self-signed CVCA certificate)."""
        return str(self.trust_point.body.chr)


@dataclass(frozen=True, slots=True)
class EACPlan:
    """The EAC files and secrets of one profile and trust point, the same for every chip."""

    chip: ChipSpec
    active_authentication: bool
    material: EACMaterial
    card_access: bytes
    cvca_file: bytes

    @classmethod
    def of(cls, chip: ChipSpec, active_authentication: bool,
           material: EACMaterial) -> EACPlan:
        """EF.CardAccess (the PACEInfos) and EF.CVCA are built once per station."""
        return cls(chip, active_authentication, material,
                   encode_card_access(pace_infos(chip)), encode_cvca([material.car]))

    def groups(self, aa_point: bytes | None, ca_point: bytes) -> dict[int, bytes]:
        """DG14 (PACE, CA with the chip's key in explicit parameters, TA, AA) and DG15."""
        infos: list[bytes | SecurityInfo] = [
            ChipAuthenticationInfo(), ChipAuthenticationPublicKeyInfo(self.chip.ca(), ca_point),
            *pace_infos(self.chip), TerminalAuthenticationInfo()]
        if aa_point is None:
            return {14: encode_dg14(infos)}
        return {14: encode_dg14([*infos, active_authentication_info()]),
                15: encode_dg15_ec_point(aa_point)}


def pace_infos(chip: ChipSpec) -> list[PACEInfo]:
    """One PACEInfo (ECDH generic mapping, AES-128) per curve the profile offers."""
    return [PACEInfo(PACE_PROTOCOL, curves.pace_parameter_id(curve))
            for curve in chip.pace_curves()]


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


def write_eac_chip(client: perso.PersoClient, seal: Seal, data: CardData, plan: EACPlan,
                   step: Callable[[str], None]) -> tuple[bytes | None, dict[str, bytes]]:
    """:func:`write_chip` for an EAC chip, on a selected applet, LOCK left to the caller;
    returns the AA public point (None without AA) and every file written by name."""
    if data.can is None:  # before the chip is touched: nothing half-written
        raise CardError("an EAC chip needs the card's CAN (prepared without one)")
    step("set access protocols")
    client.set_access_protocols(plan.chip.protocols)
    aa_point = None
    if plan.active_authentication:
        step("generate Active Authentication key")
        aa_point = client.generate_aa_key()
    step("generate Chip Authentication key")
    ca_point = client.generate_ca_key(plan.chip.ca())
    step("sign EF.SOD in the HSM")
    written = {**seal(plan.groups(aa_point, ca_point)), files.EF_CVCA.name: plan.cvca_file}
    for name, body in written.items():
        step(f"write {name}")
        client.put_file(files.by_name(name).fid, body)
    step("write EF.CardAccess")
    client.put_card_access(plan.card_access)
    _set_secrets(client, data, plan, step)
    return aa_point, {**written, files.EF_CARD_ACCESS.name: plan.card_access}


def _set_secrets(client: perso.PersoClient, data: CardData, plan: EACPlan,
                 step: Callable[[str], None]) -> None:
    """The BAC seed (where BAC stays open), the PACE passwords, trust point and date."""
    if plan.chip.protocols.bac:
        step("set BAC seed")
        client.put_bac_seed(*data.bac_key)
    step("set PACE MRZ password")
    client.put_pace_mrz(*data.bac_key)
    step("set CAN")
    client.put_can(data.can or "")
    step("set trust point")
    client.put_trust_point(plan.material.trust_point)
    step("set chip date")
    client.put_chip_date(plan.material.today())


class EncoderStation:
    """One encoder (a PC/SC reader in a printer's encoding module) and what it needs."""

    def __init__(self, name: str, transport: Transport, preparer: Preparer,
                 eac: EACMaterial | None = None) -> None:
        self.name = name
        self._transport = transport
        self._preparer = preparer
        self._chunk: int | None = None  # learnt from the first card, kept for the station
        profile = preparer.profile
        self._plan: EACPlan | None = None
        if profile.chip.eac:
            if eac is None:
                raise PersonalizationError(
                    f"station {name}: profile {profile.name!r} makes EAC chips "
                    f"(chip.access {profile.chip.access}) but no trust point was given; "
                    "security officers create the CVCA with `cardline keys eac-init`")
            self._plan = EACPlan.of(profile.chip, profile.active_authentication, eac)

    def personalize(self, data: CardData, chip_serial: str) -> EncodedCard:
        """Write, sign, seed and lock one chip; raise :class:`EncodeError` on any failure."""
        start = time.perf_counter()
        client = perso.PersoClient(self._transport, chunk=self._chunk)
        steps = ["select applet"]  # the last one names the step that failed
        try:
            client.select_applet()
            steps.append("read chip limits")
            chunk = self._chunk = client.max_chunk()
            point, written = self._write(client, data, steps.append)
            steps.append("lock")
            client.lock()
        except StatusWordError as exc:
            self._chunk = None  # the next card may differ: ask its limits again
            raise self._failed(chip_serial, steps[-1], exc, exc.sw) from exc
        except (CardError, HSMError) as exc:
            raise self._failed(chip_serial, steps[-1], exc, None) from exc
        minimum = self._minimum(written, chunk)
        elapsed = time.perf_counter() - start
        _log.info("encoder.personalized", station=self.name, apdus=client.apdu_count,
                  ms=round(elapsed * 1000, 2))
        return EncodedCard(chip_serial, written, point or b"", client.apdu_count, minimum,
                           chunk, elapsed)

    def _write(self, client: perso.PersoClient, data: CardData,
               step: Callable[[str], None]) -> tuple[bytes | None, dict[str, bytes]]:
        """Everything but SELECT and LOCK: the BAC chip of old, or an EAC chip."""
        seal = partial(self._seal, data)
        if self._plan is None:
            return write_chip(client, seal, data.bac_key, step)
        return write_eac_chip(client, seal, data, self._plan, step)

    def _minimum(self, written: dict[str, bytes], chunk: int) -> int:
        """The fewest APDUs the chip allows for what was written (perso.min_apdus)."""
        if self._plan is None:
            return perso.min_apdus({files.by_name(n).fid: b for n, b in written.items()}, chunk)
        application = {files.by_name(n).fid: b for n, b in written.items()
                       if n != files.EF_CARD_ACCESS.name}
        plan = self._plan
        return perso.min_apdus(application, chunk, eac=perso.EACPerso(
            card_access=plan.card_access, trust_point=plan.material.trust_point,
            bac=plan.chip.protocols.bac, active_authentication=plan.active_authentication))

    def _seal(self, data: CardData, chip_groups: dict[int, bytes]) -> dict[str, bytes]:
        """EF.SOD signed in the HSM over every DG, then EF.COM, the DGs and EF.SOD by name."""
        sod = self._preparer.sign(data, chip_groups)
        return chip_files(data, self._preparer.com(data, with_chip_groups=True), sod, chip_groups)

    def _failed(self, chip_serial: str, step: str, exc: Exception, sw: int | None) -> EncodeError:
        _log.warning("encoder.failed", station=self.name, step=step,
                     sw=None if sw is None else f"{sw:04X}", error=exc.__class__.__name__)
        return EncodeError(self.name, chip_serial, step, str(exc), sw)
