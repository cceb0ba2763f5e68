//! JUnit XML for runs, shaped the way Jenkins' junit step reads it: one `<testsuite>` per run,
//! one `<testcase>` per test case (or one for the whole binary).

use crate::report::cases::{CaseStatus, EXCERPT_BYTES, TestCase};
use crate::report::result::{Outcome, RunResult};
use crate::report::{ReportError, tail, write_atomically};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use std::borrow::Cow;
use std::io;
use std::path::Path;

/// The JUnit XML document for `runs` (one for `socv run`, several for `socv batch`).
pub fn junit_xml(runs: &[RunResult]) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing into a Vec cannot fail; an error here would be a bug in quick-xml.
    let written = write_document(&mut writer, runs);
    debug_assert!(written.is_ok(), "{written:?}");
    let mut xml = String::from_utf8_lossy(&writer.into_inner()).into_owned();
    xml.push('\n');
    xml
}

/// Writes the JUnit XML for `runs` to `path` atomically (Jenkins may pick it up at any time).
pub fn write_junit(path: &Path, runs: &[RunResult]) -> Result<(), ReportError> {
    write_atomically(path, junit_xml(runs).as_bytes())
}

fn write_document(w: &mut Writer<Vec<u8>>, runs: &[RunResult]) -> io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("testsuites")
        .write_inner_content(|w| {
            for run in runs {
                write_suite(w, run)?;
            }
            Ok(())
        })
        .map(|_| ())
}

/// A test case as the report shows it.
struct ReportCase<'a> {
    name: Cow<'a, str>,
    time: f64,
    verdict: Verdict<'a>,
    output: &'a str,
}

enum Verdict<'a> {
    Passed,
    Skipped(Option<&'a str>),
    Failure { message: String, kind: &'static str },
    Error { message: String, kind: &'static str },
}

fn report_cases(run: &RunResult) -> Vec<ReportCase<'_>> {
    let mut cases: Vec<ReportCase<'_>> = run.test_cases.iter().map(case_of).collect();
    let binary = run.binary.name();
    let whole = ReportCase {
        name: Cow::Borrowed(binary),
        time: seconds(run.duration_ms),
        verdict: Verdict::Passed,
        output: &run.output_tail,
    };
    let any_failed = run
        .test_cases
        .iter()
        .any(|c| matches!(c.status, CaseStatus::Failed | CaseStatus::Unknown));
    let verdict = match run.outcome {
        Outcome::Passed => Verdict::Passed,
        // With failed test cases the exit code says nothing more.
        Outcome::Failed if any_failed => Verdict::Passed,
        Outcome::Failed => Verdict::Failure {
            message: format!("exit code {}", run.exit_code),
            kind: "exit_code",
        },
        other => Verdict::Error {
            message: match &run.error {
                Some(e) => format!("{}: {e}", other.as_str()),
                None => format!("{} (exit code {})", other.as_str(), run.exit_code),
            },
            kind: match other {
                Outcome::TimedOut => "timeout",
                _ => other.as_str(),
            },
        },
    };
    // A run without test cases is one test case; a run with them gets one more only when it
    // ended badly in a way they do not show (a timeout, the lab, a non-zero exit).
    if cases.is_empty() || !matches!(verdict, Verdict::Passed) {
        if !cases.is_empty() && run.test_cases.iter().any(|c| c.name == binary) {
            cases.push(ReportCase {
                name: Cow::Owned(format!("{binary} (run)")),
                verdict,
                ..whole
            });
        } else {
            cases.push(ReportCase { verdict, ..whole });
        }
    }
    cases
}

fn case_of(case: &TestCase) -> ReportCase<'_> {
    let verdict = match case.status {
        CaseStatus::Passed => Verdict::Passed,
        CaseStatus::Skipped => Verdict::Skipped(case.message.as_deref()),
        CaseStatus::Failed => Verdict::Failure {
            message: case.message.clone().unwrap_or_else(|| "failed".to_string()),
            kind: "failure",
        },
        CaseStatus::Unknown => Verdict::Failure {
            message: case
                .message
                .clone()
                .unwrap_or_else(|| "unknown result".to_string()),
            kind: "unknown",
        },
    };
    ReportCase {
        name: Cow::Borrowed(&case.name),
        time: 0.0,
        verdict,
        output: &case.output,
    }
}

