//! `socv batch`: run the tests of a plan file concurrently across the lab, each as `socv run`
//! would, with one summary, one JUnit file and one exit status for all of them.

use crate::cli::parse_duration;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::exit_codes;
use crate::output;
use crate::report::{self, CaseStatus, RunResult};
use crate::run::{self, RunOutput, RunSpec};
use crate::session::LocalFile;
use crate::signals::{Signals, Stop};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use socv_api::BoardView;
use socv_api::located::YamlError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Debug, Args)]
#[command(after_help = "\
PLAN is a YAML file listing the tests; each runs as `socv run` would (its own lease, push,
retries on another board after a board failure), up to --parallel at once, each waiting in
leased's fair queue for a board. A test's output goes to its run's console.log only.

  defaults: { family: socA, timeout: 10m, retries: 2 }
  tests:
    - binary: ./build/smoke.elf       (relative to the plan file's directory)
      args: [--quick]
      repeat: 3
    - binary: ./build/stress.elf
      board: soc-a-002
      timeout: 30m

A test takes binary (required), family or board, args, timeout (default 30m), retries
(default 2), wait (default 30m), repeat (default 1) and name; defaults takes family or board,
timeout, retries and wait. The whole plan is checked before any board is leased: an error
names the file, line, test and field.

socv batch prints a table of the runs (stdout; one JSON object under --json) and exits 0 when
every run exited 0, 1 when any did not. Ctrl-C stops every run and releases every lease.

Examples:
  socv batch nightly.yaml
  socv batch nightly.yaml --parallel 4 --junit results.xml
  socv batch nightly.yaml --json | jq .failed

Exit codes:
  0  success
  1  other failure
  2  usage error (bad flag, environment variable or config file)
  6  leased unreachable, not a socv daemon, or its store unavailable
  130  interrupted (Ctrl-C, SIGTERM, SIGHUP); every lease was released")]
pub struct BatchArgs {
    /// The plan: a YAML file listing the tests to run
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// Run at most this many tests at once [default: the number of boards of the families used]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub parallel: Option<u32>,
    /// Write one JUnit XML file with every run (for Jenkins' junit step)
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Print one JSON object {tests, passed, failed} on stdout instead of the table
    #[arg(long)]
    pub json: bool,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DEFAULT_WAIT: Duration = Duration::from_secs(30 * 60);
const DEFAULT_RETRIES: u32 = 2;

/// The plan file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    #[serde(default)]
    defaults: Option<RawDefaults>,
    tests: Spanned<Vec<Spanned<RawTest>>>,
}

type Text = Spanned<String>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    family: Option<Text>,
    board: Option<Text>,
    timeout: Option<Text>,
    retries: Option<Spanned<u32>>,
    wait: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    binary: Option<Text>,
    name: Option<String>,
    family: Option<Text>,
    board: Option<Text>,
    #[serde(default)]
    args: Vec<String>,
    timeout: Option<Text>,
    retries: Option<Spanned<u32>>,
    wait: Option<Text>,
    repeat: Option<Spanned<i64>>,
}

/// One test of the plan, checked: its binary read, its target and durations known.
struct PlannedTest {
    name: String,
    /// Where the test is in the plan, for errors found later (an unknown family).
    at: Location,
    target_at: Location,
    index: usize,
    spec: RunSpec,
    repeat: u32,
}

/// A plan error: `plan.yaml:7:13: tests[2].binary: cannot read ...`.
fn plan_error(file: &Path, at: Location, field: Option<&str>, message: &str) -> Error {
    Error::Usage(
        YamlError::at(file, at, message)
            .with_field(field)
            .to_string(),
    )
}

/// The plan read leniently, only to find which test a strict parse error is in.
#[derive(Deserialize)]
struct TestSpans {
    tests: Vec<Spanned<serde::de::IgnoredAny>>,
}

