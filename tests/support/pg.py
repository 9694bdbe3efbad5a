"""PostgreSQL for tests: one private cluster per test run, a fresh journal database per test
(copied from a migrated template, which is fast), raw superuser access for what the database
itself must refuse, a software data-key wrap standing in for the HSM, and two clusters
replicating as the two data centres do."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from personalization.journal.pgcluster import DATABASE, OWNER, PGCluster, multi_host_url
from personalization.journal.postgres import PostgresJournal

TEMPLATE = "journal_template"


class Refused(Exception):  # noqa: N818 - reads as what happened
    """The database refused a backdoor statement; the message is the database's."""


@dataclass(frozen=True)
class SoftwareKeyWrap:
    """AES-256-GCM under a key per batch held in memory, the batch name as associated data:
    the HSM's part, for tests only (the keys die with the process that made them, unless
    pickled). :meth:`destroy` drops a batch's key, as the HSM destroys its key object."""

    keys: dict[str, bytes] = field(default_factory=dict, repr=False)

    def wrap(self, key: bytes, batch: str) -> bytes:
        """``key`` sealed for ``batch`` under the batch's key (made on first use)."""
        kek = self.keys.setdefault(batch, os.urandom(32))
        nonce = os.urandom(12)
        return nonce + AESGCM(kek).encrypt(nonce, key, batch.encode("utf-8"))

    def unwrap(self, blob: bytes, batch: str) -> bytes:
        """The key sealed for ``batch``: ``InvalidTag`` for another batch, another wrap, or a
        batch whose key this wrap does not hold (never made here, or destroyed)."""
        kek = self.keys.get(batch)
        if kek is None:
            raise InvalidTag
        return AESGCM(kek).decrypt(blob[:12], blob[12:], batch.encode("utf-8"))

    def destroy(self, batch: str) -> bool:
        """Drop ``batch``'s key: True when there was one."""
        return self.keys.pop(batch, None) is not None


class TestServer:
    """A private cluster in a folder of its own under the system temp folder (pytest's
    folders are 0700 root's, which the ``postgres`` user cannot pass when we are root)."""

    __test__ = False  # not a test class

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="cardline-pg-"))
        # fsync off: these tests never survive a power cut, and it makes CREATE DATABASE cheap
        self.cluster = PGCluster(self.folder, settings={"fsync": "off"})
        self._names = itertools.count(1)

    def up(self) -> None:
        """Start the cluster and migrate the template every test database is copied from."""
        self.cluster.start()
        self.cluster.create_database(TEMPLATE)
        PostgresJournal(self.cluster.url(TEMPLATE, OWNER)).close()

    def down(self) -> None:
        """Stop the cluster and remove its folder."""
        try:
            self.cluster.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def fresh(self, template: str | None = TEMPLATE) -> str:
        """A new database (a migrated copy of the template, or empty): its name."""
        name = f"journal_{os.getpid()}_{next(self._names)}"
        self.cluster.create_database(name, template)
        return name

    def backdoor(self, database: str) -> PostgresBackdoor:
        """Superuser access to ``database``."""
        return PostgresBackdoor(self.cluster, database)


@dataclass
class PostgresBackdoor:
    """A journal database through a superuser connection of its own."""

    cluster: PGCluster
    database: str

    def execute(self, sql: str) -> None:
        """Run one statement and commit (:class:`Refused` when PostgreSQL refuses)."""
        try:
            with self.cluster.admin(self.database) as db:
                db.execute(sql.encode("utf-8"))
        except psycopg.Error as exc:
            raise Refused(exc.diag.message_primary or str(exc)) from exc

    def fetch(self, sql: str) -> list[tuple[object, ...]]:
        """The rows of one query."""
        with self.cluster.admin(self.database) as db:
            return db.execute(sql.encode("utf-8")).fetchall()

    def edit_event(self, seq: int, data: str) -> None:
        """Disable the append-only trigger (as the table's owner could) and rewrite."""
        self.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        self.execute(f"UPDATE events SET data = '{data}' WHERE chain = 'journal' "  # noqa: S608 - test values
                     f"AND seq = {seq}")

    def edit_event_in(self, chain: str, seq: int, data: str) -> None:
        """:meth:`edit_event` for event ``seq`` of one chain (a line's, say)."""
        self.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        self.execute(f"UPDATE events SET data = '{data}' WHERE chain = '{chain}' "  # noqa: S608 - test values
                     f"AND seq = {seq}")

    def set_schema_version(self, version: int) -> None:
        """``journal_schema`` is where the adapter keeps it."""
        self.execute(f"UPDATE journal_schema SET version = {version}")  # noqa: S608 - an int


class TwoSites:
    """Two data centres on one machine: a primary (``hanoi``) and its synchronous standby
    (``tphcm``), each a private cluster, in a folder of their own under the system temp
    folder (the ``postgres`` user let through it when we are root); fsync stays on, since
    what a standby has flushed is what these tests are about."""

    __test__ = False  # not a test class

    def __init__(self, standby: str = "tphcm") -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="cardline-2dc-"))
        self.primary = PGCluster(self.folder / "hanoi", replicate_to=standby)
        self.standby = PGCluster(self.folder / standby)

    def up(self) -> None:
        """Start the primary, clone and start its standby, migrate the journal as its owner
        (so the lines' role can open it)."""
        self.primary.let_server_through()
        self.primary.start()
        self.standby = PGCluster.standby_of(self.primary, self.standby.folder)
        PostgresJournal(self.primary.url(DATABASE, OWNER)).close()

    def url(self, *, connect_timeout_s: int | None = None, standby_first: bool = False) -> str:
        """The lines' multi-host URL: both servers, the writable one chosen at connect."""
        clusters = [self.primary, self.standby]
        return multi_host_url(clusters[::-1] if standby_first else clusters,
                              connect_timeout_s=connect_timeout_s)

    def down(self) -> None:
        """Stop both servers (waking a paused postmaster first) and remove the folder."""
        try:
            for cluster in (self.primary, self.standby):
                postmaster(cluster, signal.SIGCONT)
            try:
                self.primary.stop("immediate")
            finally:
                self.standby.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def postmaster(cluster: PGCluster, sig: signal.Signals) -> bool:
    """Send ``sig`` to the cluster's postmaster: False when it is not running."""
    try:
        pid = int((cluster.data / "postmaster.pid").read_text(encoding="utf-8").split()[0])
        os.kill(pid, sig)
    except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
        return False
    return True
