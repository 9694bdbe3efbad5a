"""The line's machines: the encoders (pcscd with virtual readers and the card host), the
simulated printers, the chips in them, and which reader and printer port each station of
``line.yaml`` uses."""

from __future__ import annotations

import re
from dataclasses import dataclass

from applets.errors import CardError
from applets.transport.pcsc import PCSCTransport, list_readers
from applets.virtual.bank import EncoderBank
from applets.virtual.store import ChipStore
from personalization.config import LineConfig
from personalization.errors import ConfigError
from personalization.line.station import StationSpec
from personalization.service.errors import LineNotUp, NotFound, ServiceError
from personalization.simline import PrinterLine

# pcsc-lite names a reader "<friendly name> <reader number> <slot number>", two hex digits each
_SLOT = re.compile(r"^(?P<device>.+ [0-9A-F]{2}) [0-9A-F]{2}$")
_START_THE_LINE = "start it with `cardline line up`"
CARD_SEEN_S = 5.0  # pcscd polls a vpcd reader every 400 ms


def encoder_bank(config: LineConfig, readers: int | None = None) -> EncoderBank:
    """The line's virtual encoder bank: one encoder per station unless ``readers`` says."""
    count = readers if readers is not None else max(1, len(config.stations))
    return EncoderBank(config.data_dir, count, config.simulation.base_port,
                       timing=config.simulation.timing)


def reader_index(config: LineConfig, name: str) -> int:
    """An encoder's index from its index, name, PC/SC name, or the station that owns it."""
    for station in config.stations:
        if station.name == name:
            name = station.encoder.reader
    match = re.fullmatch(r"(?:Encoder )?(\d+)(?: 00 00)?", name.strip())
    if match is None:
        raise NotFound(f"unknown encoder {name!r}; use an index, 'Encoder N', or a station name")
    return int(match.group(1))


def printer_line(config: LineConfig, bank: EncoderBank) -> PrinterLine:
    """The simulated printers of the stations whose printer port is ``auto``."""
    stations = {s.name: reader_index(config, s.encoder.reader)
                for s in config.stations if s.printer.port == "auto"}
    return PrinterLine(config.data_dir, stations, bank.host_socket, bank.chips_dir,
                       config.simulation.timing, config.simulation.blank_cards_per_feeder)


def pick_reader(station: str, wanted: str, readers: list[str]) -> str:
    """The PC/SC reader a station's ``encoder.reader`` names: the reader of that exact name,
    else the first slot of the one encoder whose name it is; several encoders or none is a
    configuration error naming the candidates."""
    if wanted in readers:
        return wanted
    found = sorted(r for r in readers if r.startswith(wanted + " "))
    devices = sorted({(m.group("device") if (m := _SLOT.match(r)) else r) for r in found})
    if len(devices) > 1:
        raise ConfigError(f"station {station}: encoder.reader {wanted!r} matches several "
                          f"encoders ({', '.join(devices)}); name one of them in line.yaml")
    if not found:
        raise ConfigError(f"station {station}: no PC/SC reader is called {wanted!r} "
                          f"(readers: {', '.join(readers)}); fix encoder.reader in line.yaml")
    return found[0]


def station_specs(config: LineConfig) -> list[StationSpec]:
    """The stations of line.yaml with their printer ports and PC/SC readers resolved; raises
    LineNotUp when the line's encoders or simulated printers are not running."""
    try:
        readers = list_readers()
    except CardError as exc:
        raise LineNotUp(f"the line's encoders are not up ({exc}); {_START_THE_LINE}") from exc
    if not readers:
        raise LineNotUp(f"no PC/SC reader is attached; {_START_THE_LINE}")
    if any(s.printer.port == "auto" for s in config.stations) and not PrinterLine(
            config.data_dir, {}, config.data_dir, config.data_dir).running():
        raise LineNotUp(f"the simulated printers are not running; {_START_THE_LINE}")
    specs = []
    for station in config.stations:
        port = station.printer.port
        if port == "auto":
            try:
                port = (config.data_dir / "printers" / f"{station.name}.pty").read_text(
                    encoding="utf-8").strip()
            except OSError as exc:
                raise LineNotUp(f"station {station.name}: no simulated printer runs for it; "
                                f"{_START_THE_LINE}") from exc
        specs.append(StationSpec(station.name, port,
                                 pick_reader(station.name, station.encoder.reader, readers)))
    return specs