fn write_suite(w: &mut Writer<Vec<u8>>, run: &RunResult) -> io::Result<()> {
    let cases = report_cases(run);
    let count = |f: fn(&Verdict<'_>) -> bool| cases.iter().filter(|c| f(&c.verdict)).count();
    let failures = count(|v| matches!(v, Verdict::Failure { .. }));
    let errors = count(|v| matches!(v, Verdict::Error { .. }));
    let skipped = count(|v| matches!(v, Verdict::Skipped(_)));
    let board = run
        .board
        .as_deref()
        .or(run.family.as_deref())
        .unwrap_or("no-board");
    let suite_name = xml_text(&format!("{}@{board}", run.binary.name())).into_owned();
    let tests = cases.len().to_string();
    let (failures, errors, skipped) = (
        failures.to_string(),
        errors.to_string(),
        skipped.to_string(),
    );
    let time = format!("{:.3}", seconds(run.duration_ms));
    let timestamp = timestamp(run.started_at_ms);
    let classname = xml_text(run.binary.name()).into_owned();

    w.create_element("testsuite")
        .with_attributes([
            ("name", suite_name.as_str()),
            ("tests", tests.as_str()),
            ("failures", failures.as_str()),
            ("errors", errors.as_str()),
            ("skipped", skipped.as_str()),
            ("time", time.as_str()),
            ("timestamp", timestamp.as_str()),
        ])
        .write_inner_content(|w| {
            write_properties(w, run)?;
            for case in &cases {
                write_case(w, &classname, case)?;
            }
            // Without test cases the one case for the binary already carries this excerpt.
            if !run.output_tail.is_empty() && !run.test_cases.is_empty() {
                w.create_element("system-out")
                    .write_text_content(BytesText::new(&xml_text(tail(
                        &run.output_tail,
                        EXCERPT_BYTES,
                    ))))?;
            }
            Ok(())
        })
        .map(|_| ())
}

fn write_properties(w: &mut Writer<Vec<u8>>, run: &RunResult) -> io::Result<()> {
    let mut props: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, value: Option<&str>| {
        if let Some(v) = value {
            props.push((name.to_string(), xml_text(v).into_owned()));
        }
    };
    add("run_id", Some(&run.run_id));
    add("board", run.board.as_deref());
    add("family", run.family.as_deref());
    add("lease", run.lease_id.as_deref());
    add("location", run.location.as_deref());
    add("holder", run.holder.as_deref());
    add("binary", Some(&run.binary.path));
    add(
        "binary_sha256",
        Some(&run.binary.sha256)
            .filter(|s| !s.is_empty())
            .map(|s| s.as_str()),
    );
    add("exit_code", Some(&run.exit_code.to_string()));
    add("outcome", Some(run.outcome.as_str()));
    if let Some(j) = &run.jenkins {
        add("jenkins.build_url", j.build_url.as_deref());
        add("jenkins.job_name", j.job_name.as_deref());
        add("jenkins.build_number", j.build_number.as_deref());
    }
    for (i, a) in run.attempts.iter().enumerate() {
        add(
            &format!("attempt.{}", i + 1),
            Some(&format!("{}: {}", a.board, a.error)),
        );
    }
    w.create_element("properties")
        .write_inner_content(|w| {
            for (name, value) in &props {
                w.create_element("property")
                    .with_attributes([("name", name.as_str()), ("value", value.as_str())])
                    .write_empty()?;
            }
            Ok(())
        })
        .map(|_| ())
}

fn write_case(w: &mut Writer<Vec<u8>>, classname: &str, case: &ReportCase<'_>) -> io::Result<()> {
    let name = xml_text(&case.name);
    let time = format!("{:.3}", case.time);
    let element = w.create_element("testcase").with_attributes([
        ("classname", classname),
        ("name", name.as_ref()),
        ("time", time.as_str()),
    ]);
    let output = xml_text(tail(case.output, EXCERPT_BYTES));
    match &case.verdict {
        Verdict::Passed if output.is_empty() => element.write_empty().map(|_| ()),
        verdict => element
            .write_inner_content(|w| {
                match verdict {
                    Verdict::Passed => {}
                    Verdict::Skipped(message) => {
                        let skipped = w.create_element("skipped");
                        match message {
                            Some(m) => skipped
                                .with_attribute(("message", xml_text(m).as_ref()))
                                .write_empty()?,
                            None => skipped.write_empty()?,
                        };
                    }
                    Verdict::Failure { message, kind } | Verdict::Error { message, kind } => {
                        let tag = if matches!(verdict, Verdict::Error { .. }) {
                            "error"
                        } else {
                            "failure"
                        };
                        w.create_element(tag)
                            .with_attributes([
                                ("message", xml_text(message).as_ref()),
                                ("type", *kind),
                            ])
                            .write_text_content(BytesText::new(&output))?;
                    }
                }
                // A failure already carries the excerpt; twice would only double the file.
                if !output.is_empty() && matches!(verdict, Verdict::Passed | Verdict::Skipped(_)) {
                    w.create_element("system-out")
                        .write_text_content(BytesText::new(&output))?;
                }
                Ok(())
            })
            .map(|_| ()),
    }
}

fn seconds(ms: u64) -> f64 {
    // Precision loss only past 2^53 ms (285,000 years).
    ms as f64 / 1000.0
}

/// `2026-11-29T01:53:14` (UTC, no zone suffix: the form surefire writes and Jenkins parses).
fn timestamp(unix_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    let mut s = humantime::format_rfc3339_seconds(t).to_string();
    if s.ends_with('Z') {
        s.pop();
    }
    s
}

/// Console output made fit for XML 1.0: ANSI escape sequences (colours) are dropped and the
/// characters XML 1.0 forbids (other C0 controls, U+FFFE, U+FFFF) become U+FFFD. Escaping of
/// `<&>"'` is left to quick-xml.
pub fn xml_text(s: &str) -> Cow<'_, str> {
    if s.chars().all(|c| allowed_in_xml(c) && c != '\u{1b}') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            // CSI: parameters and intermediates up to a final byte in @..~.
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else if allowed_in_xml(c) {
            out.push(c);
        } else {
            out.push('\u{fffd}');
        }
    }
    Cow::Owned(out)
}

