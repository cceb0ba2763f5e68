//! How fast a push is: 4 MiB through a real busybox telnetd, ser2net and a sim board on
//! loopback, beside raw TCP on the same loopback (the ceiling), plus the cost of one
//! `exec -- true` with connect and login. One JSON object per line on stdout:
//! `{"target", "bytes", "seconds", "mib_per_s"}`.
//!
//! `cargo run --release --example push-bench` (needs busybox-static, ser2net and socat, as
//! the tests do).

use socv::session::{BoardSession, LocalFile, SessionConfig};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PUSH_BYTES: usize = 4 * 1024 * 1024;
const RUNS: usize = 3;

fn report(target: &str, bytes: u64, seconds: f64) {
    let mib_per_s = if bytes > 0 && seconds > 0.0 {
        serde_json::json!(bytes as f64 / (1024.0 * 1024.0) / seconds)
    } else {
        serde_json::Value::Null
    };
    println!(
        "{}",
        serde_json::json!({
            "target": target,
            "bytes": bytes,
            "seconds": seconds,
            "mib_per_s": mib_per_s,
        })
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn board_config(board: &str, port: u16, user: &str, password: &str) -> SessionConfig {
    let mut config = SessionConfig::new(board, "127.0.0.1", port);
    config.username = Some(user.into());
    config.password = Some(password.into());
    config
}

async fn push_median(
    config: &SessionConfig,
    file: &LocalFile,
    remote: &str,
) -> anyhow::Result<f64> {
    let mut session = BoardSession::connect(config.clone()).await?;
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        session.push(file, remote, |_| {}).await?;
        times.push(started.elapsed().as_secs_f64());
    }
    session.close().await?;
    Ok(median(times))
}

/// One `exec -- true` as the CLI will do it: connect, log in, run, log out.
async fn exec_true_median(config: &SessionConfig) -> anyhow::Result<(f64, f64)> {
    let mut whole = Vec::new();
    let mut command_only = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut session = BoardSession::connect(config.clone()).await?;
        let before = Instant::now();
        let outcome = session.exec_capture("true").await?;
        command_only.push(before.elapsed().as_secs_f64());
        anyhow::ensure!(outcome.status == 0, "true failed");
        session.close().await?;
        whole.push(started.elapsed().as_secs_f64());
    }
    Ok((median(whole), median(command_only)))
}

/// Raw TCP on the same loopback: write `bytes` to a reader that discards them.
async fn raw_tcp(bytes: usize) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let reader = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0usize;
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<usize, std::io::Error>(total);
            }
            total += n;
        }
    });
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let chunk = vec![0x5au8; 256 * 1024];
    let started = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        stream.write_all(&chunk).await?;
        sent += chunk.len();
    }
    stream.shutdown().await?;
    let received = reader.await??;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        received == sent,
        "the reader got {received} of {sent} bytes"
    );
    Ok(seconds)
}

fn fail(target: &str, err: &anyhow::Error) {
    eprintln!("push-bench: {target}: {err:#}");
    println!(
        "{}",
        serde_json::json!({"target": target, "error": format!("{err:#}")})
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut data = vec![0u8; PUSH_BYTES];
    rand::Rng::fill(&mut rand::rng(), &mut data[..]);
    let file = LocalFile::from_bytes("bench.bin", data);

    let raw_bytes = 1024 * 1024 * 1024;
    match raw_tcp(raw_bytes).await {
        Ok(s) => report("raw TCP loopback (ceiling)", raw_bytes as u64, s),
        Err(e) => fail("raw TCP loopback (ceiling)", &e),
    }

    let busybox = socv_testkit::BusyboxTelnetd::start();
    let config = board_config(
        "bench-busybox",
        busybox.port,
        socv_testkit::USER,
        socv_testkit::PASSWORD,
    );
    let remote = busybox.home.join("bench.bin").display().to_string();
    match push_median(&config, &file, &remote).await {
        Ok(s) => report("push to busybox telnetd", file.len(), s),
        Err(e) => fail("push to busybox telnetd", &e),
    }
    match exec_true_median(&config).await {
        Ok((whole, command)) => {
            report(
                "exec -- true on busybox telnetd (connect+login+run+logout)",
                0,
                whole,
            );
            report(
                "true on busybox telnetd (one command, logged in)",
                0,
                command,
            );
        }
        Err(e) => fail("exec -- true on busybox telnetd", &e),
    }
    drop(busybox);

    let ser2net = socv_testkit::Ser2net::start();
    let config = board_config(
        "bench-ser2net",
        ser2net.port,
        socv_testkit::USER,
        socv_testkit::PASSWORD,
    );
    let remote = ser2net.home.join("bench.bin").display().to_string();
    match push_median(&config, &file, &remote).await {
        Ok(s) => report("push to ser2net (pty console)", file.len(), s),
        Err(e) => fail("push to ser2net (pty console)", &e),
    }
    drop(ser2net);

    let sim_config = socv::sim::SimConfig {
        families: vec![socv::sim::FamilySpec {
            name: "bench".into(),
            boards: 1,
        }],
        ..socv::sim::SimConfig::default()
    };
    let login = sim_config.login.clone();
    match socv::sim::SimLab::start(sim_config).await {
        Ok(lab) => {
            if let Some(board) = lab.boards().first() {
                let mut config = board_config(
                    &board.board_id,
                    board.address.port(),
                    &login.username,
                    &login.password,
                );
                // The sim's login is root without a password unless one is set.
                if login.password.is_empty() {
                    config.password = Some(String::new());
                }
                config.login_timeout = Duration::from_secs(30);
                let remote = board.workdir.join("bench.bin").display().to_string();
                match push_median(&config, &file, &remote).await {
                    Ok(s) => report("push to a sim board", file.len(), s),
                    Err(e) => fail("push to a sim board", &e),
                }
            }
            lab.shutdown().await;
        }
        Err(e) => fail("push to a sim board", &anyhow::Error::new(e)),
    }
    Ok(())
}
