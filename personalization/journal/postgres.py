"""The journal adapter for PostgreSQL, the journal several lines share: the same port, tables
and events as SQLite, on a server. With ``postgres_schema`` (the migrations), the only code
that knows PostgreSQL: its placeholders, locks, SQLSTATEs and roles stay here.

Connections come from a small ``psycopg_pool`` pool (bounded connect and statement timeouts);
each write is one transaction. Event numbers come from the one-row ``chain_head``, locked
``FOR UPDATE`` by each append in the transaction that inserts the event, so numbers are
gapless and in commit order across every process and machine. The database refuses what the
rules forbid (unique indexes, the stale-move ``WHERE state = old``, triggers, and grants for
the lines' role), and its unique violations come back as :class:`ConflictError` by SQLSTATE
and constraint name.

Personal data: PostgreSQL has no ``secure_delete``; old row versions stay in the data files
and the WAL until overwritten. So an application's record, a quarantined record's reasons
and a card's printed random CAN are stored sealed (AES-256-GCM, the batch and record bound
as associated data) under a random key per batch, which is kept only wrapped by a
:class:`DataKeyWrap` (the HSM). The purge deletes the wrapped key and the ciphertexts in
one transaction: what the files and WAL still hold is ciphertext under a key that is gone.
Events and every other column hold ids, states, reason codes, dates of issue and expiry,
document numbers and (``holder``) personal ID numbers only, as in SQLite: the personal ID
is the key of the rule of one current card per person, looked up at intake and kept for
life, so it is plain, as its last nine digits (the document number) always were.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import zlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, LiteralString, Self

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import errors as pgerrors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from personalization.applications.intake import InvalidRecord
from personalization.applications.model import Application
from personalization.applications.stream import START, Mark
from personalization.cardstate import Outcome, State, Step, spoiled
from personalization.journal.pg_audit import PostgresAudit
from personalization.journal.pg_people import PostgresPeople
from personalization.journal.pg_registry import PostgresRegistry
from personalization.journal.pg_shares import PostgresShares
from personalization.journal.port import (
    BatchExistsError,
    ConflictError,
    DataKeyWrap,
    ImportState,
    JournalError,
    JournalUnavailable,
    NotClaimable,
    control_action,
)
from personalization.journal.postgres_schema import (
    LATEST,
    MIGRATION_LOCK,
    MIGRATIONS,
    SCHEMA_TABLE,
)
from personalization.journal.records import (
    GENESIS,
    ApplicationRow,
    BatchInfo,
    CardRow,
    ChainCheck,
    EventRow,
    LineRow,
    QuarantineRow,
    StationRow,
    dump_application,
    event_hash,
    load_application,
)
from personalization.journal.rules import (
    ISSUANCE_COLUMNS,
    ISSUANCE_JOINS,
    CurrentCard,
    Holdings,
    InProgress,
    hold_once,
    issuance_result,
    line_row,
    no_station_clash,
    person_columns,
    quarantine_result,
)
from personalization.reasons import Code, Reason

Cursor = psycopg.Cursor[DictRow]
CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_S = 30
MIGRATE_TIMEOUT_S = 300  # a migration of a large journal, or the wait for another's
POOL_SIZE = 4
_LOCK_SPACE = 0x6A726E6C  # first key of the two-int advisory locks: "jrnl"
_INTAKE_LOCK = 1  # second key: batch intake, so document numbers are checked one batch at a time
_DELETE_ROWS = 2000
_KEY_BYTES = 32  # AES-256
_NONCE_BYTES = 12  # NIST SP 800-38D §8.2: 96-bit random IVs
_UNIQUE_RULES = {
    "one_card_per_document": "one handed-out card per document number",
    "one_card_per_application": "one handed-out card per application",
    "one_current_card_per_holder": "one current card per person",
    "one_card_per_chip": "one card per chip serial",
    "one_application_id_per_batch": "an application id once per batch",
}
_DELETE_SOME: dict[str, LiteralString] = {
    "import_keys": "DELETE FROM import_keys WHERE batch = %(b)s AND key IN (SELECT key FROM "
                   "import_keys WHERE batch = %(b)s LIMIT %(n)s)",
    "quarantine": "DELETE FROM quarantine WHERE batch = %(b)s AND line IN (SELECT line FROM "
                  "quarantine WHERE batch = %(b)s LIMIT %(n)s)",
    "applications": "DELETE FROM applications WHERE batch = %(b)s AND application_id IN (SELECT "
                    "application_id FROM applications WHERE batch = %(b)s LIMIT %(n)s)",
}
_DELETE_ALL: dict[str, LiteralString] = {
    "import_keys": "DELETE FROM import_keys WHERE batch = %s",
    "quarantine": "DELETE FROM quarantine WHERE batch = %s",
    "applications": "DELETE FROM applications WHERE batch = %s",
    "stations": "DELETE FROM stations WHERE batch = %s",
    "run_control": "DELETE FROM run_control WHERE batch = %s",
    "imports": "DELETE FROM imports WHERE batch = %s",
    "batch_keys": "DELETE FROM batch_keys WHERE batch = %s",
}
_CARD_QUERIES: dict[str, LiteralString] = {
    "batch": "SELECT * FROM cards WHERE batch = %s ORDER BY id",
    "open": "SELECT * FROM cards WHERE batch = %s AND state NOT IN ('handed_out', 'rejected', "
            "'void', 'superseded') ORDER BY id",
    "chip": "SELECT * FROM cards WHERE chip_serial = %s ORDER BY id",
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _reasons_json(reasons: Sequence[Reason]) -> str:
    return json.dumps([r.as_dict() for r in reasons], ensure_ascii=False)


def redact(url: str) -> str:
    """``url`` without its password (in the user part or as a ``password=`` parameter)."""
    url = re.sub(r"^(postgres(?:ql)?://[^:@/?#]*):[^@/?#]*@", r"\1:***@", url)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)", r"\1***", url)


def _aad(*parts: str) -> bytes:
    return json.dumps(["cardline", *parts], ensure_ascii=False).encode("utf-8")


def seal(key: bytes, text: str, *bound: str) -> bytes:
    """``text`` under AES-256-GCM with a random nonce, ``bound`` as associated data."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, text.encode("utf-8"), _aad(*bound))


def unseal(key: bytes, blob: bytes, *bound: str) -> str:
    """The text :func:`seal` sealed with the same key and ``bound``; :class:`JournalError`
    when it does not verify (changed, or moved to another record)."""
    try:
        plain = AESGCM(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _aad(*bound))
    except InvalidTag as exc:
        raise JournalError(f"{' '.join(bound)}: the sealed record does not verify (changed, "
                           "or copied from another record)") from exc
    return plain.decode("utf-8")


def _check_chain(rows: Sequence[DictRow], head: tuple[int, str]) -> ChainCheck:
    """The first event that does not follow (a changed event, a gap), or the one after the
    last when the log ends before the chain head: the SQLite adapter's answers."""
    prev, count = GENESIS, 0
    for row in rows:
        count += 1
        if row["seq"] != count:
            return ChainCheck(count, count)  # event number ``count`` is missing
        if row["prev"] != prev or event_hash(prev, count, row["at"], row["batch"], row["card"],
                                             row["kind"], row["data"]) != row["hash"]:
            return ChainCheck(count, count)
        prev = row["hash"]
    if head == (count, prev):
        return ChainCheck(count, None)
    if head[0] != count:  # events cut off the end, or events past what the head says
        return ChainCheck(count, min(head[0], count) + 1)
    return ChainCheck(count, count)  # the last event is not the one the head names


def _line_key(line: str) -> int:
    """The advisory lock key of a line: a signed 32-bit CRC of its name."""
    value = zlib.crc32(line.encode("utf-8"))
    return value - (1 << 32) if value >= 1 << 31 else value


