//! [`Attached`]: a storage's pool and statements, whose calls run where they are awaited.
//!
//! [`PostgresStorage`](super::PostgresStorage) never runs these on the caller's task: it hands each call to a
//! task of its own (see `detached` there), so a caller that drops its future cannot leave a connection halfway
//! through a transaction. The calls themselves are in a file per concern (`queue`, `log`, `state`, `outbox`).

use std::sync::Arc;

use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, SqlStr};

use crate::ports::{Claim, StorageError};

use super::codec::{db_error, to_i64};
use super::statements::Statements;

/// The pool and statements of a [`PostgresStorage`](super::PostgresStorage), for calls only ever awaited on a
/// task that nothing cancels.
#[derive(Debug, Clone)]
pub(super) struct Attached {
    pub(super) pool: PgPool,
    pub(super) sql: Arc<Statements>,
}

impl Attached {
    /// One of the statements, ready for its parameters.
    pub(super) fn query(&self, sql: &SqlStr) -> Query<'static, Postgres, PgArguments> {
        sqlx::query(sql.clone())
    }

    /// Runs one of the claim statements (`$1` now, `$2` limit, `$3` token, `$4` lease end) and returns its rows.
    pub(super) async fn claim_rows(&self, sql: &SqlStr, claim: &Claim, what: &str) -> Result<Vec<PgRow>, StorageError> {
        if claim.limit == 0 {
            return Ok(Vec::new());
        }
        self.query(sql)
            .bind(claim.now)
            .bind(to_i64(claim.limit))
            .bind(claim.token.as_bytes().as_slice())
            .bind(claim.lease_until)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(what, e))
    }
}
