//! The conformance suite every [`Storage`](crate::Storage) must pass. Each check takes a fresh, empty store and panics with a
//! message naming the broken rule.
//!
//! Run it for your own backend with [`storage_contract_tests!`](crate::storage_contract_tests), which writes one
//! `#[tokio::test]` per check. It takes an async expression that gives a fresh store per check: an `Arc` of the
//! store, a [`Fixture`] (a store with what must live as long as it and a clean-up to run after the check), or a
//! [`Setup::Skip`] with the reason the checks cannot run here:
//! ```ignore
//! crm_webhooks::storage_contract_tests!(async { std::sync::Arc::new(MyStorage::connect().await) });
//! ```

mod endpoint;
mod harness;
mod log;
mod order;
mod outbox;
mod queue;
mod sample;
mod state;

pub use endpoint::{endpoint_health_is_one_count_and_changes_once, rate_windows_cap_across_callers};
pub use harness::{run, run_host, BoxFuture, Fixture, HostTransactions, Setup};
pub use log::{failure_reasons_read_back, log_filters_and_pages, prune_keeps_what_is_not_settled};
pub use order::{
    a_committed_host_transaction_queues_each_delivery_once, a_rolled_back_host_transaction_leaves_nothing,
    once_marks_go_with_their_deliveries, ordered_lines_hold_under_concurrent_claims, ordered_lines_send_one_at_a_time,
    settled_deliveries_are_stored_as_they_are, take_once_mark,
};
pub use outbox::{failure_queues_a_notification, notification_claims_and_updates};
pub use queue::{
    bodies_keep_every_byte, claim_orders_and_limits, claim_takes_only_due, complete_applies_status_and_log,
    concurrent_claims_never_overlap, enqueue_and_read_back, enqueue_is_all_or_nothing,
    enqueue_skips_what_is_already_stored, expired_leases_are_reclaimed, queue_depth_counts_queued_and_in_flight,
    retries_wait_until_due,
};
pub use sample::{sample_delivery, t0};
pub use state::{quota_is_atomic_under_concurrency, quota_is_capped_per_tenant_and_day, schedules_compare_and_set};

/// Writes one `#[tokio::test]` per check of [`storage_contract`](crate::testing::storage_contract), each with a
/// fresh store made by the given async expression: anything that converts into a [`Setup`] (an `Arc` of a
/// store, a [`Fixture`], or [`Setup::Skip`]). This is the one list of the checks.
#[macro_export]
macro_rules! storage_contract_tests {
    ($make:expr) => {
        $crate::storage_contract_tests!(@cases $make;
            enqueue_and_read_back, enqueue_is_all_or_nothing, enqueue_skips_what_is_already_stored, bodies_keep_every_byte, claim_takes_only_due,
            claim_orders_and_limits, expired_leases_are_reclaimed, complete_applies_status_and_log,
            retries_wait_until_due, failure_queues_a_notification, notification_claims_and_updates,
            log_filters_and_pages, prune_keeps_what_is_not_settled, quota_is_capped_per_tenant_and_day,
            quota_is_atomic_under_concurrency, once_marks_go_with_their_deliveries, schedules_compare_and_set,
            concurrent_claims_never_overlap, ordered_lines_send_one_at_a_time, ordered_lines_hold_under_concurrent_claims,
            settled_deliveries_are_stored_as_they_are, queue_depth_counts_queued_and_in_flight,
            endpoint_health_is_one_count_and_changes_once, rate_windows_cap_across_callers,
            failure_reasons_read_back);
        $crate::storage_contract_tests!(@host $make;
            a_rolled_back_host_transaction_leaves_nothing, a_committed_host_transaction_queues_each_delivery_once);
    };
    (@host $make:expr; $($name:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::testing::storage_contract::run_host(
                    stringify!($name),
                    $make.await,
                    |storage, host| ::std::boxed::Box::pin($crate::testing::storage_contract::$name(storage, host)),
                )
                .await;
            }
        )+
    };
    (@cases $make:expr; $($name:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::testing::storage_contract::run(
                    stringify!($name),
                    $make.await,
                    |storage| ::std::boxed::Box::pin($crate::testing::storage_contract::$name(storage)),
                )
                .await;
            }
        )+
    };
}
