//! The admin pages with something to see: starts the admin router on 127.0.0.1 with SQLite, a local receiver,
//! a worker, and deliveries in every status (Success, Failed after its retries, Queued for a retry, Dispatched),
//! then prints the URL to open.
//!
//! ```text
//! cargo run --features admin --example admin                  # http://127.0.0.1:8080/settings/webhooks, until Ctrl-C
//! cargo run --features admin --example admin -- --port 0      # any free port (the URL printed says which)
//! cargo run --features admin --example admin -- --exit-after-seconds 60   # stops by itself (scripts, tests)
//! ```
//!
//! The retry schedule is the product's (1 h, 2 h, 4 h) scaled down to seconds (1 s, 2 s, 4 s), so the failing
//! delivery has used all its retries within a few seconds of the start. Every request is taken to come from
//! the demo caller (tenant `acme`, user `admin`): a real host plugs in its own session check instead (the
//! README's "The admin page and API"). The setup is in `demo.rs`, which the browser test runs as well.

mod demo;

use std::time::Duration;

use demo::Demo;

struct Options {
    port: u16,
    exit_after: Option<Duration>,
}

fn options() -> Result<Options, String> {
    let usage = "usage: admin [--port N (default 8080, 0 for a free one)] [--exit-after-seconds N]";
    let mut options = Options { port: 8080, exit_after: None };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a number; {usage}"));
        match arg.as_str() {
            "--port" => {
                let text = value("--port")?;
                options.port = text.parse().map_err(|_| format!("--port {text:?} is not a port (0 to 65535)"))?;
            }
            "--exit-after-seconds" => {
                let text = value("--exit-after-seconds")?;
                let seconds: u64 =
                    text.parse().map_err(|_| format!("--exit-after-seconds {text:?} is not a whole number"))?;
                options.exit_after = Some(Duration::from_secs(seconds));
            }
            "-h" | "--help" => return Err(usage.to_owned()),
            other => return Err(format!("unknown argument {other:?}; {usage}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let options = options()?;
    println!("retries after 1 s, 2 s and 4 s (the product's 1 h, 2 h and 4 h, scaled down for the demo)");
    println!("seeding deliveries in every status (about ten seconds) ...");
    let demo = Demo::start(options.port).await.map_err(|error| {
        format!("could not start the demo on 127.0.0.1:{}: {error} (--port 0 picks a free port)", options.port)
    })?;
    println!(
        "\ndemo sign-in: every request is tenant {:?}, user {:?}; a real host plugs in its own session check",
        demo::TENANT,
        demo::USER
    );
    println!("\nopen {}\n", demo.url);
    for seeded in &demo.seeded {
        println!("  {:<10}  {}/deliveries/{}", seeded.status.as_str(), demo.url, seeded.id);
        println!("              {}", seeded.about);
    }
    println!("  the log of failures: {}/log?status=Failed", demo.url);
    println!("  usage and the 30-day chart: {}/usage", demo.url);
    if cfg!(feature = "metrics") {
        println!("  the operators' metrics (Prometheus text): {}/metrics", demo.url.trim_end_matches(demo::MOUNT));
    } else {
        println!("  (with --features admin,metrics the operators' metrics are served at /metrics too)");
    }

    let stop = async {
        match options.exit_after {
            Some(after) => {
                println!("\nstopping in {} s (or on Ctrl-C)", after.as_secs());
                tokio::select! {
                    _ = tokio::time::sleep(after) => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            None => {
                println!("\nCtrl-C stops it");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    stop.await;
    drop(demo);
    println!("stopped");
    Ok(())
}
