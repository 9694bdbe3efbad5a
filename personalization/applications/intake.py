"""Reading approved applications from JSON Lines: every record checked, bad ones reported with
their line number, application id and every reason; good ones go on.

Each record is isolated: whatever a record does to the checks (wrong types, a hostile photo, a
line too long to hold, an exception deep in a decoder), it is quarantined with reasons and the
next record is read. Only a file that cannot be read at all raises (``OSError``). Reasons name
the field and the rule, never the value (see :mod:`personalization.applications.rules`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import ValidationError

from personalization.applications import rules
from personalization.applications.expiry import derive_expiry
from personalization.applications.lines import bounded_lines
from personalization.applications.model import (
    Application,
    ApplicationIn,
    FieldError,
    InlinePhoto,
)
from personalization.applications.photo import PhotoError, PhotoSpec, normalize_photo
from personalization.applications.sources import SourceError, inline_bytes, photo_file_bytes

MAX_LINE_BYTES = 4 * 1024 * 1024  # holds an inline photo of the default 2 MiB cap, base64
MAX_ERRORS = 32  # per record: a line of a million unknown keys is one record, not a million rows
# Unknown keys are shown by name only when they look like a key (a name typed into a key is
# not echoed, nor a 4 MB key, nor one the journal's UTF-8 cannot store).
_KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class IntakeRules:
    """What the document profile says about applications."""

    photo: PhotoSpec
    limits: rules.Limits = field(default_factory=rules.Limits)
    renewal_ages: tuple[int, ...] = (25, 40, 60)
    grace_years: int = 2
    nationality: str = "VNM"
    max_line_bytes: int = MAX_LINE_BYTES


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """A record that cannot be issued, with every reason."""

    line: int
    application_id: str | None
    errors: tuple[FieldError, ...]

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``applications check``."""
        return {"line": self.line, "application_id": self.application_id,
                "errors": [e.as_dict() for e in self.errors]}


@dataclass(slots=True)
class IntakeResult:
    """Valid applications (with their line) and invalid records, in file order."""

    valid: list[tuple[int, Application]] = field(default_factory=list)
    invalid: list[InvalidRecord] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """``{"valid": n, "invalid": [...]}``."""
        return {"valid": len(self.valid), "invalid": [r.as_dict() for r in self.invalid]}


def _pydantic_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic's findings as field + rule; ``err["input"]`` (the value) is never used."""
    out = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "(record)"
        if err["type"] == "extra_forbidden":
            out.append(FieldError(name, "unknown field") if _KEY_NAME.fullmatch(name)
                       else FieldError("(record)", "unknown field whose name is not a plain key"))
        elif err["type"] == "missing":
            out.append(FieldError(name, "required field is missing"))
        elif name == "photo":
            out.append(FieldError("photo", 'must be a relative path or {"base64": "…"}'))
        else:
            out.append(FieldError(name, "must be text (a JSON string)"))
    return _dedupe(out)


def _dedupe(errors: list[FieldError]) -> list[FieldError]:
    seen: dict[tuple[str, str], FieldError] = {}
    for err in errors:
        seen.setdefault((err.field, err.reason), err)
    return _capped(list(seen.values()))


def _capped(errors: list[FieldError]) -> list[FieldError]:
    if len(errors) <= MAX_ERRORS:
        return errors
    more = len(errors) - MAX_ERRORS + 1
    return [*errors[:MAX_ERRORS - 1], FieldError("(record)", f"{more} more errors not listed")]


def _photo_bytes(photo: str | InlinePhoto, base_dir: Path, max_bytes: int,
                 errors: list[FieldError]) -> bytes:
    try:
        if isinstance(photo, InlinePhoto):
            return inline_bytes(photo.base64, max_bytes)
        return photo_file_bytes(photo, base_dir, max_bytes)
    except SourceError as exc:
        errors.append(FieldError("photo", str(exc)))
        return b""


