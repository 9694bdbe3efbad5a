"""Rules every journal adapter applies the same way, whatever its SQL: plain functions over
rows already read, so the SQLite and PostgreSQL adapters cannot drift apart on them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from personalization.applications.intake import InvalidRecord
from personalization.applications.model import Application, FieldError
from personalization.journal.port import JournalError
from personalization.journal.records import LineRow


def hold_once(name: str, valid: Sequence[tuple[int, Application, str]],
              invalid: Sequence[InvalidRecord], taken: dict[str, str],
              ) -> tuple[list[tuple[int, Application, str]], list[InvalidRecord]]:
    """Split ``valid`` into the applications to queue and those whose document number is
    already held (by an earlier line of the file, or by another batch); ``taken`` (number →
    batch) grows with the ones queued."""
    accepted, refused = [], list(invalid)
    for line, application, number in valid:
        if number in taken:
            where = "earlier in this file" if taken[number] == name else \
                f"in batch {taken[number]!r}"
            refused.append(InvalidRecord(line, application.application_id, (FieldError(
                "personal_id", f"document number {number} is already held {where}"),)))
            continue
        taken[number] = name
        accepted.append((line, application, number))
    return accepted, refused


def no_station_clash(name: str, others: Iterable[tuple[str, Sequence[str]]],
                     stations: Sequence[str]) -> None:
    """:class:`JournalError` when another line of batch ``name`` (``others``: each line and
    its stations) has one of ``stations``: a card in doubt is found by its station."""
    for other, theirs in others:
        shared = sorted(set(theirs) & set(stations))
        if shared:
            raise JournalError(f"line {other!r} of batch {name!r} already has station(s) "
                               f"{', '.join(shared)}: the lines sharing a batch need station "
                               "names of their own (line.yaml: stations)")


def line_row(row: Mapping[str, Any], stations: list[str], age_s: float, lease_s: float,
             claimed: Mapping[str, int], open_by_station: Mapping[str, int]) -> LineRow:
    """A line of a batch as :meth:`JournalPort.lines` gives it: alive while it has
    heartbeat within the lease and not left."""
    left = row["left_at"] is not None
    age = max(0.0, age_s)
    return LineRow(line=row["line"], holder=row["holder"], stations=stations,
                   started_at=row["started_at"], heartbeat_age_s=round(age, 1),
                   alive=not left and age < lease_s, left=left,
                   claimed=claimed.get(row["line"], 0),
                   in_doubt=sum(open_by_station.get(s, 0) for s in stations))
