"""Document profiles: which DGs, which hash, the DG2 and DG3 budgets, the MRZ numbering, the
chip's access control (BAC, PACE, EAC), the card face.

A profile is a YAML file (``personalization/profiles/<name>.yaml`` or a path), so another
ICAO 9303 document is a new file, not new code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from applets.emrtd import curves
from applets.emrtd.perso import AccessProtocols
from common.curves import Curve
from personalization.applications.fingerprint import DG3_WRAPPING, MISSING_REASONS, FingerSpec
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


class DG3Spec(_Frozen):
    """The two index fingers on the chip (WSQ at 500 ppi), and what intake accepts of them;
    sizes are in pixels at 500 ppi."""

    required: bool = False  # an application without fingerprints is refused
    max_bytes: int = Field(ge=4000, le=200_000)  # the whole DG3; each finger gets half,
    # less the templates and headers around the images
    bitrate: float = Field(0.75, gt=0.1, le=4.0)  # WSQ bits per pixel tried first
    min_bitrate: float = Field(0.45, gt=0.1, le=4.0)  # lowered no further before refusing
    min_width: int = Field(200, ge=100)
    min_height: int = Field(250, ge=100)
    max_width: int = Field(800, le=2000)
    max_height: int = Field(1000, le=2000)
    min_source_ppi: int = Field(250, ge=100)
    max_source_ppi: int = Field(1200, le=4000)
    min_contrast: float = Field(16.0, ge=0)  # grey-level standard deviation
    ridge_block_energy: int = Field(8, ge=1, le=255)  # mean edge response of a ridge block
    min_ridge_area: float = Field(0.2, ge=0, le=1)  # fraction of blocks showing ridges
    max_source_bytes: int = Field(512_000, ge=16 * 1024, le=4 * 1024 * 1024)
    max_source_pixels: int = Field(4_000_000, ge=250_000, le=50_000_000)
    missing_reasons: tuple[str, ...] = MISSING_REASONS

    @model_validator(mode="after")
    def _consistent(self) -> DG3Spec:
        if self.min_bitrate > self.bitrate:
            raise ValueError("min_bitrate must not exceed bitrate")
        if self.min_width > self.max_width or self.min_height > self.max_height:
            raise ValueError("the minimum size must not exceed the maximum")
        if self.min_source_ppi > 500 or self.max_source_ppi < 500:
            raise ValueError("the accepted source resolutions must include 500 ppi")
        unknown = set(self.missing_reasons) - set(MISSING_REASONS)
        if unknown:
            raise ValueError(f"missing_reasons are among {', '.join(MISSING_REASONS)}")
        return self

    def finger_spec(self) -> FingerSpec:
        """What intake checks of one finger."""
        return FingerSpec(
            max_bytes=(self.max_bytes - DG3_WRAPPING) // 2, bitrate=self.bitrate,
            min_bitrate=self.min_bitrate, min_width=self.min_width,
            min_height=self.min_height, max_width=self.max_width, max_height=self.max_height,
            min_source_ppi=self.min_source_ppi, max_source_ppi=self.max_source_ppi,
            min_contrast=self.min_contrast, ridge_block_energy=self.ridge_block_energy,
            min_ridge_area=self.min_ridge_area, max_source_bytes=self.max_source_bytes,
            max_source_pixels=self.max_source_pixels, required=self.required,
            missing_reasons=self.missing_reasons)


PACECurve = Literal["brainpoolP256r1", "P-256"]  # TR-03110-3 Table 4 ids 13 and 12 (AES-128)
CACurve = Literal["brainpoolP256r1", "P-256", "brainpoolP384r1", "P-384", "brainpoolP512r1"]


class ChipSpec(_Frozen):
    """How a reader gets into the chip. ``bac`` is a BAC-only chip (no DG14 SecurityInfos
    beyond AA, no EF.CardAccess); ``pace`` and ``pace+bac`` make an EAC chip: PACE (ECDH
    generic mapping, AES-128) with the MRZ and the CAN, Chip Authentication with a key
    generated on the chip, Terminal Authentication against the CVCA trust point."""

    access: Literal["bac", "pace", "pace+bac"] = "bac"
    # the PACE domain parameters EF.CardAccess and DG14 offer (a DER SET OF: the files list
    # them sorted, whatever the order here)
    pace_parameters: tuple[PACECurve, ...] = ("brainpoolP256r1", "P-256")
    ca_curve: CACurve = "brainpoolP256r1"  # the Chip Authentication key, made on the chip
    # personal-id-last6: the last 6 digits of the personal ID (CCCD; not printed);
    # printed-random: 6 random digits, printed on the front
    can: Literal["personal-id-last6", "printed-random"] = "personal-id-last6"

    @field_validator("pace_parameters")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("list one or more distinct curves")
        return value

    @property
    def protocols(self) -> AccessProtocols:
        """The access protocols as the chip's PUT DATA 66 takes them."""
        return AccessProtocols(self.access)

    @property
    def eac(self) -> bool:
        """True when the chip is an EAC chip (PACE, CA, TA)."""
        return self.protocols.pace

    def pace_curves(self) -> tuple[Curve, ...]:
        """The PACE domain parameters, as curves (each has its standardized parameter id)."""
        return tuple(_curve(name) for name in self.pace_parameters)

    def ca(self) -> Curve:
        """The curve of the Chip Authentication key."""
        return _curve(self.ca_curve)


