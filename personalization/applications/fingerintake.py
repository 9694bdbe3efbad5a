"""A record's ``fingerprints`` checked against the profile: each index finger read (by path
or inline, as the photo is), decoded and re-encoded as WSQ, or missing with one of the
profile's reason codes; at least one finger present. Reasons name the finger and the rule,
never the image or its bytes.
"""

from __future__ import annotations

from pathlib import Path

from personalization.applications.fingerprint import (
    FINGERS,
    Finger,
    FingerprintError,
    Fingerprints,
    FingerSpec,
    MissingFinger,
    normalize_finger,
)
from personalization.applications.model import (
    FieldError,
    FingerIn,
    FingerprintsIn,
    MissingFingerIn,
)
from personalization.applications.sources import record_image_bytes

FINGER_SHAPE = ('must be a relative path, {"path": "…", "sha256": "…"}, {"base64": "…"} '
                'or {"missing": "<reason code>"}')


def _finger(name: str, source: FingerIn, base_dir: Path, spec: FingerSpec, digests: bool,
            errors: list[FieldError]) -> Finger | None:
    """One finger checked: the WSQ image, the missing finger with its code, or None."""
    field_name, position = f"fingerprints.{name}", FINGERS[name]
    if isinstance(source, MissingFingerIn):
        if source.missing in spec.missing_reasons:
            return MissingFinger(position, source.missing)
        errors.append(FieldError(field_name, "missing reason is not one of "
                                             f"{', '.join(spec.missing_reasons)}"))
        return None
    data = record_image_bytes(field_name, source, base_dir, spec.max_source_bytes, digests,
                              errors)
    if not data:
        return None
    try:
        return normalize_finger(data, spec, position)
    except FingerprintError as exc:
        errors.append(FieldError(field_name, str(exc)))
        return None


def check_fingerprints(given: FingerprintsIn | None, base_dir: Path, spec: FingerSpec,
                       digests: bool, errors: list[FieldError]) -> Fingerprints | None:
    """The record's fingerprints (None when it gives none and ``spec`` does not require
    them); what is wrong goes to ``errors``. ``digests``: a finger by path must name the
    SHA-256 of its file (a signed batch)."""
    if given is None:
        if spec.required:
            errors.append(FieldError("fingerprints", "required field is missing"))
        return None
    right = _finger("right_index", given.right_index, base_dir, spec, digests, errors)
    left = _finger("left_index", given.left_index, base_dir, spec, digests, errors)
    if isinstance(right, MissingFinger) and isinstance(left, MissingFinger):
        errors.append(FieldError("fingerprints", "both index fingers are missing; at least one "
                                                 "is needed"))
        return None
    return Fingerprints(right, left) if right is not None and left is not None else None
