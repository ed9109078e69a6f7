//! Setting a schema up: the embedded migrations, applied in one transaction under an advisory lock, and the checks
//! on a schema's name.

use sqlx::postgres::PgPool;
use sqlx::AssertSqlSafe;

use crate::adapters::sql::{latest_version, pending, Migration};
use crate::ports::{StorageError, StorageErrorKind};

use super::codec::db_error;

/// Every migration, in order. `__SCHEMA__` in their SQL stands for the quoted schema name.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "queue, log, quota counters, trigger state and notification outbox",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        description: "quota grants held by deliveries",
        sql: include_str!("migrations/0002_quota_grants.sql"),
    },
    Migration {
        version: 3,
        description: "deliveries sent in order per record",
        sql: include_str!("migrations/0003_ordered_lines.sql"),
    },
    Migration {
        version: 4,
        description: "endpoint health, rate limits and notices",
        sql: include_str!("migrations/0004_endpoint_health.sql"),
    },
    Migration {
        version: 5,
        description: "failure codes in the log",
        sql: include_str!("migrations/0005_failure_reasons.sql"),
    },
];

/// The schema version the migrations bring a schema to (`schema_migrations.version` is an `integer`).
pub(super) const LATEST_VERSION: i32 = latest_version(MIGRATIONS) as i32;

/// Creates the schema `schema` if needed and applies the migrations it lacks, in one transaction under an advisory
/// lock, or refuses a schema migrated by a newer version of this library.
pub(super) async fn migrate(pool: &PgPool, schema: &str) -> Result<(), StorageError> {
    let quoted = quote_identifier(schema);
    let mut tx = pool.begin().await.map_err(|e| db_error("starting the migration", e))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(migration_lock_key(schema))
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error("taking the migration lock", e))?;

    // Checking before creating lets a host pre-create the schema for a role without CREATE on the database.
    let schema_exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db_error("looking for the schema", e))?;
    if !schema_exists {
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {quoted}")))
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("creating the schema", e))?;
    }
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations (
            version     integer     NOT NULL PRIMARY KEY,
            description text        NOT NULL,
            applied_at  timestamptz NOT NULL DEFAULT now()
        )"
    )))
    .execute(&mut *tx)
    .await
    .map_err(|e| db_error("creating schema_migrations", e))?;

    let current: Option<i32> =
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT max(version) FROM {quoted}.schema_migrations")))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db_error("reading the schema version", e))?;
    let current = current.unwrap_or(0);
    if current > LATEST_VERSION {
        return Err(StorageError::new(
            StorageErrorKind::Schema,
            format!(
                "schema \"{schema}\" is at version {current}, newer than this crm-webhooks supports \
                 ({LATEST_VERSION}): upgrade crm-webhooks on this server"
            ),
        ));
    }
    for migration in pending(MIGRATIONS, i64::from(current)) {
        let doing = format!("applying migration {} ({})", migration.version, migration.description);
        sqlx::raw_sql(AssertSqlSafe(migration.sql.replace("__SCHEMA__", &quoted)))
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error(&doing, e))?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {quoted}.schema_migrations (version, description) VALUES ($1, $2)"
        )))
        .bind(i32::from(migration.version))
        .bind(migration.description)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error(&doing, e))?;
    }
    tx.commit().await.map_err(|e| db_error("committing the migration", e))
}

/// Checks that `name` can be a schema's name as written (see [`PostgresStorage::schema`](super::PostgresStorage::schema)).
pub(super) fn validate_schema_name(name: &str) -> Result<(), StorageError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.bytes().next().is_some_and(|first| !first.is_ascii_digit())
        && !name.to_ascii_lowercase().starts_with("pg_");
    if valid {
        Ok(())
    } else {
        Err(StorageError::new(
            StorageErrorKind::Schema,
            format!(
                "\"{}\" is not a usable schema name: use 1 to 63 ASCII letters, digits and underscores, not starting \
                 with a digit or pg_",
                name.chars().take(80).collect::<String>()
            ),
        ))
    }
}

/// Quotes an identifier; validated names contain no quote, but quoting keeps case and reserved words safe.
pub(super) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A stable advisory-lock key per schema (FNV-1a, so it never changes between Rust versions).
pub(super) fn migration_lock_key(schema: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"crm-webhooks migrations ".iter().chain(schema.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        for good in ["crm_webhooks", "_x", "Tenant_7", &"a".repeat(63)] {
            assert!(validate_schema_name(good).is_ok(), "{good} should be accepted");
        }
        for bad in ["", "1abc", "a-b", "a b", "x\"; DROP TABLE y; --", "pg_temp", "PG_x", "ä", &"a".repeat(64)] {
            let error = validate_schema_name(bad).expect_err(bad);
            assert_eq!(error.kind(), StorageErrorKind::Schema);
        }
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn lock_keys_differ_per_schema_and_stay_put() {
        assert_ne!(migration_lock_key("a"), migration_lock_key("b"));
        assert_eq!(migration_lock_key("crm_webhooks"), migration_lock_key("crm_webhooks"));
    }

    #[test]
    fn migrations_are_numbered_in_order_up_to_the_schema_version() {
        assert_eq!(MIGRATIONS.first().map(|m| m.version), Some(1));
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version, "{pair:?}");
        }
        assert_eq!(MIGRATIONS.last().map(|m| i32::from(m.version)), Some(LATEST_VERSION));
    }
}
