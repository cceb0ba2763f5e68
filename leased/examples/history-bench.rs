//! Benchmark of run history: what recording costs a run, and how fast the outbox reaches Prefect.
//!
//! ```text
//! cargo run --release -p leased --example history-bench                 # embedded store
//! cargo run --release -p leased --example history-bench -- --store redis # a throwaway Redis
//! cargo run --release -p leased --example history-bench -- --runs 500 --no-prefect
//! ```
//!
//! It starts leased in this process on 127.0.0.1:0 with Prefect configured on a free port where
//! nothing listens yet, then records `--runs` whole runs from one client, one after another, as
//! socv does: `POST /api/v1/runs`, `PATCH` to running, `--batches` log batches of `--lines` lines,
//! `PATCH` to the end. Each call's latency is what a run pays on its own path for recording
//! (Prefect, being down, is certainly not on that path). Then it starts a real Prefect server
//! (prefect==3.9.1, as the tests find it: `SOCV_TEST_PREFECT` or the venv `tests/run.sh` makes)
//! on that port and times the outbox until it is empty: the delivery rate in runs/s.
//!
//! stdout: one JSON line; stderr: progress.

use anyhow::{Context, bail};
use clap::Parser;
use leased::api::{self, DaemonHealth};
use leased::config::{Config, StoreSpec};
use serde_json::{Value, json};
use socv_testkit::{PrefectServer, RedisServer, free_port};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    name = "history-bench",
    about = "Cost of recording runs in leased, and the outbox's delivery rate to Prefect."
)]
struct Args {
    /// Whole runs to record
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Log batches per run
    #[arg(long, default_value_t = 2)]
    batches: usize,
    /// Lines per log batch
    #[arg(long, default_value_t = 50)]
    lines: usize,
    /// `embedded` (a temporary file) or `redis` (a throwaway redis-server)
    #[arg(long, default_value = "embedded")]
    store: String,
    /// Measure recording only; do not start Prefect
    #[arg(long)]
    no_prefect: bool,
    /// Runs delivered to Prefect at once (leased's `prefect_concurrency`)
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Longest wait for the outbox to empty, in seconds
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// Latency summary in milliseconds.
fn summary(mut ms: Vec<f64>) -> Value {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    json!({
        "calls": ms.len(),
        "mean_ms": (mean * 1000.0).round() / 1000.0,
        "p50_ms": (at(0.5) * 1000.0).round() / 1000.0,
        "p99_ms": (at(0.99) * 1000.0).round() / 1000.0,
        "max_ms": (at(1.0) * 1000.0).round() / 1000.0,
    })
}

async fn timed(
    req: reqwest::RequestBuilder,
    want: reqwest::StatusCode,
    out: &mut Vec<f64>,
) -> anyhow::Result<()> {
    let t = Instant::now();
    let res = req.send().await?;
    let status = res.status();
    let body = res.bytes().await?;
    out.push(t.elapsed().as_secs_f64() * 1000.0);
    if status != want {
        bail!("{status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

async fn health(client: &reqwest::Client, url: &str) -> anyhow::Result<DaemonHealth> {
    Ok(client
        .get(format!("{url}/api/v1/health"))
        .send()
        .await?
        .json()
        .await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.runs == 0 || args.lines > api::MAX_LOG_BATCH_LINES {
        bail!(
            "--runs must be at least 1 and --lines at most {}",
            api::MAX_LOG_BATCH_LINES
        );
    }
    let dir = tempfile::tempdir()?;
    let lab = dir.path().join("boards.yaml");
    std::fs::write(
        &lab,
        "boards:\n  - board_id: bench-001\n    soc_family: bench\n    board_ip: 127.0.0.1\n    \
         telnet_port: 20001\n    lab_location: bench\n",
    )?;
    let mut _redis = None;
    let spec = match args.store.as_str() {
        "embedded" => StoreSpec::Embedded(dir.path().join("leased.redb")),
        "redis" => {
            let r = RedisServer::start();
            let spec = StoreSpec::Redis(r.url());
            _redis = Some(r);
            spec
        }
        other => bail!("--store: expected embedded or redis, not '{other}'"),
    };
    let prefect_port = free_port();
    let mut config = Config::new(&lab, spec);
    config.prefect = Some(leased::config::PrefectConfig {
        api_url: format!("http://127.0.0.1:{prefect_port}/api"),
        auth: None,
        api_key: None,
        ui_url: None,
    });
    config.run_retention = args.runs.max(10_000);
    config.prefect_concurrency = args.concurrency;
    config.probe_interval = Duration::ZERO;
    let state = leased::server::build(config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(leased::server::serve_state(
        state,
        listener,
        stop.clone().cancelled_owned(),
    ));

    let client = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::HeaderName::from_static(api::HOLDER_HEADER),
                reqwest::header::HeaderValue::from_static("bench@localhost"),
            )]
            .into_iter()
            .collect(),
        )
        .build()?;
    let (mut starts, mut runnings, mut logs, mut ends) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    eprintln!(
        "history-bench: recording {} runs ({} store)",
        args.runs, args.store
    );
    let t0 = Instant::now();
    for i in 0..args.runs {
        let id = format!("bench-{i:06}");
        let runs = format!("{url}/api/v1/runs");
        let start = json!({"id": id, "board_id": "bench-001", "binary": "./bench.elf"});
        timed(
            client.post(&runs).json(&start),
            reqwest::StatusCode::CREATED,
            &mut starts,
        )
        .await
        .with_context(|| format!("starting run {id}"))?;
        let run = format!("{runs}/{id}");
        timed(
            client.patch(&run).json(&json!({"state": "running"})),
            reqwest::StatusCode::OK,
            &mut runnings,
        )
        .await?;
        for b in 0..args.batches {
            let lines: Vec<Value> = (0..args.lines)
                .map(|l| json!({"ts_ms": 1_700_000_000_000u64 + (b * args.lines + l) as u64, "message": format!("bench output line {b}.{l} of run {i}")}))
                .collect();
            timed(
                client
                    .post(format!("{run}/logs"))
                    .json(&json!({ "lines": lines })),
                reqwest::StatusCode::NO_CONTENT,
                &mut logs,
            )
            .await?;
        }
        timed(
            client
                .patch(&run)
                .json(&json!({"state": "completed", "exit_code": 0, "cases": [{"name": "bench", "outcome": "pass"}]})),
            reqwest::StatusCode::OK,
            &mut ends,
        )
        .await?;
    }
    let record_s = t0.elapsed().as_secs_f64();
    let all: Vec<f64> = starts
        .iter()
        .chain(&runnings)
        .chain(&logs)
        .chain(&ends)
        .copied()
        .collect();
    let backlog = health(&client, &url).await?.prefect.backlog;

    let mut delivery = Value::Null;
    if !args.no_prefect {
        eprintln!(
            "history-bench: {backlog} outbox entries; starting Prefect on port {prefect_port}"
        );
        let prefect = PrefectServer::started_on(prefect_port).await;
        let t = Instant::now();
        let deadline = t + Duration::from_secs(args.timeout);
        loop {
            let h = health(&client, &url).await?;
            if h.prefect.backlog == 0 && h.prefect.ok {
                break;
            }
            if Instant::now() > deadline {
                bail!("outbox not empty after {}s: {:?}", args.timeout, h.prefect);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let secs = t.elapsed().as_secs_f64();
        delivery = json!({
            "runs": args.runs,
            "entries": backlog,
            "seconds": (secs * 100.0).round() / 100.0,
            "runs_per_s": ((args.runs as f64 / secs) * 10.0).round() / 10.0,
            "entries_per_s": ((backlog as f64 / secs) * 10.0).round() / 10.0,
        });
        drop(prefect);
    }
    stop.cancel();
    let _ = server.await;
    let out = json!({
        "bench": "run-history",
        "store": args.store,
        "runs": args.runs,
        "calls_per_run": 3 + args.batches,
        "lines_per_batch": args.lines,
        "record": {
            "all": summary(all),
            "start": summary(starts),
            "running": summary(runnings),
            "logs": summary(logs),
            "end": summary(ends),
            "runs_per_s": ((args.runs as f64 / record_s) * 10.0).round() / 10.0,
        },
        "outbox_entries": backlog,
        "prefect_concurrency": args.concurrency,
        "delivery": delivery,
    });
    println!("{out}");
    Ok(())
}
