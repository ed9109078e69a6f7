//! In-memory implementations of every port, always compiled, for tests of the engine and of hosts.
//!
//! - [`MemoryStorage`](crate::MemoryStorage), the whole storage contract in memory, lives in
//!   [`adapters::memory`](crate::adapters::memory): hosts may use it too.
//! - [`MockHttp`]: answers from a script and records every request.
//! - [`RecordingMailer`]: records every email; can be told to fail.
//! - [`StaticDirectory`]: users and tenants from a fixed list.
//! - [`ManualClock`]: time that moves only when told to.
//! - [`FaultyStorage`], [`poll_at_most`], [`SeededRng`]: storage faults, cancellation at a chosen poll, and
//!   seeded randomness, for tests that must replay exactly.
//! - [`storage_contract`]: the conformance suite every [`Storage`](crate::Storage) must pass.

mod doubles;
mod faults;
pub mod storage_contract;

pub use doubles::{ManualClock, MockHttp, MockReply, RecordedRequest, RecordingMailer, StaticDirectory};
pub use faults::{poll_at_most, FaultCounts, FaultyStorage, SeededRng};
