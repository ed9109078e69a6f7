//! The text of every statement the PostgreSQL storage runs, but the migrations and the log's filters.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

use crate::adapters::sql::{first_in_line, DELIVERY_COLUMNS, LOG_COLUMNS, NOTIFICATION_COLUMNS};

/// Every statement, written once per schema (the schema name cannot be a bind parameter). Prepared statements
/// are cached per connection by their text.
#[derive(Debug)]
pub(super) struct Statements {
    pub(super) insert_deliveries: SqlStr,
    pub(super) insert_entries: SqlStr,
    pub(super) notify_queued: SqlStr,
    pub(super) take_places: SqlStr,
    pub(super) waits_behind: SqlStr,
    pub(super) claim_deliveries: SqlStr,
    pub(super) complete_deliveries: SqlStr,
    pub(super) insert_notification: SqlStr,
    pub(super) next_due_at: SqlStr,
    pub(super) queue_depth: SqlStr,
    pub(super) delivery: SqlStr,
    /// `SELECT` the log's columns `FROM` the table, which the shared `log_page` completes.
    pub(super) log_from: String,
    pub(super) prune: SqlStr,
    pub(super) acquire_quota: SqlStr,
    pub(super) held_grants: SqlStr,
    pub(super) store_grants: SqlStr,
    pub(super) quota_used: SqlStr,
    pub(super) mark_fired: SqlStr,
    pub(super) next_run: SqlStr,
    pub(super) set_next_run_from_none: SqlStr,
    pub(super) set_next_run_from_some: SqlStr,
    pub(super) claim_notifications: SqlStr,
    pub(super) delete_notification: SqlStr,
    pub(super) set_aside: SqlStr,
    pub(super) update_notification: SqlStr,
    /// The health and rate statements.
    pub(super) endpoint: super::endpoint::EndpointStatements,
}

/// A statement built from fixed text and the validated, quoted schema name only.
fn sql(text: String) -> SqlStr {
    AssertSqlSafe(Arc::<str>::from(text)).into_sql_str()
}

