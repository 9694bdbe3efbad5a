"""The people rules, pure: Argon2id at the OWASP parameters, the passphrase and name policy,
the action table with separation of duties, and when a shift ends."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from personalization.config import ROLES
from personalization.people import (
    ACTIONS,
    PeopleError,
    Person,
    PolicyViolation,
    WrongPassphrase,
    check_name,
    check_passphrase,
    check_roles,
    hash_passphrase,
    may,
    needs_rehash,
    refusal,
    shift_end,
    spend,
    verify_passphrase,
)
from personalization.people.passphrases import ABSENT

SAIGON = "Asia/Ho_Chi_Minh"
SHIFTS = ["06:00", "14:00", "22:00"]


def test_hashes_are_argon2id_at_the_owasp_parameters() -> None:
    """A new hash is Argon2id v1.3, m=19456 KiB, t=2, p=1, 16-byte salt, 32-byte tag."""
    phc = hash_passphrase("correct horse battery")
    found = extract_parameters(phc)
    assert phc.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert (found.type, found.memory_cost, found.time_cost, found.parallelism) == (
        Type.ID, 19456, 2, 1)
    assert (found.salt_len, found.hash_len) == (16, 32)
    assert hash_passphrase("correct horse battery") != phc  # a fresh salt each time


def test_the_absent_account_hash_costs_what_a_real_one_costs() -> None:
    """The hash an unknown name is checked against has today's parameters."""
    assert extract_parameters(ABSENT) == extract_parameters(hash_passphrase("x" * 12))


def test_verification_passes_the_passphrase_and_raises_otherwise() -> None:
    """The right passphrase verifies; a wrong one, or a damaged hash, raises WrongPassphrase."""
    phc = hash_passphrase("correct horse battery")
    verify_passphrase(phc, "correct horse battery")
    for phc_, given in ((phc, "correct horse batterz"), ("not a hash", "correct horse battery")):
        with pytest.raises(WrongPassphrase, match="unknown account or wrong passphrase"):
            verify_passphrase(phc_, given)


def test_an_unknown_name_is_always_refused_with_the_same_message() -> None:
    """spend() does a verification's work and refuses, even for the passphrase of ABSENT."""
    for given in ("anything at all", "cardline: no account has this passphrase"):
        with pytest.raises(WrongPassphrase, match="unknown account or wrong passphrase"):
            spend(given)


def test_composed_and_decomposed_vietnamese_are_the_same_passphrase() -> None:
    """A passphrase typed composed (NFC) verifies when typed decomposed (NFD), and back."""
    text = "Bánh mì Hội An ngon lắm"
    phc = hash_passphrase(unicodedata.normalize("NFD", text))
    verify_passphrase(phc, unicodedata.normalize("NFC", text))


def test_older_parameters_ask_for_a_rehash() -> None:
    """A hash made with weaker parameters verifies but needs a rehash; a new one does not."""
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID)
    phc = old.hash("correct horse battery")
    verify_passphrase(phc, "correct horse battery")
    assert needs_rehash(phc)
    assert not needs_rehash(hash_passphrase("correct horse battery"))


@pytest.mark.parametrize(("name", "passphrase", "code"), [
    ("an", "short one", "passphrase_short"),
    ("an", "x" * 1025, "passphrase_long"),
    ("nguyen.van.an", "Nguyen.Van.An", "passphrase_is_name"),
])
def test_the_passphrase_policy_refuses(name: str, passphrase: str, code: str) -> None:
    """Under 12 characters, over 1024, or the account's own name: refused, with a code."""
    with pytest.raises(PolicyViolation) as refused:
        check_passphrase(name, passphrase)
    assert refused.value.code == code


def test_a_twelve_character_passphrase_passes() -> None:
    """Exactly 12 characters (counted after NFC) is enough."""
    assert check_passphrase("an", "ắ" * 12) == "ắ" * 12


@pytest.mark.parametrize("name", ["an", "Bình", "nguyen.van-an_2", "7an"])
def test_account_names_of_letters_digits_and_dots_pass(name: str) -> None:
    """Letters (Vietnamese too), digits, '.', '_' and '-' make a name."""
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-an", ".an", "an bình", "an:file", "a" * 65, "an\n"])
def test_other_account_names_are_refused(name: str) -> None:
    """Empty, a leading '-' or '.', spaces, ':', over 64 characters or a newline: refused."""
    with pytest.raises(PolicyViolation, match="account name"):
        check_name(name)


def test_roles_come_back_once_each_in_the_usual_order() -> None:
    """Repeats collapse and the order is the one of ROLES."""
    assert check_roles(["officer", "qa", "officer"]) == ("qa", "officer")


@pytest.mark.parametrize(("roles", "code"), [
    ([], "no_role"), (["boss"], "unknown_role"), (["admin", "operator"], "admin_alone"),
    (["officer", "admin"], "admin_alone")])
