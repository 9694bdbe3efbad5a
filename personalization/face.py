"""What a card shows: the printers' card face from a validated application and its MRZ.

The CAN is printed only when the profile says so (``chip.can: printed-random``); a CCCD's
CAN (the last digits of the personal ID) never is. A layout that shows the CAN under a
profile that does not print one, or a printed-random profile whose layout has no place for
it, is refused when the layout is loaded.
"""

from __future__ import annotations

from PIL import Image

from applets.emrtd.lds.mrz import TD1
from personalization.applications import wsqcodec
from personalization.applications.fingerprint import FingerSpec
from personalization.applications.model import Application
from personalization.prep import shown
from personalization.profile import DocumentProfile
from printers.errors import FaceError, LayoutError
from printers.face import CardFace
from printers.layout import CardLayout

CAN_FIELD = "can"


def card_face(application: Application, mrz: TD1, profile: DocumentProfile,
              can: str | None = None) -> CardFace:
    """The visible fields, in the document's own language and date form; ``can`` (the
    card's CAN, None for none) is kept only when the profile prints it."""
    values = shown(application, profile)
    return CardFace(
        personal_id=application.personal_id,
        full_name=application.full_name,
        date_of_birth=values.date_of_birth,
        sex=values.sex,
        nationality=values.nationality,
        place_of_origin=application.place_of_origin,
        place_of_residence=application.place_of_residence,
        expiry=values.expiry,
        identifying_marks=application.identifying_marks,
        issue_date=values.issue_date,
        mrz_lines=mrz.lines(),
        photo=application.portrait.jpeg,
        fingerprints=finger_images(application, profile),
        can=can if prints_can(profile) else None,
    )


def prints_can(profile: DocumentProfile) -> bool:
    """True when the profile's cards carry their CAN on the front."""
    return profile.chip.eac and profile.chip.can == "printed-random"


def finger_images(application: Application, profile: DocumentProfile) -> dict[int, Image.Image]:
    """The application's fingers as 8-bit grey images, by ISO/IEC 19794-4 position."""
    if application.fingerprints is None:
        return {}
    spec = profile.dg3 or FingerSpec()
    images = {}
    for finger in application.fingerprints.images():
        try:
            images[finger.position] = wsqcodec.decode_trusted(
                finger.wsq, spec.max_width, spec.max_height)
        except wsqcodec.WSQError as exc:
            raise FaceError("", f"finger {finger.position} cannot be printed: {exc}") from exc
    return images


def card_layout(profile: DocumentProfile) -> CardLayout:
    """The profile's card-face layout, validated by the printers package, and checked to
    show the CAN exactly when the profile prints it."""
    if profile.card_face is None:
        raise LayoutError(profile.name, "the document profile has no card_face layout")
    layout = CardLayout.model_validate(profile.card_face)
    shows = layout.shows(CAN_FIELD)
    if shows and not prints_can(profile):
        raise LayoutError(layout.name, f"the layout shows the field {CAN_FIELD!r}, but profile "
                                       f"{profile.name} does not print the CAN (an EAC chip "
                                       "with chip.can: printed-random does)")
    if prints_can(profile) and not shows:
        raise LayoutError(layout.name, f"profile {profile.name} prints the CAN "
                                       f"(chip.can: printed-random) but the layout has no "
                                       f"text element with field {CAN_FIELD!r}")
    return layout
