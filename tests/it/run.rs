//! `socv run` end to end on the simulated lab: the test's own exit status, JUnit from TAP and
//! LAVA markers, a hang (124, board power-cycled), a board dropping the link (retried on
//! another board, its failure count up), a quarantined family (125), and never a lease left.

use crate::support::simlab::{SimLeased, expect_code, post, script, stderr, stdout};
use socv::exit_codes;
use std::path::PathBuf;

fn no_lease_left(lab: &SimLeased) {
    let out = lab.socv("ann", &["leases", "--json"]);
    expect_code(&out, 0);
    assert_eq!(stdout(&out).trim(), "[]", "a lease was left held");
}

fn boards(lab: &SimLeased) -> Vec<leased::api::BoardView> {
    let out = lab.socv("ann", &["boards", "--json"]);
    expect_code(&out, 0);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_tests_own_exit_status_comes_back_and_junit_has_its_cases() {
    let lab = SimLeased::start(&["socA:1"]);
    let test = script(
        &lab,
        "t.sh",
        "echo 'TAP version 13'; echo '1..3'; echo 'ok 1 - boots'; echo 'not ok 2 - dma <&>'\n\
         echo 'ok 3 - gpu # SKIP no gpu'\n\
         echo '<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=latency RESULT=pass MEASUREMENT=3.5 UNITS=ms>'\n\
         exit \"${1:-0}\"",
    );
    let junit = lab.dir.path().join("junit.xml");
    let test_arg = test.to_str().unwrap();
    let out = lab.socv(
        "ann",
        &[
            "run",
            "socA",
            test_arg,
            "--junit",
            junit.to_str().unwrap(),
            "--",
            "3",
        ],
    );
    expect_code(&out, 3);
    assert!(stdout(&out).contains("ok 1 - boots"), "output is streamed");
    no_lease_left(&lab);

    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("name"), Some("t.sh@soca-001"));
    let cases: Vec<(String, Option<&str>)> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| {
            let verdict = n
                .children()
                .find(|c| c.is_element())
                .map(|c| c.tag_name().name())
                .filter(|t| *t != "system-out");
            (n.attribute("name").unwrap_or("").to_string(), verdict)
        })
        .collect();
    assert_eq!(cases[0], ("boots".into(), None));
    assert_eq!(cases[1], ("dma <&>".into(), Some("failure")));
    assert_eq!(cases[2], ("gpu".into(), Some("skipped")));
    assert_eq!(cases[3], ("latency".into(), None));
    let property = |name: &str| {
        suite
            .descendants()
            .find(|n| n.has_tag_name("property") && n.attribute("name") == Some(name))
            .and_then(|n| n.attribute("value"))
            .map(str::to_owned)
    };
    assert_eq!(property("board").as_deref(), Some("soca-001"));
    assert_eq!(property("family").as_deref(), Some("socA"));
    assert!(property("lease").is_some_and(|l| l.starts_with("l-")));

    let out = lab.socv("ann", &["run", "socA", test_arg, "--json"]);
    expect_code(&out, 0);
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["outcome"], "passed");
    assert_eq!(result["test_cases"].as_array().unwrap().len(), 4);
    // The run directory keeps the console log and the result.
    let log = PathBuf::from(result["log_path"].as_str().unwrap());
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("ok 1 - boots")
    );
    assert!(log.with_file_name("result.json").exists());
}

#[test]
fn bad_input_fails_before_any_lease() {
    let lab = SimLeased::start(&["socA:1"]);
    let out = lab.socv("ann", &["run", "socA", "/nonexistent/test.elf"]);
    expect_code(&out, exit_codes::LAB_FAILURE);
    assert!(stderr(&out).contains("cannot read /nonexistent/test.elf"));
    let test = script(&lab, "t.sh", "exit 0");
    let out = lab.socv("ann", &["run", "socZ", test.to_str().unwrap()]);
    expect_code(&out, exit_codes::LAB_FAILURE);
    assert!(stderr(&out).contains("'socZ'"), "{}", stderr(&out));
    no_lease_left(&lab);
}

