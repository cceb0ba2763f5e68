//! Run history end to end: `socv run` on the simulated lab records each run in leased, and
//! `socv history` shows it (table and JSON, with filters); bad flags are refused before leased is
//! asked; leased going away mid-run costs one warning, never the run's result.

use crate::support::simlab::{SimLeased, expect_code, post, script, stderr, stdout};
use leased::api::{CaseOutcome, Run, RunState};
use socv::exit_codes;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn history(lab: &SimLeased, args: &[&str]) -> Vec<Run> {
    let mut all = vec!["history", "--json"];
    all.extend_from_slice(args);
    let out = lab.socv("ann", &all);
    expect_code(&out, 0);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// `socv run --json`: the run's result.
fn run_json(lab: &SimLeased, test: &Path, code: i32) -> serde_json::Value {
    let out = lab.socv("ann", &["run", "socA", test.to_str().unwrap(), "--json"]);
    expect_code(&out, code);
    assert!(
        !stderr(&out).contains("run history not recorded"),
        "{}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn runs_are_recorded_and_history_shows_and_filters_them() {
    let lab = SimLeased::start(&["socA:2"]);
    let pass = script(
        &lab,
        "pass.sh",
        "echo 'TAP version 13'; echo '1..2'; echo 'ok 1 - boots'; echo 'ok 2 - dma'",
    );
    let fail = script(
        &lab,
        "fail.sh",
        "echo '1..2'; echo 'ok 1 - boots'; echo 'not ok 2 - dma'; exit 3",
    );
    let passed = run_json(&lab, &pass, 0);
    let failed = run_json(&lab, &fail, 3);

    let runs = history(&lab, &[]);
    assert_eq!(runs.len(), 2, "{runs:#?}");
    // Newest first; the record has the run's own id and what the run reported.
    let (newest, oldest) = (&runs[0], &runs[1]);
    for (run, result) in [(newest, &failed), (oldest, &passed)] {
        assert_eq!(run.id, result["run_id"].as_str().unwrap());
        assert_eq!(run.board_id, result["board"].as_str().unwrap());
        assert_eq!(run.holder, result["holder"].as_str().unwrap());
        assert_eq!(run.lease_id.as_deref(), result["lease_id"].as_str());
        assert_eq!(run.family, "socA");
        assert!(run.holder.starts_with("ann@"), "{}", run.holder);
        assert!(run.started_at_ms.is_some() && run.ended_at_ms.is_some());
        assert!(
            run.log_lines >= 3,
            "console lines recorded: {}",
            run.log_lines
        );
    }
    assert!(newest.binary.ends_with("fail.sh"), "{}", newest.binary);
    assert_eq!(newest.state, RunState::Failed);
    assert_eq!(newest.exit_code, Some(3));
    assert_eq!(newest.socv_exit_code, Some(3));
    let cases: Vec<(&str, CaseOutcome)> = newest
        .cases
        .iter()
        .map(|c| (c.name.as_str(), c.outcome))
        .collect();
    assert_eq!(
        cases,
        [("boots", CaseOutcome::Pass), ("dma", CaseOutcome::Fail)]
    );
    assert_eq!(oldest.state, RunState::Completed);
    assert_eq!(oldest.exit_code, Some(0));
    assert_eq!(oldest.cases.len(), 2);

    // The table for people.
    let out = lab.socv("ann", &["history"]);
    expect_code(&out, 0);
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for header in [
        "WHEN", "RUN", "BOARD", "BINARY", "HOLDER", "RESULT", "DURATION",
    ] {
        assert!(lines[0].contains(header), "{table}");
    }
    assert!(!lines[0].contains("PREFECT"), "no Prefect here: {table}");
    assert!(lines[1].contains(&newest.id) && lines[1].contains("failed (3)"));
    assert!(lines[1].contains("fail.sh") && !lines[1].contains("/fail.sh"));
    assert!(lines[2].contains(&oldest.id) && lines[2].contains("completed (0)"));

    // Filters.
    let failed_only = history(&lab, &["--state", "failed"]);
    assert_eq!(ids(&failed_only), [newest.id.as_str()]);
    let board = oldest.board_id.as_str();
    let on_board = history(&lab, &["--board", board]);
    let expected: Vec<&str> = runs
        .iter()
        .filter(|r| r.board_id == board)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids(&on_board), expected);
    assert_eq!(history(&lab, &["--since", "1h"]).len(), 2);
    assert_eq!(ids(&history(&lab, &["--limit", "1"])), [newest.id.as_str()]);
    assert!(history(&lab, &["--family", "socB"]).is_empty());
    assert!(history(&lab, &["--holder", "nobody@nowhere"]).is_empty());
    let holder = newest.holder.as_str();
    assert_eq!(history(&lab, &["--holder", holder]).len(), 2);
    let out = lab.socv("ann", &["history", "--state", "cancelled"]);
    expect_code(&out, 0);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("no runs recorded"),
        "{}",
        stderr(&out)
    );

    // Bad flags: a usage error naming the flag and the value; nothing asked, nothing changed.
    for (args, words) in [
        (&["--since", "forever"][..], &["--since", "forever"][..]),
        (
            &["--state", "bogus"],
            &["--state", "bogus", "completed", "timed_out"],
        ),
        (&["--limit", "0"], &["--limit", "0"]),
        (&["--limit", "5000"], &["--limit", "5000"]),
    ] {
        let mut all = vec!["history"];
        all.extend_from_slice(args);
        let out = lab.socv("ann", &all);
        expect_code(&out, exit_codes::USAGE);
        assert_eq!(stdout(&out), "");
        for word in words {
            assert!(stderr(&out).contains(word), "{word}: {}", stderr(&out));
        }
    }
    assert_eq!(history(&lab, &[]), runs);
}

