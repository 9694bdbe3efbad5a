"""The journal's PostgreSQL schema, as numbered migrations: (number, title, statements).

The PostgreSQL adapter applies the ones a database lacks in one transaction, under an advisory
lock so that processes opening at once migrate once, and records the number in the one-row
``journal_schema`` table. The tables are those of the SQLite schema's v4, with three changes:
personal fields are ciphertext (``record``, ``errors_sealed``) under a per-batch data key kept
only wrapped (``batch_keys``); the rules SQLite keeps in triggers are PL/pgSQL triggers; and
the role the lines connect as (:data:`LINE_ROLE`, which must exist before the first
migration) is granted what a line does and no more — never UPDATE, DELETE or TRUNCATE on the
event log. Never edit a migration that has shipped: add the next one.
"""

from __future__ import annotations

from personalization.journal.records import GENESIS

Migration = tuple[int, str, tuple[str, ...]]
LINE_ROLE = "cardline_line"
MIGRATION_LOCK = 0x63617264_6A726E6C  # pg_advisory_xact_lock key: "card" "jrnl"

# The table the version lives in exists before any migration (the adapter creates it under
# the migration lock), so a database can say which version it is at.
SCHEMA_TABLE = """CREATE TABLE IF NOT EXISTS journal_schema (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL)"""

_REFUSE = """CREATE FUNCTION journal_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation';
END $$"""

_HEAD_FORWARD = """CREATE FUNCTION chain_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq <> OLD.seq + 1 OR NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'the chain head moves one event at a time'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$"""

_FOLLOW_HEAD = """CREATE FUNCTION events_follow_the_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM chain_head WHERE id = 1 AND seq = NEW.seq
                   AND hash = NEW.hash) THEN
        RAISE EXCEPTION 'an event must be the chain head'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$"""

# A key's identity never changes and its status only moves on: active -> retired -> revoked
# (a retired DS is never made active again; cards it signed stay valid).
_KEY_STATUS_FORWARD = """CREATE FUNCTION hsm_key_status_forward() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.label, NEW.key_id, NEW.role, NEW.algorithm, NEW.certificate, NEW.not_before,
        NEW.not_after, NEW.max_documents, NEW.created_at, NEW.officers)
       IS DISTINCT FROM (OLD.label, OLD.key_id, OLD.role, OLD.algorithm, OLD.certificate,
        OLD.not_before, OLD.not_after, OLD.max_documents, OLD.created_at, OLD.officers) THEN
        RAISE EXCEPTION 'a key''s identity and bounds never change'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.status <> OLD.status AND NOT (OLD.status = 'active' OR
                                         (OLD.status = 'retired' AND NEW.status = 'revoked')) THEN
        RAISE EXCEPTION 'a key''s status only moves on (active, retired, revoked)'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$"""

_LINE_TABLES = "batches, applications, quarantine, stations, run_control, imports, " \
               "import_keys, batch_keys"

_FOLLOW_THEIR_HEAD = """CREATE FUNCTION events_follow_their_head() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM chain_heads WHERE chain = NEW.chain AND seq = NEW.seq
                   AND hash = NEW.hash) THEN
        RAISE EXCEPTION 'an event must be the head of its chain'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$"""

_HEADS_FORWARD = """CREATE FUNCTION chain_heads_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq <> OLD.seq + 1 OR NEW.chain <> OLD.chain THEN
        RAISE EXCEPTION 'a chain head moves one event at a time'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$"""

_HEAD_STARTS = f"""CREATE FUNCTION chain_heads_start() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq <> 0 OR NEW.hash <> '{GENESIS}' THEN
        RAISE EXCEPTION 'a new chain starts at its genesis'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$"""


# The event hash of records.event_hash, computed by the server: SHA-256 over the JSON array
# [prev, seq, at, batch, card, kind, data] with no spaces and non-ASCII kept as is. Python's
# json and PostgreSQL's to_json escape a string alike (\" \\ \b \f \n \r \t, other
# control characters as \u00xx, nothing else); a test holds them to it, and verify_chain
# re-hashes in Python.
_EVENT_HASH = """CREATE FUNCTION journal_event_hash(prev text, seq bigint, at text, batch text,
    card bigint, kind text, data text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to('[' || to_json(prev)::text || ',' || seq::text || ','
        || to_json(at)::text || ',' || coalesce(to_json(batch)::text, 'null') || ','
        || coalesce(card::text, 'null') || ',' || to_json(kind)::text || ','
        || to_json(data)::text || ']', 'UTF8')), 'hex')
$$"""

