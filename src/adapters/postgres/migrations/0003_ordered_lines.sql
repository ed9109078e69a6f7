-- Deliveries sent in order per record: an ordered delivery's line (a hash of its tenant, workflow, action and
-- record) and its place in that line. A claim skips an ordered delivery while an earlier one of its line is queued
-- or dispatched; the partial index finds those at once. `order_lines` hands out the places: its row of a line is
-- locked by the enqueue that takes the next place until that transaction ends, so places follow commit order.
ALTER TABLE __SCHEMA__.deliveries ADD COLUMN ordered boolean NOT NULL DEFAULT false;
ALTER TABLE __SCHEMA__.deliveries ADD COLUMN order_key bytea;
ALTER TABLE __SCHEMA__.deliveries ADD COLUMN order_seq bigint;
CREATE INDEX deliveries_line ON __SCHEMA__.deliveries (order_key, order_seq)
    WHERE order_key IS NOT NULL AND status IN ('queued', 'dispatched');
CREATE TABLE __SCHEMA__.order_lines (
    order_key bytea PRIMARY KEY,
    last_seq  bigint NOT NULL
);
