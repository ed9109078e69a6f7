-- The schema version moves out of SQLite's `user_version` header field, which belongs to whoever owns the file:
-- a host that keeps the crate's tables in its own database file (to queue webhooks in its own transactions) may
-- number its own migrations there. Versions 1 to 4 were recorded in `user_version`; it is left as it was.
CREATE TABLE crm_webhooks_schema (
    version INTEGER NOT NULL
);