_APPEND = f"""CREATE FUNCTION journal_append(p_chain text, p_batch text, p_card bigint,
    p_kind text, p_data text, p_at text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    head record;
    next_seq bigint;
    digest text;
    stamp text;
BEGIN
    SELECT seq, hash INTO head FROM chain_heads WHERE chain = p_chain FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO chain_heads (chain, seq, hash) VALUES (p_chain, 0, '{GENESIS}')
            ON CONFLICT DO NOTHING;
        SELECT seq, hash INTO head FROM chain_heads WHERE chain = p_chain FOR UPDATE;
    END IF;
    next_seq := head.seq + 1;
    -- the moment is read under the head's lock, so a chain's events are in time order too
    stamp := coalesce(p_at, to_char(clock_timestamp() AT TIME ZONE 'UTC',
                                    'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'));
    digest := journal_event_hash(head.hash, next_seq, stamp, p_batch, p_card, p_kind, p_data);
    UPDATE chain_heads SET seq = next_seq, hash = digest WHERE chain = p_chain;
    INSERT INTO events (chain, seq, at, batch, card, kind, data, prev, hash)
        VALUES (p_chain, next_seq, stamp, p_batch, p_card, p_kind, p_data, head.hash, digest);
    RETURN next_seq;
END $$"""  # noqa: S608 - GENESIS is a constant


# A card's state change, its application's fate and its event, in one call (one round trip,
# one implicit transaction): the same rules as the adapter's Python path. No row when the card
# is no longer in the state the caller saw.
_MOVE = """CREATE FUNCTION journal_move(p_id bigint, p_from text, p_to text, p_reasons text,
    p_chip text, p_qa text, p_now double precision, p_outcome text, p_entry text,
    p_kind text, p_data text, p_chain text, p_at text) RETURNS SETOF cards
LANGUAGE plpgsql AS $$
DECLARE
    moved cards%ROWTYPE;
BEGIN
    UPDATE cards SET state = p_to, reasons = p_reasons, chip_serial = p_chip, qa = p_qa,
        updated_at = p_now WHERE id = p_id AND state = p_from RETURNING * INTO moved;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_outcome = 'handed_out' THEN
        UPDATE applications SET state = 'handed_out'
            WHERE batch = moved.batch AND application_id = moved.application_id;
    ELSIF p_outcome = 'requeue' THEN
        UPDATE applications SET state = 'pending', attempts = attempts - 1
            WHERE batch = moved.batch AND application_id = moved.application_id;
    ELSIF p_outcome IN ('retry', 'failed') THEN
        UPDATE applications
            SET state = CASE WHEN p_outcome = 'retry' THEN 'pending' ELSE 'failed' END,
                reasons = (reasons::jsonb || jsonb_build_array(p_entry::jsonb))::text
            WHERE batch = moved.batch AND application_id = moved.application_id;
    END IF;
    PERFORM journal_append(p_chain, moved.batch, moved.id, p_kind, p_data, p_at);
    RETURN NEXT moved;
END $$"""

