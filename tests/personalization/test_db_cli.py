"""`cardline db`: a local development PostgreSQL under the line's data folder, driven as a user
drives it (the CLI in a process of its own). The data folder is 0700 in a 0700 folder, as a
`.cardline` in a private home is, so as root the start must give `postgres` passage without
opening either to anyone. One cluster for the module, in a folder of its own rather than
pytest's: every pytest session run meanwhile chmods its 0700 root folder back, which takes
a granted passage away (as any chmod does) while the module runs."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import errors as pgerrors

from personalization.journal import open_journal
from personalization.journal.postgres_schema import LATEST

pytestmark = pytest.mark.postgres
ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class Line:
    """A line whose data folder holds the cluster, and what its first `db start` printed."""

    config: Path
    data: Path
    started: str

    @property
    def url(self) -> str:
        """The journal.url the start printed."""
        return _printed_url(self.started)


def _cardline(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """`python -m personalization ARGS`, on a wide terminal so no message is wrapped."""
    done = subprocess.run([sys.executable, "-m", "personalization", *args],
                          env={**os.environ, "COLUMNS": "2000", "TERM": "dumb"},
                          capture_output=True, text=True, timeout=120, check=False)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def _printed_url(stdout: str) -> str:
    urls = [line for line in stdout.splitlines() if line.startswith("postgresql://")]
    assert len(urls) == 1, stdout
    return urls[0]


def _db(line: Line, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    return _cardline("db", *args, "--config", str(line.config), ok=ok)


def _status(line: Line) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(_db(line, "status", "--json").stdout)
    return found


@pytest.fixture(scope="module")
def line() -> Iterator[Line]:
    """A line.yaml whose data folder is 0700, and its cluster started by `cardline db start`
    (stopped at the end)."""
    home = Path(tempfile.mkdtemp(prefix="cardline-db-"))  # 0700, root's when we are root
    data = home / "data"
    data.mkdir(mode=0o700)
    config = home / "line.yaml"
    config.write_text(f"line: line-1\ndata_dir: {data}\n"
                      "hsm: {module: /usr/lib/softhsm/libsofthsm2.so, token: cardline}\n",
                      encoding="utf-8")
    if ROOT:  # the case a user hits: postgres cannot pass pytest's folders nor the data folder
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in (data, home))
    try:
        started = Line(config, data, _cardline("db", "start", "--config", str(config)).stdout)
        yield started
    finally:
        _cardline("db", "stop", "--immediate", "--config", str(config), ok=False)
        shutil.rmtree(home, ignore_errors=True)


def test_start_prints_a_url_without_password_the_line_role_opens_migrated(line: Line) -> None:
    """The printed journal.url names the lines' role and a password file, holds no password,
    and opens a journal already migrated (by the owner) without a migration of its own."""
    parts = urlsplit(line.url)
    assert (parts.username, parts.password) == ("cardline_line", None)
    assert "passfile=" in parts.query
    with open_journal(line.url) as journal:
        assert journal.schema_version == LATEST


def test_the_line_role_cannot_change_or_delete_events(line: Line) -> None:
    """Connected as the URL's role, the server refuses UPDATE and DELETE on the event log."""
    with psycopg.connect(line.url, autocommit=True) as db:
        assert db.execute("SELECT kind FROM events").fetchall() == [("journal.migrated",)]
        for change in ("UPDATE events SET kind = 'forged'", "DELETE FROM events"):
            with pytest.raises(pgerrors.InsufficientPrivilege):
                db.execute(change)


@pytest.mark.skipif(not ROOT, reason="postgres needs passage only when the server is started "
                                     "by root")
def test_the_data_folder_stays_closed_but_postgres_may_pass(line: Line) -> None:
    """As root the data folder keeps no group or other permission; postgres may pass it (an
    ACL entry, search only) but not list it."""
    assert line.data.stat().st_mode & 0o007 == 0
    acl = subprocess.run(["getfacl", "-cp", str(line.data)], capture_output=True, text=True,
                         check=True).stdout.split()
    assert {"user:postgres:--x", "group::---", "other::---"} <= set(acl)
    as_postgres = ["runuser", "-u", "postgres", "--"]
    assert subprocess.run([*as_postgres, "test", "-x", str(line.data)], check=False
                          ).returncode == 0
    assert subprocess.run([*as_postgres, "ls", str(line.data)], capture_output=True,
                          check=False).returncode != 0


