"""`cardline users`, `login`, `logout` and `whoami` as people use them: the real CLI in a
process of its own, on a line whose journal is a SQLite file in a temporary folder. Accounts
that a test only needs to exist are made in-process through the service; a test backdates a
lockout or a session through the journal rather than waiting for it. What the CLI cannot
reach cheaply (passphrase changes, ceremonies' officers) is tested on the service in-process."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from personalization.config import LineConfig, Role, load_config
from personalization.journal import open_journal
from personalization.journal.people_port import people as people_of
from personalization.service import people

ROOT = Path(__file__).resolve().parents[2]
# every passphrase used here; none may ever show in an output or in the journal's files
PASSPHRASES = {
    "root": "Quản trị viên một", "an": "vận hành dây chuyền", "bich": "kiểm tra chất lượng",
    "lan": "khoá sau vài lần", "dung": "sắp bị vô hiệu hoá", "hoa": "ca làm việc hôm nay",
}
WRONG = "đoán sai mật khẩu"


@dataclass
class Line:
    """A line configured in a temporary folder, its passphrase files, and its session folder."""

    folder: Path
    config_path: Path
    config: LineConfig
    sessions: Path

    def file(self, name: str) -> Path:
        """The passphrase file of account ``name`` (0600)."""
        return self.folder / f"{name}.passphrase"

    @property
    def journal_files(self) -> list[Path]:
        """The journal's database file and its write-ahead log."""
        return sorted(self.folder.glob("journal.db*"))


def _line(folder: Path, lockout_failures: int = 2) -> Line:
    config_path = folder / "line.yaml"
    config_path.write_text(
        f"line: line-1\ndata_dir: {folder / 'data'}\n"
        "hsm: {module: /usr/lib/softhsm/libsofthsm2.so, token: cardline}\n"
        f"journal: {{url: 'sqlite:///{folder / 'journal.db'}'}}\n"
        f"people: {{lockout_failures: {lockout_failures}, lockout_minutes: 15}}\n",
        encoding="utf-8")
    for name, passphrase in {**PASSPHRASES, "wrong": WRONG}.items():
        path = folder / f"{name}.passphrase"
        path.write_text(passphrase + "\n", encoding="utf-8")
        path.chmod(0o600)
    return Line(folder, config_path, load_config(config_path), folder / "sessions")


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Line:
    """A line with its first admin and one account per test, made through the service."""
    made = _line(tmp_path_factory.mktemp("users"))
    admin = people.bootstrap(made.config, "root", PASSPHRASES["root"])
    for name, role in (("an", "operator"), ("bich", "qa"), ("lan", "operator"),
                       ("dung", "officer"), ("hoa", "auditor")):
        people.add(made.config, admin, name, [role], PASSPHRASES[name])
    return made