fn ids(runs: &[Run]) -> Vec<&str> {
    runs.iter().map(|r| r.id.as_str()).collect()
}

#[test]
fn a_run_with_no_record_is_not_recorded() {
    let lab = SimLeased::start(&["socA:1"]);
    let test = script(&lab, "t.sh", "echo hi");
    let out = lab.socv(
        "ann",
        &["run", "socA", test.to_str().unwrap(), "--no-record"],
    );
    expect_code(&out, 0);
    assert!(history(&lab, &[]).is_empty());
}

/// A TCP proxy in front of leased that can be cut: it then refuses new connections and drops
/// the open ones, as a leased that died would.
struct Proxy {
    url: String,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: &str) -> Proxy {
        let target = target.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, o) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    // Closing the listening socket cannot be done from here; refuse instead.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut open = o.lock().unwrap();
                for stream in [&client, &server] {
                    open.push(stream.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { url, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn leased_going_away_mid_run_costs_one_warning_not_the_result() {
    let lab = SimLeased::start(&["socA:1"]);
    let proxy = Proxy::start(&lab.url);
    let test = script(
        &lab,
        "t.sh",
        "i=0; while [ $i -lt 30 ]; do echo \"line $i\"; i=$((i+1)); sleep 0.1; done; exit 5",
    );
    let mut cmd = lab.command("ann", &["run", "socA", test.to_str().unwrap()]);
    cmd.env("SOCV_DAEMON", &proxy.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    // Once leased has the run as Running, leased "dies" for socv.
    let deadline = Instant::now() + Duration::from_secs(20);
    let running = loop {
        let runs = history(&lab, &["--state", "running"]);
        if let Some(run) = runs.into_iter().next() {
            break run;
        }
        assert!(Instant::now() < deadline, "the run never showed as running");
        std::thread::sleep(Duration::from_millis(50));
    };
    proxy.cut();
    let out = child.wait_with_output().unwrap();
    expect_code(&out, 5);
    let err = stderr(&out);
    assert_eq!(
        err.matches("run history not recorded").count(),
        1,
        "one warning: {err}"
    );
    assert!(stdout(&out).contains("line 29"), "the output went on");
    // leased kept what it got before it went away.
    let run = history(&lab, &[])
        .into_iter()
        .find(|r| r.id == running.id)
        .unwrap();
    assert_eq!(run.state, RunState::Running);
    assert_eq!(run.board_id, "soca-001");
}

#[test]
fn a_retry_after_a_board_failure_is_a_second_record_the_first_crashed() {
    let lab = SimLeased::start(&["socA:2"]);
    post(
        &format!("{}/boards/soca-001/fault", lab.pdu_url),
        serde_json::json!({"kind": "drop_after_secs", "value": 1}),
    );
    let test = script(&lab, "slow.sh", "echo working; sleep 2; echo done");
    let result = run_json(&lab, &test, 0);
    let id = result["run_id"].as_str().unwrap();
    let runs = history(&lab, &[]);
    assert_eq!(ids(&runs), [format!("{id}-2").as_str(), id]);
    let (retry, first) = (&runs[0], &runs[1]);
    assert_eq!(first.board_id, "soca-001");
    assert_eq!(first.state, RunState::Crashed);
    let message = first.message.as_deref().unwrap_or_default();
    assert!(message.contains("retrying on another board"), "{message}");
    assert_eq!(first.exit_code, None);
    assert_eq!(retry.board_id, "soca-002");
    assert_eq!(retry.state, RunState::Completed);
    assert_eq!(retry.exit_code, Some(0));
    let message = retry.message.as_deref().unwrap_or_default();
    assert!(
        message.contains(&format!("attempt 2 of run {id}")),
        "{message}"
    );
}

#[test]
fn a_timeout_and_a_stop_are_recorded_as_such() {
    let lab = SimLeased::start(&["socA:1"]);
    let hang = script(&lab, "hang.sh", "echo started; sleep 30");
    let out = lab.socv(
        "ann",
        &["run", "socA", hang.to_str().unwrap(), "--timeout", "2s"],
    );
    expect_code(&out, exit_codes::TIMED_OUT);
    let timed_out = &history(&lab, &["--limit", "1"])[0];
    assert_eq!(timed_out.state, RunState::TimedOut);
    assert_eq!(timed_out.socv_exit_code, Some(exit_codes::TIMED_OUT));
    assert_eq!(timed_out.exit_code, None);

    let mut child = lab
        .command("ann", &["run", "socA", hang.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line, "started\n");
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(exit_codes::INTERRUPTED));
    let stopped = &history(&lab, &["--limit", "1"])[0];
    assert_eq!(stopped.state, RunState::Cancelled);
    assert_eq!(stopped.socv_exit_code, Some(exit_codes::INTERRUPTED));
    assert_eq!(stopped.message.as_deref(), Some("stopped by SIGTERM"));
    assert_eq!(history(&lab, &["--state", "timed_out"]).len(), 1);
}
