"""The journal's SQLite schema, as numbered migrations: (number, title, statements).

The SQLite adapter applies the ones a file lacks in one write transaction
(``common.sqlite.migrate``) and records the number in ``PRAGMA user_version`` there. Never
edit a migration that has shipped: add the next one.
"""

from __future__ import annotations

from common.sqlite import Migration
from personalization.journal.records import GENESIS

MIGRATIONS: list[Migration] = [
    (1, "batches, applications, cards, stations, hash-chained events", (
        """CREATE TABLE batches (
            name TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            source TEXT NOT NULL,
            profile TEXT NOT NULL,
            max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
            state TEXT NOT NULL CHECK (state IN ('open', 'closed')),
            closed_at TEXT,
            purge_after TEXT,
            purged_at TEXT)""",
        """CREATE TABLE applications (
            batch TEXT NOT NULL REFERENCES batches(name),
            application_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            line INTEGER NOT NULL,
            document_number TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'handed_out', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            reasons TEXT NOT NULL DEFAULT '[]',
            record TEXT,
            PRIMARY KEY (batch, application_id))""",
        "CREATE INDEX applications_queue ON applications(batch, state, seq)",
        """CREATE TABLE quarantine (
            batch TEXT NOT NULL REFERENCES batches(name),
            line INTEGER NOT NULL,
            application_id TEXT,
            errors TEXT NOT NULL,
            PRIMARY KEY (batch, line))""",
        """CREATE TABLE cards (
            id INTEGER PRIMARY KEY,
            batch TEXT NOT NULL REFERENCES batches(name),
            application_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            station TEXT NOT NULL,
            chip_serial TEXT UNIQUE,
            document_number TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('feeding', 'encoding', 'verifying', 'printing',
                'ejecting', 'rejecting', 'handed_out', 'rejected', 'void')),
            reasons TEXT NOT NULL DEFAULT '[]',
            qa TEXT,
            started_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            FOREIGN KEY (batch, application_id) REFERENCES applications(batch, application_id))""",
        # A document number belongs to exactly one handed-out card, an application to one.
        "CREATE UNIQUE INDEX one_card_per_document ON cards(document_number) "
        "WHERE state = 'handed_out'",
        "CREATE UNIQUE INDEX one_card_per_application ON cards(batch, application_id) "
        "WHERE state = 'handed_out'",
        "CREATE INDEX cards_open ON cards(batch, state)",
        """CREATE TABLE stations (
            batch TEXT NOT NULL REFERENCES batches(name),
            station TEXT NOT NULL,
            counter_start INTEGER,
            counter_last INTEGER,
            alarm TEXT,
            PRIMARY KEY (batch, station))""",
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            batch TEXT,
            card INTEGER,
            kind TEXT NOT NULL,
            data TEXT NOT NULL,
            prev TEXT NOT NULL,
            hash TEXT NOT NULL)""",
        "CREATE INDEX events_batch ON events(batch, seq)",
        """CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
           BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END""",
        """CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
           BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END""",
    )),
    (2, "chain head: event numbers and hashes handed out from one row", (
        """CREATE TABLE chain_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL)""",
        f"""INSERT INTO chain_head (id, seq, hash)
            SELECT 1, coalesce(max(seq), 0),
                   coalesce((SELECT hash FROM events ORDER BY seq DESC LIMIT 1), '{GENESIS}')
            FROM events""",  # noqa: S608 - a constant
        # the head only ever moves one event forward, and each new event is the head
        """CREATE TRIGGER chain_head_forward BEFORE UPDATE ON chain_head
           WHEN NEW.seq != OLD.seq + 1 OR NEW.id != OLD.id
           BEGIN SELECT RAISE(ABORT, 'the chain head moves one event at a time'); END""",
        """CREATE TRIGGER chain_head_kept BEFORE DELETE ON chain_head
           BEGIN SELECT RAISE(ABORT, 'the chain head is never deleted'); END""",
        """CREATE TRIGGER events_follow_the_head BEFORE INSERT ON events
           WHEN NEW.seq IS NOT (SELECT seq FROM chain_head WHERE id = 1)
             OR NEW.hash IS NOT (SELECT hash FROM chain_head WHERE id = 1)
           BEGIN SELECT RAISE(ABORT, 'an event must be the chain head'); END""",
    )),
    (3, "run control from other processes, each station's live state", (
        """CREATE TABLE run_control (
            batch TEXT PRIMARY KEY REFERENCES batches(name),
            requested TEXT NOT NULL CHECK (requested IN ('pause', 'resume', 'stop')),
            requested_by TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            obeyed INTEGER NOT NULL DEFAULT 0)""",
        "ALTER TABLE stations ADD COLUMN live TEXT",
        "ALTER TABLE stations ADD COLUMN live_at TEXT",
    )),
    (4, "chunked imports: a batch being imported, its progress and its unique keys", (
        # A batch with a row here is still being imported: not runnable, not finished.
        """CREATE TABLE imports (
            batch TEXT PRIMARY KEY REFERENCES batches(name),
            started_at TEXT NOT NULL,
            lines INTEGER NOT NULL DEFAULT 0,
            bytes INTEGER NOT NULL DEFAULT 0,
            digest TEXT NOT NULL,
            next_seq INTEGER NOT NULL DEFAULT 0,
            accepted INTEGER NOT NULL DEFAULT 0,
            quarantined INTEGER NOT NULL DEFAULT 0)""",
        # digests of the values that must be unique in one file, with their first line
        """CREATE TABLE import_keys (
            batch TEXT NOT NULL REFERENCES imports(batch),
            key BLOB NOT NULL,
            line INTEGER NOT NULL,
            PRIMARY KEY (batch, key)) WITHOUT ROWID""",
        # the document-number check of each chunk, without a scan of every application
        "CREATE INDEX applications_document ON applications(document_number)",
    )),
    (5, "lines sharing a batch: each line's lease and stations, claims on applications", (
        # the line (and its run) holding a pending or active application; NULL: in the pool
        "ALTER TABLE applications ADD COLUMN claimed_by TEXT",
        "ALTER TABLE applications ADD COLUMN claim_run TEXT",
        "CREATE INDEX applications_claims ON applications(batch, claimed_by)",
        # heartbeat: seconds since the epoch, by the clock of the machine that wrote it
        """CREATE TABLE lines (
            batch TEXT NOT NULL REFERENCES batches(name),
            line TEXT NOT NULL,
            holder TEXT NOT NULL,
            stations TEXT NOT NULL,
            started_at TEXT NOT NULL,
            heartbeat REAL NOT NULL,
            left_at TEXT,
            PRIMARY KEY (batch, line))""",
    )),
    (6, "each line's acknowledgement of run control, so every line obeys each request", (
        """CREATE TABLE run_control_seen (
            batch TEXT NOT NULL REFERENCES batches(name),
            line TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            PRIMARY KEY (batch, line))""",
    )),
    (7, "people: accounts with roles, officers' shares of the CSCA token PIN, signed checkpoints "
        "of the event chain", (
        # passphrase: an Argon2id PHC string, never the passphrase; roles: a JSON list
        """CREATE TABLE accounts (
            name TEXT PRIMARY KEY,
            roles TEXT NOT NULL,
            passphrase TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
            failures INTEGER NOT NULL DEFAULT 0,
            locked_until TEXT,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            changed_at TEXT NOT NULL)""",
        # one officer's share of a token's PIN, sealed under that officer's own passphrase;
        # a re-split writes a new generation, the latest one is the one in force
        """CREATE TABLE key_shares (
            token TEXT NOT NULL,
            generation INTEGER NOT NULL,
            officer TEXT NOT NULL REFERENCES accounts(name),
            quorum INTEGER NOT NULL CHECK (quorum >= 2),
            share BLOB NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (token, generation, officer))""",
        "CREATE TRIGGER key_shares_kept_update BEFORE UPDATE ON key_shares "
        "BEGIN SELECT RAISE(ABORT, 'key shares are never rewritten: re-split'); END",
        # the chain head at seq, signed (CMS, DER) by the audit key in the HSM
        """CREATE TABLE audit_checkpoints (
            chain TEXT NOT NULL DEFAULT 'journal',
            seq INTEGER NOT NULL,
            head TEXT NOT NULL,
            at TEXT NOT NULL,
            key_label TEXT NOT NULL,
            signature BLOB NOT NULL,
            PRIMARY KEY (chain, seq))""",
        # a login's session: only the SHA-256 of its random token is kept
        """CREATE TABLE sessions (
            token_hash TEXT PRIMARY KEY,
            account TEXT NOT NULL REFERENCES accounts(name),
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            ended_at TEXT)""",
        # the certificate of each audit key (the key stays in the HSM)
        """CREATE TABLE audit_keys (
            label TEXT PRIMARY KEY,
            certificate BLOB NOT NULL,
            created_at TEXT NOT NULL)""",
        "CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints "
        "BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END",
        "CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints "
        "BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END",
    )),
    (8, "the registry's boundary: signed batches received, every DS signature, issuance "
        "results sent back", (
        # each signed batch file the registry sent, by the registry's own batch id: a second
        # file with an id already here is a replay
        """CREATE TABLE registry_batches (
            id TEXT PRIMARY KEY,
            batch TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            signer TEXT NOT NULL,
            encrypted INTEGER NOT NULL CHECK (encrypted IN (0, 1)),
            received_at TEXT NOT NULL)""",
        # the registry batch a cardline batch came from; NULL: accepted unsigned (embedded)
        "ALTER TABLE batches ADD COLUMN registry TEXT",
        # each EF.SOD a DS key signed, recorded before it leaves the process that signed it
        """CREATE TABLE ds_signatures (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            ds TEXT NOT NULL,
            document_number TEXT NOT NULL,
            batch TEXT,
            application_id TEXT,
            command TEXT NOT NULL)""",
        "CREATE INDEX ds_signatures_ds ON ds_signatures(ds, id)",
        "CREATE TRIGGER ds_signatures_no_update BEFORE UPDATE ON ds_signatures "
        "BEGIN SELECT RAISE(ABORT, 'signature records are append-only'); END",
        "CREATE TRIGGER ds_signatures_no_delete BEFORE DELETE ON ds_signatures "
        "BEGIN SELECT RAISE(ABORT, 'signature records are append-only'); END",
        # a closed batch's signed issuance results, made once: the same bytes every time after
        """CREATE TABLE batch_results (
            batch TEXT PRIMARY KEY REFERENCES batches(name),
            sha256 TEXT NOT NULL,
            document BLOB NOT NULL,
            created_at TEXT NOT NULL)""",
        "CREATE TRIGGER batch_results_no_update BEFORE UPDATE ON batch_results "
        "BEGIN SELECT RAISE(ABORT, 'issuance results are written once'); END",
        "CREATE TRIGGER batch_results_no_delete BEFORE DELETE ON batch_results "
        "BEGIN SELECT RAISE(ABORT, 'issuance results are written once'); END",
    )),
    (9, "kinds of application and one current card per person: each application's holder, "
        "kind, dates and the card it supersedes; cards superseded by their holder's next", (
        # holder: the 12-digit personal ID, the key of the lifetime rule, so it outlives the
        # purge (as document_number, its last 9 digits, always did)
        "ALTER TABLE applications ADD COLUMN holder TEXT",
        "ALTER TABLE applications ADD COLUMN kind TEXT NOT NULL DEFAULT 'first' "
        "CHECK (kind IN ('first', 'renewal', 'replacement'))",
        "ALTER TABLE applications ADD COLUMN issue_date TEXT",
        "ALTER TABLE applications ADD COLUMN expiry_date TEXT",
        # the card it replaces, resolved at intake (NULL: a first issue, or the earlier card
        # predates cardline)
        "ALTER TABLE applications ADD COLUMN supersedes_card INTEGER",
        "ALTER TABLE applications ADD COLUMN predates INTEGER NOT NULL DEFAULT 0 "
        "CHECK (predates IN (0, 1))",
        # what the records not yet purged say (purged ones stay NULL)
        "UPDATE applications SET holder = json_extract(record, '$.personal_id'), "
        "issue_date = json_extract(record, '$.issue_date'), "
        "expiry_date = json_extract(record, '$.expiry_date') WHERE record IS NOT NULL",
        "CREATE INDEX applications_holder ON applications(holder)",
        # A CHECK cannot be altered in SQLite: the table is made anew with the new state and
        # the holder (sqlite.org/lang_altertable.html#otheralter); no table, trigger or view
        # refers to cards, and its rows keep their ids.
        """CREATE TABLE cards_v9 (
            id INTEGER PRIMARY KEY,
            batch TEXT NOT NULL REFERENCES batches(name),
            application_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            station TEXT NOT NULL,
            chip_serial TEXT UNIQUE,
            document_number TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('feeding', 'encoding', 'verifying', 'printing',
                'ejecting', 'rejecting', 'handed_out', 'rejected', 'void', 'superseded')),
            reasons TEXT NOT NULL DEFAULT '[]',
            qa TEXT,
            started_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            holder TEXT,
            FOREIGN KEY (batch, application_id) REFERENCES applications(batch, application_id))""",
        """INSERT INTO cards_v9 (id, batch, application_id, attempt, station, chip_serial,
                document_number, state, reasons, qa, started_at, updated_at, holder)
           SELECT c.id, c.batch, c.application_id, c.attempt, c.station, c.chip_serial,
                c.document_number, c.state, c.reasons, c.qa, c.started_at, c.updated_at,
                a.holder
           FROM cards c LEFT JOIN applications a
                ON a.batch = c.batch AND a.application_id = c.application_id""",
        "DROP TABLE cards",
        "ALTER TABLE cards_v9 RENAME TO cards",
        "CREATE UNIQUE INDEX one_card_per_document ON cards(document_number) "
        "WHERE state = 'handed_out'",
        "CREATE UNIQUE INDEX one_card_per_application ON cards(batch, application_id) "
        "WHERE state = 'handed_out'",
        "CREATE INDEX cards_open ON cards(batch, state)",
        # at most one current card per person, whatever its document number
        "CREATE UNIQUE INDEX one_current_card_per_holder ON cards(holder) "
        "WHERE state = 'handed_out'",
    )),
    (10, "application records in a table of their own: SQLite rewrites a whole row on any "
         "update, overflow pages and all, so every claim and state change of an application "
         "wrote its record (portrait included) again, some 20 pages a transaction", (
        """CREATE TABLE application_records (
            batch TEXT NOT NULL,
            application_id TEXT NOT NULL,
            record TEXT NOT NULL,
            PRIMARY KEY (batch, application_id),
            FOREIGN KEY (batch, application_id) REFERENCES applications(batch, application_id))""",
        "INSERT INTO application_records (batch, application_id, record) "
        "SELECT batch, application_id, record FROM applications WHERE record IS NOT NULL",
        "ALTER TABLE applications DROP COLUMN record",
    )),
    (11, "the cards of a batch found by their batch alone: an index on (batch, state) moved "
         "each card's entry at every state change, one or two more pages per transaction", (
        "CREATE INDEX cards_batch ON cards(batch)",
        "DROP INDEX cards_open",
    )),
    (12, "a printed random CAN kept with its card (the PACE password of its chip, printed on "
         "its face), in a table of its own deleted with the application records at the purge", (
        """CREATE TABLE card_cans (
            card INTEGER PRIMARY KEY REFERENCES cards(id),
            batch TEXT NOT NULL,
            can TEXT NOT NULL)""",
        "CREATE INDEX card_cans_batch ON card_cans(batch)",
    )),
]

LATEST = MIGRATIONS[-1][0]
