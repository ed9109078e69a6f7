//! One worker pass over 100 queued deliveries, per storage, with a mock HTTP client (the engine's own cost).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use crm_webhooks::testing::{MockHttp, RecordingMailer, StaticDirectory};
use crm_webhooks::MemoryStorage;
use crm_webhooks::{Change, Engine, RecordEvent, SqliteStorage, Storage, WorkflowSet};

const WORKFLOW: &str = r#"[{"id": "w", "module": "Leads", "trigger": "every_save", "actions": [{"title": "t",
  "url": "https://example.com/hook", "content_type": "JSON", "parameters": [{"name": "id", "field": "id"},
  {"name": "customer.name", "field": "name"}, {"name": "summary", "template": "Lead $name"}]}]}]"#;

fn engine(storage: Arc<dyn Storage>) -> Engine {
    let engine = Engine::builder()
        .storage(storage)
        .http(Arc::new(MockHttp::new_ok()))
        .mailer(Arc::new(RecordingMailer::new()))
        .directory(Arc::new(StaticDirectory::new()))
        .batch_size(100)
        .build()
        .unwrap();
    engine.set_workflows("acme", WorkflowSet::from_json(WORKFLOW).unwrap()).unwrap();
    engine
}

async fn fill(engine: &Engine) {
    for i in 0..100 {
        let event = RecordEvent::new("acme", "Leads", format!("10x{i}"), Change::Created, "19x1")
            .field("id", i)
            .field("name", "Globex");
        engine.on_event(&event).await.unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("run_due_100");
    type MakeStorage<'a> = Box<dyn Fn() -> Arc<dyn Storage> + 'a>;
    let stores: Vec<(&str, MakeStorage<'_>)> = vec![
        ("memory", Box::new(|| Arc::new(MemoryStorage::new()))),
        ("sqlite", Box::new(|| Arc::new(SqliteStorage::open(dir.path().join(uuid_name())).unwrap()))),
    ];
    for (name, make) in &stores {
        group.bench_function(*name, |b| {
            b.iter_batched(
                || {
                    let engine = engine(make());
                    runtime.block_on(fill(&engine));
                    engine
                },
                // The engine is returned so that closing the store (a final checkpoint) is dropped untimed.
                |engine| {
                    runtime.block_on(engine.run_due()).unwrap();
                    engine
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn uuid_name() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("bench-{}.sqlite3", NEXT.fetch_add(1, Ordering::Relaxed))
}

criterion_group!(benches, bench);
criterion_main!(benches);
