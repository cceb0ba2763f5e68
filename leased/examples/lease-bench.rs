//! Load benchmark of leased: acquire+release cycles over HTTP, one JSON line of figures.
//!
//! ```text
//! cargo run --release -p leased --example lease-bench -- --clients 64 --seconds 10
//! cargo run --release -p leased --example lease-bench -- --clients 64 --seconds 10 --store redis
//! cargo run --release -p leased --example lease-bench -- --clients 64 --rate 5000 --store redis
//! cargo run --release -p leased --example lease-bench -- --store redis://127.0.0.1:6379/
//! cargo run --release -p leased --example lease-bench -- --daemon http://127.0.0.1:8000
//! leased/examples/bench.sh      # the README's figures: cycles, `socv boards` time, idle RSS
//! ```
//!
//! By default it writes a lab of `--boards` boards (default: one per client) of one family on
//! 127.0.0.1 (distinct telnet ports nobody needs to listen on), starts leased in this process on
//! 127.0.0.1:0 with the embedded store in a temporary directory, and runs `--clients` tasks that
//! each loop `POST /api/v1/lease` (no wait) then `DELETE /api/v1/lease/{id}` on a keep-alive
//! connection of their own. `--store redis` starts a throwaway redis-server on a free loopback
//! port; `--store redis://…` or `--store PATH` uses that store (on a given Redis every key is
//! under `lease-bench-<pid>:`, never the lab's `socv:`). `--daemon URL` loads an external leased
//! instead (its largest family, or `--family`).
//!
//! The clients run in this process: with an in-process daemon both compete for the same cores
//! (the output says `"client":"in-process"`; with `--daemon` it says `"separate-process"`). A
//! cycle counts only when both the grant and the release succeeded; its latency is from sending
//! the acquire to the answer of the release. `double_grants` counts client-observed holding
//! intervals (from the grant's answer to the release's request, which lie inside the daemon's own
//! interval) that overlap another one on the same board.
//!
//! Without `--rate` the load is a closed loop: each client starts its next cycle as soon as the
//! last one ended, so by Little's law the mean latency is `clients / ops_per_s` (64 clients at
//! 5,000 cycles/s: 12.8 ms) whatever the daemon does; it measures peak throughput. `--rate R`
//! offers R cycles/s in total, each client on its own fixed schedule (open loop), and measures the
//! latency at that load; a client whose cycle overran its slot starts the next one at once, and
//! an `ops_per_s` below R shows the shortfall.
//!
//! stdout: one JSON line; stderr: progress and diagnostics.

use anyhow::{Context, bail};
use clap::Parser;
use leased::api::{self, BoardView, DaemonHealth, Lease, LeaseRequest};
use leased::config::{Config, StoreSpec};
use socv_testkit::RedisServer;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Family of the generated lab's boards.
const BENCH_FAMILY: &str = "bench";
/// First telnet port of the generated lab (board i gets BASE_PORT + i).
const BASE_PORT: u32 = 20000;
/// Lease lifetime asked for; long enough never to expire during a run.
const TTL_S: u64 = 60;
/// Errors shown in full on stderr; the rest are only counted.
const ERRORS_SHOWN: usize = 5;

#[derive(Debug, Parser)]
#[command(
    name = "lease-bench",
    about = "Acquire+release cycles against leased over HTTP; prints one JSON line."
)]
struct Args {
    /// Concurrent clients, each on its own keep-alive connection
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Measured duration in seconds (after the warm-up)
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Total cycles per second to offer, spread evenly over the clients (open loop); without
    /// it every client starts its next cycle as soon as the last one ends (closed loop)
    #[arg(long)]
    rate: Option<f64>,
    /// Warm-up in seconds, not measured (connections, script loading)
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// `embedded` (a temporary file), `redis` (a throwaway redis-server), a redis:// URL or a
    /// path of an embedded store file
    #[arg(long, default_value = "embedded")]
    store: String,
    /// Boards in the generated lab [default: one per client]
    #[arg(long)]
    boards: Option<usize>,
    /// Bench an external leased at this URL instead of one in this process
    #[arg(long, conflicts_with_all = ["store", "boards"])]
    daemon: Option<String>,
    /// Family to lease [default: `bench`, or the external daemon's largest family]
    #[arg(long)]
    family: Option<String>,
    /// API token for an external daemon that has tokens (Authorization: Bearer)
    #[arg(long, env = "SOCV_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Worker threads of the in-process daemon [default: CPUs, like the leased binary]
    #[arg(long)]
    daemon_threads: Option<usize>,
    /// Worker threads of the clients [default: CPUs]
    #[arg(long)]
    client_threads: Option<usize>,
}