fn allowed_in_xml(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::cases::Measurement;
    use crate::report::result::{BinaryInfo, BoardFailure, JenkinsBuild};

    fn run(exit_code: i32, cases: Vec<TestCase>) -> RunResult {
        let mut r = RunResult::new(
            "run-1",
            BinaryInfo {
                path: "./build/smoke.elf".into(),
                sha256: "abc123".into(),
            },
            1_795_917_194_000,
            1_795_917_198_500,
            exit_code,
        );
        r.board = Some("imx8-01".into());
        r.family = Some("imx8".into());
        r.lease_id = Some("L-42".into());
        r.location = Some("lab-a".into());
        r.test_cases = cases;
        r.output_tail = "booting\nall done\n".into();
        r
    }

    fn case(name: &str, status: CaseStatus, message: Option<&str>) -> TestCase {
        TestCase {
            name: name.into(),
            status,
            measurement: None,
            message: message.map(str::to_string),
            output: format!("output of {name}\n"),
        }
    }

    fn parse(xml: &str) -> roxmltree::Document<'_> {
        match roxmltree::Document::parse(xml) {
            Ok(doc) => doc,
            Err(e) => panic!("not well-formed XML ({e}):\n{xml}"),
        }
    }

    fn children<'a, 'i>(
        node: roxmltree::Node<'a, 'i>,
        tag: &'static str,
    ) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
        node.children().filter(move |n| n.has_tag_name(tag))
    }

    #[test]
    fn one_testcase_per_test_case_with_counts_and_properties() {
        let mut r = run(
            1,
            vec![
                case("boot", CaseStatus::Passed, None),
                case("uart_loopback", CaseStatus::Failed, Some("expected 0x55")),
                case("gpu", CaseStatus::Skipped, Some("no gpu on this SoC")),
            ],
        );
        r.test_cases[0].measurement = Some(Measurement {
            value: "1".into(),
            units: None,
        });
        r.jenkins = Some(JenkinsBuild {
            build_url: Some("https://ci/job/x/7/".into()),
            job_name: Some("x".into()),
            build_number: Some("7".into()),
        });
        r.attempts.push(BoardFailure {
            board: "imx8-02".into(),
            error: "no login prompt".into(),
        });
        let xml = junit_xml(&[r]);
        let doc = parse(&xml);
        let root = doc.root_element();
        assert!(root.has_tag_name("testsuites"));
        let suite = children(root, "testsuite").next().unwrap();
        assert_eq!(suite.attribute("name"), Some("smoke.elf@imx8-01"));
        assert_eq!(suite.attribute("tests"), Some("3"));
        assert_eq!(suite.attribute("failures"), Some("1"));
        assert_eq!(suite.attribute("errors"), Some("0"));
        assert_eq!(suite.attribute("skipped"), Some("1"));
        assert_eq!(suite.attribute("time"), Some("4.500"));
        assert_eq!(suite.attribute("timestamp"), Some("2026-11-29T01:53:14"));
        let props: Vec<(&str, &str)> = suite
            .descendants()
            .filter(|n| n.has_tag_name("property"))
            .map(|n| (n.attribute("name").unwrap(), n.attribute("value").unwrap()))
            .collect();
        for expected in [
            ("board", "imx8-01"),
            ("family", "imx8"),
            ("lease", "L-42"),
            ("location", "lab-a"),
            ("exit_code", "1"),
            ("jenkins.build_url", "https://ci/job/x/7/"),
            ("jenkins.build_number", "7"),
            ("attempt.1", "imx8-02: no login prompt"),
        ] {
            assert!(props.contains(&expected), "{expected:?} not in {props:?}");
        }
        let cases: Vec<_> = children(suite, "testcase").collect();
        let names: Vec<_> = cases.iter().map(|c| c.attribute("name").unwrap()).collect();
        assert_eq!(names, ["boot", "uart_loopback", "gpu"]);
        assert!(
            cases
                .iter()
                .all(|c| c.attribute("classname") == Some("smoke.elf"))
        );
        let failure = children(cases[1], "failure").next().unwrap();
        assert_eq!(failure.attribute("message"), Some("expected 0x55"));
        assert_eq!(failure.text(), Some("output of uart_loopback\n"));
        let skipped = children(cases[2], "skipped").next().unwrap();
        assert_eq!(skipped.attribute("message"), Some("no gpu on this SoC"));
    }

    #[test]
    fn whole_binary_case_by_outcome() {
        let kinds = [
            (0, None),
            (3, Some(("failure", "exit_code", "exit code 3"))),
            (124, Some(("error", "timeout", "timed_out (exit code 124)"))),
            (
                125,
                Some(("error", "lab_failure", "lab_failure (exit code 125)")),
            ),
        ];
        for (code, expected) in kinds {
            let xml = junit_xml(&[run(code, vec![])]);
            let doc = parse(&xml);
            let suite = children(doc.root_element(), "testsuite").next().unwrap();
            let cases: Vec<_> = children(suite, "testcase").collect();
            assert_eq!(cases.len(), 1, "{xml}");
            assert_eq!(cases[0].attribute("name"), Some("smoke.elf"));
            assert_eq!(cases[0].attribute("time"), Some("4.500"));
            let bad: Vec<_> = cases[0]
                .children()
                .filter(|n| n.has_tag_name("failure") || n.has_tag_name("error"))
                .collect();
            match expected {
                None => assert!(bad.is_empty(), "{xml}"),
                Some((tag, kind, message)) => {
                    assert_eq!(bad.len(), 1, "{xml}");
                    assert!(bad[0].has_tag_name(tag));
                    assert_eq!(bad[0].attribute("type"), Some(kind));
                    assert_eq!(bad[0].attribute("message"), Some(message));
                    assert_eq!(bad[0].text(), Some("booting\nall done\n"));
                }
            }
        }
    }

    #[test]
    fn a_timeout_after_passing_cases_adds_an_error_case() {
        let mut r = run(124, vec![case("boot", CaseStatus::Passed, None)]);
        r.error = Some("no output for 60s".into());
        let xml = junit_xml(&[r]);
        let doc = parse(&xml);
        let suite = children(doc.root_element(), "testsuite").next().unwrap();
        assert_eq!(suite.attribute("tests"), Some("2"));
        assert_eq!(suite.attribute("errors"), Some("1"));
        let error = suite
            .descendants()
            .find(|n| n.has_tag_name("error"))
            .unwrap();
        assert_eq!(
            error.attribute("message"),
            Some("timed_out: no output for 60s")
        );
    }

    #[test]
    fn several_runs_and_hostile_text() {
        let hostile = "a<b>&c\"d'e \u{0}nul \u{1b}[31mred\u{1b}[0m \u{1b}x \u{7} \u{fffe} ]]> end";
        let mut first = run(1, vec![case(hostile, CaseStatus::Failed, Some(hostile))]);
        first.test_cases[0].output = format!("{hostile}\n");
        first.board = Some("b<1>".into());
        let second = run(0, vec![]);
        let xml = junit_xml(&[first, second]);
        let doc = parse(&xml);
        let suites: Vec<_> = children(doc.root_element(), "testsuite").collect();
        assert_eq!(suites.len(), 2);
        assert_eq!(suites[0].attribute("name"), Some("smoke.elf@b<1>"));
        let clean = "a<b>&c\"d'e \u{fffd}nul red \u{fffd}x \u{fffd} \u{fffd} ]]> end";
        let tc = children(suites[0], "testcase").next().unwrap();
        assert_eq!(tc.attribute("name"), Some(clean));
        let failure = children(tc, "failure").next().unwrap();
        assert_eq!(failure.attribute("message"), Some(clean));
        assert_eq!(
            failure.text().map(str::to_string),
            Some(format!("{clean}\n"))
        );
        assert!(!xml.contains('\u{0}') && !xml.contains('\u{1b}'));
    }

    #[test]
    fn written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        std::fs::write(&path, "old").unwrap();
        write_junit(&path, &[run(0, vec![])]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        parse(&text);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}
