"""``journal.url`` in line.yaml: SQLite for one machine, PostgreSQL for lines sharing the
journal, never a password in the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from personalization.config import parse_config
from personalization.errors import ConfigError

STATIONS = """
hsm: {module: /usr/lib/softhsm/libsofthsm2.so, token: t, pin_source: env}
stations:
  - name: s1
    printer: {port: /dev/null}
    encoder: {reader: "Encoder 0"}
"""


def _url(url: str, base: Path) -> str:
    text = f"line: line-2\njournal:\n  url: '{url}'\n{STATIONS}"
    return parse_config(text, base).journal.url


def test_a_relative_sqlite_path_is_taken_from_the_config_folder(tmp_path: Path) -> None:
    """sqlite:///rel/j.db next to line.yaml, wherever the command runs."""
    assert _url("sqlite:///rel/j.db", tmp_path) == f"sqlite:///{tmp_path / 'rel/j.db'}"


@pytest.mark.parametrize("url", [
    "postgresql://cardline_line@/cardline?host=%2Frun%2Fpg&passfile=%2Fetc%2Fpgpass",
    "postgresql://cardline_line@db-hn,db-hcm/cardline?target_session_attrs=read-write",
    "postgres://cardline_line@db:5432/cardline?sslmode=verify-full",
])
def test_postgresql_urls_are_kept_as_written(url: str, tmp_path: Path) -> None:
    """The URL goes to libpq unchanged (hosts, socket folder, passfile, TLS options)."""
    assert _url(url, tmp_path) == url


def test_a_password_in_the_url_is_refused_without_repeating_it(tmp_path: Path) -> None:
    """line.yaml is not a secret: the error says where passwords go and never echoes one."""
    with pytest.raises(ConfigError, match="no password in the URL") as caught:
        _url("postgresql://cardline_line:hunter2@db/cardline", tmp_path)
    assert "hunter2" not in str(caught.value)


def test_another_scheme_is_refused(tmp_path: Path) -> None:
    """A journal no adapter serves is a configuration error, not a surprise at run time."""
    with pytest.raises(ConfigError, match=r"sqlite:///PATH .* or postgresql://"):
        _url("mysql://db/cardline", tmp_path)
