"""Field rules for a CCCD application; each failure is its own FieldError (field + reason).

A reason names the field and the rule it breaks, never the value: reasons reach the console,
report.json and the journal, and the values are personal data (names, ids, dates).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import TypeGuard, cast

from personalization.applications.model import (
    KINDS,
    REASONS,
    FieldError,
    Kind,
    Supersedes,
    SupersedesIn,
)
from personalization.applications.provinces import PROVINCES

# ASCII fields are matched with explicit ASCII classes: `\d` would also accept Arabic-Indic and
# other Unicode decimal digits (Unicode TR #18 §1.2), which no registry field may hold.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_APPLICATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_PERSONAL_ID = re.compile(r"[0-9]{12}")
_FORMER_ID = re.compile(r"[0-9]{9}|[0-9]{12}")
_DOCUMENT_NUMBER = re.compile(r"[0-9]{9}")
_CARD_IDS = range(1, 2**63)  # a journal's card ids are positive 64-bit integers
SUPERSEDES_SHAPE = ('must be {"card_id": N} or {"document_number": "9 digits", '
                    '"issue_date": "YYYY-MM-DD"}')
# The combining marks Vietnamese uses after NFD: grave, acute, circumflex, tilde, breve,
# hook above, horn, dot below.
_VIETNAMESE_MARKS = frozenset("\u0300\u0301\u0302\u0303\u0306\u0309\u031b\u0323")
_NAME_PUNCTUATION = frozenset(" '-")


@dataclass(frozen=True, slots=True)
class Limits:
    """Lengths and ages the profile sets."""

    min_age: int = 14
    name_max: int = 80
    text_max: int = 200
    earliest_birth: date = date(1900, 1, 1)


def parse_date(field: str, value: str, errors: list[FieldError]) -> date | None:
    """A real calendar date written ``YYYY-MM-DD``."""
    if not _DATE.fullmatch(value):
        errors.append(FieldError(field, "is not a date in the form YYYY-MM-DD"))
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append(FieldError(field, "is not a real calendar date"))
        return None


def nfc(value: str) -> str:
    """Unicode NFC, the form cardline stores and writes to the chip."""
    return unicodedata.normalize("NFC", value)


def _control_chars(value: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in value)


def _non_vietnamese(value: str) -> str | None:
    """The first character that is not a Vietnamese letter, space, hyphen or apostrophe."""
    for char in value:
        if char in _NAME_PUNCTUATION:
            continue
        base = unicodedata.normalize("NFD", char)
        latin = base[0] in "đĐ" or "a" <= base[0].lower() <= "z"
        if latin and all(mark in _VIETNAMESE_MARKS for mark in base[1:]):
            continue
        return char
    return None


def check_name(field: str, value: str, limits: Limits, errors: list[FieldError],
               *, required: bool = True, words: int = 2) -> str:
    """A person's name: NFC Vietnamese letters, no digits or control characters, sane length."""
    name = nfc(value).strip()
    if not name:
        if required:
            errors.append(FieldError(field, "name is empty"))
        return name
    if any(c.isdigit() for c in name):
        errors.append(FieldError(field, "name contains digits"))
    elif _control_chars(name):
        errors.append(FieldError(field, "name contains control characters"))
    elif (bad := _non_vietnamese(name)) is not None:
        # The code point alone says what went wrong (a look-alike, a stray script) without
        # printing any part of the name.
        errors.append(FieldError(field, f"name contains U+{ord(bad):04X}, which is not a "
                                        "Vietnamese letter"))
    if len(name) > limits.name_max:
        errors.append(FieldError(field, f"name is {len(name)} characters; at most "
                                        f"{limits.name_max} allowed"))
    elif len(name.split()) < words:
        errors.append(FieldError(field, f"a full name has at least {words} words "
                                        "(family name and given name)"))
    if "  " in value.strip():
        errors.append(FieldError(field, "name contains repeated spaces"))
    return name


def check_text(field: str, value: str, limits: Limits, errors: list[FieldError]) -> str:
    """Free text for DG13 and the card face: NFC, non-empty, no control characters."""
    text = nfc(value).strip()
    if not text:
        errors.append(FieldError(field, "must not be empty"))
    elif _control_chars(text):
        errors.append(FieldError(field, "contains control characters"))
    elif len(text) > limits.text_max:
        errors.append(FieldError(field, f"is {len(text)} characters; at most "
                                        f"{limits.text_max} allowed"))
    return text