# A new card for a pending application its line may take, with its event, in one call.
# Refusals carry SQLSTATEs of cardline's own (CL001 not claimable, CL002 still importing).
_BEGIN = """CREATE FUNCTION journal_begin_card(p_batch text, p_application text,
    p_station text, p_line text, p_now double precision, p_chain text, p_at text)
    RETURNS SETOF cards LANGUAGE plpgsql AS $$
DECLARE
    app record;
    card cards%ROWTYPE;
BEGIN
    IF EXISTS (SELECT 1 FROM imports WHERE batch = p_batch) THEN
        RAISE EXCEPTION 'batch % is still being imported: it cannot run', quote_literal(p_batch)
            USING ERRCODE = 'CL002';
    END IF;
    SELECT state, attempts, document_number, claimed_by INTO app FROM applications
        WHERE batch = p_batch AND application_id = p_application FOR UPDATE;
    IF NOT FOUND OR app.state <> 'pending' THEN
        RAISE EXCEPTION 'application % of batch % is not pending (%)',
            quote_literal(p_application), quote_literal(p_batch), coalesce(app.state, 'unknown')
            USING ERRCODE = 'CL001';
    END IF;
    IF p_line IS NOT NULL AND app.claimed_by IS NOT NULL AND app.claimed_by <> p_line THEN
        RAISE EXCEPTION 'application % of batch % is held by line %',
            quote_literal(p_application), quote_literal(p_batch), quote_literal(app.claimed_by)
            USING ERRCODE = 'CL001';
    END IF;
    UPDATE applications SET state = 'active', attempts = app.attempts + 1
        WHERE batch = p_batch AND application_id = p_application;
    INSERT INTO cards (batch, application_id, attempt, station, document_number, state,
        started_at, updated_at) VALUES (p_batch, p_application, app.attempts + 1, p_station,
        app.document_number, 'feeding', p_now, p_now) RETURNING * INTO card;
    PERFORM journal_append(p_chain, p_batch, card.id, 'card.feeding',
        json_build_object('application', p_application, 'attempt', card.attempt,
                          'station', p_station)::text, p_at);
    RETURN NEXT card;
END $$"""


# journal_move from migration 12: a card handed out first supersedes every other current card
# of its holder (a card whose holder was never recorded: of its document number), each with
# its card.superseded event, so that the unique indexes see one current card per person. A
# superseded card keeps its updated_at (when it left the line); its event says when.
_MOVE_SUPERSEDING = """CREATE OR REPLACE FUNCTION journal_move(p_id bigint, p_from text,
    p_to text, p_reasons text, p_chip text, p_qa text, p_now double precision, p_outcome text,
    p_entry text, p_kind text, p_data text, p_chain text, p_at text) RETURNS SETOF cards
LANGUAGE plpgsql AS $$
DECLARE
    moved cards%ROWTYPE;
    mine record;
    old record;
BEGIN
    IF p_to = 'handed_out' THEN
        SELECT batch, holder, document_number INTO mine FROM cards
            WHERE id = p_id AND state = p_from FOR UPDATE;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        -- each lookup a probe of one partial unique index (never a scan of the cards): the
        -- person's current card, then one of this document number recorded with no holder
        FOR old IN UPDATE cards SET state = 'superseded'
                WHERE state = 'handed_out' AND holder = mine.holder AND id <> p_id
                RETURNING id, batch LOOP
            PERFORM journal_append(p_chain, old.batch, old.id, 'card.superseded',
                json_build_object('batch', mine.batch, 'by', p_id)::text, p_at);
        END LOOP;
        FOR old IN UPDATE cards SET state = 'superseded'
                WHERE state = 'handed_out' AND document_number = mine.document_number
                  AND id <> p_id AND (holder IS NULL OR mine.holder IS NULL)
                RETURNING id, batch LOOP
            PERFORM journal_append(p_chain, old.batch, old.id, 'card.superseded',
                json_build_object('batch', mine.batch, 'by', p_id)::text, p_at);
        END LOOP;
    END IF;
    UPDATE cards SET state = p_to, reasons = p_reasons, chip_serial = p_chip, qa = p_qa,
        updated_at = p_now WHERE id = p_id AND state = p_from RETURNING * INTO moved;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_outcome = 'handed_out' THEN
        UPDATE applications SET state = 'handed_out'
            WHERE batch = moved.batch AND application_id = moved.application_id;
    ELSIF p_outcome = 'requeue' THEN
        UPDATE applications SET state = 'pending', attempts = attempts - 1
            WHERE batch = moved.batch AND application_id = moved.application_id;
    ELSIF p_outcome IN ('retry', 'failed') THEN
        UPDATE applications
            SET state = CASE WHEN p_outcome = 'retry' THEN 'pending' ELSE 'failed' END,
                reasons = (reasons::jsonb || jsonb_build_array(p_entry::jsonb))::text
            WHERE batch = moved.batch AND application_id = moved.application_id;
    END IF;
    PERFORM journal_append(p_chain, moved.batch, moved.id, p_kind, p_data, p_at);
    RETURN NEXT moved;
END $$"""

