"""Shifts: a login lasts until the end of the shift it began in, the next shift start."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from personalization.people.errors import PeopleError


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PeopleError("unknown_timezone", f"people.timezone {name!r} is not an IANA time "
                                              "zone (e.g. Asia/Ho_Chi_Minh)") from exc


def shift_end(at: datetime, shifts: Sequence[str], timezone: str) -> datetime:
    """The first shift start (``HH:MM``, local time in ``timezone``) after ``at`` (aware), in
    that zone: the end of the shift that is on at ``at``, across midnight and clock changes."""
    if at.tzinfo is None:
        raise PeopleError("naive_time", "shift_end needs an aware moment")
    zone = _zone(timezone)
    starts = sorted(time.fromisoformat(text) for text in shifts)
    if not starts:
        raise PeopleError("no_shifts", "people.shifts is empty")
    today = at.astimezone(zone).date()
    for day in (today + timedelta(days=n) for n in (-1, 0, 1, 2)):
        for start in starts:
            moment = datetime.combine(day, start, tzinfo=zone)
            if moment.astimezone(UTC) > at.astimezone(UTC):
                return moment
    raise PeopleError("no_shift_end", f"no shift starts after {at.isoformat()}")


def local(at: datetime, timezone: str) -> datetime:
    """``at`` in the factory's time zone, to show people."""
    return at.astimezone(_zone(timezone))
