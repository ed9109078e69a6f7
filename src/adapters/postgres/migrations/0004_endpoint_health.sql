-- Endpoint health and rate limits: what every engine sharing the schema knows about an action's receiver (failed
-- attempts in a row, warned or paused), the requests its rate limit let through per window, and what a
-- notification is about (`notice`: NULL for a failed delivery, as every row before this version; JSON otherwise).
-- A paused action's deliveries are held: queued with no next attempt (so no claim sees them); `deliveries_held`
-- finds them when the action is resumed.
CREATE TABLE __SCHEMA__.endpoint_health (
    tenant        text        NOT NULL,
    workflow      text        NOT NULL,
    action        text        NOT NULL,
    state         text        NOT NULL CHECK (state IN ('healthy', 'warning', 'paused')),
    failures      bigint      NOT NULL,
    failing_since timestamptz,
    changed_at    timestamptz NOT NULL,
    reason        text,
    PRIMARY KEY (tenant, workflow, action)
);
CREATE TABLE __SCHEMA__.rate_windows (
    tenant       text        NOT NULL,
    workflow     text        NOT NULL,
    action       text        NOT NULL,
    window_start timestamptz NOT NULL,
    used         bigint      NOT NULL,
    PRIMARY KEY (tenant, workflow, action, window_start)
);
ALTER TABLE __SCHEMA__.notifications ADD COLUMN notice text;
CREATE INDEX deliveries_held ON __SCHEMA__.deliveries (tenant, workflow, action, created_at)
    WHERE status = 'queued' AND next_attempt_at IS NULL;