@dataclass(frozen=True, slots=True)
class LineUp:
    """What ``line up`` started: each encoder's reader and port, each printer's port."""

    pcsc_dir: str
    readers: list[tuple[str, int]]
    printers: dict[str, str]


def up(config: LineConfig, readers: int | None = None) -> LineUp:
    """Start pcscd with the virtual encoders and the card host (reusing a matching one), and
    an emulated printer for each station whose printer port is 'auto'."""
    bank = encoder_bank(config, readers)
    printers = printer_line(config, bank)
    bank.up()
    if printers.stations:
        printers.up()
    return LineUp(str(bank.pcsc_dir),
                  [(bank.reader_name(i), bank.port(i)) for i in range(bank.readers)],
                  {name: printers.port(name) for name in printers.stations})


def down(config: LineConfig) -> bool:
    """Stop the simulated printers, card host and pcscd that ``up`` started; False when the
    encoders were not running (chips stay in the store)."""
    bank = encoder_bank(config)
    was_running = bank.running()
    printer_line(config, bank).down()
    bank.down()
    return was_running


@dataclass(frozen=True, slots=True)
class EncoderSlot:
    """One encoder and the chip in it."""

    index: int
    reader: str
    port: int
    chip: str | None


def status(config: LineConfig) -> list[EncoderSlot] | None:
    """Each encoder and its chip; None when the encoder bank is not running."""
    bank = encoder_bank(config)
    if not bank.running():
        return None
    return [EncoderSlot(i, bank.reader_name(i), bank.port(i), serial)
            for i, serial in sorted(bank.client().status().items())]


def insert(config: LineConfig, chip_serial: str, reader: str | None = None) -> str:
    """Put a stored chip into the named encoder or the first free one; returns its reader
    once PC/SC reports the card there (so a ``qa verify`` right after it finds the card)."""
    bank = encoder_bank(config)
    if reader is not None:
        index = reader_index(config, reader)
    else:
        free = [i for i, serial in sorted(bank.client().status().items()) if serial is None]
        if not free:
            raise ServiceError("no encoder is free; remove a chip first (`cardline line remove`)")
        index = free[0]
    bank.client().insert(index, chip_serial)
    name = bank.reader_name(index)
    with PCSCTransport(name) as pcsc:  # pcscd sees a vpcd card only at its presence poll
        pcsc.wait_for_card(CARD_SEEN_S)
    return name


def remove(config: LineConfig, chip_serial: str | None = None,
           reader: str | None = None) -> tuple[str, str | None]:
    """Pull the chip out of an encoder chosen by reader or by the chip's serial; returns the
    reader and the serial removed (None when it was empty), once PC/SC sees the reader empty."""
    if (reader is None) == (chip_serial is None):
        raise ServiceError("name exactly one of --reader or CHIP_SERIAL")
    bank = encoder_bank(config)
    if reader is not None:
        index = reader_index(config, reader)
    else:
        held = [i for i, serial in bank.client().status().items() if serial == chip_serial]
        if not held:
            raise NotFound(f"chip {chip_serial} is in no encoder")
        index = held[0]
    removed = bank.client().remove(index)
    name = bank.reader_name(index)
    with PCSCTransport(name) as pcsc:
        pcsc.wait_for_removal(CARD_SEEN_S)
    return name, removed


def blanks(config: LineConfig, count: int, prefix: str = "CHIP") -> list[str]:
    """Create blank (unpersonalized) virtual chips in the chip store, DATA_DIR/chips."""
    return ChipStore(config.data_dir / "chips").create_blanks(count, prefix)