def validate_record(raw: ApplicationIn, base_dir: Path, policy: IntakeRules, today: date,
                    ) -> tuple[Application | None, list[FieldError]]:
    """Apply every field rule; return the application, or None with the reasons."""
    errors: list[FieldError] = []
    limits = policy.limits
    rules.check_application_id(raw.application_id, errors)
    birth = rules.parse_date("date_of_birth", raw.date_of_birth, errors)
    issue = rules.parse_date("issue_date", raw.issue_date, errors)
    if raw.sex not in ("M", "F"):
        errors.append(FieldError("sex", "is not M or F"))
    if raw.nationality != policy.nationality:
        errors.append(FieldError("nationality", f"is not {policy.nationality}"))
    rules.check_personal_id(raw.personal_id, raw.sex, birth, errors)
    rules.check_dates(birth, issue, today, limits, errors)
    names = {f: rules.check_name(f, getattr(raw, f), limits, errors, required=f == "full_name",
                                 words=2 if f == "full_name" else 1)
             for f in ("full_name", "father_name", "mother_name")}
    spouse = (rules.check_name("spouse_name", raw.spouse_name, limits, errors, words=1)
              if raw.spouse_name is not None else None)
    texts = {f: rules.check_text(f, getattr(raw, f), limits, errors)
             for f in ("ethnicity", "religion", "place_of_origin", "place_of_residence",
                       "identifying_marks")}
    former = rules.check_former_id(raw.former_id_number, errors)
    portrait = None
    data = _photo_bytes(raw.photo, base_dir, policy.photo.max_source_bytes, errors)
    if data:
        try:
            portrait = normalize_photo(data, policy.photo)
        except PhotoError as exc:
            errors.append(FieldError("photo", str(exc)))
    if errors or birth is None or issue is None or portrait is None:
        return None, errors
    expiry = derive_expiry(birth, issue, policy.renewal_ages, policy.grace_years)
    return Application(
        application_id=raw.application_id, personal_id=raw.personal_id,
        full_name=names["full_name"], date_of_birth=birth, issue_date=issue,
        expiry_date=expiry, sex=cast(Literal["M", "F"], raw.sex), nationality=raw.nationality,
        father_name=names["father_name"], mother_name=names["mother_name"],
        spouse_name=spouse or None, former_id_number=former, portrait=portrait, **texts,
    ), []


def _parse_line(line: bytes | None, limit: int,
                ) -> tuple[dict[str, Any] | None, list[FieldError]]:
    if line is None:
        return None, [FieldError("(record)", f"line longer than {limit} bytes")]
    try:
        value = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return None, [FieldError("(record)", "line is not UTF-8")]
    except json.JSONDecodeError as exc:
        return None, [FieldError("(record)", f"not JSON: {exc.msg} at column {exc.colno}")]
    except (ValueError, RecursionError) as exc:  # an integer past the digit limit, deep nesting
        return None, [FieldError("(record)", f"not usable JSON ({exc.__class__.__name__})")]
    if not isinstance(value, dict):
        return None, [FieldError("(record)", "a record must be a JSON object")]
    return value, []


def _check(value: dict[str, Any], base_dir: Path, policy: IntakeRules, today: date,
           ) -> tuple[Application | None, list[FieldError]]:
    try:
        raw = ApplicationIn.model_validate(value)
    except ValidationError as exc:
        return None, _pydantic_errors(exc)
    application, errors = validate_record(raw, base_dir, policy, today)
    return application, _capped(errors)


def _record(number: int, line: bytes | None, base_dir: Path, policy: IntakeRules, today: date,
            first_seen: dict[tuple[str, bytes], int]) -> tuple[Application | None, InvalidRecord]:
    """One line checked; the application (if any) and what is wrong with it (maybe nothing)."""
    value, errors = _parse_line(line, policy.max_line_bytes)
    app_id = value.get("application_id") if value is not None else None
    shown = app_id if rules.is_application_id(app_id) else None
    application = None
    if value is not None:
        try:
            application, errors = _check(value, base_dir, policy, today)
        except Exception as exc:
            # Per-record isolation: any failure while checking one record quarantines that
            # record, with the kind of failure, and intake carries on with the next line.
            application = None
            errors = [FieldError("(record)", f"record could not be checked "
                                             f"({exc.__class__.__name__})")]
        errors += _duplicates(value, number, first_seen)
    return application, InvalidRecord(number, shown, tuple(errors))


def read_applications(path: Path, policy: IntakeRules, today: date) -> IntakeResult:
    """Check every record of a JSON Lines file; duplicates are rejected on their later line.

    Raises ``OSError`` only when the file itself cannot be opened or read."""
    result = IntakeResult()
    first_seen: dict[tuple[str, bytes], int] = {}
    with path.open("rb") as handle:
        for number, line in bounded_lines(handle, policy.max_line_bytes):
            if line is not None and not line.strip():
                continue
            application, verdict = _record(number, line, path.parent, policy, today, first_seen)
            if verdict.errors or application is None:
                result.invalid.append(verdict)
            else:
                result.valid.append((number, application))
    return result


def _duplicates(value: dict[str, Any], number: int,
                first_seen: dict[tuple[str, bytes], int]) -> list[FieldError]:
    errors = []
    for key in ("application_id", "personal_id"):
        item = value.get(key)
        if not isinstance(item, str):
            continue
        # A digest, not the text: a few bytes per record however long the value was.
        digest = hashlib.sha256(item.encode("utf-8", "surrogatepass")).digest()
        seen = first_seen.setdefault((key, digest), number)
        if seen != number:
            errors.append(FieldError(key, f"duplicate of line {seen}"))
    return errors
