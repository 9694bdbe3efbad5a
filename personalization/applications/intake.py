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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

from pydantic import ValidationError

from personalization.applications import rules
from personalization.applications.expiry import derive_expiry
from personalization.applications.fingerintake import FINGER_SHAPE, check_fingerprints
from personalization.applications.fingerprint import FINGERS, FingerSpec
from personalization.applications.lines import bounded_lines, registry_header
from personalization.applications.model import (
    Application,
    ApplicationIn,
    FieldError,
)
from personalization.applications.photo import PhotoError, PhotoSpec, normalize_photo
from personalization.applications.sources import record_image_bytes

MAX_LINE_BYTES = 4 * 1024 * 1024  # holds an inline photo of the default 2 MiB cap, base64
MAX_ERRORS = 32  # per record: a line of a million unknown keys is one record, not a million rows
# Unknown keys are shown by name only when they look like a key (a name typed into a key is
# not echoed, nor a 4 MB key, nor one the journal's UTF-8 cannot store).
_KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
UNIQUE_FIELDS = ("application_id", "personal_id")  # one line per value in a file
KEY_BYTES = 16  # of a SHA-256 per unique field: collisions are out of reach at any batch size


@dataclass(frozen=True, slots=True)
class IntakeRules:
    """What the document profile says about applications."""

    photo: PhotoSpec
    limits: rules.Limits = field(default_factory=rules.Limits)
    renewal_ages: tuple[int, ...] = (25, 40, 60)
    grace_years: int = 2
    nationality: str = "VNM"
    max_line_bytes: int = MAX_LINE_BYTES
    # a photo by path must carry the SHA-256 of its bytes (a signed batch: the signature
    # then covers the photo); a bare path is taken only from an unsigned file
    photo_digests: bool = False
    # the index fingers (DG3); None: the document carries none, and a record's fingerprints
    # are ignored (never read, never kept)
    fingerprints: FingerSpec | None = None


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
        if name == "supersedes":  # a wrong type or an unknown key inside it
            out.append(FieldError("supersedes", rules.SUPERSEDES_SHAPE))
        elif err["type"] == "extra_forbidden":
            out.append(FieldError(name, "unknown field") if _KEY_NAME.fullmatch(name)
                       else FieldError("(record)", "unknown field whose name is not a plain key"))
        elif err["type"] == "missing":
            out.append(FieldError(name, "required field is missing"))
        elif name == "photo":
            out.append(FieldError("photo", 'must be {"path": "…", "sha256": "…"}, '
                                           '{"base64": "…"} or a relative path'))
        elif name == "fingerprints":
            out.append(_fingerprints_shape(err["loc"]))
        elif name == "predates_cardline":
            out.append(FieldError("predates_cardline", "must be true or false"))
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


def _fingerprints_shape(loc: tuple[int | str, ...]) -> FieldError:
    """The shape error of ``fingerprints``, naming the finger when the error is inside one."""
    finger = loc[1] if len(loc) > 1 else None
    if finger in FINGERS:
        return FieldError(f"fingerprints.{finger}", FINGER_SHAPE)
    return FieldError("fingerprints", 'must be {"right_index": …, "left_index": …}')


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
    kind, supersedes = rules.check_kind(raw.kind, raw.reason, raw.supersedes,
                                        raw.predates_cardline, issue, errors)
    portrait = None
    data = record_image_bytes("photo", raw.photo, base_dir, policy.photo.max_source_bytes,
                              policy.photo_digests, errors)
    fingerprints = (check_fingerprints(raw.fingerprints, base_dir, policy.fingerprints,
                                       policy.photo_digests, errors)
                    if policy.fingerprints is not None else None)
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
        kind=kind, reason=raw.reason, supersedes=supersedes,
        predates_cardline=raw.predates_cardline, fingerprints=fingerprints,
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


@dataclass(frozen=True, slots=True)
class Inspected:
    """One line checked on its own: the application (or None), what is wrong with it, the id
    safe to show, and the keys that must be unique in the file (a digest per field, so a few
    bytes per record however long the value was). Picklable: worker processes return it."""

    line: int
    application: Application | None
    errors: tuple[FieldError, ...]
    application_id: str | None
    keys: tuple[tuple[str, bytes], ...] = ()


def inspect_line(number: int, line: bytes | None, base_dir: Path, policy: IntakeRules,
                 today: date) -> Inspected:
    """One line checked; never raises (per-record isolation). Duplicates need the rest of the
    file: :func:`screen` finds them."""
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
    keys = _unique_keys(value) if value is not None else ()
    return Inspected(number, application, tuple(errors), shown, keys)


def failed_record(number: int, why: str) -> Inspected:
    """A record whose check itself could not run to the end (its worker process died)."""
    return Inspected(number, None, (FieldError("(record)", f"record could not be checked "
                                                           f"({why})"),), None)


def _unique_keys(value: dict[str, Any]) -> tuple[tuple[str, bytes], ...]:
    keys = []
    for name in UNIQUE_FIELDS:
        item = value.get(name)
        if isinstance(item, str):
            digest = hashlib.sha256(name.encode("ascii") + b"\0"
                                    + item.encode("utf-8", "surrogatepass")).digest()
            keys.append((name, digest[:KEY_BYTES]))
    return tuple(keys)


@dataclass(slots=True)
class Screened:
    """A run of inspected records split into valid and invalid, duplicates refused, and the
    keys first seen in it (line by key) for the records that follow."""

    valid: list[tuple[int, Application]] = field(default_factory=list)
    invalid: list[InvalidRecord] = field(default_factory=list)
    keys: dict[bytes, int] = field(default_factory=dict)


def screen(records: Sequence[Inspected], earlier: Mapping[bytes, int]) -> Screened:
    """Split ``records`` (in file order) into valid and invalid; a record whose
    ``application_id`` or ``personal_id`` an earlier line holds (``earlier`` maps the keys of
    the lines before these to their line) is rejected on its later line."""
    out = Screened()
    for record in records:
        errors = list(record.errors)
        for name, key in record.keys:
            first = earlier[key] if key in earlier else out.keys.setdefault(key, record.line)
            if first != record.line:
                errors.append(FieldError(name, f"duplicate of line {first}"))
        if errors or record.application is None:
            out.invalid.append(InvalidRecord(record.line, record.application_id, tuple(errors)))
        else:
            out.valid.append((record.line, record.application))
    return out


def records(handle: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | None, int]]:
    """``(line number, bytes or None, end offset)`` of each record of a JSON Lines file (blank
    lines skipped; None for a line over ``limit``); the end offset is where the next line
    starts, so a chunk of records ends at a known byte of the file."""
    for number, line in bounded_lines(handle, limit):
        if line is not None and not line.strip():
            continue
        if number == 1 and registry_header(line) is not None:
            continue  # the registry's header names its batch; it is no application
        yield number, line, handle.tell()


def read_applications(path: Path, policy: IntakeRules, today: date,
                      base: Path | None = None) -> IntakeResult:
    """Check every record of a JSON Lines file in this process; duplicates are rejected on
    their later line. (:mod:`personalization.applications.stream` does the same in chunks,
    on every core.)

    Raises ``OSError`` only when the file itself cannot be opened or read."""
    result = IntakeResult()
    seen: dict[bytes, int] = {}
    with path.open("rb") as handle:
        for number, line, _ in records(handle, policy.max_line_bytes):
            found = screen([inspect_line(number, line, base or path.parent, policy, today)],
                           seen)
            seen.update(found.keys)
            result.valid += found.valid
            result.invalid += found.invalid
    return result