def is_application_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a well-formed registry id (and so safe to show and to store)."""
    return isinstance(value, str) and _APPLICATION_ID.fullmatch(value) is not None


def check_application_id(value: str, errors: list[FieldError]) -> None:
    """Registry ids become folder names: letters, digits, dot, dash, underscore; ≤ 64."""
    if not is_application_id(value):
        errors.append(FieldError("application_id",
                                 "must be 1–64 characters of A–Z, a–z, 0–9, '.', '_' or '-', "
                                 "starting with a letter or digit"))


def check_personal_id(value: str, sex: str, birth: date | None, errors: list[FieldError]) -> None:
    """The 12-digit number (Thông tư 07/2016/TT-BCA): province, century+sex digit, birth year."""
    if not _PERSONAL_ID.fullmatch(value):
        errors.append(FieldError("personal_id", "must be exactly 12 digits"))
        return
    if value[:3] not in PROVINCES:
        errors.append(FieldError("personal_id", "digits 1–3 are not a province code"))
    digit = int(value[3])
    century = 1900 + (digit // 2) * 100
    coded = "M" if digit % 2 == 0 else "F"
    if sex in ("M", "F") and coded != sex:
        errors.append(FieldError("personal_id", "digit 4 (century and sex) does not match sex"))
    if birth is not None:
        if birth.year // 100 * 100 != century:
            errors.append(FieldError("personal_id", "digit 4 (century and sex) does not match "
                                     "the century of date_of_birth"))
        if value[4:6] != f"{birth.year % 100:02d}":
            errors.append(FieldError("personal_id", "digits 5–6 differ from the birth year of "
                                     "date_of_birth"))


def check_dates(birth: date | None, issue: date | None, today: date, limits: Limits,
                errors: list[FieldError]) -> None:
    """Birth before issue, neither in the future, and the minimum age at issue."""
    if birth is not None:
        if birth > today:
            errors.append(FieldError("date_of_birth", "is in the future"))
        elif birth < limits.earliest_birth:
            errors.append(FieldError("date_of_birth", f"is before {limits.earliest_birth}"))
    if issue is not None and issue > today:
        errors.append(FieldError("issue_date", "is in the future"))
    if birth is None or issue is None:
        return
    if issue < birth:
        errors.append(FieldError("issue_date", "is before date_of_birth"))
        return
    age = issue.year - birth.year - ((issue.month, issue.day) < (birth.month, birth.day))
    if age < limits.min_age:
        errors.append(FieldError("date_of_birth", "applicant is too young at issue; the "
                                                  f"minimum age is {limits.min_age}"))


def check_former_id(value: str | None, errors: list[FieldError]) -> str | None:
    """A former ID (9-digit CMND or 12-digit number) when given."""
    if value is None:
        return None
    stripped = value.strip()
    if not _FORMER_ID.fullmatch(stripped):
        errors.append(FieldError("former_id_number", "must be 9 or 12 digits"))
    return stripped or None


def _either(words: tuple[str, ...]) -> str:
    return ", ".join(words[:-1]) + " or " + words[-1]


def check_kind(kind: str, reason: str | None, supersedes: SupersedesIn | None,
               predates: bool, issue: date | None, errors: list[FieldError],
               ) -> tuple[Kind, Supersedes | None]:
    """The kind of application (issue #16 §2): a first issue says no reason and names no
    earlier card; a renewal or replacement gives its reason and names the card it replaces,
    unless the registry says that card predates cardline (``predates_cardline``)."""
    if kind not in KINDS:
        errors.append(FieldError("kind", f"must be {_either(KINDS)}"))
        return "first", None
    if kind == "first":
        for name, given in (("reason", reason is not None),
                            ("supersedes", supersedes is not None),
                            ("predates_cardline", predates)):
            if given:
                errors.append(FieldError(name, "must be absent for a first issue"))
        return "first", None
    allowed = REASONS[kind]
    if reason is None:
        errors.append(FieldError("reason", f"is required for a {kind}: {_either(allowed)}"))
    elif reason not in allowed:
        errors.append(FieldError("reason", f"must be {_either(allowed)} for a {kind}"))
    if supersedes is None:
        if not predates:
            errors.append(FieldError("supersedes", f"is required for a {kind} unless "
                                                   "predates_cardline is true"))
        return cast(Kind, kind), None
    return cast(Kind, kind), _check_supersedes(supersedes, predates, issue, errors)


def _check_supersedes(raw: SupersedesIn, predates: bool, issue: date | None,
                      errors: list[FieldError]) -> Supersedes | None:
    """One of the two ways to name the earlier card, never both."""
    by_number = raw.document_number is not None, raw.issue_date is not None
    if (raw.card_id is not None) == any(by_number):
        errors.append(FieldError("supersedes", SUPERSEDES_SHAPE))
        return None
    if raw.card_id is not None:
        if raw.card_id not in _CARD_IDS:
            errors.append(FieldError("supersedes", "card_id must be a positive card id"))
        elif predates:
            errors.append(FieldError("supersedes", "a card_id names a card cardline made, but "
                                                   "predates_cardline says the earlier card "
                                                   "predates cardline"))
        else:
            return Supersedes(card_id=raw.card_id)
        return None
    if raw.document_number is None or raw.issue_date is None:
        errors.append(FieldError("supersedes", SUPERSEDES_SHAPE))
        return None
    before = len(errors)
    if not _DOCUMENT_NUMBER.fullmatch(raw.document_number):
        errors.append(FieldError("supersedes", "document_number must be exactly 9 digits"))
    earlier = _earlier_issue(raw.issue_date, issue, errors)
    if len(errors) > before or earlier is None:
        return None
    return Supersedes(document_number=raw.document_number, issue_date=earlier)


def _earlier_issue(value: str, issue: date | None, errors: list[FieldError]) -> date | None:
    """The earlier card's issue date: a real date, not after this application's."""
    try:
        earlier = date.fromisoformat(value) if _DATE.fullmatch(value) else None
    except ValueError:
        earlier = None
    if earlier is None:
        errors.append(FieldError("supersedes", "issue_date is not a real date in the form "
                                               "YYYY-MM-DD"))
    elif issue is not None and earlier > issue:
        errors.append(FieldError("supersedes", "issue_date is after the issue_date of this "
                                               "application"))
    return earlier