# journal_begin_card from migration 12: the card carries its application's holder.
_BEGIN_WITH_HOLDER = """CREATE OR REPLACE FUNCTION journal_begin_card(p_batch text,
    p_application text, p_station text, p_line text, p_now double precision, p_chain text,
    p_at text) RETURNS SETOF cards LANGUAGE plpgsql AS $$
DECLARE
    app record;
    card cards%ROWTYPE;
BEGIN
    IF EXISTS (SELECT 1 FROM imports WHERE batch = p_batch) THEN
        RAISE EXCEPTION 'batch % is still being imported: it cannot run', quote_literal(p_batch)
            USING ERRCODE = 'CL002';
    END IF;
    SELECT state, attempts, document_number, claimed_by, holder INTO app FROM applications
        WHERE batch = p_batch AND application_id = p_application FOR UPDATE;
    IF NOT FOUND OR app.state <> 'pending' THEN
        RAISE EXCEPTION 'application % of batch % is not pending (%)',
            quote_literal(p_application), quote_literal(p_batch), coalesce(app.state, 'unknown')
            USING ERRCODE = 'CL001';
    END IF;
    IF p_line IS NOT NULL AND app.claimed_by IS NOT NULL AND app.claimed_by <> p_line THEN
        RAISE EXCEPTION 'application % of batch % is held by line %',
            quote_literal(p_application), quote_literal(p_batch), quote_literal(app.claimed_by)
            USING ERRCODE = 'CL001';
    END IF;
    UPDATE applications SET state = 'active', attempts = app.attempts + 1
        WHERE batch = p_batch AND application_id = p_application;
    INSERT INTO cards (batch, application_id, attempt, station, document_number, state,
        started_at, updated_at, holder) VALUES (p_batch, p_application, app.attempts + 1,
        p_station, app.document_number, 'feeding', p_now, p_now, app.holder)
        RETURNING * INTO card;
    PERFORM journal_append(p_chain, p_batch, card.id, 'card.feeding',
        json_build_object('application', p_application, 'attempt', card.attempt,
                          'station', p_station)::text, p_at);
    RETURN NEXT card;
END $$"""


