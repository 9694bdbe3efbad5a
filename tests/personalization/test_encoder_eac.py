"""The encoder station making EAC chips, in-process (no pcscd), on the embedded SoftHSM keys
the demo makes (CSCA, DS, CVCA, DV, QA desk IS): read back with PACE (CAN and MRZ), CA and TA
with the QA desk's key, DG3 as prepared, in the fewest APDUs; the BAC profile as before."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import pytest

from applets.emrtd import perso
from applets.emrtd.eac_reader import BACAccess, BACRefusedError, PACEAccess, read_eac
from applets.emrtd.lds import files
from applets.emrtd.lds.cvca import decode_cvca
from applets.emrtd.lds.dg14 import decode_dg14, encode_dg14_aa
from applets.emrtd.lds.securityinfos import decode_card_access
from applets.emrtd.lds.sod import parse_sod
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.transport.base import DirectTransport
from applets.virtual.card import VirtualEMRTD
from hsm.pkcs11 import release_module
from hsm.softhsm import softhsm_module
from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.config import load_config
from personalization.encoder import EACMaterial, EncodedCard, EncodeError, EncoderStation
from personalization.errors import PersonalizationError
from personalization.line.controller import LineParts
from personalization.prep import CardData, Preparer
from personalization.profile import DocumentProfile, load_profile
from personalization.service import demopeople, keys
from personalization.service.batches import line_parts
from personalization.service.eacline import active_cvca
from tests.support.embedded import embedded_line
from tests.support.signers import SoftwareSigner

pytestmark = pytest.mark.softhsm
TODAY = date(2026, 11, 24)
PACE_ONLY = "extends: cccd\nname: cccd-pace\ndata_groups: [1, 2, 3, 13]\nchip: {access: pace}\n"


class Recorder:
    """A transport that keeps every command it carries."""

    def __init__(self, inner: DirectTransport) -> None:
        self.inner, self.commands = inner, list[CommandAPDU]()

    @property
    def max_command_data(self) -> int:
        """As the wrapped transport."""
        return self.inner.max_command_data

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        """Keep the command, then send it."""
        self.commands.append(command)
        return self.inner.transmit(command)


@dataclass
class Line:
    """The embedded line's parts for the EAC profile and a PACE-only one."""

    parts: LineParts
    pace_parts: LineParts
    applications: list[Application]
    cvca: bytes


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory, synth_dir: Path) -> Iterator[Line]:
    """The embedded default under a temporary folder with the demo's keys, and the run's
    parts as ``batch run`` builds them (trust point and QA terminal loaded once)."""
    tmp = tmp_path_factory.mktemp("eac-line")
    module = str(softhsm_module())
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SOFTHSM2_CONF", "/nonexistent")  # restored: the services overwrite it
        release_module(module)
        config = load_config(embedded_line(tmp))
        keys.setup_embedded(config)
        demopeople.ensure_keys(config)
        profile = load_profile("cccd")
        (tmp / "pace.yaml").write_text(PACE_ONLY, encoding="utf-8")
        valid = read_applications(synth_dir / "apps.jsonl", profile.intake_rules(), TODAY).valid
        with line_parts(config, profile) as parts, \
                line_parts(config, load_profile(str(tmp / "pace.yaml"))) as pace_parts:
            yield Line(parts, pace_parts, [a for _, a in valid][:3], active_cvca(config))
        release_module(module)


def _station(parts: LineParts, card: VirtualEMRTD,
             chunk: int = 65535) -> tuple[EncoderStation, Recorder]:
    recorder = Recorder(DirectTransport(card, chunk))
    assert parts.eac is not None
    return EncoderStation("eac-1", recorder, parts.preparer, parts.eac.material), recorder


def _encode(parts: LineParts, application: Application, serial: str = "EAC-1",
            chunk: int = 65535) -> tuple[VirtualEMRTD, CardData, EncodedCard]:
    card = VirtualEMRTD(serial)
    card.power_on()
    station, _ = _station(parts, card, chunk)
    data = parts.preparer.card_data(application)
    encoded = station.personalize(data, serial)
    card.power_on()
    return card, data, encoded


