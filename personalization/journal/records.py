"""A validated application as the journal keeps it until the purge: one JSON text.

The portrait travels inline (base64 of the normalized JPEG) so a batch never depends on the
file it was created from.
"""

from __future__ import annotations

import base64
import json
from dataclasses import fields
from datetime import date
from typing import Any

from personalization.applications.model import Application
from personalization.applications.photo import Portrait

_DATES = ("date_of_birth", "issue_date", "expiry_date")


def dump_application(application: Application) -> str:
    """The journal text of one validated application."""
    out: dict[str, Any] = {}
    for item in fields(Application):
        value = getattr(application, item.name)
        if item.name in _DATES:
            value = value.isoformat() if value is not None else None
        elif isinstance(value, Portrait):
            value = {"jpeg": base64.b64encode(value.jpeg).decode("ascii"),
                     "width": value.width, "height": value.height}
        out[item.name] = value
    return json.dumps(out, ensure_ascii=False, sort_keys=True)


def load_application(text: str) -> Application:
    """The application back from its journal text (it was validated when the batch was made)."""
    raw = json.loads(text)
    for name in _DATES:
        raw[name] = date.fromisoformat(raw[name]) if raw[name] is not None else None
    photo = raw["portrait"]
    raw["portrait"] = Portrait(base64.b64decode(photo["jpeg"]), photo["width"], photo["height"])
    return Application(**raw)