impl Statements {
    /// The statements on the tables of the schema `s` (validated and quoted).
    pub(super) fn new(s: &str) -> Self {
        // The name inside the quotes: validated to ASCII letters, digits and `_`, so it is also a plain literal.
        let name = s.trim_matches('"');
        let channel = super::listen::CHANNEL;
        let first_in_line = first_in_line(&format!("{s}.deliveries"));
        Statements {
            endpoint: super::endpoint::EndpointStatements::new(s),
            notify_queued: sql(format!("SELECT pg_notify('{channel}', '{name}')")),
            // Sorted by key, so that two enqueues lock the rows of their lines in one order.
            take_places: sql(format!(
                "INSERT INTO {s}.order_lines (order_key, last_seq)
                 SELECT k, n FROM UNNEST($1::bytea[], $2::int8[]) AS t(k, n) ORDER BY k
                 ON CONFLICT (order_key) DO UPDATE SET last_seq = {s}.order_lines.last_seq + EXCLUDED.last_seq
                 RETURNING order_key, last_seq"
            )),
            waits_behind: sql(format!(
                "SELECT id FROM {s}.deliveries
                 WHERE order_key = $1 AND order_key IS NOT NULL AND order_seq < $2
                     AND status IN ('queued', 'dispatched')
                 ORDER BY order_seq DESC LIMIT 1"
            )),
            insert_deliveries: sql(format!(
                "INSERT INTO {s}.deliveries ({DELIVERY_COLUMNS}, order_key, order_seq)
                 SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[], $12::text[], $13::int8[],
                     $14::timestamptz[], $15::timestamptz[], $16::timestamptz[], $17::timestamptz[], $18::bytea[],
                     $19::bool[], $20::bytea[], $21::int8[])
                 ON CONFLICT (id) DO NOTHING
                 RETURNING id"
            )),
            // ORDER BY ord: `seq` follows the order the entries were given in.
            insert_entries: sql(format!(
                "INSERT INTO {s}.log_entries ({LOG_COLUMNS})
                 SELECT {LOG_COLUMNS}
                 FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[],
                     $8::timestamptz[], $9::int4[], $10::text[], $11::text[], $12::timestamptz[], $13::text[],
                     $14::text[])
                     WITH ORDINALITY AS e({LOG_COLUMNS}, ord)
                 ORDER BY ord"
            )),
            // `due_at` is `next_attempt_at` for queued rows and `lease_expires_at` for dispatched ones, so this is
            // `status='queued' AND next_attempt_at <= $1 OR status='dispatched' AND lease_expires_at <= $1`, in a
            // form the partial index `deliveries_due` answers in order. RETURNING has no order of its own: the
            // outer SELECT restores the due order.
            claim_deliveries: sql(format!(
                "WITH due AS (
                     SELECT id, due_at FROM {s}.deliveries
                     WHERE status IN ('queued', 'dispatched') AND due_at <= $1 AND {first_in_line}
                     ORDER BY due_at, created_at, id
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED
                 ), claimed AS (
                     UPDATE {s}.deliveries d
                     SET status = 'dispatched', claim_token = $3, lease_expires_at = $4, updated_at = $1
                     FROM due
                     WHERE d.id = due.id
                     RETURNING d.*, due.due_at AS was_due
                 )
                 SELECT {DELIVERY_COLUMNS} FROM claimed ORDER BY was_due, created_at, id"
            )),
            complete_deliveries: sql(format!(
                "UPDATE {s}.deliveries d
                 SET status = c.status, attempts = c.attempts, next_attempt_at = c.next_attempt_at,
                     lease_expires_at = NULL, claim_token = NULL, updated_at = c.at
                 FROM UNNEST($1::bytea[], $2::bytea[], $3::text[], $4::int8[], $5::timestamptz[], $6::timestamptz[])
                     AS c(id, token, status, attempts, next_attempt_at, at)
                 WHERE d.id = c.id AND d.status = 'dispatched' AND d.claim_token = c.token
                 RETURNING d.id"
            )),
            insert_notification: sql(format!(
                "INSERT INTO {s}.notifications ({NOTIFICATION_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (delivery_id) DO NOTHING"
            )),
            queue_depth: sql(format!(
                "SELECT count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = 'dispatched'),
                     min(created_at) FILTER (WHERE status = 'queued')
                 FROM {s}.deliveries WHERE status IN ('queued', 'dispatched')"
            )),
            next_due_at: sql(format!(
                "SELECT due_at FROM {s}.deliveries WHERE status IN ('queued', 'dispatched') AND {first_in_line}
                 ORDER BY due_at LIMIT 1"
            )),
            delivery: sql(format!("SELECT {DELIVERY_COLUMNS} FROM {s}.deliveries WHERE id = $1 AND tenant = $2")),
            log_from: format!("SELECT {LOG_COLUMNS} FROM {s}.log_entries"),
            // Data-modifying CTEs all run, in one statement: the log goes with its deliveries.
            prune: sql(format!(
                "WITH doomed AS (
                     DELETE FROM {s}.deliveries d
                     WHERE d.status IN ('success', 'failed') AND d.updated_at < $1
                       AND NOT EXISTS (SELECT 1 FROM {s}.notifications n WHERE n.delivery_id = d.id)
                     RETURNING d.id
                 ), entries AS (
                     DELETE FROM {s}.log_entries l USING doomed WHERE l.delivery_id = doomed.id
                 )
                 SELECT count(*) FROM doomed"
            )),
            // The conflict path holds the (tenant, day) row lock while it computes from the current `used`, so
            // concurrent callers queue up and each sees the previous one's count.
            acquire_quota: sql(format!(
                "INSERT INTO {s}.quota_usage AS q (tenant, day, used, last_granted)
                 VALUES ($1, $2, LEAST($3::int8, $4::int8), LEAST($3::int8, $4::int8))
                 ON CONFLICT (tenant, day) DO UPDATE
                 SET used = q.used + LEAST(GREATEST($3::int8 - q.used, 0), $4::int8),
                     last_granted = LEAST(GREATEST($3::int8 - q.used, 0), $4::int8)
                 RETURNING last_granted"
            )),
            // Claimed rows of the request, each with whether it holds the grant for the attempt it is about to make.
            held_grants: sql(format!(
                "SELECT id, (quota_day IS NOT DISTINCT FROM $3 AND quota_attempt = attempts + 1) AS held
                 FROM {s}.deliveries WHERE id = ANY($1) AND claim_token = $2 AND status = 'dispatched' FOR UPDATE"
            )),
            store_grants: sql(format!(
                "UPDATE {s}.deliveries SET quota_day = $2, quota_attempt = attempts + 1 WHERE id = ANY($1)"
            )),
            quota_used: sql(format!("SELECT used FROM {s}.quota_usage WHERE tenant = $1 AND day = $2")),
            mark_fired: sql(format!(
                "INSERT INTO {s}.fired_once (tenant, workflow, record_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            )),
            next_run: sql(format!("SELECT next_run FROM {s}.schedules WHERE tenant = $1 AND workflow = $2")),
            // Of two callers inserting at once, the second waits on the first's row and then finds it set.
            set_next_run_from_none: sql(format!(
                "INSERT INTO {s}.schedules AS sch (tenant, workflow, next_run) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, workflow) DO UPDATE SET next_run = EXCLUDED.next_run
                 WHERE sch.next_run IS NULL"
            )),
            set_next_run_from_some: sql(format!(
                "UPDATE {s}.schedules SET next_run = $4
                 WHERE tenant = $1 AND workflow = $2 AND next_run IS NOT DISTINCT FROM $3"
            )),
            claim_notifications: sql(format!(
                "WITH due AS (
                     SELECT delivery_id, due_at FROM {s}.notifications
                     WHERE due_at <= $1
                     ORDER BY due_at, delivery_id
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED
                 ), claimed AS (
                     UPDATE {s}.notifications n
                     SET claim_token = $3, lease_expires_at = $4
                     FROM due
                     WHERE n.delivery_id = due.delivery_id
                     RETURNING n.*, due.due_at AS was_due
                 )
                 SELECT {NOTIFICATION_COLUMNS} FROM claimed ORDER BY was_due, delivery_id"
            )),
            delete_notification: sql(format!(
                "DELETE FROM {s}.notifications WHERE delivery_id = $1 AND claim_token = $2"
            )),
            set_aside: sql(format!(
                "UPDATE {s}.deliveries SET status = 'failed', next_attempt_at = NULL, lease_expires_at = NULL,
                     claim_token = NULL, updated_at = $2
                 WHERE id = $1 AND claim_token = $3"
            )),
            update_notification: sql(format!(
                "UPDATE {s}.notifications
                 SET claim_token = CASE WHEN $7 THEN claim_token END,
                     lease_expires_at = CASE WHEN $7 THEN lease_expires_at END,
                     sent_to = $3, attempts = $4, next_attempt_at = $5,
                     last_error = $6
                 WHERE delivery_id = $1 AND claim_token = $2"
            )),
        }
    }
}