def test_eac_chip_reads_by_can_with_ca_ta_and_dg3(line: Line) -> None:
    """PACE with the CAN (last 6 of the personal ID) on either curve, CA with DG14's key and
    TA with the QA desk's HSM key read DG3 equal to prep's; every file as written."""
    application = line.applications[0]
    card, data, encoded = _encode(line.parts, application)
    assert line.parts.eac is not None and line.parts.eac.qa_terminal is not None
    for parameter_id in (13, 12):
        access = PACEAccess.can(application.personal_id[-6:], parameter_id)
        result = read_eac(DirectTransport(card), access, terminal=line.parts.eac.qa_terminal,
                          files=("EF.COM", "EF.DG1", "EF.DG2", "EF.DG13", "EF.DG14",
                                 "EF.DG15", "EF.SOD", "EF.CVCA"))
        assert result.protocols == ("PACE", "CA", "TA")
        assert result.files["EF.DG3"] == data.data_groups[3]
        written = {n: b for n, b in encoded.files.items() if n != "EF.CVCA"}
        assert {n: result.files[n] for n in written} == written
        # a terminal reads EF.CVCA's CAR object, not the 00 padding after it
        cvca = encoded.files["EF.CVCA"]
        assert cvca == result.files["EF.CVCA"].ljust(len(cvca), b"\x00")
        card.power_on()
    assert card.memory.chip_date == date.today()


def test_eac_chip_reads_by_mrz_and_bac_on_pace_bac(line: Line) -> None:
    """PACE with the MRZ runs CA; ``pace+bac`` also opens to BAC with the same MRZ."""
    card, data, encoded = _encode(line.parts, line.applications[1])
    by_mrz = read_eac(DirectTransport(card), PACEAccess.mrz(*data.bac_key))
    assert by_mrz.protocols == ("PACE", "CA")
    card.power_on()
    by_bac = read_eac(DirectTransport(card), BACAccess(*data.bac_key), run_ca=False)
    assert by_bac.protocols == ("BAC",) and by_bac.files["EF.DG1"] == encoded.files["EF.DG1"]


def test_pace_only_chip_refuses_bac(line: Line) -> None:
    """``chip.access: pace``: BAC is refused, PACE with the CAN opens it (no BAC seed sent)."""
    application = line.applications[2]
    card, data, _ = _encode(line.pace_parts, application, "PACE-1")
    with pytest.raises(BACRefusedError):
        read_eac(DirectTransport(card), BACAccess(*data.bac_key), run_ca=False)
    card.power_on()
    result = read_eac(DirectTransport(card), PACEAccess.can(application.personal_id[-6:]))
    assert result.protocols == ("PACE", "CA")
    assert card.memory.bac_keys is None


def test_eac_files_as_the_profile_says(line: Line) -> None:
    """DG14 holds CA info, the on-chip CA key (explicit brainpoolP256r1), PACEInfos 13 and
    12, TA and AA; EF.CardAccess the PACEInfos; EF.CVCA the trust point; EF.SOD hashes DG1,
    DG2, DG3, DG13, DG14 and DG15."""
    _, data, encoded = _encode(line.parts, line.applications[0])
    dg14 = decode_dg14(encoded.files["EF.DG14"])
    assert {i.parameter_id for i in dg14.pace_infos} == {13, 12}  # a DER SET: sorted
    (key,) = dg14.ca_public_keys
    assert key.curve.name == "brainpoolP256r1" and not key.named_curve
    assert dg14.ca_infos and dg14.ta_info is not None and dg14.aa_signature_algorithm
    access = decode_card_access(encoded.files["EF.CardAccess"])
    assert {i.parameter_id for i in access.pace_infos} == {13, 12}
    cvca = decode_cvca(encoded.files["EF.CVCA"])
    trust_point = EACMaterial.from_der(line.cvca)
    assert list(cvca.cars) == [trust_point.car]
    sod = parse_sod(encoded.files["EF.SOD"])
    assert sorted(sod.dg_hashes) == [1, 2, 3, 13, 14, 15]
    assert sod.dg_hashes[3] == hashlib.sha256(data.data_groups[3]).digest()