def _curve(name: str) -> Curve:
    return next(c for c in curves.CURVES if c.label == name)


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
    dg3: DG3Spec | None = None  # None: the document carries no fingerprints
    chip: ChipSpec = ChipSpec()
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
    def _fingerprints_behind_eac(self) -> DocumentProfile:
        # BSI TR-03110-1 §1.1, ICAO 9303-11 §7: fingerprints are readable only after Terminal
        # Authentication; a chip that opens to BAC and holds DG3 is refused here.
        if 3 not in self.data_groups:
            return self
        if not self.chip.eac:
            raise ValueError("data_groups lists 3 (fingerprints) but chip.access is 'bac': "
                             "DG3 needs an EAC chip; set chip.access to 'pace' or 'pace+bac', "
                             "or take 3 out of data_groups")
        if self.dg3 is None:
            raise ValueError("data_groups lists 3 (fingerprints) but the profile has no dg3 "
                             "section: add one (the fingers' sizes and budget)")
        return self

    @property
    def chip_groups(self) -> tuple[int, ...]:
        """The data groups the chip contributes at encoding: DG14 (AA info, and the PACE, CA
        and TA SecurityInfos of an EAC chip) and DG15 (the AA public key)."""
        if self.active_authentication:
            return (14, 15)
        return (14,) if self.chip.eac else ()

    @model_validator(mode="after")
    def _inline_images_fit_a_line(self) -> DocumentProfile:
        # RFC 4648 §4: base64 takes 4 characters per 3 bytes; 16 KiB is left for the text fields.
        needed = 4 * -(-self.dg2.max_source_bytes // 3) + 16 * 1024
        what = "photo of dg2.max_source_bytes"
        if self.dg3 is not None:
            needed += 2 * 4 * -(-self.dg3.max_source_bytes // 3)
            what += " and two fingers of dg3.max_source_bytes"
        if self.intake.max_line_bytes < needed:
            raise ValueError(f"intake.max_line_bytes must be at least {needed} to hold an inline "
                             f"{what}")
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
                           grace_years=self.expiry.grace_years, nationality=self.nationality,
                           fingerprints=self.dg3.finger_spec() if self.dg3 else None)


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


def _with_base(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """``extends: <name>``: the bundled profile of that name with this file's top-level keys
    in place of its own (one level: a base cannot extend another)."""
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not (PROFILES_DIR / f"{base}.yaml").is_file():
        raise ConfigError(f"profile {path}: extends: {base!r} names no bundled profile")
    inherited = _read_yaml(PROFILES_DIR / f"{base}.yaml")
    if "extends" in inherited:
        raise ConfigError(f"profile {path}: extends: {base!r} extends another profile itself")
    if isinstance(inherited.get("card_face"), str) and "card_face" not in raw:
        inherited["card_face"] = _read_yaml(PROFILES_DIR / inherited["card_face"])
    return {**inherited, **raw}


def load_profile(name_or_path: str, base: Path | None = None) -> DocumentProfile:
    """Load a profile by name (bundled) or by path; the card face file is read alongside."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    elif not path.is_absolute() and base is not None:
        path = base / path
    raw = _with_base(path, _read_yaml(path))
    face = raw.get("card_face")
    if isinstance(face, str):
        raw["card_face"] = _read_yaml(path.parent / face)
    try:
        return DocumentProfile.model_validate(raw)
    except ValidationError as exc:
        lines = [f"profile {path}: invalid"]
        lines += [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from exc
