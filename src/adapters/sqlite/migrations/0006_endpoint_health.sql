-- Endpoint health and rate limits: what every engine sharing the file knows about an action's receiver (failed
-- attempts in a row, warned or paused), the requests its rate limit let through per window, and what a
-- notification is about (`notice`: NULL for a failed delivery, as every row before this version; JSON otherwise).
-- A paused action's deliveries are held: queued with no next attempt (so `due_at` is NULL and no claim sees
-- them); `deliveries_held` finds them when the action is resumed.
CREATE TABLE endpoint_health (
    tenant        TEXT NOT NULL,
    workflow      TEXT NOT NULL,
    action        TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state = 'healthy' OR state = 'warning' OR state = 'paused'),
    failures      INTEGER NOT NULL,
    failing_since INTEGER,
    changed_at    INTEGER NOT NULL,
    reason        TEXT,
    PRIMARY KEY (tenant, workflow, action)
) WITHOUT ROWID;
CREATE TABLE rate_windows (
    tenant       TEXT NOT NULL,
    workflow     TEXT NOT NULL,
    action       TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    used         INTEGER NOT NULL,
    PRIMARY KEY (tenant, workflow, action, window_start)
) WITHOUT ROWID;
ALTER TABLE notifications ADD COLUMN notice TEXT;
CREATE INDEX deliveries_held ON deliveries (tenant, workflow, action, created_at)
    WHERE status = 'queued' AND next_attempt_at IS NULL;
