"""Reading approved applications from JSON Lines: every record checked, bad ones reported with
their line number, application id and every reason; good ones go on."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import ValidationError

from personalization.applications import rules
from personalization.applications.expiry import derive_expiry
from personalization.applications.model import (
    Application,
    ApplicationIn,
    FieldError,
    InlinePhoto,
)
from personalization.applications.photo import PhotoError, PhotoSpec, normalize_photo

MAX_LINE_BYTES = 4 * 1024 * 1024  # an inline photo of a few MB at most


@dataclass(frozen=True, slots=True)
class IntakeRules:
    """What the document profile says about applications."""

    photo: PhotoSpec
    limits: rules.Limits = field(default_factory=rules.Limits)
    renewal_ages: tuple[int, ...] = (25, 40, 60)
    grace_years: int = 2
    nationality: str = "VNM"


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
    out = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "(record)"
        if err["type"] == "extra_forbidden":
            out.append(FieldError(name, "unknown field"))
        elif err["type"] == "missing":
            out.append(FieldError(name, "required field is missing"))
        elif name == "photo":
            out.append(FieldError("photo", 'must be a relative path or {"base64": "…"}'))
        else:
            out.append(FieldError(name, f"must be text ({err['msg']})"))
    return _dedupe(out)


def _dedupe(errors: list[FieldError]) -> list[FieldError]:
    seen: dict[tuple[str, str], FieldError] = {}
    for err in errors:
        seen.setdefault((err.field, err.reason), err)
    return list(seen.values())


def _photo_bytes(photo: str | InlinePhoto, base_dir: Path, errors: list[FieldError]) -> bytes:
    if isinstance(photo, InlinePhoto):
        try:
            return base64.b64decode(photo.base64, validate=True)
        except (binascii.Error, ValueError):
            errors.append(FieldError("photo", "base64 is not valid"))
            return b""
    relative = Path(photo)
    if relative.is_absolute() or ".." in relative.parts or not photo.strip():
        errors.append(FieldError("photo", "path must be relative and stay inside the folder "
                                          "of the applications file"))
        return b""
    try:
        return (base_dir / relative).read_bytes()
    except OSError as exc:
        errors.append(FieldError("photo", f"cannot read {photo}: {exc.strerror or exc}"))
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
        errors.append(FieldError("sex", f"{raw.sex!r} is not M or F"))
    if raw.nationality != policy.nationality:
        errors.append(FieldError("nationality", f"{raw.nationality!r} is not {policy.nationality}"))
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
    data = _photo_bytes(raw.photo, base_dir, errors)
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


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def _parse_line(line: bytes) -> tuple[dict[str, Any] | None, list[FieldError]]:
    if len(line) > MAX_LINE_BYTES:
        return None, [FieldError("(record)", f"line longer than {MAX_LINE_BYTES} bytes")]
    try:
        value = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return None, [FieldError("(record)", "line is not UTF-8")]
    except json.JSONDecodeError as exc:
        return None, [FieldError("(record)", f"not JSON: {exc.msg} at column {exc.colno}")]
    if not isinstance(value, dict):
        return None, [FieldError("(record)", "a record must be a JSON object")]
    return value, []


def read_applications(path: Path, policy: IntakeRules, today: date) -> IntakeResult:
    """Check every record of a JSON Lines file; duplicates are rejected on their later line."""
    result = IntakeResult()
    first_seen: dict[tuple[str, str], int] = {}
    for number, line in _lines(path):
        value, errors = _parse_line(line)
        app_id = value.get("application_id") if value else None
        app_id = app_id if isinstance(app_id, str) else None
        application = None
        if value is not None:
            try:
                raw = ApplicationIn.model_validate(value)
            except ValidationError as exc:
                errors = _pydantic_errors(exc)
            else:
                application, errors = validate_record(raw, path.parent, policy, today)
        errors += _duplicates(value or {}, number, first_seen)
        if errors or application is None:
            result.invalid.append(InvalidRecord(number, app_id, tuple(errors)))
        else:
            result.valid.append((number, application))
    return result


def _duplicates(value: dict[str, Any], number: int,
                first_seen: dict[tuple[str, str], int]) -> list[FieldError]:
    errors = []
    for key in ("application_id", "personal_id"):
        item = value.get(key)
        if not isinstance(item, str):
            continue
        seen = first_seen.setdefault((key, item), number)
        if seen != number:
            errors.append(FieldError(key, f"duplicate of line {seen}"))
    return errors