/// The daemon under load and what it needs to be torn down.
struct Target {
    url: String,
    family: String,
    boards: usize,
    store: String,
    daemon: String,
    in_process: Option<InProcessDaemon>,
    /// Worker threads of the in-process daemon.
    in_process_threads: Option<usize>,
    /// Kept until the end: the throwaway Redis and the temporary lab and store.
    _redis: Option<RedisServer>,
    _dir: Option<tempfile::TempDir>,
}

struct InProcessDaemon {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

/// The JSON line on stdout.
#[derive(serde::Serialize)]
struct Figures {
    store: String,
    clients: usize,
    boards: usize,
    /// Offered cycles per second (`--rate`); `null`: closed loop.
    rate: Option<f64>,
    /// Measured span: from the end of the warm-up to the last client's last cycle.
    seconds: f64,
    /// Grant+release cycles begun in the measured span.
    cycles: usize,
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// `503` answers (nothing free); with a board per client there are none.
    busy: u64,
    errors: u64,
    double_grants: u64,
    acquire_p50_ms: f64,
    release_p50_ms: f64,
    /// `in-process`: the clients share this process (and its CPUs) with the daemon;
    /// `separate-process`: the daemon is `--daemon` (on this machine when the URL is local).
    client: &'static str,
    client_threads: usize,
    /// `in-process`, or the URL of the external daemon.
    daemon: String,
    daemon_threads: Option<usize>,
    cpus: usize,
    /// Names this line among the other figures of `bench.sh`.
    bench: &'static str,
}

/// One client's results.
#[derive(Default)]
struct ClientReport {
    /// Latency of each measured cycle, in nanoseconds.
    latencies: Vec<u64>,
    acquire: Vec<u64>,
    release: Vec<u64>,
    /// (board, granted, released) in ns since the start, for every cycle (warm-up too); the
    /// board is an index into `board_names`.
    holds: Vec<(u32, u64, u64)>,
    board_names: Vec<String>,
    busy: u64,
    errors: u64,
    first_errors: Vec<String>,
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if args.seconds.is_nan() || args.seconds <= 0.0 || args.warmup.is_nan() || args.warmup < 0.0 {
        bail!("--seconds must be positive and --warmup not negative");
    }
    if args.daemon_threads == Some(0) || args.client_threads == Some(0) {
        bail!("--daemon-threads and --client-threads must be at least 1");
    }
    if args.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        bail!("--rate must be positive");
    }
    let target = match &args.daemon {
        Some(url) => external(url, &args)?,
        None => in_process(&args)?,
    };
    let client_threads = args.client_threads.unwrap_or_else(cpus);
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    eprintln!(
        "lease-bench: {} clients on {} boards of '{}' at {} ({} store), {} s + {} s warm-up",
        args.clients,
        target.boards,
        target.family,
        target.url,
        target.store,
        args.seconds,
        args.warmup
    );
    let run = clients.block_on(load(&args, &target));
    drop(clients);
    let mut target = target;
    if let Some(d) = target.in_process.take() {
        let _ = d.stop.send(());
        match d.thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("lease-bench: the daemon ended with an error: {e:#}"),
            Err(_) => eprintln!("lease-bench: the daemon thread panicked"),
        }
    }
    let (reports, measured) = run?;
    let summary = summarize(reports);
    let seconds = measured.as_secs_f64();
    let line = Figures {
        store: target.store.clone(),
        clients: args.clients,
        boards: target.boards,
        rate: args.rate,
        seconds: round(seconds, 3),
        cycles: summary.cycles,
        ops_per_s: round(summary.cycles as f64 / seconds, 1),
        p50_ms: ms(summary.p50),
        p99_ms: ms(summary.p99),
        max_ms: ms(summary.max),
        busy: summary.busy,
        errors: summary.errors,
        double_grants: summary.double_grants,
        acquire_p50_ms: ms(summary.acquire_p50),
        release_p50_ms: ms(summary.release_p50),
        client: if target.in_process_threads.is_some() {
            "in-process"
        } else {
            "separate-process"
        },
        client_threads,
        daemon: target.daemon.clone(),
        daemon_threads: target.in_process_threads,
        cpus: cpus(),
        bench: "lease-cycles",
    };
    println!(
        "{}",
        serde_json::to_string(&line).context("encoding the figures")?
    );
    drop(target);
    Ok(())
}