#[test]
fn a_test_that_cannot_run_is_126_or_127() {
    let lab = SimLeased::start(&["socA:1"]);
    let not_exec = script(&lab, "data.bin", "");
    std::fs::write(&not_exec, b"\x7fELF not really").unwrap();
    let out = lab.socv("ann", &["run", "socA", not_exec.to_str().unwrap()]);
    assert!(
        matches!(out.status.code(), Some(126) | Some(127) | Some(2)),
        "{:?}: {}",
        out.status,
        stderr(&out)
    );
    let missing_interp = script(&lab, "py.sh", "");
    std::fs::write(&missing_interp, b"#!/no/such/interpreter\n").unwrap();
    let out = lab.socv("ann", &["run", "socA", missing_interp.to_str().unwrap()]);
    expect_code(&out, exit_codes::NOT_FOUND_ON_BOARD);
    no_lease_left(&lab);
}

#[test]
fn a_hang_is_124_the_board_power_cycled_and_released() {
    let lab = SimLeased::start(&["socA:1"]);
    let test = script(&lab, "hang.sh", "echo started; sleep 60");
    // The board freezes while the test runs: Ctrl-C cannot bring the shell back.
    let pdu = lab.pdu_url.clone();
    let freezer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        post(
            &format!("{pdu}/boards/soca-001/fault"),
            serde_json::json!({"kind": "hang"}),
        );
    });
    let out = lab.socv(
        "ann",
        &["run", "socA", test.to_str().unwrap(), "--timeout", "3s"],
    );
    freezer.join().unwrap();
    expect_code(&out, exit_codes::TIMED_OUT);
    assert!(
        stderr(&out).contains("power-cycling it"),
        "{}",
        stderr(&out)
    );
    no_lease_left(&lab);
    // After the power cycle the board works again.
    let ok = script(&lab, "ok.sh", "exit 0");
    expect_code(&lab.socv("ann", &["run", "socA", ok.to_str().unwrap()]), 0);
}

#[test]
fn a_dropped_link_is_retried_on_another_board_and_counted_against_the_first() {
    let lab = SimLeased::start(&["socA:2"]);
    post(
        &format!("{}/boards/soca-001/fault", lab.pdu_url),
        serde_json::json!({"kind": "drop_after_secs", "value": 1}),
    );
    let test = script(&lab, "slow.sh", "echo working; sleep 2; echo done");
    let out = lab.socv("ann", &["run", "socA", test.to_str().unwrap(), "--json"]);
    expect_code(&out, 0);
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["board"], "soca-002");
    assert_eq!(result["attempts"][0]["board"], "soca-001");
    assert!(
        stderr(&out).contains("retrying on another board"),
        "{}",
        stderr(&out)
    );
    let first = boards(&lab)
        .into_iter()
        .find(|b| b.id == "soca-001")
        .unwrap();
    assert_eq!(first.failures, 1);
    no_lease_left(&lab);
}

#[test]
fn a_quarantined_family_is_125_saying_so() {
    let lab = SimLeased::start(&["socA:2"]);
    for board in ["soca-001", "soca-002"] {
        for _ in 0..3 {
            post(
                &format!("{}/api/v1/boards/{board}/health", lab.url),
                serde_json::json!({"ok": false, "reason": "test"}),
            );
        }
    }
    let test = script(&lab, "t.sh", "exit 0");
    let out = lab.socv("ann", &["run", "socA", test.to_str().unwrap()]);
    expect_code(&out, exit_codes::LAB_FAILURE);
    assert!(
        stderr(&out).contains("unhealthy or drained"),
        "{}",
        stderr(&out)
    );
    no_lease_left(&lab);
}

#[test]
fn sigterm_and_ctrl_c_during_a_run_release_the_lease() {
    let lab = SimLeased::start(&["socA:1"]);
    let test = script(&lab, "long.sh", "echo started; sleep 60");
    for signal in ["TERM", "INT"] {
        let mut child = lab
            .command("ann", &["run", "socA", test.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the test runs (its first line is streamed), then signal socv.
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let t0 = std::time::Instant::now();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        // The line comes as it is printed, not when the test ends (60 s later).
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "output held back"
        );
        assert_eq!(line, "started\n");
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(exit_codes::INTERRUPTED),
            "after SIG{signal}"
        );
        no_lease_left(&lab);
    }
}