/// `tests[2].` for an error on a line of the third test, when the YAML can be read at all.
fn test_prefix(text: &str, line: u64) -> String {
    let Ok(spans) = serde_saphyr::from_str::<TestSpans>(text) else {
        return String::new();
    };
    spans
        .tests
        .iter()
        .rposition(|t| t.referenced.line() > 0 && t.referenced.line() <= line)
        .map_or_else(String::new, |i| format!("tests[{i}]."))
}

/// A YAML error in the plan; an unknown field is named with the test it is in.
fn yaml_error(file: &Path, text: &str, error: &serde_saphyr::Error) -> Error {
    let mut found = YamlError::from_serde(file, error);
    if let Some(field) = &found.field {
        let line = found.line.map_or(0, u64::from);
        found.field = Some(format!("{}{field}", test_prefix(text, line)));
    }
    Error::Usage(found.to_string())
}

/// Reads and checks the plan; nothing is leased here.
async fn load_plan(path: &Path) -> Result<Vec<PlannedTest>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read plan {}: {e}", path.display())))?;
    let raw: RawPlan = serde_saphyr::from_str(&text).map_err(|e| yaml_error(path, &text, &e))?;
    let defaults = raw.defaults.unwrap_or_default();
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if raw.tests.value.is_empty() {
        return Err(plan_error(
            path,
            raw.tests.referenced,
            Some("tests"),
            "the plan has no tests",
        ));
    }
    let duration = |text: &Text, field: &str| {
        parse_duration(&text.value).map_err(|e| plan_error(path, text.referenced, Some(field), &e))
    };
    let mut planned = Vec::new();
    let mut files: Vec<(PathBuf, Arc<LocalFile>)> = Vec::new();
    for (index, test) in raw.tests.value.iter().enumerate() {
        let at = test.referenced;
        let test = &test.value;
        let field = |name: &str| format!("tests[{index}].{name}");
        let Some(binary) = &test.binary else {
            return Err(plan_error(
                path,
                at,
                Some(&field("binary")),
                "missing; every test names its binary",
            ));
        };
        let binary_path = base.join(&binary.value);
        let file = match files.iter().find(|(p, _)| *p == binary_path) {
            Some((_, file)) => file.clone(),
            None => {
                let file = LocalFile::read(&binary_path).await.map_err(|e| {
                    plan_error(
                        path,
                        binary.referenced,
                        Some(&field("binary")),
                        &e.to_string(),
                    )
                })?;
                let file = Arc::new(file);
                files.push((binary_path.clone(), file.clone()));
                file
            }
        };
        if binary_path.file_name().and_then(|n| n.to_str()).is_none() {
            return Err(plan_error(
                path,
                binary.referenced,
                Some(&field("binary")),
                "has no usable file name",
            ));
        }
        let (target, target_at) = match (&test.family, &test.board) {
            (Some(f), Some(_)) => {
                return Err(plan_error(
                    path,
                    f.referenced,
                    Some(&field("family")),
                    "give family or board, not both",
                ));
            }
            (Some(t), None) | (None, Some(t)) => (t.value.clone(), t.referenced),
            (None, None) => match (&defaults.family, &defaults.board) {
                (Some(f), Some(_)) => {
                    return Err(plan_error(
                        path,
                        f.referenced,
                        Some("defaults.family"),
                        "give family or board, not both",
                    ));
                }
                (Some(t), None) | (None, Some(t)) => (t.value.clone(), t.referenced),
                (None, None) => {
                    return Err(plan_error(
                        path,
                        at,
                        Some(&field("family")),
                        "missing; name a family or board here or in defaults",
                    ));
                }
            },
        };
        let timeout = match (&test.timeout, &defaults.timeout) {
            (Some(t), _) => duration(t, &field("timeout"))?,
            (None, Some(t)) => duration(t, "defaults.timeout")?,
            (None, None) => DEFAULT_TIMEOUT,
        };
        let wait = match (&test.wait, &defaults.wait) {
            (Some(t), _) => duration(t, &field("wait"))?,
            (None, Some(t)) => duration(t, "defaults.wait")?,
            (None, None) => DEFAULT_WAIT,
        };
        let retries = test
            .retries
            .as_ref()
            .or(defaults.retries.as_ref())
            .map_or(DEFAULT_RETRIES, |r| r.value);
        let repeat = match &test.repeat {
            None => 1,
            Some(r) => u32::try_from(r.value)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    plan_error(
                        path,
                        r.referenced,
                        Some(&field("repeat")),
                        &format!("{} is not a number of times (1 or more)", r.value),
                    )
                })?,
        };
        let name = test.name.clone().unwrap_or_else(|| {
            binary_path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("test")
                .to_owned()
        });
        planned.push(PlannedTest {
            name,
            at,
            target_at,
            index,
            spec: RunSpec {
                args: test.args.clone(),
                timeout,
                retries,
                wait,
                ..RunSpec::new(target, file)
            },
            repeat,
        });
    }
    Ok(planned)
}

