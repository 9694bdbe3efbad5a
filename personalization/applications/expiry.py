"""The CCCD expiry rule (Luật Căn cước công dân 2014, art. 21), pure.

A card is renewed at ages 25, 40 and 60. A card issued within two years before one of those
ages stays valid until the next one; a card issued from 58 on never expires.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date


def birthday_at(date_of_birth: date, age: int) -> date:
    """The date a person born on ``date_of_birth`` reaches ``age``.

    Someone born on 29 February reaches an age on 28 February in common years (the day
    before the missing anniversary, so the card never outlives the rule).
    """
    year = date_of_birth.year + age
    try:
        return date_of_birth.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def derive_expiry(
    date_of_birth: date,
    issue_date: date,
    renewal_ages: Sequence[int] = (25, 40, 60),
    grace_years: int = 2,
) -> date | None:
    """The expiry date of a card issued on ``issue_date``, or ``None`` for no expiry."""
    for age in sorted(renewal_ages):
        milestone = birthday_at(date_of_birth, age)
        if issue_date < birthday_at(date_of_birth, age - grace_years):
            return milestone
    return None
