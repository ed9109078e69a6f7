-- Deliveries sent in order per record: an ordered delivery's line (a hash of its tenant, workflow, action and
-- record) and its place in that line. A claim skips an ordered delivery while an earlier one of its line is queued
-- or dispatched; the partial index finds those at once.
ALTER TABLE deliveries ADD COLUMN ordered INTEGER NOT NULL DEFAULT 0 CHECK (ordered IN (0, 1));
ALTER TABLE deliveries ADD COLUMN order_key BLOB;
ALTER TABLE deliveries ADD COLUMN order_seq INTEGER;
CREATE INDEX deliveries_line ON deliveries (order_key, order_seq)
    WHERE order_key IS NOT NULL AND status IN ('queued', 'dispatched');
