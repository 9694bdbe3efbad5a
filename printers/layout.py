"""The card-face layout: a document profile's boxes, fonts and panels, as a frozen pydantic model.

Coordinates are printer dots at 300 dpi on a 1016 x 648 panel (ISO/IEC 7810 ID-1, 85.6 x 54 mm),
origin top left. The layout is configuration: the renderer has no coordinates of its own.
"""

from __future__ import annotations

from itertools import combinations
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from printers.protocol import LEVEL_PLANES, PANEL_HEIGHT, PANEL_WIDTH

RGB = tuple[Annotated[int, Field(ge=0, le=255)], ...]
TEXT_FIELDS = (
    "personal_id",
    "full_name",
    "date_of_birth",
    "sex",
    "nationality",
    "place_of_origin",
    "place_of_residence",
    "expiry",
    "identifying_marks",
    "issue_date",
)
# Fields a card may lack: a layout shows one only for cards that have it (the CAN of a chip
# whose profile prints it).
OPTIONAL_FIELDS = ("can",)
# ISO/IEC 19794-4 Table 2: the finger position codes of the index fingers
FINGER_POSITIONS = {"right_index": 2, "left_index": 7}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Box(_Frozen):
    """A rectangle in dots."""

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    w: int = Field(gt=0)
    h: int = Field(gt=0)

    @property
    def corners(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom), right and bottom exclusive."""
        return (self.x, self.y, self.x + self.w, self.y + self.h)

    def overlaps(self, other: Box) -> bool:
        """True when the two rectangles share a dot."""
        a, b = self.corners, other.corners
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class Text(_Frozen):
    """Static text (``text``) or a card-face field (``field``), wrapped and shrunk to fit."""

    kind: Literal["text"] = "text"
    box: Box
    field: Literal[(*TEXT_FIELDS, *OPTIONAL_FIELDS)] | None = None  # type: ignore[valid-type]
    text: str | None = None
    font: str = "sans"
    size: int = Field(gt=4)
    min_size: int | None = Field(None, gt=4)
    max_lines: int = Field(1, ge=1)
    align: Literal["left", "center"] = "left"
    upper: bool = False
    panel: Literal["k", "colour"] = "k"
    colour: RGB = (0, 0, 0)

    @model_validator(mode="after")
    def _one_source(self) -> Text:
        if (self.field is None) == (self.text is None):
            raise ValueError("give exactly one of 'field' (a card-face field) or 'text'")
        return self


class Photo(_Frozen):
    """The holder's portrait, printed with the dye panels."""

    kind: Literal["photo"] = "photo"
    box: Box


class Finger(_Frozen):
    """One index finger's image, grey on the dye panels, fitted in its box; a finger the card
    lacks (missing with a reason) leaves the box as the layout draws it."""

    kind: Literal["finger"] = "finger"
    finger: Literal["right_index", "left_index"]
    box: Box

    @property
    def position(self) -> int:
        """The ISO/IEC 19794-4 finger position code."""
        return FINGER_POSITIONS[self.finger]


class MRZ(_Frozen):
    """ICAO 9303-3 §4.2: OCR-B; the renderer fixes the pitch of every character."""

    kind: Literal["mrz"] = "mrz"
    box: Box
    size: int = Field(38, gt=4)
    pitch: int = Field(30, gt=0)  # ICAO 9303-3: 10 characters per inch = 30 dots at 300 dpi
    line_pitch: int = Field(50, gt=0)


class Shape(_Frozen):
    """A decoration on the dye panels: rectangle, ellipse or five-pointed star."""

    kind: Literal["rect", "ellipse", "star"]
    box: Box
    fill: RGB | None = None
    outline: RGB | None = None
    width: int = Field(2, ge=1)


Element = Annotated[Text | Photo | Finger | MRZ | Shape, Field(discriminator="kind")]


class SideLayout(_Frozen):
    """One side: background colour, elements drawn in order, ribbon panels sent."""

    background: RGB = (255, 255, 255)
    panels: tuple[Literal["y", "m", "c", "k", "o"], ...] = ("y", "m", "c", "k", "o")
    elements: tuple[Element, ...]

    @model_validator(mode="after")
    def _resin_boxes_apart(self) -> SideLayout:
        resin = [e for e in self.elements if isinstance(e, MRZ | Text) and _on_resin(e)]
        for a, b in combinations(resin, 2):
            if a.box.overlaps(b.box):
                raise ValueError(f"resin boxes overlap: {_label(a)} and {_label(b)}")
        for element in self.elements:
            _, _, right, bottom = element.box.corners
            if right > PANEL_WIDTH or bottom > PANEL_HEIGHT:
                raise ValueError(f"{_label(element)} leaves the {PANEL_WIDTH}x{PANEL_HEIGHT} card")
        return self


class CardLayout(_Frozen):
    """A document profile's card face: both sides and the dye grey levels."""

    name: str
    dpi: Literal[300] = 300
    colour_levels: int = 32
    front: SideLayout
    back: SideLayout

    @model_validator(mode="after")
    def _levels(self) -> CardLayout:
        if self.colour_levels not in LEVEL_PLANES or self.colour_levels == 2:
            raise ValueError("colour_levels must be 32, 64 or 128")
        return self

    def shows(self, field: str) -> bool:
        """True when a text element of either side shows the card-face ``field``."""
        return any(
            isinstance(element, Text) and element.field == field
            for side in (self.front, self.back)
            for element in side.elements
        )


def _on_resin(element: Text | MRZ) -> bool:
    return isinstance(element, MRZ) or element.panel == "k"


def _label(element: Text | Photo | Finger | MRZ | Shape) -> str:
    if isinstance(element, Text):
        return f"text {element.field or element.text!r}"
    if isinstance(element, Finger):
        return f"finger {element.finger}"
    return f"{element.kind} at {element.box.x},{element.box.y}"