def test_role_sets_that_break_the_rules_are_refused(roles: list[str], code: str) -> None:
    """No role, an unknown role, or an admin with another role: refused (separation of
    duties)."""
    with pytest.raises(PolicyViolation) as refused:
        check_roles(roles)
    assert refused.value.code == code


@pytest.mark.parametrize(("action", "allowed"), [
    ("batch.run", {"operator"}), ("line.up", {"operator"}), ("alarm.clear", {"operator"}),
    ("qa.verify", {"qa"}), ("qa.signoff", {"qa"}), ("keys.ceremony", {"officer"}),
    ("keys.revoke", {"officer"}), ("prep.sign", {"officer"}), ("audit.verify", {"auditor"}),
    ("audit.export", {"auditor"}), ("users.manage", {"admin"}),
    ("report.read", {"operator", "qa", "auditor"}),
    ("dashboard.watch", {"operator", "qa", "officer", "auditor"}), ("qa.read", {"qa", "auditor"}),
    ("keys.read", {"officer", "auditor"}), ("audit.read", {"auditor"})])
def test_the_action_table_allows_exactly_these_roles(action: str, allowed: set[str]) -> None:
    """Each action is allowed to the roles the issue gives it, and to no other."""
    assert {role for role in ROLES if may([role], action)} == allowed


def test_an_admin_may_only_manage_accounts_and_nobody_else_may() -> None:
    """Separation of duties in the table: admin is allowed users.manage alone, and is the
    only role allowed it; an auditor changes nothing."""
    assert [a for a in ACTIONS if may(["admin"], a)] == ["users.manage"]
    assert not may(["operator", "qa", "officer", "auditor"], "users.manage")
    assert {a for a in ACTIONS if may(["auditor"], a)} == {
        "audit.verify", "audit.export", "report.read",  # and the dashboard's pages, read-only
        "dashboard.watch", "qa.read", "keys.read", "audit.read"}


def test_an_unknown_action_is_an_error_not_a_refusal() -> None:
    """Asking about an action the table lacks is a programming error, raised as such."""
    with pytest.raises(PeopleError, match=r"no action named 'keys\.cermony'"):
        may(["officer"], "keys.cermony")


def test_a_refusal_names_person_role_action_and_whom_to_ask() -> None:
    """The message of the issue, and a list of people to ask when several roles may."""
    assert refusal(Person("an", ("operator",)), "keys.ceremony") == (
        "operator 'an' may not run key ceremonies; ask a security officer")
    assert refusal(Person("root", ("admin",)), "report.read") == (
        "admin 'root' may not read batch reports; ask an operator, QA staff or an auditor")
    assert Person("bình", ("qa", "officer")).may("keys.ceremony")


def _at(text: str, zone: str = SAIGON) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize(("now", "end"), [
    ("2026-11-30 06:00", "2026-11-30 14:00"),  # a shift's first minute
    ("2026-11-30 13:59", "2026-11-30 14:00"),
    ("2026-11-30 21:30", "2026-11-30 22:00"),
    ("2026-11-30 23:10", "2026-12-01 06:00"),  # the night shift, across midnight
    ("2026-12-31 23:59", "2027-01-01 06:00"),  # and across the year
    ("2026-12-01 03:00", "2026-12-01 06:00"),  # after midnight, same night shift
])
def test_a_login_lasts_until_its_shift_ends(now: str, end: str) -> None:
    """The next shift start after now, in Asia/Ho_Chi_Minh (UTC+7 all year, no DST)."""
    assert shift_end(_at(now), SHIFTS, SAIGON) == _at(end)


def test_the_shift_end_is_the_same_moment_whatever_zone_now_is_given_in() -> None:
    """A UTC now gives the same moment as the local now, shown in the factory's zone."""
    end = shift_end(datetime(2026, 11, 30, 16, 30, tzinfo=UTC), SHIFTS, SAIGON)
    assert end == _at("2026-12-01 06:00")
    assert end.utcoffset() == timedelta(hours=7)


def test_one_shift_a_day_lasts_a_day() -> None:
    """With a single shift start, a login lasts until the same time the next day."""
    assert shift_end(_at("2026-11-30 07:00"), ["06:00"], SAIGON) == _at("2026-12-01 06:00")


def test_a_night_shift_over_a_clock_change_is_an_hour_shorter() -> None:
    """Where clocks move (Europe/Berlin, 29 March 2026), 22:00 to 06:00 is seven hours."""
    start = _at("2026-03-28 22:00", "Europe/Berlin")
    end = shift_end(start, SHIFTS, "Europe/Berlin")
    assert end == _at("2026-03-29 06:00", "Europe/Berlin")
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=7)


def test_shift_end_refuses_a_naive_time_and_an_unknown_zone() -> None:
    """A moment without a zone, or a zone name IANA does not know, is an error."""
    with pytest.raises(PeopleError, match="aware"):
        shift_end(datetime(2026, 11, 30, 8, 0), SHIFTS, SAIGON)
    with pytest.raises(PeopleError, match="Mars/Olympus"):
        shift_end(_at("2026-11-30 08:00"), SHIFTS, "Mars/Olympus")
