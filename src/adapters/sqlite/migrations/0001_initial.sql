-- Everything: the queue, the log, quota counters, trigger state and the notification outbox.
--
-- `due_at` is when a row is next claimable (`NULL`: never by itself). It is a virtual column so that one
-- partial index serves both the claim (`due_at <= now ORDER BY due_at`) and `next_due_at` (`MIN(due_at)`).
-- A `Dispatched` delivery without a claim token (never claimed, or finished as `Dispatched`) is not due,
-- as in `MemoryStorage`, where only a lease taken by a claim runs out.
--
-- Written for the cost of a row: `status` is checked by a chain of `=` (SQLite builds a temporary table for
-- each row checked against an `IN` list of more than two values), and `log_entries.seq` is a plain rowid (the
-- largest plus one, so still in write order among the entries stored) rather than AUTOINCREMENT, which would
-- update `sqlite_sequence` with every entry. Every index is one more B-tree page written by a commit that
-- touches it; the log keeps one per filter that needs it to stay fast.
CREATE TABLE deliveries (
    id               BLOB PRIMARY KEY NOT NULL,
    tenant           TEXT NOT NULL,
    workflow         TEXT NOT NULL,
    action           TEXT NOT NULL,
    module           TEXT NOT NULL,
    record_id        TEXT NOT NULL,
    owner            TEXT NOT NULL,
    method           TEXT NOT NULL,
    url              TEXT NOT NULL,
    content_type     TEXT NOT NULL,
    body             BLOB NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status = 'Queued' OR status = 'Dispatched' OR status = 'Success' OR status = 'Failed'),
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER,
    lease_expires_at INTEGER,
    claim_token      BLOB,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    redelivery_of    BLOB,
    due_at           INTEGER GENERATED ALWAYS AS (
        CASE
            WHEN status = 'Queued' THEN next_attempt_at
            WHEN status = 'Dispatched' AND claim_token IS NOT NULL THEN lease_expires_at
        END
    ) VIRTUAL
);
CREATE INDEX deliveries_due ON deliveries (due_at, created_at, id) WHERE due_at IS NOT NULL;
CREATE INDEX deliveries_settled ON deliveries (updated_at) WHERE status IN ('Success', 'Failed');

CREATE TABLE log_entries (
    seq              INTEGER PRIMARY KEY,
    delivery_id      BLOB NOT NULL,
    tenant           TEXT NOT NULL,
    workflow         TEXT NOT NULL,
    action           TEXT NOT NULL,
    record_id        TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    at               INTEGER NOT NULL,
    http_status      INTEGER,
    response_snippet TEXT,
    error            TEXT,
    next_attempt_at  INTEGER,
    message          TEXT NOT NULL
);
CREATE INDEX log_by_tenant ON log_entries (tenant, at);
CREATE INDEX log_by_workflow ON log_entries (tenant, workflow, at);
CREATE INDEX log_by_record ON log_entries (tenant, record_id, at);
CREATE INDEX log_by_delivery ON log_entries (delivery_id, at);

CREATE TABLE quota_usage (
    tenant TEXT NOT NULL,
    day    TEXT NOT NULL,
    used   INTEGER NOT NULL,
    PRIMARY KEY (tenant, day)
) WITHOUT ROWID;

CREATE TABLE fired_once (
    tenant    TEXT NOT NULL,
    workflow  TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (tenant, workflow, record_id)
) WITHOUT ROWID;

CREATE TABLE schedules (
    tenant   TEXT NOT NULL,
    workflow TEXT NOT NULL,
    next_run INTEGER,
    PRIMARY KEY (tenant, workflow)
) WITHOUT ROWID;

CREATE TABLE notifications (
    delivery_id     BLOB PRIMARY KEY NOT NULL,
    tenant          TEXT NOT NULL,
    owner           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    sent_to         TEXT NOT NULL,
    last_error      TEXT,
    claim_token     BLOB,
    lease_until     INTEGER,
    due_at          INTEGER GENERATED ALWAYS AS (
        CASE WHEN claim_token IS NULL THEN next_attempt_at ELSE lease_until END
    ) VIRTUAL
);
CREATE INDEX notifications_due ON notifications (due_at, delivery_id) WHERE due_at IS NOT NULL;