def test_status_json_shows_running_with_both_urls(line: Line) -> None:
    """`status --json`: running, the folder under the data folder, its socket, the lines' URL
    (the one start printed) and the owner's."""
    found = _status(line)
    folder = line.data / "postgres"
    assert found["state"] == "running"
    assert (found["folder"], found["socket"]) == (str(folder), str(folder / "socket"))
    assert found["line_url"] == line.url
    assert urlsplit(found["owner_url"]).username == "cardline_owner"
    assert _db(line, "url", "--role", "owner").stdout.strip() == found["owner_url"]
    assert _db(line, "url").stdout.strip() == line.url


def test_stop_then_status_shows_stopped_and_start_brings_it_back(line: Line) -> None:
    """`stop` stops it, `status` says stopped, a second `stop` says it was not running, and
    `start` starts the same cluster with the same URL."""
    assert "stopped" in _db(line, "stop").stdout
    assert _status(line)["state"] == "stopped"
    assert "was not running" in _db(line, "stop").stdout
    again = _db(line, "start").stdout
    assert ": started" in again
    assert _printed_url(again) == line.url
    assert _status(line)["state"] == "running"


def test_start_on_a_running_cluster_says_so(line: Line) -> None:
    """A second `start` changes nothing: already running, the same URL."""
    _db(line, "start")
    again = _db(line, "start").stdout
    assert "already running" in again
    assert _printed_url(again) == line.url


@pytest.mark.skipif(not ROOT, reason="the ACL is granted only when root starts the server")
def test_start_after_a_chmod_of_the_data_folder_grants_passage_again(line: Line) -> None:
    """A `chmod 700` takes postgres's passage back (it resets the ACL's mask): `status` says
    who cannot pass where, and `start` grants it again."""
    _db(line, "start")
    line.data.chmod(0o700)
    refused = _db(line, "status", ok=False)
    assert refused.returncode == 2
    assert f"cannot pass {line.data}" in refused.stderr
    again = _db(line, "start").stdout
    assert f"passage (ACL u:postgres:x) through {line.data}" in again
    assert "already running" in again


def test_migrate_as_the_owner_says_the_schema_version(line: Line) -> None:
    """`db migrate OWNER_URL` (as a factory runs it against its own server): the schema
    version, and the URL shown without its password file's content."""
    _db(line, "start")
    owner = _db(line, "url", "--role", "owner").stdout.strip()
    assert _cardline("db", "migrate", owner).stdout.strip() == f"journal {owner}: schema v{LATEST}"


def test_a_folder_in_the_way_is_a_clear_error(tmp_path: Path) -> None:
    """A cluster folder below a file: exit 2, naming the folder and the file in the way."""
    (tmp_path / "file").write_text("", encoding="utf-8")
    done = _cardline("db", "start", "--folder", str(tmp_path / "file" / "pg"), ok=False)
    assert done.returncode == 2
    assert f"{tmp_path / 'file' / 'pg'}: cannot create {tmp_path / 'file'}: it exists and " \
           "is not a folder" in done.stderr


def test_a_broken_cluster_is_a_clear_error(tmp_path: Path) -> None:
    """A folder that only looks like a cluster: start fails naming the folder, what failed and
    the server's own words; no traceback."""
    broken = tmp_path / "pg"
    (broken / "data").mkdir(parents=True)
    (broken / "data" / "PG_VERSION").write_text("15\n", encoding="utf-8")
    done = _cardline("db", "start", "--folder", str(broken), ok=False)
    assert done.returncode == 2
    assert f"PostgreSQL cluster {broken}: pg_ctl start failed" in done.stderr
    assert "Traceback" not in done.stderr


def test_url_of_no_cluster_says_how_to_make_one(tmp_path: Path) -> None:
    """`db url` where there is no cluster: exit 2, the folder, and `cardline db start`."""
    done = _cardline("db", "url", "--folder", str(tmp_path / "none"), ok=False)
    assert done.returncode == 2
    assert f"{tmp_path / 'none'}: there is none yet" in done.stderr
    assert "cardline db start" in done.stderr
