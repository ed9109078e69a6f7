//! Evaluates an event against workflows and shows (`--dry-run`) or delivers the webhooks it fires.
//!
//! ```text
//! cargo run --example deliver -- --workflows FILE --event FILE [--db PATH] [--allow-private-network] [--dry-run]
//! ```
//!
//! `--dry-run` prints a JSON array with one object per webhook the event would send (`workflow`, `action`,
//! `method`, `url`, `headers` with `Authorization` redacted, `body`), `[]` when nothing matches. Without it the
//! webhooks are delivered for real and every log entry is printed as one JSON object per line.
//! A bad argument or file exits with status 2 and a one-line error on stderr.

use std::process::ExitCode;

use crm_webhooks::engine::preview;
use crm_webhooks::{RecordEvent, WorkflowSet};

#[derive(Debug, Default)]
struct Args {
    workflows: Option<String>,
    event: Option<String>,
    db: Option<String>,
    allow_private_network: bool,
    dry_run: bool,
}

const USAGE: &str = "usage: deliver --workflows FILE --event FILE [--db PATH] [--allow-private-network] [--dry-run]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value; {USAGE}"));
        match arg.as_str() {
            "--workflows" => args.workflows = Some(value("--workflows")?),
            "--event" => args.event = Some(value("--event")?),
            "--db" => args.db = Some(value("--db")?),
            "--allow-private-network" => args.allow_private_network = true,
            "--dry-run" => args.dry_run = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}; {USAGE}")),
        }
    }
    Ok(args)
}

fn read(path: &str, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {what} file {path:?}: {e}"))
}

fn load(args: &Args) -> Result<(WorkflowSet, RecordEvent), String> {
    let workflows_path = args.workflows.as_deref().ok_or_else(|| format!("--workflows is required; {USAGE}"))?;
    let event_path = args.event.as_deref().ok_or_else(|| format!("--event is required; {USAGE}"))?;
    let workflows =
        WorkflowSet::from_json(&read(workflows_path, "workflows")?).map_err(|e| format!("{workflows_path}: {e}"))?;
    let event: RecordEvent = serde_json::from_str(&read(event_path, "event")?)
        .map_err(|e| format!("{event_path}: not a valid event: {e}"))?;
    Ok((workflows, event))
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| {
        let (workflows, event) = load(&args)?;
        if args.dry_run {
            let now = event.occurred_at.unwrap_or_else(|| crm_webhooks::Clock::now(&crm_webhooks::ports::SystemClock));
            let requests =
                preview(&workflows, &event, now.with_timezone(&chrono_tz::Tz::UTC)).map_err(|e| e.to_string())?;
            let json = serde_json::to_string_pretty(&requests).map_err(|e| format!("cannot print: {e}"))?;
            println!("{json}");
            Ok(())
        } else {
            deliver::run(&args, workflows, event)
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {}", message.replace('\n', " "));
            ExitCode::from(2)
        }
    }
}

mod deliver {
    use std::sync::Arc;

    use super::Args;
    use crm_webhooks::testing::{RecordingMailer, StaticDirectory};
    use crm_webhooks::{Engine, LogQuery, RecordEvent, ReqwestClient, SqliteStorage, WorkflowSet};

    /// Delivers for real: ReqwestClient, SQLite at `--db` (or a temporary file), worker passes until every
    /// delivery is settled or waits for a later retry; then every log entry, one JSON object per line.
    pub(super) fn run(args: &Args, workflows: WorkflowSet, event: RecordEvent) -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        runtime.block_on(deliver(args, workflows, event))
    }

    async fn deliver(args: &Args, workflows: WorkflowSet, event: RecordEvent) -> Result<(), String> {
        let temp = tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let db = match &args.db {
            Some(path) => std::path::PathBuf::from(path),
            None => temp.path().join("deliver.sqlite3"),
        };
        let storage = SqliteStorage::open(&db).map_err(|e| format!("{}: {e}", db.display()))?;
        let http = ReqwestClient::builder()
            .allow_private_networks(args.allow_private_network)
            .build()
            .map_err(|e| e.to_string())?;
        let engine = Engine::builder()
            .storage(Arc::new(storage))
            .http(Arc::new(http))
            // Failure notifications are recorded, not mailed: this tool has no mail server.
            .mailer(Arc::new(RecordingMailer::new()))
            .directory(Arc::new(StaticDirectory::new()))
            .build()
            .map_err(|e| e.to_string())?;
        let tenant = event.tenant.clone();
        engine.set_workflows(tenant.clone(), workflows).map_err(|e| e.to_string())?;
        let ids = engine.on_event(&event).await.map_err(|e| e.to_string())?;
        engine.run_until_idle(1000).await.map_err(|e| e.to_string())?;
        let mut entries = Vec::new();
        for id in ids {
            let mut log = engine
                .log(&LogQuery::tenant(tenant.clone()).delivery(id).limit(LogQuery::MAX_LIMIT))
                .await
                .map_err(|e| e.to_string())?;
            log.reverse();
            entries.extend(log);
        }
        for entry in entries {
            println!("{}", serde_json::to_string(&entry).map_err(|e| format!("cannot print: {e}"))?);
        }
        Ok(())
    }
}
