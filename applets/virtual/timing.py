"""How long a card takes for one APDU: radio transfer, chip overhead and EEPROM page writes.

Pure arithmetic; the vpcd bridge sleeps :meth:`CardTiming.cost` after each APDU, using the
card's ``last_eeprom_bytes``. Zero by default so unit tests run at full speed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CardTiming:
    """A card's physical timing model (all seconds; ``None`` radio rate = instantaneous)."""

    per_apdu_s: float = 0.0
    radio_bytes_per_s: float | None = None
    eeprom_page_bytes: int = 64
    eeprom_page_write_s: float = 0.0

    def cost(self, command_len: int, response_len: int, eeprom_bytes_written: int) -> float:
        """Seconds for one APDU of these sizes that wrote ``eeprom_bytes_written`` bytes."""
        seconds = self.per_apdu_s
        if self.radio_bytes_per_s:
            seconds += (command_len + response_len) / self.radio_bytes_per_s
        if eeprom_bytes_written > 0:
            pages = -(-eeprom_bytes_written // self.eeprom_page_bytes)
            seconds += pages * self.eeprom_page_write_s
        return seconds

    @classmethod
    def realistic(cls) -> CardTiming:
        """The :data:`REALISTIC` preset (typical figures, not measurements)."""
        return REALISTIC


NONE = CardTiming()

# Typical figures, not measurements: ISO/IEC 14443 runs at 106–848 kbit/s, 212 kbit/s
# ≈ 26 kB/s of payload is a common encoder setting; smart-card EEPROMs write a 64-byte page
# in about 3–4 ms; ~1 ms of chip processing and reader round trip per APDU.
REALISTIC = CardTiming(
    per_apdu_s=0.001, radio_bytes_per_s=26_500.0, eeprom_page_bytes=64, eeprom_page_write_s=0.0035
)
