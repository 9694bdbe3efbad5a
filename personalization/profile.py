"""Document profiles: which DGs, which hash, the DG2 budget, the MRZ numbering, the card face.

A profile is a YAML file (``personalization/profiles/<name>.yaml`` or a path), so another
ICAO 9303 document is a new file, not new code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from personalization.applications.intake import MAX_LINE_BYTES, IntakeRules
from personalization.applications.photo import (
    DEFAULT_MAX_SOURCE_BYTES,
    DEFAULT_MAX_SOURCE_PIXELS,
    PhotoSpec,
)
from personalization.applications.rules import Limits
from personalization.errors import ConfigError

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DG2Spec(_Frozen):
    """The portrait on the chip."""

    width: int = Field(ge=120, le=2000)
    height: int = Field(ge=160, le=2600)
    max_bytes: int = Field(ge=2000, le=200_000)
    min_source_width: int = Field(ge=60)
    min_source_height: int = Field(ge=80)
    # Caps on the registry's photo, checked before it is read whole or decoded; the pixel cap
    # stays within Pillow's process-wide guard (photo.py), which would refuse above it anyway.
    max_source_bytes: int = Field(DEFAULT_MAX_SOURCE_BYTES, ge=64 * 1024, le=16 * 1024 * 1024)
    max_source_pixels: int = Field(DEFAULT_MAX_SOURCE_PIXELS, ge=1_000_000, le=50_000_000)


class IntakeSpec(_Frozen):
    """How much of a registry file intake holds at once."""

    max_line_bytes: int = Field(MAX_LINE_BYTES, ge=64 * 1024, le=64 * 1024 * 1024)


class ExpirySpec(_Frozen):
    """Renewal ages and the grace period before each."""

    renewal_ages: tuple[int, ...] = (25, 40, 60)
    grace_years: int = Field(2, ge=0, le=10)
    none_text: str = "Không thời hạn"


class DocumentProfile(_Frozen):
    """One ICAO 9303 document type."""

    name: str
    title: str
    document_code: str = Field(min_length=1, max_length=2)
    issuing_state: str = Field(pattern=r"^[A-Z<]{3}$")
    nationality: str = Field(pattern=r"^[A-Z<]{3}$")
    mrz_format: Literal["TD1"] = "TD1"
    numbering: Literal["cccd-personal-id"] = "cccd-personal-id"
    lds_version: str = Field(pattern=r"^\d{4}$")
    unicode_version: str = Field(pattern=r"^\d{6}$")
    data_groups: tuple[int, ...]
    active_authentication: bool = True
    hash_algorithm: Literal["sha256", "sha384", "sha512"] = "sha256"
    dg2: DG2Spec
    expiry: ExpirySpec = ExpirySpec()
    min_age: int = Field(14, ge=0, le=30)
    intake: IntakeSpec = IntakeSpec()
    card_face: dict[str, Any] | None = None

    @field_validator("data_groups")
    @classmethod
    def _dgs(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if 1 not in value:
            raise ValueError("DG1 (the MRZ) is mandatory")
        if any(not 1 <= n <= 16 for n in value) or len(set(value)) != len(value):
            raise ValueError("data groups are distinct numbers 1–16")
        return tuple(sorted(value))

    @model_validator(mode="after")
    def _inline_photo_fits_a_line(self) -> DocumentProfile:
        # RFC 4648 §4: base64 takes 4 characters per 3 bytes; 16 KiB is left for the text fields.
        needed = 4 * -(-self.dg2.max_source_bytes // 3) + 16 * 1024
        if self.intake.max_line_bytes < needed:
            raise ValueError(f"intake.max_line_bytes must be at least {needed} to hold an inline "
                             "photo of dg2.max_source_bytes")
        return self

    def intake_rules(self) -> IntakeRules:
        """What application intake needs from this profile."""
        photo = PhotoSpec(self.dg2.width, self.dg2.height, self.dg2.max_bytes,
                          self.dg2.min_source_width, self.dg2.min_source_height,
                          max_source_bytes=self.dg2.max_source_bytes,
                          max_source_pixels=self.dg2.max_source_pixels)
        return IntakeRules(photo=photo, limits=Limits(min_age=self.min_age),
                           max_line_bytes=self.intake.max_line_bytes,
                           renewal_ages=self.expiry.renewal_ages,
                           grace_years=self.expiry.grace_years, nationality=self.nationality)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"profile {path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"profile {path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"profile {path}: the top level must be a mapping")
    return raw


def load_profile(name_or_path: str, base: Path | None = None) -> DocumentProfile:
    """Load a profile by name (bundled) or by path; the card face file is read alongside."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    elif not path.is_absolute() and base is not None:
        path = base / path
    raw = _read_yaml(path)
    face = raw.get("card_face")
    if isinstance(face, str):
        raw["card_face"] = _read_yaml(path.parent / face)
    try:
        return DocumentProfile.model_validate(raw)
    except ValidationError as exc:
        lines = [f"profile {path}: invalid"]
        lines += [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from exc
