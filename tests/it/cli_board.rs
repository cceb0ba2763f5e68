//! `socv exec`, `socv push` and `socv demo` end to end: the real binary, leased in-process,
//! and the simulated lab's telnet boards with a real shell.

use crate::support::simlab::{SOCV, SimLeased, expect_code, stderr, stdout};
use socv::exit_codes;
use std::process::Command;

/// Leases a board of `family` as `user`, returning its id.
fn lease(lab: &SimLeased, user: &str, family: &str) -> String {
    let out = lab.socv(user, &["lease", family, "--json"]);
    expect_code(&out, 0);
    let lease: leased::api::Lease = serde_json::from_slice(&out.stdout).expect("lease JSON");
    lease.board_id
}

#[test]
fn exec_returns_the_commands_exit_status_and_output() {
    let lab = SimLeased::start(&["socA:1"]);
    let board = lease(&lab, "ann", "socA");
    for code in [0, 1, 7, 42, 255] {
        let out = lab.socv(
            "ann",
            &[
                "exec",
                &board,
                "--",
                &format!("echo out-{code}; exit {code}"),
            ],
        );
        expect_code(&out, code);
        assert_eq!(stdout(&out), format!("out-{code}\n"));
    }
    // Output without a final newline, and text that looks like socv's own markers.
    let out = lab.socv(
        "ann",
        &[
            "exec",
            &board,
            "--",
            "printf '__SOCV_RC_0000_0__\\nno newline'",
        ],
    );
    expect_code(&out, 0);
    assert_eq!(stdout(&out), "__SOCV_RC_0000_0__\nno newline");
    // Words after -- are joined like ssh does; the board's shell runs them in its own directory.
    let out = lab.socv(
        "ann",
        &["exec", &board, "--", "pwd", "&&", "echo", "$((6*7))"],
    );
    expect_code(&out, 0);
    let text = stdout(&out);
    assert!(text.ends_with(&format!("/{board}\n42\n")), "{text}");
}

#[test]
fn exec_timeout_interrupts_and_exits_124() {
    let lab = SimLeased::start(&["socA:1"]);
    let board = lease(&lab, "ann", "socA");
    let started = std::time::Instant::now();
    let out = lab.socv(
        "ann",
        &["exec", &board, "--timeout", "1s", "--", "sleep 30"],
    );
    expect_code(&out, exit_codes::TIMED_OUT);
    // Not a speed check: `sleep 30` was interrupted rather than left to finish.
    assert!(started.elapsed() < std::time::Duration::from_secs(29));
    assert!(stderr(&out).contains("ran past 1s"), "{}", stderr(&out));
    // The board is usable right after.
    expect_code(&lab.socv("ann", &["exec", &board, "--", "true"]), 0);
}

#[test]
fn a_board_you_do_not_hold_is_refused() {
    let lab = SimLeased::start(&["socA:2"]);
    let board = lease(&lab, "ann", "socA");
    let out = lab.socv("bob", &["exec", &board, "--", "true"]);
    expect_code(&out, exit_codes::PERMISSION_DENIED);
    assert!(stderr(&out).contains("held by ann@"), "{}", stderr(&out));
    let out = lab.socv("bob", &["push", &board, SOCV]);
    expect_code(&out, exit_codes::PERMISSION_DENIED);
    let out = lab.socv("bob", &["exec", "soca-002", "--", "true"]);
    expect_code(&out, exit_codes::NOT_FOUND);
    assert!(
        stderr(&out).contains("you hold no lease on 'soca-002'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn push_verifies_every_byte_and_refuses_a_missing_file_first() {
    let lab = SimLeased::start(&["socA:1"]);
    let board = lease(&lab, "ann", "socA");
    let local = lab.dir.path().join("all-bytes.bin");
    let data: Vec<u8> = (0..=255u8).cycle().take(256 * 1024 + 17).collect();
    std::fs::write(&local, &data).unwrap();
    let out = lab.socv(
        "ann",
        &[
            "push",
            &board,
            local.to_str().unwrap(),
            "pushed.bin",
            "--json",
        ],
    );
    expect_code(&out, 0);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["bytes"], data.len());
    // The sim board's working directory is on this machine: compare the bytes themselves.
    let on_board = lab
        .dir
        .path()
        .join("boards")
        .join(&board)
        .join("pushed.bin");
    assert_eq!(std::fs::read(&on_board).unwrap(), data);
    let out = lab.socv("ann", &["exec", &board, "--", "test -x pushed.bin"]);
    expect_code(&out, 0);

    // A file that does not exist fails before socv even asks leased (a dead daemon URL).
    let out = Command::new(SOCV)
        .args(["push", &board, "/nonexistent/test.elf"])
        .env("SOCV_DAEMON", "http://127.0.0.1:9")
        .output()
        .unwrap();
    expect_code(&out, exit_codes::FAILURE);
    assert!(
        stderr(&out).contains("cannot read /nonexistent/test.elf"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn demo_runs_the_sample_test_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(SOCV)
        .arg("demo")
        .env("USER", "newcomer")
        .env("XDG_CONFIG_HOME", dir.path())
        .env("TMPDIR", dir.path())
        .env_remove("SOCV_DAEMON")
        .output()
        .unwrap();
    expect_code(&out, 0);
    let text = stdout(&out);
    for line in ["1..4", "ok 1 - a shell runs", "ok 4 - arithmetic works"] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    assert!(
        text.contains("soca-001") && text.contains("socb-002"),
        "{text}"
    );
    let err = stderr(&out);
    assert!(
        err.contains("the test exited 0") && err.contains("released"),
        "{err}"
    );
    // Nothing is left behind in the temporary directory.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("socv-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn console_relays_keys_and_tilde_dot_leaves_with_the_lease_held() {
    use std::io::{Read, Write};
    let lab = SimLeased::start(&["socA:1"]);
    let board = lease(&lab, "ann", "socA");
    let mut child = lab
        .command("ann", &["console", &board])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut console_out = child.stdout.take().unwrap();
    // Read the console's output on a thread until the answer shows up.
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = console_out.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&all).contains("console-42") {
                let _ = seen_tx.send(());
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    stdin.write_all(b"echo console-$((40 + 2))\n").unwrap();
    seen_rx
        .recv_timeout(std::time::Duration::from_secs(15))
        .expect("the command's output came back through the console");
    stdin.write_all(b"~.").unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("left the console") && err.contains("stays held"),
        "{err}"
    );
    assert!(reader.join().unwrap().contains("console-42"));
    // The lease is still held, and the board still works for exec.
    let leases = lab.socv("ann", &["leases", "--json"]);
    assert!(stdout(&leases).contains(&board));
    expect_code(&lab.socv("ann", &["exec", &board, "--", "true"]), 0);
}
