"""The CCCD expiry rule: renew at 25, 40, 60; two years' grace; none from 58 on."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from personalization.applications.expiry import birthday_at, derive_expiry


@pytest.mark.parametrize(
    ("birth", "issue", "expected"),
    [
        (date(2005, 6, 1), date(2021, 3, 1), date(2030, 6, 1)),     # 15 → 25
        (date(1998, 6, 1), date(2021, 5, 31), date(2023, 6, 1)),    # 22y11m → 25
        (date(1998, 6, 1), date(2021, 6, 1), date(2038, 6, 1)),     # exactly 23 → 40
        (date(1983, 1, 5), date(2021, 1, 4), date(2023, 1, 5)),     # one day before 38 → 40
        (date(1983, 1, 5), date(2021, 1, 5), date(2043, 1, 5)),     # 38 → 60
        (date(1963, 7, 1), date(2021, 6, 30), date(2023, 7, 1)),    # one day before 58 → 60
        (date(1963, 7, 1), date(2021, 7, 1), None),                 # 58 → no expiry
        (date(1940, 1, 1), date(2021, 1, 1), None),                 # 81 → no expiry
        (date(1993, 1, 5), date(2021, 4, 1), date(2033, 1, 5)),  # fact sheet sample
    ],
)
def test_expiry_examples(birth: date, issue: date, expected: date | None) -> None:
    """Each example lands on the milestone the law gives."""
    assert derive_expiry(birth, issue) == expected


def test_leap_day_birthday_falls_back_to_28_february() -> None:
    """Someone born on 29 February reaches an age on 28 February in a common year."""
    assert birthday_at(date(2004, 2, 29), 25) == date(2029, 2, 28)
    assert birthday_at(date(2004, 2, 29), 40) == date(2044, 2, 29)


@given(st.dates(date(1920, 1, 1), date(2010, 12, 31)), st.integers(14 * 365, 90 * 365))
def test_expiry_is_a_milestone_more_than_grace_after_issue(birth: date, age_days: int) -> None:
    """Expiry is always a 25/40/60 birthday at least two years after issue, or none from 58."""
    from datetime import timedelta

    issue = birth + timedelta(days=age_days)
    expiry = derive_expiry(birth, issue)
    if expiry is None:
        assert issue >= birthday_at(birth, 58)
    else:
        assert expiry in {birthday_at(birth, a) for a in (25, 40, 60)}
        assert expiry > issue
        assert issue < birthday_at(birth, expiry.year - birth.year - 2)
