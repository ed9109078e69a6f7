-- One stored text per status, as in PostgreSQL: `queued`, `dispatched`, `success`, `failed` (versions 1 and 2
-- stored `Queued`, `Dispatched`, `Success`, `Failed`).
--
-- SQLite cannot alter a CHECK constraint or a generated column, so `deliveries` is rebuilt the documented way
-- (https://www.sqlite.org/lang_altertable.html#otheralter): create the new table, copy the rows, drop the old one,
-- rename the new one, create its indexes again. No view, trigger or foreign key refers to it. This runs inside the
-- migration's transaction, so a failure leaves the file at version 2. The columns keep their order (those added by
-- migration 2 after `due_at`) and every row its `rowid`.
--
-- A process of an older build that still has the file open writes the old texts, which the new CHECK refuses:
-- stop every such process before opening the file with this build.
CREATE TABLE deliveries_v3 (
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
                     CHECK (status = 'queued' OR status = 'dispatched' OR status = 'success' OR status = 'failed'),
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER,
    lease_expires_at INTEGER,
    claim_token      BLOB,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    redelivery_of    BLOB,
    due_at           INTEGER GENERATED ALWAYS AS (
        CASE
            WHEN status = 'queued' THEN next_attempt_at
            WHEN status = 'dispatched' AND claim_token IS NOT NULL THEN lease_expires_at
        END
    ) VIRTUAL,
    quota_day        TEXT,
    quota_attempt    INTEGER
);

INSERT INTO deliveries_v3 (rowid, id, tenant, workflow, action, module, record_id, owner, method, url, content_type,
    body, status, attempts, next_attempt_at, lease_expires_at, claim_token, created_at, updated_at, redelivery_of,
    quota_day, quota_attempt)
SELECT rowid, id, tenant, workflow, action, module, record_id, owner, method, url, content_type,
    body, lower(status), attempts, next_attempt_at, lease_expires_at, claim_token, created_at, updated_at,
    redelivery_of, quota_day, quota_attempt
FROM deliveries;

DROP TABLE deliveries;
ALTER TABLE deliveries_v3 RENAME TO deliveries;

CREATE INDEX deliveries_due ON deliveries (due_at, created_at, id) WHERE due_at IS NOT NULL;
CREATE INDEX deliveries_settled ON deliveries (updated_at) WHERE status IN ('success', 'failed');

UPDATE log_entries SET status = lower(status);
