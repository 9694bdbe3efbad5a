"""One approved application as the registry sends it (JSON Lines), and as cardline keeps it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from personalization.applications.photo import Portrait


class InlinePhoto(BaseModel):
    """A photo carried inside the record: ``{"base64": "…"}``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    base64: str = Field(min_length=1)


class ApplicationIn(BaseModel):
    """The exact keys of design.md; unknown keys and wrong types are errors."""

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
    photo: str | InlinePhoto


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason a record is invalid."""

    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        """The JSON shape of ``applications check``."""
        return {"field": self.field, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Application:
    """A validated application: normalized text (NFC), real dates, derived expiry, portrait."""

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
