//! `socv batch` end to end on the simulated lab: 20 tests on 6 boards (summary and one JUnit
//! file), a bad plan refused before any lease, and Ctrl-C releasing every lease.

use crate::support::simlab::{SimLeased, expect_code, script_in as script, stderr, stdout};
use socv::exit_codes;
use std::path::PathBuf;

fn no_lease_left(lab: &SimLeased) {
    let out = lab.socv("ann", &["leases", "--json"]);
    expect_code(&out, 0);
    assert_eq!(stdout(&out).trim(), "[]", "a lease was left held");
}

fn write_plan(lab: &SimLeased, text: &str) -> PathBuf {
    let path = lab.dir.path().join("plan.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn twenty_tests_on_six_boards_give_one_summary_and_one_junit_file() {
    let lab = SimLeased::start(&["socA:6"]);
    let tests = lab.dir.path().join("tests");
    std::fs::create_dir(&tests).unwrap();
    script(
        &tests,
        "pass.sh",
        "echo '1..2'; echo 'ok 1 - boots'; echo 'ok 2 - dma'; exit 0",
    );
    script(
        &tests,
        "fail.sh",
        "echo '1..2'; echo 'ok 1 - boots'; echo 'not ok 2 - dma'; exit 1",
    );
    // 14 passing runs (a repeat of 12 and two single tests) and 6 failing ones.
    let plan = write_plan(
        &lab,
        "defaults: { family: socA, timeout: 2m, retries: 1 }\n\
         tests:\n\
         \x20 - binary: tests/pass.sh\n\
         \x20   repeat: 12\n\
         \x20 - binary: tests/fail.sh\n\
         \x20   name: failing\n\
         \x20   repeat: 6\n\
         \x20 - binary: ./tests/pass.sh\n\
         \x20   board: soca-003\n\
         \x20 - binary: tests/pass.sh\n\
         \x20   args: [--quick]\n",
    );
    let junit = lab.dir.path().join("junit.xml");
    let out = lab.socv(
        "ann",
        &[
            "batch",
            plan.to_str().unwrap(),
            "--parallel",
            "6",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    expect_code(&out, exit_codes::FAILURE);
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("TEST") && lines[0].contains("CASES"),
        "{table}"
    );
    assert_eq!(lines.len(), 21, "{table}");
    let rows = &lines[1..];
    assert_eq!(
        rows.iter().filter(|l| l.contains(" passed ")).count(),
        14,
        "{table}"
    );
    let failing: Vec<&&str> = rows.iter().filter(|l| l.contains(" failed ")).collect();
    assert_eq!(failing.len(), 6, "{table}");
    assert!(
        failing.iter().all(|l| l.starts_with("failing (")),
        "{table}"
    );
    assert!(rows[18].contains("soca-003"), "{table}");
    assert!(stderr(&out).contains("14 of 20 passed"), "{}", stderr(&out));
    // The tests' own output stays out of socv's streams.
    assert!(!table.contains("ok 1 - boots"));
    assert!(!stderr(&out).contains("ok 1 - boots"));
    no_lease_left(&lab);

    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 20);
    let failing_suites = suites
        .iter()
        .filter(|s| {
            s.children().any(|c| {
                c.has_tag_name("testcase")
                    && c.attribute("name") == Some("dma")
                    && c.children().any(|v| v.has_tag_name("failure"))
            })
        })
        .count();
    assert_eq!(failing_suites, 6, "{xml}");
    assert!(
        suites
            .iter()
            .filter(|s| s
                .attribute("name")
                .is_some_and(|n| n.starts_with("fail.sh@")))
            .count()
            == 6,
        "{xml}"
    );

    let out = lab.socv("ann", &["batch", plan.to_str().unwrap(), "--json"]);
    expect_code(&out, exit_codes::FAILURE);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["passed"], 14);
    assert_eq!(summary["failed"], 6);
    assert_eq!(summary["tests"].as_array().unwrap().len(), 20);
    no_lease_left(&lab);
}

#[test]
fn a_bad_plan_is_refused_before_any_lease() {
    let lab = SimLeased::start(&["socA:1"]);
    script(lab.dir.path(), "t.sh", "exit 0");
    let plan = write_plan(
        &lab,
        "tests:\n  - binary: t.sh\n    family: socA\n  - binary: t.sh\n    family: socA\n    colour: red\n",
    );
    let out = lab.socv("ann", &["batch", plan.to_str().unwrap()]);
    expect_code(&out, exit_codes::USAGE);
    let err = stderr(&out);
    assert!(err.contains("plan.yaml:6:"), "{err}");
    assert!(err.contains("tests[1].colour"), "{err}");

    let plan = write_plan(
        &lab,
        "defaults: { family: socA }\ntests:\n  - binary: t.sh\n  - binary: missing.elf\n",
    );
    let out = lab.socv("ann", &["batch", plan.to_str().unwrap()]);
    expect_code(&out, exit_codes::USAGE);
    let err = stderr(&out);
    assert!(err.contains("plan.yaml:4:"), "{err}");
    assert!(err.contains("tests[1].binary"), "{err}");
    assert!(err.contains("missing.elf"), "{err}");

    let plan = write_plan(&lab, "tests:\n  - binary: t.sh\n    family: socZ\n");
    let out = lab.socv("ann", &["batch", plan.to_str().unwrap()]);
    expect_code(&out, exit_codes::USAGE);
    assert!(stderr(&out).contains("plan.yaml:3:"), "{}", stderr(&out));
    assert!(stderr(&out).contains("'socZ'"), "{}", stderr(&out));
    no_lease_left(&lab);
}

#[test]
fn ctrl_c_during_a_batch_releases_every_lease() {
    let lab = SimLeased::start(&["socA:3"]);
    script(lab.dir.path(), "long.sh", "echo started; sleep 60");
    let plan = write_plan(
        &lab,
        "tests:\n  - binary: long.sh\n    family: socA\n    repeat: 5\n",
    );
    let child = lab
        // Two runs more than boards: they wait in leased's queue when Ctrl-C comes.
        .command("ann", &["batch", plan.to_str().unwrap(), "--parallel", "5"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until all three boards are leased.
    let t0 = std::time::Instant::now();
    loop {
        let out = lab.socv("ann", &["leases", "--json"]);
        let leases: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        if leases.len() == 3 {
            break;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "the batch never held 3 boards"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Let the tests start on their boards.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let status = std::process::Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    expect_code(&out, exit_codes::INTERRUPTED);
    assert!(t0.elapsed() < std::time::Duration::from_secs(50));
    no_lease_left(&lab);
}
