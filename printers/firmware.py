"""The emulated printer's command interpreter: one escape command in, one reply out.

Reply forms follow fact sheet §1.2-§1.3: ``OK``; error replies starting with ``ERR``;
``Rlr;p`` position words; ``Rse`` voltages written ``5,00 Volts``; decimal counters.
"""

from __future__ import annotations

from collections.abc import Callable

from printers.machine import NEAR_EMPTY, Event, Outcome, PrinterMachine, RefusedError
from printers.panels import Panel
from printers.protocol import OK, Command, Fault, Frame, Position, format_volts

MODEL = "Evolis Primacy (cardline emulator)"
FIRMWARE = "cardline-1.0"
Handler = Callable[[PrinterMachine, Frame], Outcome]


def answer(machine: PrinterMachine, frame: Frame) -> Outcome:
    """The printer's reply to ``frame`` and what it physically did."""
    if machine.faults.silent:
        return Outcome(None)
    handler = HANDLERS.get(frame.command)
    if handler is None:
        return Outcome(Fault.COMMAND)
    try:
        return handler(machine, frame)
    except RefusedError as refusal:
        return Outcome(refusal.fault)


def _volts(high: bool) -> Outcome:
    return Outcome(format_volts(5.0 if high else 0.0))


def _sensor(machine: PrinterMachine, frame: Frame) -> Outcome:
    feeder = 0 if machine.faults.feeder_empty else len(machine.feeder)
    sensors = {"f": feeder > 0, "n": feeder > NEAR_EMPTY, "o": not machine.faults.cover_open}
    if frame.params[:1] and frame.params[0] in sensors:
        return _volts(sensors[frame.params[0]])
    return Outcome(Fault.PARAMETER)


def _last_reply(machine: PrinterMachine, frame: Frame) -> Outcome:
    if frame.params == ("p",):
        card = machine.card
        return Outcome((card.position if card else Position.NONE).value)
    if frame.params == ("h",):
        return Outcome(Position.PRINT.value if machine.reject_box_full else Position.NONE.value)
    return Outcome(Fault.PARAMETER)


def _counter(machine: PrinterMachine, frame: Frame) -> Outcome:
    values = {
        (Command.RIBBON, "count"): machine.ribbon_left,
        (Command.RIBBON, "qty"): machine.ribbon_capacity,
        (Command.COUNTERS, "c"): machine.counts.fed,
        (Command.COUNTERS, "p"): machine.counts.panels,
    }
    value = values.get((Command(frame.command), frame.params[0] if frame.params else ""))
    return Outcome(Fault.PARAMETER if value is None else str(value))


def _setting(choices: set[str]) -> Handler:
    def handler(machine: PrinterMachine, frame: Frame) -> Outcome:
        return Outcome(OK if frame.params[:1] and frame.params[0] in choices else Fault.PARAMETER)

    return handler


def _text(value: Callable[[PrinterMachine], str]) -> Handler:
    return lambda machine, frame: Outcome(value(machine))


def _moved(events: list[Event], delay: float) -> Outcome:
    return Outcome(OK, delay, events)


def _insert(target: Position) -> Handler:
    def handler(machine: PrinterMachine, frame: Frame) -> Outcome:
        fed = machine.card is None
        events = machine.insert(target)
        timing = machine.timing
        delay = timing.feed * fed + timing.to_station * (target is not Position.PRINT)
        return _moved(events, delay)

    return handler


def _simple(action: Callable[[PrinterMachine], None]) -> Handler:
    def handler(machine: PrinterMachine, frame: Frame) -> Outcome:
        action(machine)
        return Outcome(OK)

    return handler


def _download(machine: PrinterMachine, frame: Frame) -> Outcome:
    machine.download(Panel(frame.params[0], int(frame.params[1]), frame.data))
    return Outcome(OK, machine.timing.panel)


def _end(machine: PrinterMachine, frame: Frame) -> Outcome:
    return _moved(machine.end_sequence(), machine.timing.eject)


def _reject(machine: PrinterMachine, frame: Frame) -> Outcome:
    return _moved(machine.reject(), machine.timing.eject)


def _chip_serial(machine: PrinterMachine) -> str:
    return machine.at_station() or Position.NONE.value


HANDLERS: dict[str, Handler] = {
    Command.MODEL: _text(lambda m: MODEL),
    Command.FIRMWARE: _text(lambda m: FIRMWARE),
    Command.SERIAL: _text(lambda m: "EMU-" + m.name.upper()[:20]),
    Command.CHIP_SERIAL: _text(_chip_serial),
    Command.ERROR_MODE: _setting({"0", "1", "2", "3", "4", "5"}),
    Command.INSERT_MODE: _setting({"F", "M", "B"}),
    Command.NO_EJECT: _setting({"E", "A"}),
    Command.LAST_REPLY: _last_reply,
    Command.SENSOR: _sensor,
    Command.RIBBON: _counter,
    Command.COUNTERS: _counter,
    Command.INSERT: _insert(Position.PRINT),
    Command.TO_CONTACT: _insert(Position.CONTACT),
    Command.TO_CONTACTLESS: _insert(Position.CONTACTLESS),
    Command.SEQUENCE_START: _simple(PrinterMachine.start_sequence),
    Command.FRONT: _simple(lambda m: m.select_side("front")),
    Command.BACK: _simple(lambda m: m.select_side("back")),
    Command.DOWNLOAD: _download,
    Command.SEQUENCE_END: _end,
    Command.REJECT: _reject,
}