def _move_data(card: CardRow, result: Step, serial: str | None,
               qa: dict[str, Any] | None) -> dict[str, Any]:
    """A card move's event data: station, from, chip, and the reason, QA verdict and
    outcome when there are (never personal data)."""
    data: dict[str, Any] = {"station": card.station, "from": card.state.value, "chip": serial}
    if result.card.reasons != card.reasons:
        data["reason"] = result.card.reasons[-1].as_dict()
    if qa is not None:
        data["qa"] = qa.get("verdict")
    if result.outcome is not None:
        data["outcome"] = result.outcome.value
    return data


# the journal's own chain: batches, imports, run control, anchors of the lines' chains
JOURNAL_CHAIN = "journal"


class PostgresJournal(PostgresPeople, PostgresAudit, PostgresShares, PostgresRegistry):
    """The journal on a PostgreSQL server; a context manager that closes its connections.

    ``wrap`` wraps each batch's data key. Without one the journal opens for everything that
    needs no personal field (status, reports of states, run control, events, cards);
    creating or importing a batch, :meth:`application`, :meth:`quarantined` and the purge
    (which destroys the batch's wrapping key) then raise :class:`JournalError`.
    """

    def __init__(self, url: str, *, wrap: DataKeyWrap | None = None,
                 pool_size: int = POOL_SIZE, statement_timeout_s: float = STATEMENT_TIMEOUT_S,
                 ) -> None:
        self._url = url
        self.where = redact(url)
        self._wrap = wrap
        self._keys: dict[str, bytes] = {}
        self._keys_lock = threading.Lock()
        self._chains: dict[tuple[str, str], str] = {}  # (batch, station) → its line's chain
        try:
            given = conninfo_to_dict(url)
        except psycopg.Error as exc:  # libpq's words may quote the URL, password and all
            raise JournalError(f"journal {self.where}: libpq cannot read this URL") from exc
        self._extra: dict[str, Any] = {} if "connect_timeout" in given else \
            {"connect_timeout": CONNECT_TIMEOUT_S}
        self._timeout_ms = int(statement_timeout_s * 1000)
        with self._connect(MIGRATE_TIMEOUT_S * 1000) as db:
            self._migrate(db)
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=False,
                                    kwargs={"autocommit": True, **self._extra},
                                    configure=self._configure, timeout=statement_timeout_s,
                                    name="cardline-journal")
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except PoolTimeout as exc:
            self._pool.close()
            raise JournalError(f"journal {self.where}: no connection within "
                               f"{CONNECT_TIMEOUT_S} s") from exc

    @classmethod
    def open(cls, url: str, *, wrap: DataKeyWrap | None = None) -> Self:
        """Open (migrating as needed) the journal at a ``postgresql://`` URL."""
        return cls(url, wrap=wrap)

    @property
    def url(self) -> str:
        """The URL this journal was opened with, as given (to open it again elsewhere)."""
        return self._url

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection of the pool and forget the unwrapped keys."""
        self._pool.close(timeout=5)
        with self._keys_lock:
            self._keys.clear()

    # -- connections, transactions and errors -----------------------------------------------

    def _connect(self, timeout_ms: int | None = None) -> psycopg.Connection[DictRow]:
        """A connection of its own (migrations, the controller lock), autocommit, its
        statements and lock waits bounded by ``timeout_ms`` (the pool's by default)."""
        try:
            db = psycopg.connect(self._url, autocommit=True, row_factory=dict_row,
                                 **self._extra)
            self._configure(db, timeout_ms)
        except psycopg.Error as exc:
            raise JournalError(f"journal {self.where}: cannot connect: "
                               f"{self._cause(exc)}") from exc
        return db

    def _configure(self, db: psycopg.Connection[Any], timeout_ms: int | None = None) -> None:
        """Bound every statement and every lock wait of this session."""
        bound = self._timeout_ms if timeout_ms is None else timeout_ms
        db.execute(f"SET statement_timeout = {bound}")
        db.execute(f"SET lock_timeout = {bound}")

    @staticmethod
    def _cause(exc: psycopg.Error) -> str:
        """The server's or libpq's primary message (never the detail, which quotes values)."""
        text = exc.diag.message_primary or str(exc) or type(exc).__name__
        return " ".join(line.strip() for line in text.splitlines() if line.strip())

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except pgerrors.UniqueViolation as exc:
            name = exc.diag.constraint_name or "?"
            raise ConflictError(f"journal {self.where}: a UNIQUE rule refused the change: "
                                f"{name} ({_UNIQUE_RULES.get(name, 'unique')})") from exc
        except pgerrors.InsufficientPrivilege as exc:
            raise JournalError(f"journal {self.where}: this role may not do that: "
                               f"{self._cause(exc)}") from exc
        except PoolTimeout as exc:
            raise JournalUnavailable(f"journal {self.where}: no database connection free or "
                                     f"reachable: {exc}") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError,
                pgerrors.ReadOnlySqlTransaction) as exc:  # the server went away or is a standby
            raise JournalUnavailable(f"journal {self.where}: unavailable: "
                                     f"{self._cause(exc)}") from exc
        except psycopg.Error as exc:
            if exc.sqlstate == "CL001":  # journal_begin_card: the application is not claimable
                raise NotClaimable(self._cause(exc)) from exc
            if exc.sqlstate == "CL002":
                raise JournalError(self._cause(exc)) from exc
            raise JournalError(f"journal {self.where}: {self._cause(exc)}") from exc

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        with self._errors(), self._pool.connection() as db, db.transaction(), \
                db.cursor(row_factory=dict_row) as cur:
            yield cur

    def _write1(self, query: LiteralString, params: Sequence[Any] = ()) -> None:
        """One statement, its own transaction (the pool's connections commit each statement):
        one round trip, for the writes a line makes every tick."""
        with self._errors(), self._pool.connection() as db:
            db.execute(query, params)

    def _call(self, query: LiteralString,
              params: Sequence[Any] | Mapping[str, Any]) -> list[DictRow]:
        """One call of a journal function, its own transaction: one round trip."""
        with self._errors(), self._pool.connection() as db, \
                db.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, params).fetchall()

    def _read(self, query: LiteralString, params: Sequence[Any] = ()) -> list[DictRow]:
        with self._errors(), self._pool.connection() as db, \
                db.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, params).fetchall()

    @contextmanager
    def controller_lock(self, line: str) -> Iterator[None]:
        """A session-level advisory lock for ``line``, on a connection of its own: the
        server releases it when that session ends, even when its process is killed — on
        whichever machine it ran."""
        db = self._connect()
        try:
            with self._errors():
                row = db.execute("SELECT pg_try_advisory_lock(%s, %s) AS got",
                                 (_LOCK_SPACE, _line_key(line))).fetchone()
            if not row or not row["got"]:
                raise JournalError(f"another controller is running line {line!r} on "
                                   f"journal {self.where}; wait for it or stop it first")
            yield
        finally:
            db.close()

    # -- schema -----------------------------------------------------------------------------

    @staticmethod
    def _version(db: psycopg.Connection[DictRow]) -> int:
        row = db.execute("SELECT to_regclass('journal_schema') IS NOT NULL AS here").fetchone()
        if not row or not row["here"]:
            return 0
        found = db.execute("SELECT version FROM journal_schema WHERE id = 1").fetchone()
        return int(found["version"]) if found else 0

    def _newer(self, version: int) -> JournalError:
        return JournalError(f"journal {self.where} is at schema v{version}; this cardline knows "
                            f"up to v{LATEST}: upgrade cardline")

    def _migrate(self, db: psycopg.Connection[DictRow]) -> None:
        """Apply the migrations the database lacks in one transaction, under a transaction
        advisory lock: processes opening at once wait for each other, and each reads the
        version again once it holds the lock, so the migrations run once."""
        try:
            version = self._version(db)
            if version > LATEST:
                raise self._newer(version)
            if version == LATEST:
                return
            with db.transaction(), db.cursor(row_factory=dict_row) as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                cur.execute(SCHEMA_TABLE)
                cur.execute("INSERT INTO journal_schema (id, version) VALUES (1, 0) "
                            "ON CONFLICT (id) DO NOTHING")
                version = self._version(db)
                if version > LATEST:
                    raise self._newer(version)
                pending = [m for m in MIGRATIONS if m[0] > version]
                for _, _, statements in pending:
                    for statement in statements:
                        cur.execute(statement.encode("utf-8"))
                cur.execute("UPDATE journal_schema SET version = %s WHERE id = 1", (LATEST,))
                if pending:
                    self._append(cur, None, None, "journal.migrated", {
                        "version": LATEST, "from": version,
                        "migrations": [f"{number}: {title}" for number, title, _ in pending]})
        except psycopg.Error as exc:
            raise JournalError(f"journal {self.where}: cannot migrate to schema v{LATEST}: "
                               f"{self._cause(exc)} (the first open must be as the database's "
                               "owner)") from exc

    @property
    def schema_version(self) -> int:
        """The number of the last migration applied to this database."""
        rows = self._read("SELECT version FROM journal_schema WHERE id = 1")
        return int(rows[0]["version"]) if rows else 0

    # -- the event chain --------------------------------------------------------------------

    def _append(self, cur: Cursor, batch: str | None, card: int | None, kind: str,
                data: dict[str, Any], chain: str = JOURNAL_CHAIN) -> None:
        """The next event of ``chain``, numbered and chained from that chain's head, which
        this transaction locks (``FOR UPDATE``) until it commits. Each line has a chain of its
        own, so only a line's own stations wait for one another here; the lines commit side
        by side (and the server's group commit can flush them together). The server numbers,
        hashes and inserts it in one call (``journal_append``), so the head stays locked for
        no round trip but the commit's."""
        text = json.dumps(data, ensure_ascii=False, sort_keys=True)
        cur.execute("SELECT journal_append(%s, %s, %s, %s, %s, NULL)",
                    (chain, batch, card, kind, text))

    def _chain_of(self, cur: Cursor, batch: str, station: str) -> str:
        """The chain of the line that has ``station`` in ``batch`` (station names are unique
        among a batch's lines), or the journal's own for a station no line has declared."""
        key = (batch, station)
        if key not in self._chains:
            row = cur.execute("SELECT line FROM lines WHERE batch = %s AND "
                              "stations::jsonb ? %s", (batch, station)).fetchone()
            if row is None:
                return JOURNAL_CHAIN
            self._chains[key] = f"line:{row['line']}"
        return self._chains[key]

    def _anchor(self, cur: Cursor, batch: str, kind: str, line: str,
                data: dict[str, Any]) -> None:
        """Record a line's chain head in the journal's own chain (when it joins or leaves), so
        the chains verify as a whole: no line's chain can be cut back past an anchor."""
        chain = f"line:{line}"
        head = cur.execute("SELECT seq, hash FROM chain_heads WHERE chain = %s",
                           (chain,)).fetchone()
        seq, digest = (int(head["seq"]), str(head["hash"])) if head else (0, GENESIS)
        self._append(cur, batch, None, kind,
                     {**data, "line": line, "chain": chain, "chain_seq": seq,
                      "chain_hash": digest})

    def note(self, batch: str | None, kind: str, **data: Any) -> None:
        """Append an event that changes no state (run started, paused, reconciled…)."""
        line = data.get("line")
        chain = f"line:{line}" if isinstance(line, str) and batch is not None \
            and kind.startswith("run.") else JOURNAL_CHAIN
        with self._write() as cur:
            self._append(cur, batch, None, kind, data, chain)

    def verify_chain(self) -> ChainCheck:
        """Re-hash every chain from one snapshot — the journal's own first, then each line's
        — and check each anchor the journal's chain holds of a line's head (see the SQLite
        adapter for the answers: the events counted, the first one that does not follow)."""
        with self._errors(), self._pool.connection() as db, db.transaction(), \
                db.cursor(row_factory=dict_row) as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            rows = cur.execute("SELECT chain, seq, at, batch, card, kind, data, prev, hash "
                               "FROM events ORDER BY chain = 'journal' DESC, chain, seq"
                               ).fetchall()
            heads = {r["chain"]: (int(r["seq"]), str(r["hash"]))
                     for r in cur.execute("SELECT chain, seq, hash FROM chain_heads")}
        by_chain: dict[str, list[DictRow]] = {JOURNAL_CHAIN: []}
        for row in rows:
            by_chain.setdefault(row["chain"], []).append(row)
        total = 0
        for chain, chained in by_chain.items():
            check = _check_chain(chained, heads.get(chain, (0, GENESIS)))
            total += check.events
            if not check.ok:
                return ChainCheck(total, check.broken_at)
        hashes = {(r["chain"], int(r["seq"])): r["hash"] for r in rows}
        for row in by_chain[JOURNAL_CHAIN]:
            data = json.loads(row["data"])
            if "chain_hash" in data and data["chain_seq"] > 0 and \
                    hashes.get((data["chain"], data["chain_seq"])) != data["chain_hash"]:
                return ChainCheck(total, int(row["seq"]))  # a line's chain cut back or changed
        return ChainCheck(total, None)

    def events(self, batch: str) -> list[EventRow]:
        """A batch's events, oldest first."""
        return [{"seq": r["seq"], "at": r["at"], "card": r["card"], "kind": r["kind"],
                 "data": json.loads(r["data"])}
                for r in self._read("SELECT * FROM events WHERE batch = %s "
                                    "ORDER BY at, chain, seq", (batch,))]

    # -- per-batch data keys ----------------------------------------------------------------

    def _need_wrap(self, what: str) -> DataKeyWrap:
        if self._wrap is None:
            raise JournalError(f"journal {self.where}: {what} needs personal data, sealed under "
                               "the batch's data key; this journal was opened without a key "
                               "wrap (the HSM)")
        return self._wrap

    def _new_key(self, cur: Cursor, name: str) -> bytes:
        """A fresh data key for batch ``name``, stored wrapped in this transaction; the
        caller caches it once the transaction has committed."""
        wrap = self._need_wrap(f"batch {name!r}")
        key = os.urandom(_KEY_BYTES)
        try:
            blob = wrap.wrap(key, name)
        except Exception as exc:
            raise JournalError(f"batch {name!r}: cannot wrap its data key: "
                               f"{type(exc).__name__}") from exc
        cur.execute("INSERT INTO batch_keys (batch, wrapped) VALUES (%s, %s)", (name, blob))
        return key

    def _remember(self, name: str, key: bytes) -> None:
        with self._keys_lock:
            self._keys[name] = key

    def _data_key(self, name: str, what: str) -> bytes:
        """Batch ``name``'s data key, unwrapped once and kept in memory until the purge."""
        with self._keys_lock:
            if name in self._keys:
                return self._keys[name]
        wrap = self._need_wrap(what)
        rows = self._read("SELECT wrapped FROM batch_keys WHERE batch = %s", (name,))
        if not rows:
            raise JournalError(f"batch {name!r} has no data key: its personal data is purged "
                               "(or there is no such batch)")
        try:
            key = wrap.unwrap(bytes(rows[0]["wrapped"]), name)
        except Exception as exc:
            raise JournalError(f"batch {name!r}: cannot unwrap its data key: "
                               f"{type(exc).__name__}") from exc
        self._remember(name, key)
        return key

    def _forget(self, name: str) -> None:
        with self._keys_lock:
            self._keys.pop(name, None)

    # -- batches ----------------------------------------------------------------------------

    @staticmethod
    def _holdings(cur: Cursor, numbers: Sequence[str]) -> Holdings:
        """The current cards and the applications in progress of these document numbers
        (indexed lookups: applications_document, one_card_per_document)."""
        wanted = sorted(set(numbers))
        applications = [InProgress(r["holder"], r["document_number"], r["batch"])
                        for r in cur.execute(
                            "SELECT holder, document_number, batch FROM applications WHERE "
                            "state IN ('pending', 'active') AND document_number = ANY(%s)",
                            (wanted,)).fetchall()]
        cards = [CurrentCard(int(r["id"]), r["holder"], r["document_number"], r["issue_date"])
                 for r in cur.execute(
                     "SELECT c.id, c.holder, c.document_number, a.issue_date FROM cards c "
                     "JOIN applications a ON a.batch = c.batch AND a.application_id = "
                     "c.application_id WHERE c.state = 'handed_out' AND "
                     "c.document_number = ANY(%s)", (wanted,)).fetchall()]
        return Holdings(cards, applications)

    @staticmethod
    def _intake(cur: Cursor) -> None:
        """Intake one batch at a time: the check of document numbers against every batch
        and the insert that follows are then one step for all processes."""
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_SPACE, _INTAKE_LOCK))

    def _queue(self, cur: Cursor, name: str, key: bytes, first_seq: int,
               valid: Sequence[tuple[int, Application, str]],
               invalid: Sequence[InvalidRecord],
               texts: Mapping[int, bytes] | None = None) -> tuple[int, list[InvalidRecord]]:
        """Queue ``valid`` sealed (unless the rule of one current card per person refuses
        it) and quarantine the rest; returns how many were queued, and the records
        quarantined."""
        held = self._holdings(cur, [number for _, _, number in valid])
        queued, refused = hold_once(name, valid, invalid, held)
        cur.executemany(
            "INSERT INTO applications (batch, application_id, seq, line, document_number, "
            "state, record, holder, kind, issue_date, expiry_date, supersedes_card, predates) "
            "VALUES (%s, %s, %s, %s, %s, 'pending', %s, %s, %s, %s, %s, %s, %s)",
            [(name, q.application.application_id, first_seq + seq, q.line, q.number,
              texts[q.line] if texts else seal(key, dump_application(q.application),
                                               "application", name,
                                               q.application.application_id),
              *person_columns(q))
             for seq, q in enumerate(queued)])
        cur.executemany(
            "INSERT INTO quarantine (batch, line, application_id, fields, errors_sealed) "
            "VALUES (%s, %s, %s, %s, %s)",
            [(name, r.line, r.application_id, json.dumps([e.field for e in r.errors]),
              seal(key, json.dumps([e.as_dict() for e in r.errors], ensure_ascii=False),
                   "quarantine", name, str(r.line))) for r in refused])
        return len(queued), refused

    def create_batch(self, name: str, *, source: str, profile: str, max_attempts: int,
                     valid: Sequence[tuple[int, Application, str]],
                     invalid: Sequence[InvalidRecord]) -> BatchInfo:
        """A new batch (see the port): its applications sealed under a new data key."""
        self._need_wrap(f"creating batch {name!r}")
        with self._write() as cur:
            self._intake(cur)
            created = cur.execute(
                "INSERT INTO batches (name, created_at, source, profile, max_attempts, state) "
                "VALUES (%s, %s, %s, %s, %s, 'open') ON CONFLICT (name) DO NOTHING",
                (name, _now(), source, profile, max_attempts)).rowcount
            if created != 1:
                raise BatchExistsError(name)
            key = self._new_key(cur, name)
            queued, refused = self._queue(cur, name, key, 0, valid, invalid)
            self._append(cur, name, None, "batch.created",
                         {"source": source, "accepted": queued, "quarantined": len(refused),
                          "max_attempts": max_attempts})
        self._remember(name, key)
        return self.batch(name)

    # -- chunked import ---------------------------------------------------------------------

    def begin_import(self, name: str, *, source: str, profile: str,
                     max_attempts: int) -> ImportState:
        """A new batch in state ``importing`` (with its data key), or the unfinished import
        of that name."""
        self._need_wrap(f"importing batch {name!r}")
        with self._write() as cur:
            self._intake(cur)
            row = cur.execute(
                "SELECT b.source, b.profile, b.max_attempts, i.lines, i.bytes, i.digest, "
                "i.accepted, i.quarantined FROM batches b LEFT JOIN imports i "
                "ON i.batch = b.name WHERE b.name = %s", (name,)).fetchone()
            if row is None:
                cur.execute("INSERT INTO batches (name, created_at, source, profile, "
                            "max_attempts, state) VALUES (%s, %s, %s, %s, %s, 'open')",
                            (name, _now(), source, profile, max_attempts))
                cur.execute("INSERT INTO imports (batch, started_at, digest) VALUES "
                            "(%s, %s, %s)", (name, _now(), START.digest))
                key = self._new_key(cur, name)
                self._append(cur, name, None, "batch.importing",
                             {"source": source, "max_attempts": max_attempts})
        if row is None:
            self._remember(name, key)
            return ImportState(name, source, profile, max_attempts, START, 0, 0)
        if row["lines"] is None:
            raise BatchExistsError(name)
        return ImportState(name, row["source"], row["profile"], row["max_attempts"],
                           Mark(row["lines"], row["bytes"], row["digest"]), row["accepted"],
                           row["quarantined"])

    def import_seen(self, name: str, keys: Collection[bytes]) -> dict[bytes, int]:
        """Of these keys, those an earlier chunk of the import holds, with their line."""
        return {bytes(r["key"]): r["line"] for r in self._read(
            "SELECT key, line FROM import_keys WHERE batch = %s AND key = ANY(%s)",
            (name, list(keys)))}

    def import_chunk(self, name: str, *, start: Mark, end: Mark,
                     valid: Sequence[tuple[int, Application, str]],
                     invalid: Sequence[InvalidRecord],
                     keys: Mapping[bytes, int]) -> list[InvalidRecord]:
        """One chunk of an import in one short transaction (see the port)."""
        key = self._data_key(name, f"importing batch {name!r}")
        texts = {line: seal(key, dump_application(a), "application", name, a.application_id)
                 for line, a, _ in valid}  # before the transaction
        with self._write() as cur:
            self._intake(cur)
            row = cur.execute("SELECT lines, bytes, next_seq FROM imports WHERE batch = %s "
                              "FOR UPDATE", (name,)).fetchone()
            if row is None or (row["lines"], row["bytes"]) != (start.lines, start.offset):
                raise JournalError(f"batch {name!r} is no longer being imported from line "
                                   f"{start.lines}: another process imported, finished or "
                                   "discarded it meanwhile")
            queued, refused = self._queue(cur, name, key, row["next_seq"], valid, invalid,
                                          texts)
            cur.executemany("INSERT INTO import_keys (batch, key, line) VALUES (%s, %s, %s)",
                            [(name, k, line) for k, line in keys.items()])
            cur.execute("UPDATE imports SET lines = %s, bytes = %s, digest = %s, "
                        "next_seq = next_seq + %s, accepted = accepted + %s, "
                        "quarantined = quarantined + %s WHERE batch = %s",
                        (end.lines, end.offset, end.digest, queued, queued, len(refused),
                         name))
        return refused

    def finish_import(self, name: str, end: Mark) -> BatchInfo | None:
        """One short transaction: some of the import's keys removed (None: call again), or,
        once none is left, the batch made runnable (its info)."""
        if self._delete_some(name, "import_keys"):
            return None
        with self._write() as cur:
            row = cur.execute("SELECT i.accepted, i.quarantined, b.source, b.max_attempts "
                              "FROM imports i JOIN batches b ON b.name = i.batch "
                              "WHERE i.batch = %s FOR UPDATE OF i", (name,)).fetchone()
            if row is None:
                raise JournalError(f"batch {name!r} is not being imported")
            cur.execute(_DELETE_ALL["import_keys"], (name,))  # a chunk's, meanwhile
            cur.execute(_DELETE_ALL["imports"], (name,))
            self._append(cur, name, None, "batch.created",
                         {"source": row["source"], "accepted": row["accepted"],
                          "quarantined": row["quarantined"], "max_attempts": row["max_attempts"],
                          "lines": end.lines, "sha256": end.digest})
        return self.batch(name)

    def discard_import(self, name: str) -> int:
        """Remove an unfinished import and all it wrote (its data key too), a bounded number
        of rows at a time."""
        removed = 0
        for table in ("import_keys", "quarantine", "applications"):
            while True:
                gone = self._delete_some(name, table)
                removed += gone if table == "applications" else 0
                if gone < _DELETE_ROWS:
                    break
        with self._write() as cur:
            self._importing(cur, name)
            for table, query in _DELETE_ALL.items():  # and what a chunk wrote meanwhile
                gone = cur.execute(query, (name,)).rowcount
                removed += gone if table == "applications" else 0
            cur.execute("DELETE FROM batches WHERE name = %s", (name,))
            self._append(cur, name, None, "batch.discarded", {"applications": removed})
        self._forget(name)
        return removed

    @staticmethod
    def _importing(cur: Cursor, name: str) -> None:
        if cur.execute("SELECT 1 FROM imports WHERE batch = %s FOR UPDATE",
                       (name,)).fetchone() is None:
            known = cur.execute("SELECT 1 FROM batches WHERE name = %s", (name,)).fetchone()
            raise JournalError(f"batch {name!r} is not an unfinished import" if known
                               else f"no batch named {name!r} (see `cardline batch status`)")

    def _delete_some(self, name: str, table: str) -> int:
        """Up to ``_DELETE_ROWS`` rows of an unfinished import's ``table``, one transaction."""
        with self._write() as cur:
            self._importing(cur, name)
            return int(cur.execute(_DELETE_SOME[table], {"b": name, "n": _DELETE_ROWS}).rowcount)

    def batch(self, name: str) -> BatchInfo:
        """One batch by name (``importing`` while its file is still being read in)."""
        rows = self._read("SELECT b.*, i.batch IS NOT NULL AS importing FROM batches b "
                          "LEFT JOIN imports i ON i.batch = b.name WHERE b.name = %s", (name,))
        if not rows:
            raise JournalError(f"no batch named {name!r} (see `cardline batch status`)")
        row = rows[0]
        counts = dict.fromkeys(("pending", "active", "handed_out", "failed"), 0)
        counts.update({r["state"]: r["n"] for r in self._read(
            "SELECT state, count(*) AS n FROM applications WHERE batch = %s GROUP BY state",
            (name,))})
        quarantined = self._read("SELECT count(*) AS n FROM quarantine WHERE batch = %s",
                                 (name,))
        return BatchInfo(row["name"], row["created_at"], row["source"], row["profile"],
                         row["max_attempts"], "importing" if row["importing"] else row["state"],
                         row["closed_at"], row["purged_at"], counts, quarantined[0]["n"])

    def batches(self) -> list[BatchInfo]:
        """Every batch, oldest first."""
        return [self.batch(r["name"]) for r in self._read(
            "SELECT name FROM batches ORDER BY created_at, name")]

    def quarantined(self, name: str) -> list[QuarantineRow]:
        """The invalid records of a batch with their reasons (after the purge, the fields
        with ``(purged)`` for a reason)."""
        rows = self._read("SELECT * FROM quarantine WHERE batch = %s ORDER BY line", (name,))
        key = self._data_key(name, f"the quarantine of batch {name!r}") \
            if any(r["errors_sealed"] is not None for r in rows) else b""
        return [{"line": r["line"], "application_id": r["application_id"],
                 "errors": json.loads(unseal(key, bytes(r["errors_sealed"]), "quarantine", name,
                                             str(r["line"])))
                 if r["errors_sealed"] is not None else
                 [{"field": f, "reason": "(purged)"} for f in json.loads(r["fields"])]}
                for r in rows]

    # -- applications -----------------------------------------------------------------------

    def pending(self, name: str) -> list[str]:
        """Application ids waiting for a card, in queue order."""
        return [r["application_id"] for r in self._read(
            "SELECT application_id FROM applications WHERE batch = %s AND state = 'pending' "
            "ORDER BY attempts, seq", (name,))]

    def application(self, name: str, application_id: str) -> Application:
        """The validated application (until its batch's personal data is purged)."""
        rows = self._read("SELECT record FROM applications WHERE batch = %s AND "
                          "application_id = %s", (name, application_id))
        if not rows:
            raise JournalError(f"batch {name!r} has no application {application_id!r}")
        if rows[0]["record"] is None:
            raise JournalError(f"application {application_id!r} of batch {name!r}: personal "
                               "data already purged")
        key = self._data_key(name, f"application {application_id!r} of batch {name!r}")
        return load_application(unseal(key, bytes(rows[0]["record"]), "application", name,
                                       application_id))

    def applications(self, name: str) -> list[ApplicationRow]:
        """Every application's state, attempts and reasons (no personal data)."""
        return [{"application_id": r["application_id"], "line": r["line"],
                 "document_number": r["document_number"], "state": r["state"],
                 "attempts": r["attempts"], "reasons": json.loads(r["reasons"])}
                for r in self._read("SELECT application_id, line, document_number, state, "
                                    "attempts, reasons FROM applications WHERE batch = %s "
                                    "ORDER BY seq", (name,))]

    def issuance_results(self, name: str) -> list[dict[str, Any]]:
        """What became of each application, in queue order, then of each quarantined record
        (see the port; the quarantined reasons need the batch's data key until the purge)."""
        rows = self._read("SELECT " + ISSUANCE_COLUMNS + " FROM applications a "  # noqa: S608 - constants
                          + ISSUANCE_JOINS + " WHERE a.batch = %s ORDER BY a.seq", (name,))
        return [*(issuance_result(r) for r in rows),
                *(quarantine_result(q) for q in self.quarantined(name))]

    def fail_application(self, name: str, application_id: str, reason: Reason) -> None:
        """A pending application that cannot be made into a card at all: failed, with why."""
        with self._write() as cur:
            row = cur.execute("SELECT reasons FROM applications WHERE batch = %s AND "
                              "application_id = %s AND state = 'pending' FOR UPDATE",
                              (name, application_id)).fetchone()
            if row is None:
                raise JournalError(f"application {application_id!r} of batch {name!r} is not "
                                   "pending")
            reasons = [*json.loads(row["reasons"]), {"attempt": None, "card": None,
                                                     "reasons": [reason.as_dict()]}]
            cur.execute("UPDATE applications SET state = 'failed', reasons = %s WHERE "
                        "batch = %s AND application_id = %s",
                        (json.dumps(reasons, ensure_ascii=False), name, application_id))
            self._append(cur, name, None, "application.failed",
                         {"application": application_id, "reason": reason.as_dict()})

    # -- cards ------------------------------------------------------------------------------

    def begin_card(self, name: str, application_id: str, station: str,
                   line: str | None = None, *, can: str | None = None) -> CardRow:
        """A new card row in FEEDING for a pending application, whose row the server locks:
        two lines asking for the same application get one card between them; with ``line``,
        refused (:class:`NotClaimable`) when another line holds the application. One call of
        ``journal_begin_card``: the card, the application and the event in one round trip.
        With ``can``, the card's printed random CAN is sealed under the batch's data key
        (the card id bound to it) and kept in ``card_cans`` in the same transaction."""
        now = time.time()
        chain = f"line:{line}" if line else self._chain_for(name, station)
        query: LiteralString = "SELECT * FROM journal_begin_card(%s, %s, %s, %s, %s, %s, %s)"
        params = (name, application_id, station, line, now, chain, None)
        if can is None:
            rows = self._call(query, params)
        else:
            key = self._data_key(name, f"the CAN of a card of batch {name!r}")
            with self._write() as cur:
                rows = cur.execute(query, params).fetchall()
                if len(rows) == 1:
                    card_id = int(rows[0]["id"])
                    cur.execute("INSERT INTO card_cans (card, batch, sealed) VALUES (%s, %s, %s)",
                                (card_id, name, seal(key, can, "can", name, str(card_id))))
        if len(rows) != 1:
            raise JournalError(f"journal {self.where}: the new card row was not returned")
        return CardRow.from_mapping(rows[0])

    def card_access_number(self, name: str, card_id: int) -> str | None:
        """The printed random CAN kept with card ``card_id`` of batch ``name``, unsealed with
        the batch's data key (see the port)."""
        rows = self._read("SELECT sealed FROM card_cans WHERE card = %s AND batch = %s",
                          (card_id, name))
        if not rows:
            return None
        key = self._data_key(name, f"the CAN of card {card_id} of batch {name!r}")
        return unseal(key, bytes(rows[0]["sealed"]), "can", name, str(card_id))

    def move(self, card: CardRow, result: Step, *, chip_serial: str | None = None,
             qa: dict[str, Any] | None = None) -> CardRow:
        """Journal a state change of a card (and of its application when the card is done);
        the row must still be in the state ``card`` says (``UPDATE … WHERE state = old``). One
        call of ``journal_move``: card, application and event in one round trip."""
        new = result.card
        serial = chip_serial or card.chip_serial
        outcome = result.outcome
        entry = None
        if outcome in (Outcome.RETRY, Outcome.FAILED):
            entry = json.dumps({"attempt": card.attempt, "card": card.id,
                                "reasons": [r.as_dict() for r in result.reasons]},
                               ensure_ascii=False)
        params = (card.id, card.state.value, new.state.value, _reasons_json(new.reasons),
                  serial, json.dumps(qa if qa is not None else card.qa, ensure_ascii=False),
                  time.time(), outcome.value if outcome is not None else None, entry,
                  f"card.{new.state.value}",
                  json.dumps(_move_data(card, result, serial, qa), ensure_ascii=False,
                             sort_keys=True),
                  self._chain_for(card.batch, card.station), None)
        try:
            rows = self._call("SELECT * FROM journal_move(%s, %s, %s, %s, %s, %s, %s, %s, %s, "
                              "%s, %s, %s, %s)", params)
        except ConflictError as exc:  # one chip per card, one handed-out card per document
            raise ConflictError(f"card {card.id} ({card.application_id}): {exc}") from exc
        if len(rows) != 1:
            raise JournalError(f"card {card.id} is no longer {card.state.value}")
        return CardRow.from_mapping(rows[0])

    def _chain_for(self, batch: str, station: str) -> str:
        """:meth:`_chain_of` outside a transaction (the lookup is cached per station)."""
        key = (batch, station)
        if key not in self._chains:
            rows = self._read("SELECT line FROM lines WHERE batch = %s AND "
                              "stations::jsonb ? %s", (batch, station))
            if not rows:
                return JOURNAL_CHAIN
            self._chains[key] = f"line:{rows[0]['line']}"
        return self._chains[key]

    def _move(self, cur: Cursor, card: CardRow, result: Step, serial: str | None,
              qa: dict[str, Any] | None) -> CardRow:
        """``journal_move`` in Python, inside the caller's transaction."""
        new = result.card
        chain = self._chain_of(cur, card.batch, card.station)
        if new.state is State.HANDED_OUT:  # before the card's own row: the unique indexes
            self._supersede(cur, card, chain)
        changed = cur.execute(
            "UPDATE cards SET state = %s, reasons = %s, chip_serial = %s, qa = %s, "
            "updated_at = %s WHERE id = %s AND state = %s RETURNING *",
            (new.state.value, _reasons_json(new.reasons), serial,
             json.dumps(qa if qa is not None else card.qa, ensure_ascii=False),
             time.time(), card.id, card.state.value)).fetchall()
        if len(changed) != 1:
            raise JournalError(f"card {card.id} is no longer {card.state.value}")
        moved = CardRow.from_mapping(changed[0])
        if result.outcome is not None:
            self._settle_application(cur, card, result)
        data = _move_data(card, result, serial, qa)
        self._append(cur, card.batch, card.id, f"card.{new.state.value}", data, chain)
        return moved

    def _supersede(self, cur: Cursor, card: CardRow, chain: str) -> None:
        """Every other current card of ``card``'s holder superseded, each with its event (as
        ``journal_move`` does)."""
        mine = cur.execute("SELECT holder FROM cards WHERE id = %s", (card.id,)).fetchone()
        for old in cur.execute(  # two lookups, one on each partial unique index
                "UPDATE cards SET state = 'superseded' WHERE id IN (SELECT id FROM cards WHERE "
                "state = 'handed_out' AND holder = %(holder)s UNION ALL SELECT id FROM cards "
                "WHERE state = 'handed_out' AND document_number = %(number)s AND (holder IS "
                "NULL OR %(holder)s::text IS NULL)) AND id <> %(id)s RETURNING id, batch",
                {"id": card.id, "number": card.document_number,
                 "holder": mine["holder"] if mine else None}).fetchall():
            self._append(cur, old["batch"], int(old["id"]), "card.superseded",
                         {"by": card.id, "batch": card.batch}, chain)

    @staticmethod
    def _settle_application(cur: Cursor, card: CardRow, result: Step) -> None:
        key = (card.batch, card.application_id)
        outcome = result.outcome
        if outcome is Outcome.HANDED_OUT:
            cur.execute("UPDATE applications SET state = 'handed_out' WHERE batch = %s AND "
                        "application_id = %s", key)
        elif outcome is Outcome.REQUEUE:
            cur.execute("UPDATE applications SET state = 'pending', attempts = attempts - 1 "
                        "WHERE batch = %s AND application_id = %s", key)
        else:
            old = cur.execute("SELECT reasons FROM applications WHERE batch = %s AND "
                              "application_id = %s FOR UPDATE", key).fetchone()
            reasons = [*json.loads(old["reasons"] if old else "[]"),
                       {"attempt": card.attempt, "card": card.id,
                        "reasons": [r.as_dict() for r in result.reasons]}]
            state = "pending" if outcome is Outcome.RETRY else "failed"
            cur.execute("UPDATE applications SET state = %s, reasons = %s WHERE batch = %s "
                        "AND application_id = %s",
                        (state, json.dumps(reasons, ensure_ascii=False), *key))

    def _cards(self, which: str, params: Sequence[Any]) -> list[CardRow]:
        return [CardRow.from_mapping(r) for r in self._read(_CARD_QUERIES[which], params)]

    def cards(self, name: str) -> list[CardRow]:
        """Every card fed (or being fed) for a batch, in order."""
        return self._cards("batch", (name,))

    def open_cards(self, name: str) -> list[CardRow]:
        """Cards not yet in a terminal state: after a crash, the ones in doubt."""
        return self._cards("open", (name,))

    def card_by_chip(self, chip_serial: str) -> CardRow | None:
        """The card that holds this chip, in any batch."""
        found = self._cards("chip", (chip_serial,))
        return found[0] if found else None

    def stock(self, name: str) -> dict[str, int]:
        """Blank stock of a batch by what became of each chip serial fed."""
        counts = dict.fromkeys(("fed", "handed_out", "rejected", "in_machine"), 0)
        for row in self._read("SELECT state, count(*) AS n FROM cards WHERE batch = %s AND "
                              "chip_serial IS NOT NULL GROUP BY state", (name,)):
            counts["fed"] += row["n"]
            key = "handed_out" if State(row["state"]).issued else \
                row["state"] if row["state"] == "rejected" else "in_machine"
            counts[key] += row["n"]
        return counts

    # -- stations ---------------------------------------------------------------------------

    def station_counter(self, name: str, station: str, *, before_feed: int | None = None,
                        now: int | None = None) -> None:
        """Record a printer's inserted-cards counter: before its first feed of the batch, and
        the latest reading."""
        self._write1("INSERT INTO stations (batch, station, counter_start, counter_last) "
                     "VALUES (%s, %s, %s, %s) ON CONFLICT (batch, station) DO UPDATE SET "
                     "counter_start = coalesce(stations.counter_start, EXCLUDED.counter_start),"
                     " counter_last = coalesce(EXCLUDED.counter_last, stations.counter_last)",
                     (name, station, before_feed, now))

    def set_alarm(self, name: str, station: str, alarm: str | None) -> None:
        """Raise (text) or clear (None) a station's alarm."""
        with self._write() as cur:
            cur.execute("INSERT INTO stations (batch, station, alarm) VALUES (%s, %s, %s) "
                        "ON CONFLICT (batch, station) DO UPDATE SET alarm = EXCLUDED.alarm",
                        (name, station, alarm))
            self._append(cur, name, None, "station.alarm" if alarm else "station.cleared",
                         {"station": station, "alarm": alarm}, self._chain_of(cur, name, station))

    def stations(self, name: str) -> list[StationRow]:
        """Each station of a batch: printer counters, alarm and live state."""
        return [{"station": r["station"], "counter_start": r["counter_start"],
                 "counter_last": r["counter_last"], "alarm": r["alarm"],
                 "live": json.loads(r["live"]) if r["live"] else None, "live_at": r["live_at"]}
                for r in self._read("SELECT station, counter_start, counter_last, alarm, live, "
                                    "live_at FROM stations WHERE batch = %s ORDER BY station",
                                    (name,))]

    def set_station_live(self, name: str, station: str, live: dict[str, Any]) -> None:
        """Publish what a station is doing now (no event; one short write)."""
        self._write1("INSERT INTO stations (batch, station, live, live_at) VALUES "
                     "(%s, %s, %s, %s) ON CONFLICT (batch, station) DO UPDATE SET "
                     "live = EXCLUDED.live, live_at = EXCLUDED.live_at",
                     (name, station, json.dumps(live, sort_keys=True), _now()))

    # -- lines sharing a batch ----------------------------------------------------------------

    def join_line(self, name: str, line: str, *, stations: Sequence[str], holder: str) -> None:
        """The line runs the batch from now on (see the port); the batch's row is locked so
        two lines joining at once see each other's stations."""
        with self._write() as cur:
            if cur.execute("SELECT 1 FROM batches WHERE name = %s FOR UPDATE",
                           (name,)).fetchone() is None:
                raise JournalError(f"no batch named {name!r} (see `cardline batch status`)")
            no_station_clash(name, [(r["line"], json.loads(r["stations"])) for r in cur.execute(
                "SELECT line, stations FROM lines WHERE batch = %s AND line != %s",
                (name, line)).fetchall()], stations)
            cur.execute("INSERT INTO lines (batch, line, holder, stations, started_at, "
                        "heartbeat) VALUES (%s, %s, %s, %s, %s, journal_now()) ON CONFLICT "
                        "(batch, line) DO UPDATE SET holder = excluded.holder, stations = "
                        "excluded.stations, started_at = excluded.started_at, heartbeat = "
                        "excluded.heartbeat, left_at = NULL",
                        (name, line, holder, json.dumps(sorted(stations)), _now()))
            self._anchor(cur, name, "line.joined", line, {"stations": sorted(stations)})

    def heartbeat(self, name: str, line: str) -> None:
        """The line's lease runs on from now: every lease is timed by the server's clock
        (``journal_now()``), so lines on machines whose clocks differ agree on it."""
        self._write1("UPDATE lines SET heartbeat = journal_now() WHERE batch = %s AND "
                     "line = %s", (name, line))

    def leave_line(self, name: str, line: str, run: str) -> None:
        """The run ended: its unstarted claims go back to the pool, its lease ends."""
        with self._write() as cur:
            cur.execute("UPDATE applications SET claimed_by = NULL, claim_run = NULL WHERE "
                        "batch = %s AND claimed_by = %s AND state = 'pending'", (name, line))
            cur.execute("UPDATE lines SET left_at = %s WHERE batch = %s AND line = %s",
                        (_now(), name, line))
            self._anchor(cur, name, "line.left", line, {})

    def claim(self, name: str, line: str, run: str, count: int, lease_s: float) -> list[str]:
        """Pending applications for this run, in queue order (see the port): rows another
        line is claiming at this instant are skipped (``SKIP LOCKED``), never waited for."""
        if count <= 0:
            return []
        # one statement, its own transaction: one round trip
        rows = self._call(
            # no outer join here: when a row another line has just claimed is re-checked
            # under its lock, a joined lease row would stay the stale one; the subquery
            # is evaluated again against the row as it now is
            "WITH pick AS ("
            " SELECT a.batch, a.application_id FROM applications a"
            " WHERE a.batch = %(batch)s AND a.state = 'pending'"
            "  AND a.claim_run IS DISTINCT FROM %(run)s"
            "  AND (a.claimed_by IS NULL OR a.claimed_by = %(line)s OR NOT EXISTS ("
            "   SELECT 1 FROM lines l WHERE l.batch = a.batch AND l.line = a.claimed_by"
            "    AND l.left_at IS NULL AND l.heartbeat >= journal_now() - %(lease)s))"
            " ORDER BY a.attempts, a.seq LIMIT %(count)s FOR UPDATE OF a SKIP LOCKED)"
            " UPDATE applications x SET claimed_by = %(line)s, claim_run = %(run)s"
            " FROM pick WHERE x.batch = pick.batch"
            "  AND x.application_id = pick.application_id"
            " RETURNING x.application_id, x.attempts, x.seq",
            {"batch": name, "run": run, "line": line, "lease": lease_s, "count": count})
        return [r["application_id"] for r in sorted(rows, key=lambda r: (r["attempts"],
                                                                         r["seq"]))]

    def lines(self, name: str, lease_s: float) -> list[LineRow]:
        """Every line that has run the batch, with its lease (by the server's clock) and
        holdings."""
        claimed = {r["claimed_by"]: int(r["n"]) for r in self._read(
            "SELECT claimed_by, count(*) AS n FROM applications WHERE batch = %s AND "
            "state = 'pending' AND claimed_by IS NOT NULL GROUP BY claimed_by", (name,))}
        open_by_station = {r["station"]: int(r["n"]) for r in self._read(
            "SELECT station, count(*) AS n FROM cards WHERE batch = %s AND state NOT IN "
            "('handed_out', 'rejected', 'void', 'superseded') GROUP BY station", (name,))}
        return [line_row(r, json.loads(r["stations"]), float(r["age"]), lease_s, claimed,
                         open_by_station)
                for r in self._read("SELECT *, journal_now() - heartbeat AS age FROM lines "
                                    "WHERE batch = %s ORDER BY line", (name,))]

    def abandon_line(self, name: str, line: str, by: str, lease_s: float) -> list[int]:
        """Spoil a dead line's cards in doubt and requeue them (see the port)."""
        with self._write() as cur:
            row = cur.execute("SELECT stations, left_at, journal_now() - heartbeat AS age "
                              "FROM lines WHERE batch = %s AND line = %s FOR UPDATE",
                              (name, line)).fetchone()
            if row is None:
                raise JournalError(f"line {line!r} has never run batch {name!r}")
            if row["left_at"] is None and float(row["age"]) < lease_s:
                raise JournalError(f"line {line!r} is alive (it heartbeat within {lease_s:g} s):"
                                   " stop it before declaring its machines emptied")
            stations = json.loads(row["stations"])
            cards = [CardRow.from_mapping(r) for r in cur.execute(
                "SELECT * FROM cards WHERE batch = %s AND station = ANY(%s) AND state NOT IN "
                "('handed_out', 'rejected', 'void', 'superseded') ORDER BY id FOR UPDATE",
                (name, stations)).fetchall()]
            batch = cur.execute("SELECT max_attempts FROM batches WHERE name = %s",
                                (name,)).fetchone()
            max_attempts = int(batch["max_attempts"]) if batch else 1
            reason = Reason(Code.LINE_ABANDONED, {"line": line, "by": by})
            for card in cards:
                self._move(cur, card, spoiled(card.machine(max_attempts), reason),
                           card.chip_serial, None)
            cur.execute("UPDATE applications SET claimed_by = NULL, claim_run = NULL WHERE "
                        "batch = %s AND claimed_by = %s AND state = 'pending'", (name, line))
            self._append(cur, name, None, "line.abandoned",
                         {"line": line, "by": by, "cards": [c.id for c in cards]})
        return [c.id for c in cards]

    # -- run control ------------------------------------------------------------------------

    def request_control(self, name: str, action: str, by: str) -> None:
        """Ask the running controller of ``name`` to pause, resume or stop (see the port)."""
        control_action(action)
        with self._write() as cur:
            if cur.execute("SELECT 1 FROM batches WHERE name = %s", (name,)).fetchone() is None:
                raise JournalError(f"no batch named {name!r} (see `cardline batch status`)")
            cur.execute("INSERT INTO run_control (batch, requested, requested_by, "
                        "requested_at, obeyed) VALUES (%s, %s, %s, %s, FALSE) ON CONFLICT "
                        "(batch) DO UPDATE SET requested = EXCLUDED.requested, "
                        "requested_by = EXCLUDED.requested_by, "
                        "requested_at = EXCLUDED.requested_at, obeyed = FALSE",
                        (name, action, by, _now()))
            self._append(cur, name, None, "run.control", {"action": action, "by": by})

    def control(self, name: str, line: str | None = None) -> str | None:
        """The latest requested action not yet acknowledged (by ``line``; see the port)."""
        if line is None:
            rows = self._read("SELECT requested FROM run_control WHERE batch = %s AND "
                              "NOT obeyed", (name,))
        else:
            rows = self._read("SELECT r.requested FROM run_control r LEFT JOIN "
                              "run_control_seen s ON s.batch = r.batch AND s.line = %s "
                              "WHERE r.batch = %s AND "
                              "s.requested_at IS DISTINCT FROM r.requested_at", (line, name))
        return str(rows[0]["requested"]) if rows else None

    def ack_control(self, name: str, action: str, line: str | None = None) -> None:
        """The controller carried out ``action`` (for ``line``; see the port)."""
        control_action(action)
        with self._write() as cur:
            if line is None:
                if cur.execute("UPDATE run_control SET obeyed = TRUE WHERE batch = %s AND "
                               "requested = %s AND NOT obeyed", (name, action)).rowcount:
                    self._append(cur, name, None, "run.obeyed", {"action": action})
                return
            row = cur.execute("SELECT requested_at FROM run_control WHERE batch = %s AND "
                              "requested = %s FOR UPDATE", (name, action)).fetchone()
            if row is None or cur.execute(
                    "SELECT 1 FROM run_control_seen WHERE batch = %s AND line = %s AND "
                    "requested_at = %s", (name, line, row["requested_at"])).fetchone():
                return
            cur.execute("INSERT INTO run_control_seen (batch, line, requested_at) VALUES "
                        "(%s, %s, %s) ON CONFLICT (batch, line) DO UPDATE SET "
                        "requested_at = EXCLUDED.requested_at",
                        (name, line, row["requested_at"]))
            cur.execute("UPDATE run_control SET obeyed = TRUE WHERE batch = %s", (name,))
            self._append(cur, name, None, "run.obeyed", {"action": action, "line": line})

    # -- closing and purging ----------------------------------------------------------------

    def close_batch(self, name: str, retention_days: int) -> bool:
        """Close a finished batch (no card open, no application pending); purge its personal
        data now (retention 0) or mark when it is due. Returns False when not finished."""
        info = self.batch(name)
        if info.state == "closed":
            return True
        if not info.finished or self.open_cards(name):
            return False
        closed, stock = datetime.now(UTC), self.stock(name)
        with self._write() as cur:
            # lines finishing together close it once: only the one that flips the state
            if cur.execute("UPDATE batches SET state = 'closed', closed_at = %s, purge_after = "
                           "%s WHERE name = %s AND state = 'open'", (closed.isoformat(), (
                               closed + timedelta(days=retention_days)).isoformat(),
                               name)).rowcount:
                self._append(cur, name, None, "batch.closed",
                             {"applications": info.applications, "stock": stock})
        if retention_days == 0:
            self.purge(name)
        return True

    def purge_due(self, at: datetime | None = None, *,
                  wait_s: float | None = None) -> list[str]:
        """Purge every closed batch whose retention has run out; returns their names."""
        moment = (at or datetime.now(UTC)).isoformat()
        due = [r["name"] for r in self._read(
            "SELECT name FROM batches WHERE state = 'closed' AND purged_at IS NULL AND "
            "purge_after <= %s ORDER BY name", (moment,))]
        for name in due:
            self._purge(name)
        return due

    def purge(self, name: str, *, wait_s: float | None = None) -> None:
        """Drop a closed batch's personal data by crypto-shredding (see :meth:`_purge`);
        ``wait_s`` is not needed here: this purge never waits and is never incomplete."""
        if self.batch(name).state != "closed":
            raise JournalError(f"batch {name!r} is not closed: personal data is still needed")
        self._purge(name)

    def _purge(self, name: str) -> None:
        """Crypto-shredding in two steps. First the wrap destroys the batch's wrapping key
        (in the HSM): old row versions in the data files, WAL segments and backups still
        hold the wrapped data key and the ciphertexts, but nothing can unwrap it any more.
        Then one transaction deletes the wrapped key, nulls the ciphertexts and marks the
        batch purged. A failure at either step leaves the batch not marked purged and due,
        so the next purge does both again (``destroy`` is idempotent). Unlike SQLite (which
        must wait for other readers to let go of its log) this never raises
        :class:`PurgeIncompleteError`. Without a wrap it purges nothing and raises
        :class:`JournalError`: deleting the rows alone would leave a live key that opens the
        old copies."""
        self._destroy_wrapping_key(name)
        with self._write() as cur:
            cur.execute("DELETE FROM batch_keys WHERE batch = %s", (name,))
            cur.execute("DELETE FROM card_cans WHERE batch = %s", (name,))
            cur.execute("UPDATE applications SET record = NULL WHERE batch = %s AND "
                        "record IS NOT NULL", (name,))
            cur.execute("UPDATE quarantine SET errors_sealed = NULL WHERE batch = %s AND "
                        "errors_sealed IS NOT NULL", (name,))
            count = cur.execute("SELECT count(*) AS n FROM applications WHERE batch = %s",
                                (name,)).fetchone()
            # lines purging together (retention 0) mark it and say so once
            if cur.execute("UPDATE batches SET purged_at = %s WHERE name = %s AND purged_at IS "
                           "NULL", (_now(), name)).rowcount:
                self._append(cur, name, None, "batch.purged",
                             {"applications": count["n"] if count else 0})
        self._forget(name)

    def _destroy_wrapping_key(self, name: str) -> None:
        if self._wrap is None:
            raise JournalError(f"journal {self.where}: purging batch {name!r} destroys its "
                               "wrapping key in the HSM; this journal was opened without a key "
                               "wrap, so nothing was purged")
        try:
            self._wrap.destroy(name)
        except Exception as exc:
            raise JournalError(f"batch {name!r}: cannot destroy its wrapping key "
                               f"({type(exc).__name__}); nothing was purged, the next purge "
                               "tries again") from exc