MIGRATIONS: list[Migration] = [
    (1, "batches, applications, cards, stations, imports, per-batch keys, events", (
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
        # a batch's data key, wrapped (never stored in clear); deleted at the purge
        """CREATE TABLE batch_keys (
            batch TEXT PRIMARY KEY REFERENCES batches(name),
            wrapped BYTEA NOT NULL)""",
        """CREATE TABLE applications (
            batch TEXT NOT NULL REFERENCES batches(name),
            application_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            line INTEGER NOT NULL,
            document_number TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'handed_out', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            reasons TEXT NOT NULL DEFAULT '[]',
            record BYTEA,
            CONSTRAINT one_application_id_per_batch PRIMARY KEY (batch, application_id))""",
        "CREATE INDEX applications_queue ON applications(batch, state, attempts, seq)",
        "CREATE INDEX applications_document ON applications(document_number)",
        # errors_sealed: the reasons, which may quote the input; fields: their names only
        """CREATE TABLE quarantine (
            batch TEXT NOT NULL REFERENCES batches(name),
            line INTEGER NOT NULL,
            application_id TEXT,
            fields TEXT NOT NULL,
            errors_sealed BYTEA,
            PRIMARY KEY (batch, line))""",
        """CREATE TABLE cards (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            batch TEXT NOT NULL REFERENCES batches(name),
            application_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            station TEXT NOT NULL,
            chip_serial TEXT CONSTRAINT one_card_per_chip UNIQUE,
            document_number TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('feeding', 'encoding', 'verifying', 'printing',
                'ejecting', 'rejecting', 'handed_out', 'rejected', 'void')),
            reasons TEXT NOT NULL DEFAULT '[]',
            qa TEXT,
            started_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
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
            live TEXT,
            live_at TEXT,
            PRIMARY KEY (batch, station))""",
        """CREATE TABLE run_control (
            batch TEXT PRIMARY KEY REFERENCES batches(name),
            requested TEXT NOT NULL CHECK (requested IN ('pause', 'resume', 'stop')),
            requested_by TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            obeyed BOOLEAN NOT NULL DEFAULT FALSE)""",
        # A batch with a row here is still being imported: not runnable, not finished.
        """CREATE TABLE imports (
            batch TEXT PRIMARY KEY REFERENCES batches(name),
            started_at TEXT NOT NULL,
            lines INTEGER NOT NULL DEFAULT 0,
            bytes BIGINT NOT NULL DEFAULT 0,
            digest TEXT NOT NULL,
            next_seq INTEGER NOT NULL DEFAULT 0,
            accepted INTEGER NOT NULL DEFAULT 0,
            quarantined INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE import_keys (
            batch TEXT NOT NULL REFERENCES imports(batch),
            key BYTEA NOT NULL,
            line INTEGER NOT NULL,
            PRIMARY KEY (batch, key))""",
        # data: the exact JSON text that was hashed (TEXT, not JSONB, which would reorder it)
        """CREATE TABLE events (
            seq BIGINT PRIMARY KEY,
            at TEXT NOT NULL,
            batch TEXT,
            card BIGINT,
            kind TEXT NOT NULL,
            data TEXT NOT NULL,
            prev TEXT NOT NULL,
            hash TEXT NOT NULL)""",
        "CREATE INDEX events_batch ON events(batch, seq)",
        # event numbers and hashes are handed out from this one row, locked by each append
        """CREATE TABLE chain_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq BIGINT NOT NULL,
            hash TEXT NOT NULL)""",
        f"INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, '{GENESIS}')",  # noqa: S608 - a constant
    )),
    (2, "the database keeps the rules: append-only events, a chain head that only moves on", (
        _REFUSE,
        _HEAD_FORWARD,
        _FOLLOW_HEAD,
        "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
        "FOR EACH ROW EXECUTE FUNCTION journal_refuse('the event log is append-only')",
        "CREATE TRIGGER events_never_truncated BEFORE TRUNCATE ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION journal_refuse('the event log is append-only')",
        "CREATE TRIGGER events_follow_the_head BEFORE INSERT ON events "
        "FOR EACH ROW EXECUTE FUNCTION events_follow_the_head()",
        "CREATE TRIGGER chain_head_forward BEFORE UPDATE ON chain_head "
        "FOR EACH ROW EXECUTE FUNCTION chain_head_forward()",
        "CREATE TRIGGER chain_head_kept BEFORE DELETE ON chain_head "
        "FOR EACH ROW EXECUTE FUNCTION journal_refuse('the chain head is never deleted')",
        "CREATE TRIGGER chain_head_never_truncated BEFORE TRUNCATE ON chain_head "
        "FOR EACH STATEMENT EXECUTE FUNCTION journal_refuse('the chain head is never deleted')",
    )),
    (3, f"what the lines' role {LINE_ROLE} may do: events appended, never changed", (
        "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {_LINE_TABLES} TO {LINE_ROLE}",
        f"GRANT SELECT, INSERT, UPDATE ON cards TO {LINE_ROLE}",
        f"GRANT SELECT, INSERT ON events TO {LINE_ROLE}",
        f"GRANT SELECT, UPDATE ON chain_head TO {LINE_ROLE}",
        f"GRANT SELECT ON journal_schema TO {LINE_ROLE}",
    )),
    (4, "lines sharing a batch: each line's lease and stations, claims on applications", (
        # the line (and its run) holding a pending or active application; NULL: in the pool
        "ALTER TABLE applications ADD COLUMN claimed_by TEXT",
        "ALTER TABLE applications ADD COLUMN claim_run TEXT",
        "CREATE INDEX applications_claims ON applications(batch, claimed_by)",
        # heartbeat: the server's clock (seconds since the epoch), so lines on machines whose
        # clocks differ still agree on whose lease ran out
        "CREATE FUNCTION journal_now() RETURNS double precision LANGUAGE sql VOLATILE AS "
        "$$ SELECT extract(epoch FROM clock_timestamp())::double precision $$",
        """CREATE TABLE lines (
            batch TEXT NOT NULL REFERENCES batches(name),
            line TEXT NOT NULL,
            holder TEXT NOT NULL,
            stations TEXT NOT NULL,
            started_at TEXT NOT NULL,
            heartbeat DOUBLE PRECISION NOT NULL,
            left_at TEXT,
            PRIMARY KEY (batch, line))""",
        f"GRANT SELECT, INSERT, UPDATE ON lines TO {LINE_ROLE}",
    )),
    (5, "the key inventory the lines share: keys, signature-count reservations, audit trail", (
        # times as ISO 8601 text, as the per-line SQLite inventory keeps them
        """CREATE TABLE hsm_keys (
            label TEXT PRIMARY KEY,
            key_id TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('CSCA', 'DS')),
            algorithm TEXT NOT NULL,
            certificate BYTEA NOT NULL,
            not_before TEXT NOT NULL,
            not_after TEXT NOT NULL,
            max_documents INTEGER CHECK (max_documents > 0),
            status TEXT NOT NULL CHECK (status IN ('active', 'retired', 'revoked')),
            created_at TEXT NOT NULL,
            officers TEXT NOT NULL)""",
        "CREATE INDEX hsm_keys_active ON hsm_keys(role, status, created_at)",
        # one row per key: the next signature count free, handed out in blocks by
        # UPDATE ... RETURNING under this row's lock; the maximum is the key's, copied here
        # so that the database itself keeps every line's counts within it
        """CREATE TABLE hsm_reservations (
            label TEXT PRIMARY KEY REFERENCES hsm_keys(label),
            next_free BIGINT NOT NULL CHECK (next_free >= 0),
            maximum INTEGER,
            CONSTRAINT within_max_documents CHECK (maximum IS NULL OR next_free <= maximum))""",
        """CREATE TABLE hsm_audit (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at TEXT NOT NULL,
            action TEXT NOT NULL,
            key_label TEXT NOT NULL,
            officers TEXT NOT NULL,
            detail TEXT NOT NULL)""",
        _KEY_STATUS_FORWARD,
        "CREATE TRIGGER hsm_keys_status_forward BEFORE UPDATE ON hsm_keys "
        "FOR EACH ROW EXECUTE FUNCTION hsm_key_status_forward()",
        "CREATE TRIGGER hsm_audit_append_only BEFORE UPDATE OR DELETE ON hsm_audit "
        "FOR EACH ROW EXECUTE FUNCTION journal_refuse('the key audit trail is append-only')",
        "CREATE TRIGGER hsm_audit_never_truncated BEFORE TRUNCATE ON hsm_audit "
        "FOR EACH STATEMENT EXECUTE FUNCTION journal_refuse('the key audit trail is "
        "append-only')",
        # a line runs ceremonies (as its officers' tool) and retires keys it has used up, but
        # rewrites no key's certificate or bounds, deletes nothing and never edits the audit
        f"GRANT SELECT, INSERT ON hsm_keys TO {LINE_ROLE}",
        f"GRANT UPDATE (status) ON hsm_keys TO {LINE_ROLE}",
        f"GRANT SELECT, INSERT ON hsm_reservations TO {LINE_ROLE}",
        f"GRANT UPDATE (next_free) ON hsm_reservations TO {LINE_ROLE}",
        f"GRANT SELECT, INSERT ON hsm_audit TO {LINE_ROLE}",
    )),
    (6, "one event chain per line, so lines commit side by side; the journal's own chain "
        "anchors theirs", (
        "ALTER TABLE events ADD COLUMN chain TEXT NOT NULL DEFAULT 'journal'",
        "ALTER TABLE events DROP CONSTRAINT events_pkey",
        "ALTER TABLE events ADD PRIMARY KEY (chain, seq)",
        """CREATE TABLE chain_heads (
            chain TEXT PRIMARY KEY,
            seq BIGINT NOT NULL,
            hash TEXT NOT NULL)""",
        "INSERT INTO chain_heads (chain, seq, hash) SELECT 'journal', seq, hash FROM chain_head",
        "DROP TRIGGER events_follow_the_head ON events",
        "DROP TABLE chain_head",
        _FOLLOW_THEIR_HEAD,
        _HEADS_FORWARD,
        _HEAD_STARTS,
        "CREATE TRIGGER events_follow_their_head BEFORE INSERT ON events "
        "FOR EACH ROW EXECUTE FUNCTION events_follow_their_head()",
        "CREATE TRIGGER chain_heads_forward BEFORE UPDATE ON chain_heads "
        "FOR EACH ROW EXECUTE FUNCTION chain_heads_forward()",
        "CREATE TRIGGER chain_heads_start BEFORE INSERT ON chain_heads "
        "FOR EACH ROW EXECUTE FUNCTION chain_heads_start()",
        "CREATE TRIGGER chain_heads_kept BEFORE DELETE ON chain_heads "
        "FOR EACH ROW EXECUTE FUNCTION journal_refuse('a chain head is never deleted')",
        "CREATE TRIGGER chain_heads_never_truncated BEFORE TRUNCATE ON chain_heads "
        "FOR EACH STATEMENT EXECUTE FUNCTION journal_refuse('a chain head is never deleted')",
        f"GRANT SELECT, INSERT, UPDATE ON chain_heads TO {LINE_ROLE}",
    )),
    (7, "an event appended by the server in one call: its chain head locked only for that", (
        _EVENT_HASH,
        _APPEND,
    )),
    (8, "a card begun or moved with its event in one call", (
        _MOVE,
        _BEGIN,
    )),
    (9, "each line's acknowledgement of run control, so every line obeys each request", (
        """CREATE TABLE run_control_seen (
            batch TEXT NOT NULL REFERENCES batches(name),
            line TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            PRIMARY KEY (batch, line))""",
        f"GRANT SELECT, INSERT, UPDATE ON run_control_seen TO {LINE_ROLE}",
    )),
    (10, "people: accounts with roles, officers' shares of the CSCA token PIN, signed "
         "checkpoints of the event chains", (
        """CREATE TABLE accounts (
            name TEXT PRIMARY KEY,
            roles TEXT NOT NULL,
            passphrase TEXT NOT NULL,
            disabled BOOLEAN NOT NULL DEFAULT FALSE,
            failures INTEGER NOT NULL DEFAULT 0,
            locked_until TEXT,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            changed_at TEXT NOT NULL)""",
        """CREATE TABLE key_shares (
            token TEXT NOT NULL,
            generation INTEGER NOT NULL,
            officer TEXT NOT NULL REFERENCES accounts(name),
            quorum INTEGER NOT NULL CHECK (quorum >= 2),
            share BYTEA NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (token, generation, officer))""",
        """CREATE TABLE audit_checkpoints (
            chain TEXT NOT NULL DEFAULT 'journal',
            seq BIGINT NOT NULL,
            head TEXT NOT NULL,
            at TEXT NOT NULL,
            key_label TEXT NOT NULL,
            signature BYTEA NOT NULL,
            PRIMARY KEY (chain, seq))""",
        """CREATE TABLE sessions (
            token_hash TEXT PRIMARY KEY,
            account TEXT NOT NULL REFERENCES accounts(name),
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            ended_at TEXT)""",
        """CREATE TABLE audit_keys (
            label TEXT PRIMARY KEY,
            certificate BYTEA NOT NULL,
            created_at TEXT NOT NULL)""",
        "CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON "
        "audit_checkpoints FOR EACH ROW EXECUTE FUNCTION "
        "journal_refuse('checkpoints are append-only')",
        "CREATE TRIGGER key_shares_kept BEFORE UPDATE ON key_shares FOR EACH ROW EXECUTE "
        "FUNCTION journal_refuse('key shares are never rewritten: re-split')",
        # the lines' role authenticates people and counts their failures, never deletes one
        f"GRANT SELECT, INSERT, UPDATE ON accounts TO {LINE_ROLE}",
        f"GRANT SELECT, INSERT ON key_shares TO {LINE_ROLE}",
        f"GRANT SELECT, INSERT ON audit_checkpoints TO {LINE_ROLE}",
        f"GRANT SELECT, INSERT ON audit_keys TO {LINE_ROLE}",
        f"GRANT SELECT, INSERT, UPDATE ON sessions TO {LINE_ROLE}",
    )),
    (11, "the registry's boundary: signed batches received, every DS signature, issuance "
         "results sent back", (
        """CREATE TABLE registry_batches (
            id TEXT PRIMARY KEY,
            batch TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            signer TEXT NOT NULL,
            encrypted BOOLEAN NOT NULL,
            received_at TEXT NOT NULL)""",
        "ALTER TABLE batches ADD COLUMN registry TEXT",
        """CREATE TABLE ds_signatures (
            id BIGSERIAL PRIMARY KEY,
            at TEXT NOT NULL,
            ds TEXT NOT NULL,
            document_number TEXT NOT NULL,
            batch TEXT,
            application_id TEXT,
            command TEXT NOT NULL)""",
        "CREATE INDEX ds_signatures_ds ON ds_signatures(ds, id)",
        """CREATE TABLE batch_results (
            batch TEXT PRIMARY KEY REFERENCES batches(name),
            sha256 TEXT NOT NULL,
            document BYTEA NOT NULL,
            created_at TEXT NOT NULL)""",
        "CREATE TRIGGER ds_signatures_append_only BEFORE UPDATE OR DELETE ON ds_signatures "
        "FOR EACH ROW EXECUTE FUNCTION journal_refuse('signature records are append-only')",
        "CREATE TRIGGER batch_results_written_once BEFORE UPDATE OR DELETE ON batch_results "
        "FOR EACH ROW EXECUTE FUNCTION journal_refuse('issuance results are written once')",
        # a registry id whose import was discarded unfinished is received again: its row goes
        f"GRANT SELECT, INSERT, DELETE ON registry_batches TO {LINE_ROLE}",
        f"GRANT SELECT, INSERT ON ds_signatures TO {LINE_ROLE}",
        f"GRANT USAGE ON SEQUENCE ds_signatures_id_seq TO {LINE_ROLE}",
        f"GRANT SELECT, INSERT ON batch_results TO {LINE_ROLE}",
    )),
    (12, "kinds of application and one current card per person: each application's holder, "
         "kind, dates and the card it supersedes; cards superseded by their holder's next", (
        # holder: the 12-digit personal ID, the key of the lifetime rule. Plain, as
        # document_number (its last 9 digits) is: intake looks it up and it outlives the
        # purge. The records of older rows are sealed, so their new columns stay NULL.
        "ALTER TABLE applications ADD COLUMN holder TEXT, "
        "ADD COLUMN kind TEXT NOT NULL DEFAULT 'first' "
        "CHECK (kind IN ('first', 'renewal', 'replacement')), "
        "ADD COLUMN issue_date TEXT, ADD COLUMN expiry_date TEXT, "
        "ADD COLUMN supersedes_card BIGINT, ADD COLUMN predates BOOLEAN NOT NULL DEFAULT FALSE",
        "CREATE INDEX applications_holder ON applications(holder)",
        "ALTER TABLE cards ADD COLUMN holder TEXT",
        "ALTER TABLE cards DROP CONSTRAINT cards_state_check",
        "ALTER TABLE cards ADD CONSTRAINT cards_state_check CHECK (state IN ('feeding', "
        "'encoding', 'verifying', 'printing', 'ejecting', 'rejecting', 'handed_out', "
        "'rejected', 'void', 'superseded'))",
        # at most one current card per person, whatever its document number
        "CREATE UNIQUE INDEX one_current_card_per_holder ON cards(holder) "
        "WHERE state = 'handed_out'",
        _MOVE_SUPERSEDING,
        _BEGIN_WITH_HOLDER,
    )),
    (13, "the EAC keys in the shared inventory: CVCA, DV and the inspection systems' keys", (
        # PostgreSQL named the column's CHECK of migration 1 after its table and column
        "ALTER TABLE hsm_keys DROP CONSTRAINT hsm_keys_role_check",
        "ALTER TABLE hsm_keys ADD CONSTRAINT hsm_keys_role_check "
        "CHECK (role IN ('CSCA', 'DS', 'CVCA', 'DV', 'IS'))",
    )),
    (14, "a printed random CAN kept with its card (the PACE password of its chip, printed on "
         "its face), sealed under the batch's data key and deleted at the purge", (
        """CREATE TABLE card_cans (
            card BIGINT PRIMARY KEY REFERENCES cards(id),
            batch TEXT NOT NULL,
            sealed BYTEA NOT NULL)""",
        "CREATE INDEX card_cans_batch ON card_cans(batch)",
        f"GRANT SELECT, INSERT, DELETE ON card_cans TO {LINE_ROLE}",
    )),
    (15, "the event hash marked STABLE, as its body is (to_json is STABLE): the server inlines "
         "it into journal_append's cached plan instead of planning it again for every event", (
        # An SQL function marked IMMUTABLE whose body calls a STABLE function is never inlined:
        # each call parsed and planned its SELECT anew: 0.14 ms of an append's 0.33 ms.
        "ALTER FUNCTION journal_event_hash(text, bigint, text, text, bigint, text, text) STABLE",
    )),
]

LATEST = MIGRATIONS[-1][0]