/// Every family or board the plan names exists; the answer is the default `--parallel`: the
/// number of boards of the families involved.
fn check_targets(path: &Path, plan: &[PlannedTest], boards: &[BoardView]) -> Result<usize> {
    let mut families: Vec<&str> = Vec::new();
    for test in plan {
        let target = &test.spec.target;
        let family = boards
            .iter()
            .find(|b| b.id == *target || b.family == *target)
            .map(|b| b.family.as_str());
        let Some(family) = family else {
            let at = if test.target_at.line() > 0 {
                test.target_at
            } else {
                test.at
            };
            return Err(plan_error(
                path,
                at,
                Some(&format!("tests[{}]", test.index)),
                &format!("no board family or board named '{target}' in the lab"),
            ));
        };
        if !families.contains(&family) {
            families.push(family);
        }
    }
    let boards = boards
        .iter()
        .filter(|b| families.contains(&b.family.as_str()))
        .count();
    Ok(boards.max(1))
}

/// One run of the batch.
struct Job {
    /// Its place in the summary.
    slot: usize,
    name: String,
    spec: RunSpec,
}

pub async fn run(client: &Client, args: BatchArgs) -> Result<i32> {
    let mut signals = Signals::install()?;
    let plan = load_plan(&args.plan).await?;
    report::Retention::from_env().map_err(|e| Error::Usage(e.to_string()))?;
    let boards = client.boards(None).await?;
    let default_parallel = check_targets(&args.plan, &plan, &boards)?;
    let parallel = args
        .parallel
        .map_or(default_parallel, |n| usize::try_from(n).unwrap_or(1));

    let mut jobs = Vec::new();
    for test in plan {
        for round in 1..=test.repeat {
            let name = if test.repeat > 1 {
                format!("{} ({round}/{})", test.name, test.repeat)
            } else {
                test.name.clone()
            };
            jobs.push(Job {
                slot: jobs.len(),
                name,
                spec: test.spec.clone(),
            });
        }
    }
    let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
    let total = jobs.len();
    let progress = BatchProgress::new(output::interactive(args.json), total);
    let stop = Stop::new();
    let slots = Arc::new(Semaphore::new(parallel));
    let mut running = JoinSet::new();
    for job in jobs {
        running.spawn(run_job(
            client.clone(),
            job,
            slots.clone(),
            stop.clone(),
            progress.clone(),
        ));
    }

    let mut results: Vec<Option<RunResult>> = vec![None; total];
    let mut stopped_by: Option<&'static str> = None;
    loop {
        tokio::select! {
            joined = running.join_next() => match joined {
                None => break,
                Some(Ok((slot, result))) => results[slot] = Some(result),
                Some(Err(e)) => eprintln!("socv: warning: a run of the batch failed: {e}"),
            },
            signal = signals.recv(), if stopped_by.is_none() => {
                stopped_by = Some(signal);
                progress.say(&format!("{signal}: stopping every run and giving every board back"));
                stop.stop(signal);
            }
        }
    }
    progress.finish();

    let rows: Vec<(String, RunResult)> = names
        .into_iter()
        .zip(results)
        .filter_map(|(name, r)| r.map(|r| (name, r)))
        .collect();
    let runs: Vec<RunResult> = rows.iter().map(|(_, r)| r.clone()).collect();
    let passed = runs
        .iter()
        .filter(|r| r.exit_code == exit_codes::OK)
        .count();
    let failed = total - passed;
    if let Some(path) = &args.junit {
        report::write_junit(path, &runs)
            .map_err(|e| Error::Usage(format!("writing JUnit: {e}")))?;
    }
    if args.json {
        output::print_json(&serde_json::json!({
            "tests": runs,
            "passed": passed,
            "failed": failed,
        }))?;
    } else {
        output::print(&summary(&rows))?;
        eprintln!("socv: {passed} of {total} passed, {failed} did not");
    }
    Ok(if stopped_by.is_some() {
        exit_codes::INTERRUPTED
    } else if failed == 0 {
        exit_codes::OK
    } else {
        exit_codes::FAILURE
    })
}

