//! The cost of `socv run` as a whole process, and of a power cycle beyond the PDU's own delay,
//! on the simulated lab; prints one JSON line.
//!
//! ```text
//! cargo build --release && cargo run --release --example run-bench [-- --runs 30]
//! ```
//!
//! It starts the simulated lab (one socA board, its PDU off for `--pdu-off-ms` per cycle) and
//! leased (embedded store) in this process, then times `target/release/socv run socA T` for a
//! 10 KiB test that exits at once: lease + push + run + release, whole process. Then it times
//! `POST /api/v1/power/soca-001/cycle` through leased against the PDU's off-time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Options {
    runs: usize,
    pdu_off: Duration,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        runs: 30,
        pdu_off: Duration::from_millis(500),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next().ok_or(format!("{a} needs a value"))?;
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{a}: '{value}' is not a number"))?;
        match a.as_str() {
            "--runs" => o.runs = n.max(1) as usize,
            "--pdu-off-ms" => o.pdu_off = Duration::from_millis(n),
            other => return Err(format!("unknown option {other} (--runs N, --pdu-off-ms N)")),
        }
    }
    Ok(o)
}

/// The socv binary built beside this example (target/<profile>/socv).
fn socv_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe
        .parent()
        .and_then(|examples| examples.parent())
        .ok_or("cannot find the target directory")?;
    let socv = dir.join("socv");
    if socv.exists() {
        Ok(socv)
    } else {
        Err(format!(
            "{} is missing: run `cargo build --release` first",
            socv.display()
        ))
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = bench().await {
        eprintln!("run-bench: {e}");
        std::process::exit(1);
    }
}

async fn bench() -> Result<(), String> {
    let opts = options()?;
    let socv = socv_binary()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lab = socv::sim::SimLab::start(socv::sim::SimConfig {
        families: vec!["socA:1".parse()?],
        cycle_off_time: opts.pdu_off,
        root_dir: Some(dir.path().join("boards")),
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let boards = dir.path().join("boards.yaml");
    lab.write_boards(&boards).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let config = leased::Config::new(
        &boards,
        leased::config::StoreSpec::Embedded(dir.path().join("leases.redb")),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(leased::serve(config, listener, async move {
        let _ = stopped.await;
    }));

    // A 10 KiB test that exits at once: a script whose bulk is a here-document nobody reads.
    let test = dir.path().join("t10k");
    let mut body = b"#!/bin/sh\nexit 0\n: <<'EOF'\n".to_vec();
    while body.len() < 10 * 1024 - 4 {
        body.extend_from_slice(
            b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n",
        );
    }
    body.truncate(10 * 1024 - 4);
    body.extend_from_slice(b"\nEOF");
    std::fs::write(&test, &body).map_err(|e| e.to_string())?;

    let run_once = || {
        let started = Instant::now();
        let out = std::process::Command::new(&socv)
            .args(["run", "socA"])
            .arg(&test)
            .env("SOCV_DAEMON", &url)
            .env("SOCV_DATA_DIR", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path())
            .output();
        (started.elapsed(), out)
    };
    // Warm up (page cache, daemon connections), then measure.
    for _ in 0..3 {
        let _ = tokio::task::block_in_place(run_once);
    }
    let mut ms = Vec::with_capacity(opts.runs);
    for _ in 0..opts.runs {
        let (took, out) = tokio::task::block_in_place(run_once);
        let out = out.map_err(|e| format!("running socv: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "socv run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        ms.push(took.as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);

    // Power cycles through leased, as the holder of the board.
    let http = reqwest::Client::new();
    let holder = "bench@run-bench";
    let _held: serde_json::Value = http
        .post(format!("{url}/api/v1/lease"))
        .header(leased::api::HOLDER_HEADER, holder)
        .json(&serde_json::json!({"board_family": "socA"}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let mut cycles = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let res = http
            .post(format!("{url}/api/v1/power/soca-001/cycle"))
            .header(leased::api::HOLDER_HEADER, holder)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("power cycle answered {}", res.status()));
        }
        cycles.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    cycles.sort_by(f64::total_cmp);
    let pdu_ms = opts.pdu_off.as_secs_f64() * 1000.0;
    let cycle_median = percentile(&cycles, 0.5);
    println!(
        "{}",
        serde_json::json!({
            "bench": "run",
            "test_bytes": body.len(),
            "runs": ms.len(),
            "run_ms_median": percentile(&ms, 0.5),
            "run_ms_p90": percentile(&ms, 0.9),
            "run_ms_min": ms[0],
            "power_cycles": cycles.len(),
            "power_cycle_ms_median": cycle_median,
            "pdu_off_ms": pdu_ms,
            "beyond_pdu_ms": cycle_median - pdu_ms,
        })
    );
    let _ = stop.send(());
    let _ = daemon.await;
    lab.shutdown().await;
    Ok(())
}