/// Writes the lab, opens the store and starts leased on its own runtime and thread.
fn in_process(args: &Args) -> anyhow::Result<Target> {
    let boards = args.boards.unwrap_or(args.clients);
    if boards == 0 || boards > 40_000 {
        bail!("--boards must be between 1 and 40000");
    }
    let family = args.family.clone().unwrap_or_else(|| BENCH_FAMILY.into());
    let dir = tempfile::Builder::new()
        .prefix("lease-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    let lab = write_lab(dir.path(), &family, boards)?;
    let (spec, redis) = match args.store.as_str() {
        "embedded" => (StoreSpec::Embedded(dir.path().join("leased.redb")), None),
        "redis" => {
            if !on_path("redis-server") {
                bail!(
                    "--store redis needs redis-server on PATH (Debian: apt-get install redis-server)"
                );
            }
            eprintln!("lease-bench: starting a throwaway redis-server on 127.0.0.1");
            let server = RedisServer::start();
            (StoreSpec::Redis(server.url()), Some(server))
        }
        other => (StoreSpec::parse(other), None),
    };
    let store = match &spec {
        StoreSpec::Redis(_) => "redis",
        StoreSpec::Embedded(_) => "embedded",
    };
    let threads = args.daemon_threads.unwrap_or_else(cpus);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("leased".into())
        .spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("leased-worker")
                .enable_all()
                .build()
                .context("starting the daemon runtime")?;
            runtime.block_on(async move {
                let started = async {
                    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                        .await
                        .context("binding 127.0.0.1:0")?;
                    let addr = listener.local_addr().context("reading the bound address")?;
                    let mut config = Config::new(lab, spec);
                    config.listen = addr;
                    // Never touch the keys of a lab that shares a given Redis.
                    config.redis_prefix = format!("lease-bench-{}:", std::process::id());
                    let state = leased::server::build(config).await?;
                    anyhow::Ok((listener, addr, state))
                }
                .await;
                let (listener, addr, state) = match started {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("{e:#}")));
                        return Err(e);
                    }
                };
                let _ = ready_tx.send(Ok(addr));
                leased::server::serve_state(state, listener, async move {
                    let _ = stopped.await;
                })
                .await
            })
        })
        .context("starting the daemon thread")?;
    let addr = match ready_rx.recv() {
        Ok(Ok(addr)) => addr,
        Ok(Err(e)) => bail!("starting leased: {e}"),
        Err(_) => bail!("the daemon thread ended before it listened"),
    };
    Ok(Target {
        url: format!("http://{addr}"),
        family,
        boards,
        store: store.into(),
        daemon: "in-process".into(),
        in_process: Some(InProcessDaemon { stop, thread }),
        in_process_threads: Some(threads),
        _redis: redis,
        _dir: Some(dir),
    })
}