/// Waits for a slot, then runs the job; a stop before it started makes a cancelled result.
async fn run_job(
    client: Client,
    job: Job,
    slots: Arc<Semaphore>,
    stop: Stop,
    progress: BatchProgress,
) -> (usize, RunResult) {
    let queued = output::now_ms();
    let permit = tokio::select! {
        permit = slots.acquire_owned() => permit.ok(),
        _ = stop.stopped() => None,
    };
    if permit.is_none() || stop.is_stopped() {
        let mut result = RunResult::new(
            socv_api::new_id("r"),
            report::BinaryInfo {
                path: job.spec.binary.path().display().to_string(),
                sha256: job.spec.binary.sha256().to_owned(),
            },
            queued,
            output::now_ms(),
            exit_codes::INTERRUPTED,
        );
        result.args = job.spec.args.clone();
        result.error = Some("stopped before it started".to_owned());
        return (job.slot, result);
    }
    let line = progress.start(&job.name, &job.spec.target);
    let shown = line.clone();
    let name = job.name.clone();
    let out = RunOutput::hidden(move |lease| {
        shown.set_message(format!("{name}  on {}", lease.board_id));
    });
    let mut signals = Signals::following(stop);
    let (result, _) = run::execute(&client, &job.spec, out, &mut signals).await;
    drop(permit);
    progress.done(line, &job.name, &result);
    (job.slot, result)
}

/// The batch's progress: a spinner line per running test and an overall bar on a terminal,
/// else a line per finished test on stderr.
#[derive(Clone)]
struct BatchProgress {
    bars: Option<(MultiProgress, ProgressBar)>,
    total: usize,
    finished: Arc<std::sync::atomic::AtomicUsize>,
}

impl BatchProgress {
    fn new(interactive: bool, total: usize) -> BatchProgress {
        let bars = interactive.then(|| {
            let multi = MultiProgress::new();
            let overall = multi.add(ProgressBar::new(total as u64));
            if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} done ({elapsed})")
            {
                overall.set_style(style);
            }
            overall.enable_steady_tick(Duration::from_millis(500));
            (multi, overall)
        });
        BatchProgress {
            bars,
            total,
            finished: Arc::default(),
        }
    }

    fn start(&self, name: &str, target: &str) -> ProgressBar {
        let Some((multi, overall)) = &self.bars else {
            return ProgressBar::hidden();
        };
        let line = multi.insert_before(overall, ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            line.set_style(style);
        }
        line.set_message(format!("{name}  waiting for {target}"));
        line.enable_steady_tick(Duration::from_millis(120));
        line
    }

    fn done(&self, line: ProgressBar, name: &str, result: &RunResult) {
        let n = self
            .finished
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let text = format!(
            "[{n}/{}] {name} on {}: {} (exit {}, {})",
            self.total,
            result.board.as_deref().unwrap_or("no board"),
            result.outcome.as_str(),
            result.exit_code,
            run_time(result.duration_ms)
        );
        line.finish_and_clear();
        match &self.bars {
            Some((multi, overall)) => {
                multi.remove(&line);
                overall.inc(1);
            }
            None => eprintln!("socv: {text}"),
        }
    }

    fn say(&self, text: &str) {
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(format!("socv: {text}"));
            }
            None => eprintln!("socv: {text}"),
        }
    }

    fn finish(&self) {
        if let Some((multi, overall)) = &self.bars {
            overall.finish_and_clear();
            let _ = multi.clear();
        }
    }
}

