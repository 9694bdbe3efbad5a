"""What a card shows: the printers' card face from a validated application and its MRZ."""

from __future__ import annotations

from applets.emrtd.lds.mrz import TD1
from personalization.applications.model import Application
from personalization.prep import shown
from personalization.profile import DocumentProfile
from printers.errors import LayoutError
from printers.face import CardFace
from printers.layout import CardLayout


def card_face(application: Application, mrz: TD1, profile: DocumentProfile) -> CardFace:
    """The visible fields, in the document's own language and date form."""
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
    )


def card_layout(profile: DocumentProfile) -> CardLayout:
    """The profile's card-face layout, validated by the printers package."""
    if profile.card_face is None:
        raise LayoutError(profile.name, "the document profile has no card_face layout")
    return CardLayout.model_validate(profile.card_face)