@pytest.mark.parametrize("chunk", [65535, 200])
def test_apdus_are_the_fewest_the_chip_allows(line: Line, chunk: int) -> None:
    """After the station has learnt its chunk, a card costs exactly ``min_apdus`` (the trust
    point chained when longer than a chunk); the first card one more (GET DATA 7F66)."""
    station, recorder = _station(line.parts, VirtualEMRTD("unused"), chunk)
    cards = []
    for i, application in enumerate(line.applications[:2]):
        card = VirtualEMRTD(f"MIN-{i}")
        card.power_on()
        recorder.inner = DirectTransport(card, chunk)
        cards.append(station.personalize(line.parts.preparer.card_data(application), card.serial))
    assert cards[0].apdus == cards[0].min_apdus + 1
    assert cards[1].apdus == cards[1].min_apdus
    puts = [c.p2 for c in recorder.commands if c.ins == 0xDA]
    assert sorted(puts) == sorted([0x66, 0x62, 0x64, 0x65, 0x68, 0xAD] * 2 + [0x67] * (
        2 * -(-(len(EACMaterial.from_der(line.cvca).trust_point.encode()) + 4) // chunk)))


def test_eac_station_needs_a_trust_point(line: Line) -> None:
    """An EAC profile's station without the trust point is refused before any card."""
    with pytest.raises(PersonalizationError, match="trust point"):
        EncoderStation("eac-1", DirectTransport(VirtualEMRTD("X")), line.parts.preparer)


def test_card_data_without_can_touches_no_chip(line: Line) -> None:
    """Card data with no CAN fails before the chip is written: a blank stays blank."""
    card = VirtualEMRTD("NOCAN")
    card.power_on()
    station, recorder = _station(line.parts, card)
    data = replace(line.parts.preparer.card_data(line.applications[0]), can=None)
    with pytest.raises(EncodeError):
        station.personalize(data, "NOCAN")
    assert not card.memory.files and not card.memory.locked
    assert all(c.ins in (0xA4, 0xCA) for c in recorder.commands)


def test_bac_profile_writes_what_it_wrote_before(line: Line) -> None:
    """The CCCD on a BAC-only chip (``cccd-bac``) sends the BAC profile's exact command
    sequence: SELECT, GET DATA 7F66, GENERATE KEY, each file created/selected/written, PUT DATA
    62, LOCK; DG14 only AA."""
    profile: DocumentProfile = load_profile("cccd-bac")
    preparer = Preparer(profile, SoftwareSigner.create())
    card = VirtualEMRTD("BAC-1")
    card.power_on()
    recorder = Recorder(DirectTransport(card, 200))
    data = preparer.card_data(line.applications[0])
    encoded = EncoderStation("bac-1", recorder, preparer).personalize(data, "BAC-1")
    assert list(encoded.files) == ["EF.COM", "EF.DG1", "EF.DG2", "EF.DG13", "EF.DG14",
                                   "EF.DG15", "EF.SOD"]
    assert encoded.files["EF.DG14"] == encode_dg14_aa()
    expected = [perso.select_applet_command(), CommandAPDU(0x00, 0xCA, 0x7F, 0x66, ne=256),
                CommandAPDU(0x00, 0x46, 0x00, 0x00, ne=256)]
    for name, body in encoded.files.items():
        fid = files.by_name(name).fid
        expected += [perso.create_file_command(fid, len(body)), perso.select_file_command(fid)]
        expected += [perso.update_binary_command(o, body[o:o + 200])
                     for o in range(0, len(body), 200)]
    expected += [perso.bac_seed_command(*data.bac_key), perso.lock_command()]
    assert [c.encode() for c in recorder.commands] == [c.encode() for c in expected]
    assert encoded.apdus == encoded.min_apdus + 1 == len(expected)