fn run_time(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        output::short_duration(Duration::from_millis(ms))
    }
}

/// The summary table: one row per run, in plan order.
fn summary(rows: &[(String, RunResult)]) -> String {
    output::table(
        &["TEST", "BOARD", "RESULT", "EXIT", "TIME", "CASES"],
        rows.iter().map(|(name, r)| {
            let cases = if r.test_cases.is_empty() {
                String::new()
            } else {
                let failed = r.count(CaseStatus::Failed);
                let mut text = format!("{}/{}", r.count(CaseStatus::Passed), r.test_cases.len());
                if failed > 0 {
                    text.push_str(&format!(" ({failed} failed)"));
                }
                text
            };
            vec![
                name.clone(),
                r.board.clone().unwrap_or_default(),
                r.outcome.as_str().to_owned(),
                r.exit_code.to_string(),
                run_time(r.duration_ms),
                cases,
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dir: &Path, text: &str) -> Result<Vec<PlannedTest>> {
        let path = dir.join("plan.yaml");
        std::fs::write(&path, text).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(load_plan(&path))
    }

    #[test]
    fn a_plan_with_defaults_and_repeats() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.sh"), "exit 0").unwrap();
        let tests = plan(
            dir.path(),
            "defaults: { family: socA, timeout: 10m, retries: 1 }\n\
             tests:\n  - binary: t.sh\n    args: [--quick]\n    repeat: 3\n  \
             - binary: ./t.sh\n    board: soc-a-002\n    timeout: 30m\n",
        )
        .unwrap();
        assert_eq!(tests.len(), 2);
        assert_eq!(tests[0].repeat, 3);
        assert_eq!(tests[0].spec.target, "socA");
        assert_eq!(tests[0].spec.timeout, Duration::from_secs(600));
        assert_eq!(tests[0].spec.retries, 1);
        assert_eq!(tests[0].spec.args, ["--quick"]);
        assert_eq!(tests[0].spec.binary.path(), dir.path().join("t.sh"));
        assert_eq!(tests[1].spec.target, "soc-a-002");
        assert_eq!(tests[1].spec.timeout, Duration::from_secs(1800));
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.sh"), "exit 0").unwrap();
        let err = |text: &str| plan(dir.path(), text).err().unwrap().to_string();
        let e = err("tests:\n  - binary: t.sh\n    family: socA\n    colour: red\n");
        assert!(e.contains("plan.yaml:4:5: tests[0].colour"), "{e}");
        let e =
            err("tests:\n  - binary: t.sh\n    family: socA\n  - binary: t.sh\n    colour: red\n");
        assert!(e.contains("plan.yaml:5:5: tests[1].colour"), "{e}");
        let e = err("defaults: { colour: red }\ntests:\n  - binary: t.sh\n");
        assert!(
            e.contains("plan.yaml:1:") && e.contains(": colour: "),
            "{e}"
        );
        let e = err(
            "tests:\n  - binary: t.sh\n    family: socA\n  - binary: nope.elf\n    family: socA\n",
        );
        assert!(
            e.contains("plan.yaml:4:") && e.contains("tests[1].binary"),
            "{e}"
        );
        let e = err("tests:\n  - binary: t.sh\n    family: socA\n    repeat: 0\n");
        assert!(e.contains(":4:") && e.contains("tests[0].repeat"), "{e}");
        let e = err("tests:\n  - binary: t.sh\n    family: socA\n    timeout: soon\n");
        assert!(e.contains(":4:") && e.contains("tests[0].timeout"), "{e}");
        let e = err("tests:\n  - binary: t.sh\n");
        assert!(e.contains("tests[0].family"), "{e}");
        let e = err("tests:\n  - binary: t.sh\n    family: socA\n    board: b\n");
        assert!(e.contains("not both"), "{e}");
    }
}
