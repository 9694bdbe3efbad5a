"""The TD1 machine readable zone (3 lines of 30) of ICAO 9303-3 and 9303-5.

Pure values: :func:`transliterate` and :func:`name_field` build the name line,
:class:`TD1` lays the three lines out, :func:`parse_td1` reads them back strictly.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from applets.emrtd.lds.checkdigit import check_digit
from applets.errors import MRZError

LINE = 30
FILLER = "<"
NO_EXPIRY = "<<<<<<"  # cardline decision: a CCCD without expiry carries fillers (check digit 0)
_MRZ_CHARS = re.compile(r"[A-Z0-9<]*")
_DATE = re.compile(r"[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])")
# ICAO 9303-3 §6 (transliteration): letters that do not decompose under NFD.
_SPECIAL = {"Đ": "D", "Ð": "D", "Æ": "AE", "Œ": "OE", "Ø": "OE", "ß": "SS", "Þ": "TH", "Ł": "L"}
_SEPARATORS = re.compile(r"[\s\-<]+")
_SEXES = ("M", "F", FILLER)


@functools.lru_cache(maxsize=8192)  # names repeat a lot; the function is pure
def transliterate(text: str) -> str:
    """ICAO 9303-3 §6: Latin text with diacritics to MRZ characters (A–Z, 0–9, '<').

    Diacritics are dropped (NFD, combining marks removed), Đ becomes D, spaces and hyphens
    become one '<', apostrophes and every other character are omitted.
    """
    upper = "".join(_SPECIAL.get(c, c) for c in text.upper())
    bare = "".join(c for c in unicodedata.normalize("NFD", upper) if not unicodedata.combining(c))
    bare = "".join(_SPECIAL.get(c, c) for c in bare.upper())
    joined = _SEPARATORS.sub(FILLER, bare)
    kept = "".join(c for c in joined if c == FILLER or ("A" <= c <= "Z") or ("0" <= c <= "9"))
    return re.sub("<+", FILLER, kept).strip(FILLER)


def _cut(text: str, width: int) -> str:
    """``text`` truncated to ``width`` so that the last character is not a filler.

    ICAO 9303-3 §4.6 (truncation): a truncated name ends on a letter, so a reader can tell a
    truncated field from a complete one. When the cut falls just after a name component,
    that component loses its last letter and the next name keeps its initial.
    """
    cut = text[:width]
    if not cut.endswith(FILLER):
        return cut
    head = cut[:-1]
    if len(head) >= 2 and head[-2] != FILLER and width < len(text):
        return head[:-1] + FILLER + text[width]
    return cut


def name_field(primary: str, secondary: str, width: int = LINE) -> str:
    """The MRZ name field ``PRIMARY<<SECONDARY<NAMES`` padded with fillers to ``width``.

    ICAO 9303-3 §4.6: when too long, the secondary identifier is truncated first; the
    primary identifier is truncated only when it alone does not leave room for one
    secondary character, and then the secondary identifier is dropped.
    """
    first, second = transliterate(primary), transliterate(secondary)
    if not first:
        raise MRZError("name", "the primary identifier is empty after transliteration")
    full = f"{first}<<{second}" if second else first
    if len(full) <= width:
        return full.ljust(width, FILLER)
    room = width - len(first) - 2
    if room >= 1:
        return f"{first}<<{_cut(second, room)}"
    return _cut(first, width).ljust(width, FILLER)


def _check(field: str, value: str, length: int | None = None, maximum: int | None = None) -> None:
    if length is not None and len(value) != length:
        raise MRZError(field, f"must be {length} characters, got {len(value)}")
    if maximum is not None and len(value) > maximum:
        raise MRZError(field, f"must be at most {maximum} characters, got {len(value)}")
    if not _MRZ_CHARS.fullmatch(value):
        raise MRZError(field, "only A-Z, 0-9 and '<' are allowed")


@dataclass(frozen=True, slots=True)
class TD1:
    """The fields of a TD1 MRZ (ICAO 9303-5 §4.2.2), without fillers or check digits.

    ``document_number`` may exceed 9 characters: the overflow goes into the optional data
    of line 1 as 9303-5 §4.2.4 note j describes. ``name`` is the complete 30-character line 3.
    """

    document_code: str
    issuing_state: str
    document_number: str
    optional_data_1: str
    date_of_birth: str
    sex: str
    date_of_expiry: str
    nationality: str
    optional_data_2: str
    name: str

    def __post_init__(self) -> None:
        if not self._plainly_valid():
            self._validate()

    def _plainly_valid(self) -> bool:
        """Every rule of :meth:`_validate` at once, in a few C calls (this runs per card).

        The character rule holds for the concatenated fields exactly when it holds for each,
        so one regex pass covers all of them; :meth:`_validate` names the broken rule.
        """
        number, no_expiry = self.document_number, self.date_of_expiry == NO_EXPIRY
        return (len(self.document_code) == 2 and len(self.issuing_state) == 3
                and len(self.nationality) == 3 and len(self.name) == LINE
                and len(self.optional_data_2) <= 11 and len(number) <= 22
                and len(self.optional_data_1) <= self._optional_1_room
                and self.sex in _SEXES and number.strip(FILLER) != ""
                and _MRZ_CHARS.fullmatch("".join((
                    self.document_code, self.issuing_state, self.nationality, self.name,
                    self.optional_data_2, number, self.optional_data_1))) is not None
                and _DATE.fullmatch(self.date_of_birth) is not None
                and (no_expiry or _DATE.fullmatch(self.date_of_expiry) is not None))

    def _validate(self) -> None:
        """Check each field in turn; raise :class:`MRZError` naming the first bad one."""
        _check("document code", self.document_code, length=2)
        _check("issuing state", self.issuing_state, length=3)
        _check("nationality", self.nationality, length=3)
        _check("name", self.name, length=LINE)
        _check("optional data 2", self.optional_data_2, maximum=11)
        _check("document number", self.document_number, maximum=22)
        if not self.document_number.strip(FILLER):
            raise MRZError("document number", "is empty")
        _check("optional data 1", self.optional_data_1, maximum=self._optional_1_room)
        _check_date("date of birth", self.date_of_birth, allow_no_expiry=False)
        _check_date("date of expiry", self.date_of_expiry, allow_no_expiry=True)
        if self.sex not in _SEXES:
            raise MRZError("sex", "must be 'M', 'F' or '<'")

    @property
    def _optional_1_room(self) -> int:
        overflow = len(self.document_number) - 9
        return 15 if overflow <= 0 else 15 - overflow - 2

    def _line1_tail(self) -> str:
        """Positions 6–30 of line 1: document number, its check digit, optional data."""
        number = self.document_number
        if len(number) <= 9:
            padded = number.ljust(9, FILLER)
            return padded + check_digit(padded) + self.optional_data_1.ljust(15, FILLER)
        # ICAO 9303-5 §4.2.4 note j: '<' at position 15, then the overflow, its check digit, '<'.
        overflow = number[9:] + check_digit(number) + FILLER + self.optional_data_1
        return number[:9] + FILLER + overflow.ljust(15, FILLER)

    def lines(self) -> tuple[str, str, str]:
        """The three lines of 30 characters, check digits and composite included."""
        line1 = self.document_code + self.issuing_state + self._line1_tail()
        upper = (self.date_of_birth + check_digit(self.date_of_birth) + self.sex
                 + self.date_of_expiry + check_digit(self.date_of_expiry) + self.nationality
                 + self.optional_data_2.ljust(11, FILLER))
        return line1, upper + _composite(line1, upper), self.name

    @property
    def text(self) -> str:
        """The 90 MRZ characters as DG1 stores them (no line breaks)."""
        return "".join(self.lines())

    def bac_mrz_information(self) -> str:
        """ICAO 9303-11 §9.7.2 / App. D: docNo (≥9, '<'-padded) ‖ cd ‖ DOB ‖ cd ‖ DOE ‖ cd."""
        number = self.document_number.ljust(9, FILLER)
        parts = (number, self.date_of_birth, self.date_of_expiry)
        return "".join(f + check_digit(f) for f in parts)


def _check_date(field: str, value: str, *, allow_no_expiry: bool) -> None:
    if allow_no_expiry and value == NO_EXPIRY:
        return
    if not _DATE.fullmatch(value):
        raise MRZError(field, "must be a date YYMMDD")


def _composite(line1: str, line2_upper: str) -> str:
    """ICAO 9303-5 §4.2.2: composite over line 1 pos 6–30 and line 2 pos 1–7, 9–15, 19–29."""
    return check_digit(line1[5:] + line2_upper[0:7] + line2_upper[8:15] + line2_upper[18:29])


def _verify(field: str, data: str, digit: str) -> None:
    # The digits derive from the document number and dates: the message names the rule only.
    if check_digit(data) != digit:
        raise MRZError(field, "check digit is wrong (ICAO 9303-3 §4.9)")


def _split_text(text: str) -> tuple[str, str, str]:
    parts = text.split("\n")
    flat = "".join(parts)
    if len(flat) != 3 * LINE or (len(parts) > 1 and [len(p) for p in parts] != [LINE] * 3):
        raise MRZError("MRZ", f"a TD1 MRZ is 3 lines of 30 characters, got {len(flat)} characters")
    _check("MRZ", flat)
    return flat[:LINE], flat[LINE : 2 * LINE], flat[2 * LINE :]


def _read_document_number(line1: str) -> tuple[str, str]:
    """(document number, optional data 1) of line 1, verifying the number's check digit."""
    head, digit, optional = line1[5:14], line1[14], line1[15:]
    if digit != FILLER:
        _verify("document number", head, digit)
        return head.rstrip(FILLER), optional.rstrip(FILLER)
    # ICAO 9303-5 §4.2.4 note j: the number continues in the optional data up to the first '<'.
    end = optional.find(FILLER)
    if end < 2 or FILLER in head:
        raise MRZError("document number", "'<' at position 15 without an overflow and check digit")
    number = head + optional[: end - 1]
    _verify("document number", number, optional[end - 1])
    return number, optional[end + 1 :].rstrip(FILLER)


def parse_td1(text: str) -> TD1:
    """Parse and verify a TD1 MRZ: 90 characters, or 3 lines of 30 joined by newlines."""
    line1, line2, line3 = _split_text(text)
    number, optional_1 = _read_document_number(line1)
    _verify("date of birth", line2[0:6], line2[6])
    _verify("date of expiry", line2[8:14], line2[14])
    expected = _composite(line1, line2[:29])
    if line2[29] != expected:
        raise MRZError("composite", "check digit is wrong (ICAO 9303-5 §4.2.2)")
    return TD1(
        document_code=line1[0:2], issuing_state=line1[2:5], document_number=number,
        optional_data_1=optional_1, date_of_birth=line2[0:6], sex=line2[7],
        date_of_expiry=line2[8:14], nationality=line2[15:18],
        optional_data_2=line2[18:29].rstrip(FILLER), name=line3,
    )