def _cardline(line: Line, *args: str, user: str | None = None,
              sessions: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m personalization ARGS --config line.yaml`, as ``user`` (CARDLINE_USER and
    CARDLINE_PASSPHRASE) or from the session folder; no passphrase may show in its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARDLINE_")}
    env.update(COLUMNS="2000", TERM="dumb",
               CARDLINE_SESSION_DIR=str(sessions or line.sessions))
    if user is not None:
        env.update(CARDLINE_USER=user, CARDLINE_PASSPHRASE=PASSPHRASES.get(user, WRONG))
    done = subprocess.run([sys.executable, "-m", "personalization", *args, "--config",
                           str(line.config_path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    for secret in (*PASSPHRASES.values(), WRONG):
        assert secret not in done.stdout + done.stderr
    return done


def _events(line: Line, kind: str) -> list[dict[str, object]]:
    with open_journal(line.config.journal.url) as journal:
        return [e["data"] for e in people_of(journal).people_events() if e["kind"] == kind]


def test_bootstrap_creates_the_first_admin_once(tmp_path: Path) -> None:
    """The first bootstrap creates an admin; a second, under another name, is refused with a
    message saying why, and audited."""
    fresh = _line(tmp_path)
    first = _cardline(fresh, "users", "bootstrap", "root", "--passphrase-file",
                      str(fresh.file("root")))
    assert first.returncode == 0, first.stderr
    assert "admin 'root' created" in first.stdout
    second = _cardline(fresh, "users", "bootstrap", "an", "--passphrase-file",
                       str(fresh.file("an")))
    assert second.returncode == 2
    assert "the first admin is created once" in second.stderr
    assert _events(fresh, "people.refused") == [
        {"actor": None, "action": "users.bootstrap", "reason": "bootstrapped"}]


def test_an_admin_adds_an_account_from_a_passphrase_file(line: Line) -> None:
    """`users add NAME --role R --passphrase-file FILE` as the admin: the account exists with
    its role and signs in with the file's passphrase (its trailing newline ignored)."""
    done = _cardline(line, "users", "add", "tuan", "--role", "qa", "--role", "officer",
                     "--passphrase-file", str(line.file("an")), user="root")
    assert done.returncode == 0, done.stderr
    assert "account 'tuan' added (qa, officer)" in done.stdout
    with open_journal(line.config.journal.url) as journal:
        person = people.authenticate(journal, line.config, "tuan", PASSPHRASES["an"])
    assert person.roles == ("qa", "officer")


def test_a_passphrase_file_others_can_read_is_refused(line: Line) -> None:
    """A passphrase file with group or other permissions is refused before anything changes,
    with the chmod that fixes it."""
    loose = line.folder / "loose.passphrase"
    loose.write_text("một mật khẩu dài\n", encoding="utf-8")
    loose.chmod(0o644)
    done = _cardline(line, "users", "add", "loose", "--role", "qa", "--passphrase-file",
                     str(loose), user="root")
    assert done.returncode == 2
    assert f"chmod 600 {loose}" in done.stderr
    assert "một mật khẩu dài" not in done.stderr


def test_an_operator_may_not_add_accounts(line: Line) -> None:
    """An operator's `users add` is refused naming the person, the role and whom to ask, and
    the refusal is an event."""
    done = _cardline(line, "users", "add", "mallory", "--role", "admin", "--passphrase-file",
                     str(line.file("an")), user="an")
    assert done.returncode == 2
    assert "operator 'an' may not manage accounts; ask an admin" in done.stderr
    assert {"actor": "an", "action": "users.manage", "reason": "not_permitted",
            "roles": ["operator"]} in _events(line, "people.refused")


def test_an_admin_with_another_role_is_refused(line: Line) -> None:
    """Separation of duties: an account may not be admin and anything else; audited."""
    done = _cardline(line, "users", "add", "boss", "--role", "admin", "--role", "officer",
                     "--passphrase-file", str(line.file("an")), user="root")
    assert done.returncode == 2
    assert "an admin holds no other role" in done.stderr
    assert {"actor": "root", "action": "users.manage",
            "reason": "admin_alone"} in _events(line, "people.refused")


def test_wrong_passphrases_lock_the_account_until_the_lockout_ends(line: Line) -> None:
    """Two wrong passphrases in a row lock the account (audited); then even the right one is
    refused with the lockout's end; once that moment is past, the right one works again."""
    for _ in range(2):
        wrong = _cardline(line, "login", "lan", "--passphrase-file", str(line.file("wrong")))
        assert wrong.returncode == 2
        assert "unknown account or wrong passphrase" in wrong.stderr
    locked = _cardline(line, "whoami", user="lan")
    assert locked.returncode == 2
    assert "account 'lan' is locked until" in locked.stderr
    assert [e["failures"] for e in _events(line, "people.login_failed")
            if e["account"] == "lan"] == [1, 2]
    assert [e["actor"] for e in _events(line, "people.locked")] == ["lan"]
    with open_journal(line.config.journal.url) as journal:
        people_of(journal).update_account("lan", actor=None, event="test.backdated",
                                          locked_until=datetime.now(UTC) - timedelta(seconds=1))
    again = _cardline(line, "whoami", user="lan")
    assert again.returncode == 0, again.stderr
    assert "lan (operator)" in again.stdout


def test_an_unknown_name_gets_the_wrong_passphrase_message(line: Line) -> None:
    """A name without an account is refused exactly as a wrong passphrase is, and audited
    without the name (it may be a mistyped passphrase)."""
    done = _cardline(line, "whoami", user="nobody")
    assert done.returncode == 2
    assert "unknown account or wrong passphrase" in done.stderr
    assert {"actor": None, "action": "login",
            "reason": "unknown_account"} in _events(line, "people.login_failed")


def test_a_disabled_account_is_refused(line: Line) -> None:
    """After `users disable`, the account's right passphrase is refused as disabled."""
    done = _cardline(line, "users", "disable", "dung", user="root")
    assert done.returncode == 0, done.stderr
    refused = _cardline(line, "whoami", user="dung")
    assert refused.returncode == 2
    assert "account 'dung' is disabled; ask an admin" in refused.stderr
    assert {"actor": "root", "account": "dung", "fields": ["disabled"],
            "disabled": True} in _events(line, "people.disabled")


def test_a_login_lasts_until_the_shift_ends_or_logout(line: Line, tmp_path: Path) -> None:
    """`login` writes a 0600 session file in a 0700 folder that `whoami` uses; past the
    session's end `whoami` says to log in again; `logout` ends a session."""
    sessions = tmp_path / "sessions"
    login = _cardline(line, "login", "hoa", "--passphrase-file", str(line.file("hoa")),
                      sessions=sessions)
    assert login.returncode == 0, login.stderr
    assert "(end of shift)" in login.stdout
    (path,) = sessions.iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(sessions.stat().st_mode) == 0o700
    assert set(json.loads(path.read_text(encoding="utf-8"))) == {
        "account", "journal", "token", "expires_at"}
    who = _cardline(line, "whoami", "--json", sessions=sessions)
    assert json.loads(who.stdout)["name"] == "hoa" and json.loads(who.stdout)["source"] == (
        "session")
    with sqlite3.connect(line.folder / "journal.db") as db:
        db.execute("UPDATE sessions SET expires_at = ? WHERE account = 'hoa'",
                   ((datetime.now(UTC) - timedelta(seconds=1)).isoformat(),))
    expired = _cardline(line, "whoami", sessions=sessions)
    assert expired.returncode == 2
    assert "log in with `cardline login`" in expired.stderr
    _cardline(line, "login", "hoa", "--passphrase-file", str(line.file("hoa")),
              sessions=sessions)
    assert _cardline(line, "logout", sessions=sessions).returncode == 0
    assert list(sessions.iterdir()) == []
    assert "log in with `cardline login`" in _cardline(line, "whoami", sessions=sessions).stderr


def test_no_passphrase_or_token_is_in_the_journal_files(line: Line, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal's bytes (file and write-ahead log) hold no passphrase and no session
    token, only their hashes."""
    monkeypatch.setenv("CARDLINE_SESSION_DIR", str(tmp_path / "sessions"))
    session = people.login(line.config, "bich", PASSPHRASES["bich"])
    token = json.loads(session.path.read_text(encoding="utf-8"))["token"]
    stored = b"".join(p.read_bytes() for p in line.journal_files)
    assert b"$argon2id$" in stored  # the hashes are there…
    for secret in (*PASSPHRASES.values(), WRONG, token):
        assert secret.encode("utf-8") not in stored  # …the secrets are not


# -- the service behind these commands, in-process (what the CLI cannot reach cheaply) ------


@pytest.fixture()
def crew(tmp_path: Path) -> Line:
    """A fresh line with its admin, an operator and two officers."""
    made = _line(tmp_path)
    admin = people.bootstrap(made.config, "root", PASSPHRASES["root"])
    for name, role in (("an", "operator"), ("lan", "officer"), ("dung", "officer")):
        people.add(made.config, admin, name, [role], PASSPHRASES[name])
    return made


def _as(name: str, *roles: Role) -> people.Person:
    return people.Person(name, roles)


def test_a_person_changes_their_own_passphrase_with_the_old_one(crew: Line) -> None:
    """Without the right current passphrase the change is refused (and counted as a
    failure); with it, the new passphrase works and the old one no longer does."""
    an = _as("an", "operator")
    with pytest.raises(people.Refused, match="wrong passphrase"):
        people.passwd(crew.config, an, "an", "một mật khẩu mới hơn", old=WRONG)
    people.passwd(crew.config, an, "an", "một mật khẩu mới hơn", old=PASSPHRASES["an"])
    with open_journal(crew.config.journal.url) as journal:
        assert people.authenticate(journal, crew.config, "an", "một mật khẩu mới hơn") == an
        with pytest.raises(people.Refused):
            people.authenticate(journal, crew.config, "an", PASSPHRASES["an"])
    assert _events(crew, "people.passphrase_changed") == [
        {"actor": "an", "account": "an", "fields": ["passphrase"]}]


def test_only_an_admin_resets_another_passphrase_lifting_the_lockout(
        crew: Line, monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator may not reset another's passphrase (audited); an admin's reset unlocks
    the account and ends its sessions."""
    monkeypatch.setenv("CARDLINE_SESSION_DIR", str(crew.folder / "sessions"))
    session = people.login(crew.config, "lan", PASSPHRASES["lan"])
    with pytest.raises(people.Refused, match="operator 'an' may not manage accounts"):
        people.passwd(crew.config, _as("an", "operator"), "lan", "chiếm tài khoản này")
    with open_journal(crew.config.journal.url) as journal:
        for _ in range(2):
            with pytest.raises(people.Refused):
                people.authenticate(journal, crew.config, "lan", WRONG)
    people.passwd(crew.config, _as("root", "admin"), "lan", "mật khẩu đặt lại")
    with open_journal(crew.config.journal.url) as journal:
        assert people.authenticate(journal, crew.config, "lan", "mật khẩu đặt lại").name == "lan"
    with pytest.raises(people.NotLoggedIn, match="ended"):
        people.whoami(crew.config)
    assert session.path.exists()  # the file stays; the journal says it ended


def test_the_last_enabled_admin_cannot_be_disabled(crew: Line) -> None:
    """Disabling the only enabled admin would leave nobody to manage accounts: refused."""
    with pytest.raises(people.Refused, match="last enabled admin"):
        people.disable(crew.config, _as("root", "admin"), "root")


def test_a_ceremony_counts_each_officer_once_and_only_officers(crew: Line) -> None:
    """verify_officers: the same officer twice is one; a wrong passphrase or a non-officer
    refuses the whole ceremony, audited."""
    with open_journal(crew.config.journal.url) as journal:
        officers = people.verify_officers(journal, crew.config, [
            ("lan", PASSPHRASES["lan"]), ("lan", PASSPHRASES["lan"]),
            ("dung", PASSPHRASES["dung"])])
        assert [p.name for p in officers] == ["lan", "dung"]
        with pytest.raises(people.Refused, match="officer 'dung': unknown account or wrong"):
            people.verify_officers(journal, crew.config, [("lan", PASSPHRASES["lan"]),
                                                          ("dung", WRONG)])
        with pytest.raises(people.Refused, match="operator 'an' is not a security officer"):
            people.verify_officers(journal, crew.config, [("an", PASSPHRASES["an"])])
    reasons = [e["reason"] for e in _events(crew, "people.refused")
               if e["action"] == "keys.ceremony"]
    assert reasons == ["not_authenticated", "not_officer"]


def test_acting_checks_the_table_for_the_person_from_the_environment(
        crew: Line, monkeypatch: pytest.MonkeyPatch) -> None:
    """acting() authenticates CARDLINE_USER and allows what the table allows; only one of
    the two variables set is an error that says to set both."""
    monkeypatch.setenv("CARDLINE_USER", "lan")
    monkeypatch.setenv("CARDLINE_PASSPHRASE", PASSPHRASES["lan"])
    assert people.acting(crew.config, "keys.ceremony") == _as("lan", "officer")
    with pytest.raises(people.Refused, match="officer 'lan' may not run batches; ask an "
                                             "operator"):
        people.acting(crew.config, "batch.run")
    monkeypatch.delenv("CARDLINE_PASSPHRASE")
    with pytest.raises(people.NotLoggedIn, match="set both"):
        people.acting(crew.config, "keys.ceremony")
