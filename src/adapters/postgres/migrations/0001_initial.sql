-- crm-webhooks, schema version 1: the queue, the delivery log, quota counters, trigger state and the
-- notification outbox. `__SCHEMA__` is replaced by the validated, quoted schema name.

-- The queue. Statuses are lower-case text; ids, claim tokens and bodies are bytes.
CREATE TABLE __SCHEMA__.deliveries (
    id               bytea       NOT NULL,
    tenant           text        NOT NULL,
    workflow         text        NOT NULL,
    action           text        NOT NULL,
    module           text        NOT NULL,
    record_id        text        NOT NULL,
    owner            text        NOT NULL,
    method           text        NOT NULL,
    url              text        NOT NULL,
    content_type     text        NOT NULL,
    body             bytea       NOT NULL,
    status           text        NOT NULL,
    attempts         bigint      NOT NULL,
    next_attempt_at  timestamptz,
    lease_expires_at timestamptz,
    claim_token      bytea,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    redelivery_of    bytea,
    -- When a claim may take the row: a queued delivery when its attempt is due, a dispatched one when its lease
    -- runs out, a settled one never. One column, so that one index serves the claim's filter and its order.
    due_at           timestamptz GENERATED ALWAYS AS (
                         CASE status WHEN 'queued' THEN next_attempt_at WHEN 'dispatched' THEN lease_expires_at END
                     ) STORED,
    CONSTRAINT deliveries_pkey PRIMARY KEY (id),
    CONSTRAINT deliveries_id_is_16_bytes CHECK (octet_length(id) = 16),
    CONSTRAINT deliveries_method_known CHECK (method IN ('POST', 'PUT')),
    CONSTRAINT deliveries_content_type_known CHECK (content_type IN ('XML', 'JSON', 'JSONARRAY', 'FORM')),
    CONSTRAINT deliveries_status_known CHECK (status IN ('queued', 'dispatched', 'success', 'failed')),
    CONSTRAINT deliveries_attempts_fit_u32 CHECK (attempts BETWEEN 0 AND 4294967295),
    CONSTRAINT deliveries_claim_token_is_16_bytes CHECK (octet_length(claim_token) = 16),
    CONSTRAINT deliveries_redelivery_of_is_16_bytes CHECK (octet_length(redelivery_of) = 16)
);

-- The claim: rows still to send, earliest due first. Settled rows (most of the table) stay out of the index.
CREATE INDEX deliveries_due ON __SCHEMA__.deliveries (due_at, created_at, id) WHERE status IN ('queued', 'dispatched');
-- Pruning: settled rows by age.
CREATE INDEX deliveries_settled ON __SCHEMA__.deliveries (updated_at) WHERE status IN ('success', 'failed');

-- The delivery log. `seq` orders entries written at the same instant (and those of one batch, in order).
CREATE TABLE __SCHEMA__.log_entries (
    seq              bigserial   NOT NULL,
    delivery_id      bytea       NOT NULL,
    tenant           text        NOT NULL,
    workflow         text        NOT NULL,
    action           text        NOT NULL,
    record_id        text        NOT NULL,
    status           text        NOT NULL,
    attempt          bigint      NOT NULL,
    at               timestamptz NOT NULL,
    http_status      integer,
    response_snippet text,
    error            text,
    next_attempt_at  timestamptz,
    message          text        NOT NULL,
    CONSTRAINT log_entries_pkey PRIMARY KEY (seq),
    CONSTRAINT log_entries_delivery_id_is_16_bytes CHECK (octet_length(delivery_id) = 16),
    CONSTRAINT log_entries_status_known CHECK (status IN ('queued', 'dispatched', 'success', 'failed')),
    CONSTRAINT log_entries_attempt_fits_u32 CHECK (attempt BETWEEN 0 AND 4294967295),
    CONSTRAINT log_entries_http_status_fits_u16 CHECK (http_status BETWEEN 0 AND 65535)
);

-- Log pages, newest first: a tenant's whole log, and the filters people narrow it by most (a workflow, a record,
-- what failed). The action filter rides on these: it only thins out a tenant's or a workflow's entries.
CREATE INDEX log_entries_tenant ON __SCHEMA__.log_entries (tenant, at DESC, seq DESC);
CREATE INDEX log_entries_workflow ON __SCHEMA__.log_entries (tenant, workflow, at DESC, seq DESC);
CREATE INDEX log_entries_record ON __SCHEMA__.log_entries (tenant, record_id, at DESC, seq DESC);
CREATE INDEX log_entries_status ON __SCHEMA__.log_entries (tenant, status, at DESC, seq DESC);
-- One delivery's history, and pruning it.
CREATE INDEX log_entries_delivery ON __SCHEMA__.log_entries (delivery_id, at DESC, seq DESC);

-- Calls counted per tenant and day. `last_granted` is what the latest acquisition granted: the upsert computes it
-- from the row it holds locked, so RETURNING can report it without a second read.
CREATE TABLE __SCHEMA__.quota_usage (
    tenant       text   NOT NULL,
    day          date   NOT NULL,
    used         bigint NOT NULL,
    last_granted bigint NOT NULL,
    CONSTRAINT quota_usage_pkey PRIMARY KEY (tenant, day),
    CONSTRAINT quota_usage_used_not_negative CHECK (used >= 0),
    CONSTRAINT quota_usage_last_granted_not_negative CHECK (last_granted >= 0)
);

-- `once` workflows that already fired for a record.
CREATE TABLE __SCHEMA__.fired_once (
    tenant    text NOT NULL,
    workflow  text NOT NULL,
    record_id text NOT NULL,
    CONSTRAINT fired_once_pkey PRIMARY KEY (tenant, workflow, record_id)
);

-- The next run of each scheduled workflow (NULL: the schedule ran out).
CREATE TABLE __SCHEMA__.schedules (
    tenant   text NOT NULL,
    workflow text NOT NULL,
    next_run timestamptz,
    CONSTRAINT schedules_pkey PRIMARY KEY (tenant, workflow)
);

-- The notification outbox: one row per failed delivery until every recipient has been emailed.
CREATE TABLE __SCHEMA__.notifications (
    delivery_id      bytea       NOT NULL,
    tenant           text        NOT NULL,
    owner            text        NOT NULL,
    created_at       timestamptz NOT NULL,
    next_attempt_at  timestamptz NOT NULL,
    attempts         bigint      NOT NULL,
    sent_to          text[]      NOT NULL,
    last_error       text,
    claim_token      bytea,
    lease_expires_at timestamptz,
    -- Unclaimed: due at its next attempt; claimed: due again when the lease runs out.
    due_at           timestamptz GENERATED ALWAYS AS (
                         CASE WHEN claim_token IS NULL THEN next_attempt_at ELSE lease_expires_at END
                     ) STORED,
    CONSTRAINT notifications_pkey PRIMARY KEY (delivery_id),
    CONSTRAINT notifications_delivery_id_is_16_bytes CHECK (octet_length(delivery_id) = 16),
    CONSTRAINT notifications_attempts_fit_u32 CHECK (attempts BETWEEN 0 AND 4294967295),
    CONSTRAINT notifications_claim_token_is_16_bytes CHECK (octet_length(claim_token) = 16)
);

CREATE INDEX notifications_due ON __SCHEMA__.notifications (due_at, delivery_id);