/// Asks an external leased for its store and the family to lease.
fn external(url: &str, args: &Args) -> anyhow::Result<Target> {
    let url = url.trim_end_matches('/').to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")?;
    let (health, boards) = runtime.block_on(async {
        let client = http_client(args)?;
        let health: DaemonHealth = client
            .get(format!("{url}/api/v1/health"))
            .send()
            .await
            .with_context(|| format!("reaching leased at {url}"))?
            .error_for_status()?
            .json()
            .await
            .context("reading /api/v1/health")?;
        let boards: Vec<BoardView> = client
            .get(format!("{url}/api/v1/boards"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .context("reading /api/v1/boards")?;
        anyhow::Ok((health, boards))
    })?;
    let mut per_family: HashMap<&str, usize> = HashMap::new();
    for b in &boards {
        *per_family.entry(b.family.as_str()).or_default() += 1;
    }
    let family = match &args.family {
        Some(f) => f.clone(),
        None => per_family
            .iter()
            .max_by_key(|(f, n)| (**n, std::cmp::Reverse(**f)))
            .map(|(f, _)| f.to_string())
            .with_context(|| format!("leased at {url} has no boards"))?,
    };
    Ok(Target {
        boards: per_family.get(family.as_str()).copied().unwrap_or(0),
        url: url.clone(),
        family,
        store: health.store.backend,
        daemon: url,
        in_process: None,
        in_process_threads: None,
        _redis: None,
        _dir: None,
    })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

fn write_lab(dir: &Path, family: &str, n: usize) -> anyhow::Result<std::path::PathBuf> {
    let mut yaml = String::from("# lease-bench's lab: nothing listens on these ports.\nboards:\n");
    for i in 1..=n {
        yaml.push_str(&format!(
            "  - board_id: {family}-{i:05}\n    soc_family: {family}\n    board_ip: 127.0.0.1\n    \
             telnet_port: {}\n    lab_location: Bench\n",
            BASE_PORT + i as u32
        ));
    }
    let path = dir.join("boards.yaml");
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn http_client(args: &Args) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = &args.token {
        let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("--token: not a valid header value")?;
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")
}

fn fail(report: &mut ClientReport, what: String) {
    report.errors += 1;
    if report.first_errors.len() < ERRORS_SHOWN {
        report.first_errors.push(what);
    }
}

/// Runs the clients; returns their reports and the measured span.
async fn load(
    args: &Args,
    target: &Target,
) -> anyhow::Result<(Vec<ClientReport>, std::time::Duration)> {
    let origin = Instant::now();
    let measure_from = origin + Duration::from_secs_f64(args.warmup);
    let until = measure_from + Duration::from_secs_f64(args.seconds);
    let acquire_url: Arc<str> = format!("{}/api/v1/lease", target.url).into();
    let release_base: Arc<str> = format!("{}/api/v1/lease/", target.url).into();
    let body = Arc::new(LeaseRequest {
        board_family: Some(target.family.clone()),
        ttl_s: Some(TTL_S),
        ..LeaseRequest::default()
    });
    let mut tasks = Vec::with_capacity(args.clients);
    // Open loop: client i starts its cycles at origin + (i + k * clients) / rate.
    let period = args
        .rate
        .map(|r| Duration::from_secs_f64(args.clients as f64 / r));
    for i in 0..args.clients {
        let client = http_client(args)?;
        let mut next = period.map(|p| origin + p.mul_f64(i as f64 / args.clients as f64));
        let holder = format!("bench-{i}@lease-bench");
        let (acquire_url, release_base, body) =
            (acquire_url.clone(), release_base.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut report = ClientReport::default();
            let mut boards: HashMap<String, u32> = HashMap::new();
            let nanos = |t: Instant| t.duration_since(origin).as_nanos() as u64;
            loop {
                if let (Some(at), Some(p)) = (next.as_mut(), period) {
                    // Behind schedule (a slow cycle): start at once rather than in a burst.
                    let now = Instant::now();
                    if *at > now {
                        tokio::time::sleep_until((*at).into()).await;
                    } else if now - *at > p {
                        *at = now;
                    }
                    *at += p;
                }
                let start = Instant::now();
                if start >= until {
                    break;
                }
                let resp = client
                    .post(&*acquire_url)
                    .header(api::HOLDER_HEADER, &holder)
                    .json(&*body)
                    .send()
                    .await;
                let resp = match resp {
                    Ok(r) => r,
                    Err(e) => {
                        fail(&mut report, format!("acquire: {e}"));
                        continue;
                    }
                };
                match resp.status().as_u16() {
                    201 => {}
                    503 => {
                        report.busy += 1;
                        let _ = resp.bytes().await;
                        tokio::task::yield_now().await;
                        continue;
                    }
                    other => {
                        let text = resp.text().await.unwrap_or_default();
                        fail(&mut report, format!("acquire: {other} {text}"));
                        continue;
                    }
                }
                let lease: Lease = match resp.json().await {
                    Ok(l) => l,
                    Err(e) => {
                        fail(&mut report, format!("acquire: reading the lease: {e}"));
                        continue;
                    }
                };
                let granted = Instant::now();
                let next = boards.len() as u32;
                let board = *boards.entry(lease.board_id.clone()).or_insert(next);
                let releasing = Instant::now();
                let resp = client
                    .delete(format!("{release_base}{}", lease.id))
                    .header(api::HOLDER_HEADER, &holder)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().as_u16() == 200 => {
                        let _ = r.bytes().await;
                    }
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let text = r.text().await.unwrap_or_default();
                        fail(
                            &mut report,
                            format!("release {}: {status} {text}", lease.id),
                        );
                        continue;
                    }
                    Err(e) => {
                        fail(&mut report, format!("release {}: {e}", lease.id));
                        continue;
                    }
                }
                let end = Instant::now();
                report.holds.push((board, nanos(granted), nanos(releasing)));
                if start >= measure_from {
                    report.latencies.push((end - start).as_nanos() as u64);
                    report.acquire.push((granted - start).as_nanos() as u64);
                    report.release.push((end - releasing).as_nanos() as u64);
                }
            }
            report.board_names = vec![String::new(); boards.len()];
            for (name, i) in boards {
                report.board_names[i as usize] = name;
            }
            report
        }));
    }
    let mut reports = Vec::with_capacity(tasks.len());
    let mut ended = Instant::now();
    for task in tasks {
        reports.push(task.await.context("a client task failed")?);
        ended = Instant::now();
    }
    // The last cycles finish after `until`; count them over the span they took.
    let measured = ended.saturating_duration_since(measure_from);
    Ok((reports, measured.max(Duration::from_secs_f64(args.seconds))))
}

