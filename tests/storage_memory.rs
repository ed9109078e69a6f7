//! The storage contract, run on `MemoryStorage`.

crm_webhooks::storage_contract_tests!(async { std::sync::Arc::new(crm_webhooks::MemoryStorage::new()) });
