"""One approved application as the registry sends it (JSON Lines), and as cardline keeps it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from personalization.applications.fingerprint import Fingerprints
from personalization.applications.photo import Portrait


class InlinePhoto(BaseModel):
    """A photo carried inside the record: ``{"base64": "…"}``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    base64: str = Field(min_length=1)


class SupersedesIn(BaseModel):
    """The card a renewal or replacement takes the place of, as the registry names it: by
    the id cardline gave it (``card_id``), or by ``document_number`` and ``issue_date``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    card_id: int | None = None
    document_number: str | None = None
    issue_date: str | None = None


class PhotoFile(BaseModel):
    """A photo file beside the applications file, with the SHA-256 of its bytes: how a signed
    batch refers to a photo, so the signature covers the photo too."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    path: str = Field(min_length=1)
    sha256: str


class MissingFingerIn(BaseModel):
    """A finger the registry could not capture: ``{"missing": "<reason code>"}``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    missing: str


FingerIn = str | InlinePhoto | PhotoFile | MissingFingerIn


class FingerprintsIn(BaseModel):
    """The two index fingers, each given like ``photo`` or as missing with a reason code."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    right_index: FingerIn
    left_index: FingerIn


class ApplicationIn(BaseModel):
    """The exact keys of design.md; unknown keys and wrong types are errors. ``kind``,
    ``reason``, ``supersedes`` and ``predates_cardline`` (issue #16 §2) may be absent: a
    first issue. ``fingerprints`` may be absent where the profile does not require them."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    application_id: str
    personal_id: str
    full_name: str
    date_of_birth: str
    issue_date: str
    sex: str
    nationality: str
    ethnicity: str
    religion: str
    place_of_origin: str
    place_of_residence: str
    identifying_marks: str
    father_name: str
    mother_name: str
    spouse_name: str | None = None
    former_id_number: str | None = None
    photo: str | InlinePhoto | PhotoFile
    fingerprints: FingerprintsIn | None = None
    kind: str = "first"
    reason: str | None = None
    supersedes: SupersedesIn | None = None
    predates_cardline: bool = False


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason a record is invalid."""

    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        """The JSON shape of ``applications check``."""
        return {"field": self.field, "reason": self.reason}


Kind = Literal["first", "renewal", "replacement"]
KINDS: tuple[Kind, ...] = ("first", "renewal", "replacement")
# Luật Căn cước công dân 2014, art. 21 (a new card at 25, 40 and 60) and art. 23 (a new card
# when the data on it change, or when it is lost or damaged)
REASONS: dict[str, tuple[str, ...]] = {
    "renewal": ("age-25", "age-40", "age-60", "data-change"),
    "replacement": ("lost", "damaged"),
}


@dataclass(frozen=True, slots=True)
class Supersedes:
    """The earlier card a renewal or replacement names: ``card_id``, or ``document_number``
    with ``issue_date``."""

    card_id: int | None = None
    document_number: str | None = None
    issue_date: date | None = None


@dataclass(frozen=True, slots=True)
class Application:
    """A validated application: normalized text (NFC), real dates, derived expiry, portrait,
    and the index fingers as WSQ (None where the profile takes no fingerprints)."""

    application_id: str
    personal_id: str
    full_name: str
    date_of_birth: date
    issue_date: date
    expiry_date: date | None
    sex: Literal["M", "F"]
    nationality: str
    ethnicity: str
    religion: str
    place_of_origin: str
    place_of_residence: str
    identifying_marks: str
    father_name: str
    mother_name: str
    spouse_name: str | None
    former_id_number: str | None
    portrait: Portrait
    kind: Kind = "first"
    reason: str | None = None  # one of REASONS[kind]; None for a first issue
    supersedes: Supersedes | None = None
    predates_cardline: bool = False  # the earlier card was made before cardline
    fingerprints: Fingerprints | None = None
