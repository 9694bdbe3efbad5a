"""The encoder station through the real pcscd: concurrent perso, exact read-back, clean failures."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest

from applets.emrtd import bac, perso, reader
from applets.emrtd.lds import files
from applets.emrtd.sm import SecureTransport
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.transport.pcsc import PCSCTransport
from applets.virtual.bank import EncoderBank
from applets.virtual.card import Lifecycle
from applets.virtual.store import ChipStore
from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.benchkit import bench_hsm
from personalization.encoder import EncodeError, EncoderStation
from personalization.prep import Preparer
from personalization.profile import DocumentProfile, load_profile

pytestmark = pytest.mark.pcscd
TODAY = date(2026, 11, 24)


@pytest.fixture(scope="module")
def profile() -> DocumentProfile:
    """The CCCD profile."""
    return load_profile("cccd-bac")


@pytest.fixture(scope="module")
def applications(synth_dir: Path, profile: DocumentProfile) -> list[Application]:
    """Validated synthetic applications."""
    return [a for _, a in read_applications(synth_dir / "apps.jsonl", profile.intake_rules(),
                                            TODAY).valid]


@contextmanager
def inserted(bank: EncoderBank, count: int, prefix: str) -> Iterator[list[tuple[int, str]]]:
    """``count`` fresh blank chips put into free readers; taken out afterwards."""
    client = bank.client()
    free = [i for i, serial in sorted(client.status().items()) if serial is None][:count]
    assert len(free) == count, "not enough free virtual encoders"
    serials = ChipStore(bank.chips_dir).create_blanks(count, prefix)
    for index, serial in zip(free, serials, strict=True):
        client.insert(index, serial)
    try:
        yield list(zip(free, serials, strict=True))
    finally:
        for index in free:
            client.remove(index)
            with PCSCTransport(bank.reader_name(index)) as transport:
                transport.wait_for_removal(5)  # pcscd polls; let it see the reader empty


def read_back(reader_name: str, data_bac: tuple[str, str, str], names: list[str]) -> dict[
        str, bytes]:
    """Open BAC over SM as any terminal would and read the named files."""
    with PCSCTransport(reader_name) as plain:
        plain.wait_for_card(5)
        plain.reconnect(reset=True)
        plain.transmit(perso.select_applet_command()).check("SELECT applet")
        secure = SecureTransport(plain, bac.perform_bac(
            plain, bac.mrz_information(*data_bac), os.urandom))
        return {name: reader.read_file(secure, files.by_name(name).fid, block=0xDF)
                for name in names}


def test_two_encoders_at_once_then_exact_read_back(
        encoder_bank: EncoderBank, tmp_path: Path, profile: DocumentProfile,
        applications: list[Application]) -> None:
    """Two stations personalize concurrently; BAC + SM read-back gives exactly the bytes."""
    results: dict[int, object] = {}
    with bench_hsm(tmp_path) as hsm, inserted(encoder_bank, 2, "ENC") as chips:
        preparer = Preparer(profile, hsm.signer)
        datas = [preparer.card_data(a) for a in applications[:2]]

        def run(slot: int, index: int, serial: str) -> None:
            with PCSCTransport(encoder_bank.reader_name(index)) as transport:
                transport.wait_for_card(5)
                station = EncoderStation(f"station-{slot}", transport, preparer)
                results[slot] = station.personalize(datas[slot], serial)

        threads = [threading.Thread(target=run, args=(slot, i, s))
                   for slot, (i, s) in enumerate(chips)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for slot, (index, _serial) in enumerate(chips):
            card = results[slot]
            assert not isinstance(card, Exception)
            names = list(card.files)  # type: ignore[attr-defined]
            assert names == ["EF.COM", "EF.DG1", "EF.DG2", "EF.DG13", "EF.DG14", "EF.DG15",
                             "EF.SOD"]
            assert card.apdus <= 1.05 * card.min_apdus + 1  # type: ignore[attr-defined]
            got = read_back(encoder_bank.reader_name(index), datas[slot].bac_key, names)
            assert got == card.files  # type: ignore[attr-defined]
    for _index, serial in chips:  # after removal the stored chip is locked and complete
        memory = ChipStore(encoder_bank.chips_dir).open(serial).memory
        assert memory.lifecycle is Lifecycle.LOCKED and len(memory.files) == 7


class PullAfter:
    """The real PC/SC transport, with the chip taken out of the reader after ``n`` APDUs."""

    def __init__(self, transport: PCSCTransport, bank: EncoderBank, index: int, n: int) -> None:
        self._transport, self._bank, self._index, self._left = transport, bank, index, n

    @property
    def max_command_data(self) -> int:
        """As the wrapped transport."""
        return self._transport.max_command_data

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        """Forward; pull the card when the count runs out."""
        self._left -= 1
        if self._left == 0:
            self._bank.client().remove(self._index)
        return self._transport.transmit(command)


def test_card_pulled_mid_write_is_a_clear_error_and_a_bad_card(
        encoder_bank: EncoderBank, tmp_path: Path, profile: DocumentProfile,
        applications: list[Application]) -> None:
    """Pulling the chip during the writes raises EncodeError naming station, chip and step."""
    with bench_hsm(tmp_path) as hsm, inserted(encoder_bank, 1, "PULL") as [(index, serial)]:
        preparer = Preparer(profile, hsm.signer)
        with PCSCTransport(encoder_bank.reader_name(index)) as transport:
            transport.wait_for_card(5)
            station = EncoderStation("station-pull", PullAfter(transport, encoder_bank,
                                                               index, 9), preparer)
            with pytest.raises(EncodeError) as caught:
                station.personalize(preparer.card_data(applications[0]), serial)
        error = caught.value
        assert (error.station, error.chip_serial) == ("station-pull", serial)
        assert error.step.startswith("write ")
    memory = ChipStore(encoder_bank.chips_dir).open(serial).memory  # persisted at removal
    assert memory.lifecycle is Lifecycle.PERSONALIZING  # partly written, never locked
    assert memory.aa_scalar is not None and files.EF_SOD.fid not in memory.files


def test_hsm_refusal_leaves_no_locked_card_without_sod(
        encoder_bank: EncoderBank, tmp_path: Path, profile: DocumentProfile,
        applications: list[Application]) -> None:
    """When the HSM refuses to sign, the error says so and the chip is neither locked nor
    carrying an EF.SOD."""

    from pkcs11 import ObjectClass

    from hsm.pkcs11 import HSM

    with bench_hsm(tmp_path) as hsm, inserted(encoder_bank, 1, "HSMNO") as [(index, serial)]:
        preparer = Preparer(profile, hsm.signer)
        data = preparer.card_data(applications[1])
        with HSM(hsm.module, hsm.token, hsm.pin) as token, token.session() as session:
            # The DS private key disappears from the token: the HSM refuses every signature.
            session.get_key(label=hsm.signer.label, object_class=ObjectClass.PRIVATE_KEY).destroy()
        with PCSCTransport(encoder_bank.reader_name(index)) as transport:
            transport.wait_for_card(5)
            station = EncoderStation("station-hsm", transport, preparer)
            with pytest.raises(EncodeError) as caught:
                station.personalize(data, serial)
        assert caught.value.step == "sign EF.SOD in the HSM"
        from hsm.errors import HSMError

        assert isinstance(caught.value.__cause__, HSMError)
    memory = ChipStore(encoder_bank.chips_dir).open(serial).memory  # persisted at removal
    assert memory.aa_scalar is not None  # the chip got as far as its key …
    assert memory.lifecycle is not Lifecycle.LOCKED  # … but is neither locked
    assert not memory.files  # … nor carries any file, least of all an EF.SOD
