"""Access keys typed at a QA desk, the read plan, and the APDU counter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets.transport.base import DirectTransport
from applets.virtual.card import VirtualEMRTD
from qa.errors import AccessKeyError
from qa.readback import (
    CountingTransport,
    ReadPlan,
    keys_from_fields,
    keys_from_mrz,
    normalize_mrz,
    read_plan,
    select_application,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors/qa/desk_keys.json").read_text())


@pytest.mark.parametrize("vector", VECTORS, ids=[v["source"] for v in VECTORS])
def test_keys_from_a_typed_mrz(vector: dict[str, Any]) -> None:
    """Three typed lines or one 90-character string give the MRZ_information of the vector."""
    assert keys_from_mrz("\n".join(vector["lines"])).mrz_information() == vector["mrz_information"]
    assert keys_from_mrz("".join(vector["lines"])).mrz_information() == vector["mrz_information"]


def test_keys_from_fields_match_the_mrz() -> None:
    """Document number, birth and expiry typed separately give the same keys as the MRZ."""
    vector = VECTORS[1]
    assert keys_from_fields("093047064", "930105", "330105").mrz_information() == \
        vector["mrz_information"]


def test_no_expiry_is_accepted() -> None:
    """'<<<<<<' is a valid expiry for a card without one (check digit 0)."""
    assert keys_from_fields("093047064", "930105", "<<<<<<").mrz_information().endswith("<<<<<<0")


@pytest.mark.parametrize(("number", "birth", "expiry", "field"), [
    ("", "930105", "330105", "document number"),
    ("09304-064", "930105", "330105", "document number"),
    ("093047064", "9301", "330105", "date of birth"),
    ("093047064", "930105", "33O105", "date of expiry"),
    ("093047064", "<<<<<<", "330105", "date of birth"),
])
def test_malformed_keys_are_refused(number: str, birth: str, expiry: str, field: str) -> None:
    """Malformed fields raise AccessKeyError naming the field."""
    with pytest.raises(AccessKeyError) as caught:
        keys_from_fields(number, birth, expiry)
    assert caught.value.field == field


def test_mrz_with_a_wrong_check_digit_is_refused() -> None:
    """A typed MRZ whose check digit is wrong is refused before any APDU."""
    lines = list(VECTORS[0]["lines"])
    lines[1] = "7408123" + lines[1][7:]
    with pytest.raises(AccessKeyError, match="date of birth"):
        keys_from_mrz("".join(lines))


def test_keys_never_show_in_repr() -> None:
    """The access keys are personal data: their repr shows none of them."""
    assert "093047064" not in repr(keys_from_fields("093047064", "930105", "330105"))


@given(st.lists(st.sampled_from([" ", "\n", "\t", "\r\n"]), min_size=3, max_size=3))
def test_normalize_mrz_drops_any_whitespace(separators: list[str]) -> None:
    """However the three lines are separated, normalize_mrz gives the 90 characters."""
    lines = VECTORS[0]["lines"]
    text = separators[0] + lines[0] + separators[1] + lines[1] + separators[2] + lines[2]
    assert normalize_mrz(text) == "".join(lines)


def test_read_plan_follows_the_chip_and_the_path() -> None:
    """Extended blocks when chip (7F66) and path allow them; 223-byte short blocks otherwise."""
    card = VirtualEMRTD("PLAN1")
    card.power_on()
    transport = DirectTransport(card)
    assert select_application(transport) == 0x9000
    plan = read_plan(transport)
    assert plan.extended and plan.block > 30_000
    assert read_plan(DirectTransport(card, 255)) == ReadPlan(223, False)
    short_card = VirtualEMRTD("PLAN2", max_command_data=255)
    short_card.power_on()
    short_path = DirectTransport(short_card)
    select_application(short_path)
    assert read_plan(short_path) == ReadPlan(223, False)


def test_counting_transport_counts_every_apdu() -> None:
    """Each transmit through the counter adds one."""
    card = VirtualEMRTD("COUNT")
    card.power_on()
    counter = CountingTransport(DirectTransport(card))
    select_application(counter)
    read_plan(counter)
    assert counter.count == 2