struct Summary {
    cycles: usize,
    p50: u64,
    p99: u64,
    max: u64,
    acquire_p50: u64,
    release_p50: u64,
    busy: u64,
    errors: u64,
    double_grants: u64,
}

fn summarize(reports: Vec<ClientReport>) -> Summary {
    let mut latencies = Vec::new();
    let mut acquire = Vec::new();
    let mut release = Vec::new();
    let mut holds: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    let (mut busy, mut errors) = (0, 0);
    for r in reports {
        latencies.extend(r.latencies);
        acquire.extend(r.acquire);
        release.extend(r.release);
        for (board, from, to) in r.holds {
            let name = &r.board_names[board as usize];
            holds.entry(name.clone()).or_default().push((from, to));
        }
        busy += r.busy;
        errors += r.errors;
        for e in r.first_errors {
            eprintln!("lease-bench: error: {e}");
        }
    }
    latencies.sort_unstable();
    acquire.sort_unstable();
    release.sort_unstable();
    Summary {
        cycles: latencies.len(),
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        max: latencies.last().copied().unwrap_or(0),
        acquire_p50: percentile(&acquire, 50.0),
        release_p50: percentile(&release, 50.0),
        busy,
        errors,
        double_grants: holds.into_values().map(overlaps).sum(),
    }
}

/// Holding intervals that begin before an earlier-begun one on the same board has ended.
fn overlaps(mut intervals: Vec<(u64, u64)>) -> u64 {
    intervals.sort_unstable();
    let mut latest_end = 0;
    let mut n = 0;
    for (i, (from, to)) in intervals.into_iter().enumerate() {
        if i > 0 && from < latest_end {
            n += 1;
        }
        latest_end = latest_end.max(to);
    }
    n
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(nanos: u64) -> f64 {
    round(nanos as f64 / 1e6, 3)
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_holds_are_counted() {
        assert_eq!(overlaps(vec![(0, 10), (10, 20), (20, 30)]), 0);
        assert_eq!(overlaps(vec![(0, 10), (5, 20)]), 1);
        assert_eq!(overlaps(vec![(0, 100), (10, 20), (30, 40)]), 2);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
