//! The run engine: one test from start to end on the lab, as `socv run`, `socv batch` and
//! `socv worker` all drive it. [`execute`] takes a plain [`RunSpec`]: it leases a board
//! (waiting in the queue), optionally power-cycles it, pushes and runs the binary with its
//! output going to a [`RunOutput`], retries board failures on another board, reports board
//! health, always gives the board back, records every attempt in leased's history
//! ([`record`]), and writes the run directory.

pub mod output;
pub mod record;

pub use output::RunOutput;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::exit_codes;
use crate::lease;
use crate::output as show;
use crate::report::{self, RunDir, RunResult, Scanned};
use crate::session::{BoardSession, ErrorKind, LocalFile, SessionError, TimedOutcome};
use crate::signals::Signals;
use record::RunRecorder;
use socv_api::{Lease, PowerAction, Priority, RunState, RunUpdate};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// One test to run, as the engine takes it (no command line here).
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// A board family (`socA`) or one board (`soc-a-001`).
    pub target: String,
    /// The binary (or script) to push and run, read and hashed already.
    pub binary: Arc<LocalFile>,
    /// Its arguments.
    pub args: Vec<String>,
    /// The test is interrupted after this long.
    pub timeout: Duration,
    /// Power-cycle the board before running, and wait for it to boot.
    pub power_cycle: bool,
    /// How many other boards to try after a failure of the board itself.
    pub retries: u32,
    /// Run on this lease, which the caller holds and keeps afterwards, instead of taking one.
    pub lease: Option<String>,
    /// Prefer a board at this lab location.
    pub location: Option<String>,
    pub priority: Option<Priority>,
    /// How long to wait in the queue for a board.
    pub wait: Duration,
    /// Record the run in leased's history (`socv history`, Prefect).
    pub record: bool,
}

impl RunSpec {
    /// A spec with socv run's defaults for everything but what to run and where.
    pub fn new(target: impl Into<String>, binary: Arc<LocalFile>) -> RunSpec {
        RunSpec {
            target: target.into(),
            binary,
            args: Vec::new(),
            timeout: Duration::from_secs(30 * 60),
            power_cycle: false,
            retries: 2,
            lease: None,
            location: None,
            priority: None,
            wait: Duration::from_secs(30 * 60),
            record: true,
        }
    }
}

/// The lease lasts this long between renewals, so a killed socv frees the board soon.
const RUN_TTL: Duration = Duration::from_secs(10 * 60);
/// How long a freshly power-cycled board may take to show its login prompt.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// How one attempt on one board ended.
enum AttemptEnd {
    /// The test ran to its end: its exit status.
    Finished(i32),
    TimedOut,
    /// The PDU failed during a requested power cycle: also the lab's fault.
    PowerFault(Error),
}

/// Runs one test from start to end: leases a board (waiting in the queue), pushes and runs the
/// binary with its output going to `out` and the run's console.log, retries board failures
/// elsewhere, gives the board back, and writes the run directory. A stop from `signals` leaves
/// the queue or abandons the test, releasing its lease. Used by `socv run` and `socv batch`.
pub async fn execute(
    client: &Client,
    spec: &RunSpec,
    mut out: RunOutput,
    signals: &mut Signals,
) -> (RunResult, Result<i32>) {
    // Checked by the callers before anything is leased.
    let name = remote_name(spec.binary.path())
        .unwrap_or_else(|_| format!("/tmp/socv-{:08x}-test", rand::random::<u32>()));
    let command = command_line(&name, &spec.args);
    let started = show::now_ms();
    let run_id = socv_api::new_id("r");
    let data_dir = report::default_data_dir();
    let rundir = match RunDir::create(&data_dir, &run_id) {
        Ok(dir) => Some(dir),
        Err(e) => {
            eprintln!("socv: warning: no run directory, so no console.log or result.json: {e}");
            None
        }
    };
    out.log = rundir
        .as_ref()
        .and_then(|d| std::fs::File::create(d.console_log_path()).ok());
    if spec.record {
        out.recorder = Some(RunRecorder::new(client.clone(), &run_id));
    }
    let mut findings = Findings::default();
    let driven = drive(
        client,
        spec,
        &name,
        &command,
        &mut out,
        &mut findings,
        signals,
    )
    .await;
    let ended = show::now_ms();
    if let Some(recorder) = out.recorder.take() {
        recorder.finish().await;
    }

    let (exit_code, error) = match &driven {
        Ok(code) => (*code, None),
        Err(e) => (e.exit_code(), Some(e.to_string())),
    };
    let scanned = findings
        .scanned
        .take()
        .unwrap_or_else(|| std::mem::take(&mut out.scanner).finish());
    let mut result = RunResult::new(
        run_id,
        report::BinaryInfo {
            path: spec.binary.path().display().to_string(),
            sha256: spec.binary.sha256().to_owned(),
        },
        started,
        ended,
        exit_code,
    );
    result.args = spec.args.clone();
    if let Some(lease) = &findings.lease {
        result.board = Some(lease.board_id.clone());
        result.family = Some(lease.family.clone());
        result.location = Some(lease.location.clone());
        result.lease_id = Some(lease.id.clone());
        result.holder = Some(lease.holder.clone());
    }
    result.error = error.or(findings.note.take());
    result.attempts = std::mem::take(&mut findings.attempts);
    result.test_cases = scanned.cases;
    result.output_tail = scanned.output_tail;
    result.jenkins = report::JenkinsBuild::from_env();
    result.log_path = rundir.as_ref().map(|d| d.console_log_path());
    if let Some(dir) = &rundir {
        if let Err(e) = dir.write_result(&result) {
            eprintln!("socv: warning: {e}");
        }
        if let Ok(retention) = report::Retention::from_env()
            && let Err(e) = report::prune(
                &data_dir,
                &retention,
                std::time::SystemTime::now(),
                Some(dir.path()),
            )
        {
            eprintln!("socv: warning: pruning old runs: {e}");
        }
    }
    (result, driven)
}

/// What the run learnt on the way, for its result.
#[derive(Default)]
struct Findings {
    /// The lease it last ran on.
    lease: Option<Lease>,
    /// Board failures that moved the run elsewhere.
    attempts: Vec<report::BoardFailure>,
    /// Why the run ended the way it did, when it was not the test's own doing.
    note: Option<String>,
    /// The test cases of the last attempt, when its end already needed them.
    scanned: Option<Scanned>,
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    client: &Client,
    spec: &RunSpec,
    name: &str,
    command: &str,
    out: &mut RunOutput,
    findings: &mut Findings,
    signals: &mut Signals,
) -> Result<i32> {
    let mut failures: Vec<String> = Vec::new();
    for attempt in 0..=spec.retries {
        // Waiting in the queue handles signals itself: it leaves the queue, or gives back a
        // board granted meanwhile.
        let lease = match take_board(client, spec, out, signals).await {
            Ok(lease) => lease,
            Err(e @ Error::Interrupted { .. }) => {
                let message = e.to_string();
                out.say(&message);
                findings.note = Some(message);
                return Ok(exit_codes::INTERRUPTED);
            }
            Err(e) => return Err(lab_failure(e)),
        };
        let keep = spec.lease.is_some();
        findings.lease = Some(lease.clone());
        out.start_attempt(&lease);
        if let Some(recorder) = &out.recorder {
            let why = findings
                .attempts
                .last()
                .map(|a| format!("after {} failed: {}", a.board, a.error))
                .unwrap_or_default();
            let binary = spec.binary.path().display().to_string();
            recorder.start(&lease, &binary, &spec.args, attempt + 1, &why);
        }
        let renewals = spawn_renewals(client.clone(), &lease);
        let result = tokio::select! {
            r = attempt_on(client, &lease, name, command, spec, out) => r,
            signal = signals.recv() => {
                renewals.abort();
                let note = format!("stopped by {signal}");
                let cases = finish_cases(out, findings);
                end_record(out, record::ended(
                    RunState::Cancelled,
                    note.clone(),
                    Some(exit_codes::INTERRUPTED),
                    &lease.board_id,
                    cases,
                ))
                .await;
                findings.note = Some(note);
                return interrupted(signal, &lease, client, spec, out).await;
            }
        };
        renewals.abort();
        let outcome = result;
        let board = lease.board_id.clone();
        let left = spec.retries - attempt;
        let last = keep || left == 0;
        match outcome {
            Ok(AttemptEnd::Finished(status)) => {
                report_health(client, &board, true, None).await;
                let cases = finish_cases(out, findings);
                end_record(out, record::finished(status, &board, cases)).await;
                give_back(client, &lease, keep).await;
                return Ok(status);
            }
            Ok(AttemptEnd::TimedOut) => {
                let note = format!(
                    "ran past {} and was interrupted",
                    humantime::format_duration(spec.timeout)
                );
                out.say(format_args!(
                    "{} on {board} {note}",
                    spec.binary.path().display()
                ));
                let cases = finish_cases(out, findings);
                end_record(
                    out,
                    record::ended(
                        RunState::TimedOut,
                        note.clone(),
                        Some(exit_codes::TIMED_OUT),
                        &board,
                        cases,
                    ),
                )
                .await;
                give_back(client, &lease, keep).await;
                findings.note = Some(note);
                return Ok(exit_codes::TIMED_OUT);
            }
            Err(AttemptError::Board(e)) => {
                report_health(client, &board, false, Some(e.to_string())).await;
                end_crashed(out, &board, &e.to_string(), last, left).await;
                give_back(client, &lease, keep).await;
                failures.push(e.to_string());
            }
            Ok(AttemptEnd::PowerFault(e)) => {
                report_health(client, &board, false, Some(e.to_string())).await;
                end_crashed(out, &board, &e.to_string(), last, left).await;
                give_back(client, &lease, keep).await;
                failures.push(e.to_string());
            }
            Err(AttemptError::Other(e)) => {
                end_crashed(out, &board, &e.to_string(), true, 0).await;
                give_back(client, &lease, keep).await;
                return Err(lab_failure(e));
            }
        }
        findings.attempts.push(report::BoardFailure {
            board,
            error: failures.last().cloned().unwrap_or_default(),
        });
        if last {
            break;
        }
        out.say(format_args!(
            "{}; retrying on another board ({left} {} left)",
            failures
                .last()
                .map(String::as_str)
                .unwrap_or("the board failed"),
            if left == 1 { "retry" } else { "retries" }
        ));
    }
    Err(lab_failure(Error::NoBoard {
        message: format!(
            "the run failed on every board it tried ({}):\n  {}",
            failures.len(),
            failures.join("\n  ")
        ),
        none_healthy: false,
    }))
}

/// Finishes the scan of the attempt's output (it is the run's last) and gives its test cases
/// for the record.
fn finish_cases(out: &mut RunOutput, findings: &mut Findings) -> Vec<socv_api::RunCase> {
    let scanned = std::mem::take(&mut out.scanner).finish();
    let cases = record::run_cases(&scanned.cases);
    findings.scanned = Some(scanned);
    cases
}

/// Ends the attempt's record; called before its lease is given back, which would make leased
/// count the run as abandoned.
async fn end_record(out: &RunOutput, update: RunUpdate) {
    if let Some(recorder) = &out.recorder {
        recorder.end(update).await;
    }
}

/// Ends the record of an attempt that socv or the lab failed: Crashed, with what went wrong
/// and whether socv goes on elsewhere.
async fn end_crashed(out: &RunOutput, board: &str, error: &str, last: bool, left: u32) {
    out.note_failure(error);
    let (message, code) = if last {
        (error.to_owned(), Some(exit_codes::LAB_FAILURE))
    } else {
        (
            format!("{error}; retrying on another board ({left} left)"),
            None,
        )
    };
    let cases = record::run_cases(out.scanner.cases());
    end_record(
        out,
        record::ended(RunState::Crashed, message, code, board, cases),
    )
    .await;
}

#[derive(Debug)]
enum AttemptError {
    /// The board's console failed.
    Board(SessionError),
    Other(Error),
}

impl From<Error> for AttemptError {
    fn from(e: Error) -> Self {
        AttemptError::Other(e)
    }
}

/// Connects (power-cycling first if asked), pushes, runs. Board faults are returned as such so
/// that the caller can retry elsewhere.
async fn attempt_on(
    client: &Client,
    lease: &Lease,
    name: &str,
    command: &str,
    spec: &RunSpec,
    out: &mut RunOutput,
) -> std::result::Result<AttemptEnd, AttemptError> {
    let Some(console) = &lease.console else {
        return Err(Error::PermissionDenied {
            doing: format!("running on board {}", lease.board_id),
            message: format!(
                "the daemon did not hand over its console (held by {})",
                lease.holder
            ),
        }
        .into());
    };
    let mut config = lease::session_config(&lease.board_id, console);
    if spec.power_cycle {
        out.say(format_args!("power-cycling {}", lease.board_id));
        if let Err(e) = client.power(&lease.board_id, PowerAction::Cycle).await {
            return Ok(AttemptEnd::PowerFault(e));
        }
        config.login_timeout = BOOT_TIMEOUT;
    }
    let board_fault = |e: SessionError| {
        if e.is_board_fault() {
            AttemptError::Board(e)
        } else {
            AttemptError::Other(e.into())
        }
    };
    let mut session = BoardSession::connect(config).await.map_err(board_fault)?;
    let bar = show::progress_bar(spec.binary.len(), out.shows_progress());
    let pushed = session
        .push(&spec.binary, name, |sent| bar.set_position(sent))
        .await;
    bar.finish_and_clear();
    pushed.map_err(board_fault)?;
    out.say(format_args!(
        "running {} on {} (lease {})",
        spec.binary.path().display(),
        lease.board_id,
        lease.id
    ));
    if let Some(recorder) = &out.recorder {
        recorder.running();
    }
    let ran = session.run_with_timeout(command, spec.timeout, out).await;
    let _ = out.flush().await;
    let outcome = match ran {
        Ok(TimedOutcome::Finished(o)) => AttemptEnd::Finished(o.status),
        Ok(TimedOutcome::TimedOut) => AttemptEnd::TimedOut,
        Err(e) if matches!(e.kind(), ErrorKind::Unresponsive { .. }) => {
            // The test hung the board: the next person must find it working.
            out.say(format_args!(
                "{} does not answer after Ctrl-C; power-cycling it",
                lease.board_id
            ));
            if let Err(p) = client.power(&lease.board_id, PowerAction::Cycle).await {
                eprintln!("socv: warning: {p}");
            }
            return Ok(AttemptEnd::TimedOut);
        }
        Err(e) => return Err(board_fault(e)),
    };
    // Leave the board as it was found.
    let _ = session
        .exec_capture(&format!("rm -f {}", quote(name)))
        .await;
    if let Err(e) = session.close().await {
        tracing::debug!(error = %e, "logging out");
    }
    Ok(outcome)
}

/// The lease to run on: the one given with `--lease`, else a new one (waiting in the queue).
async fn take_board(
    client: &Client,
    spec: &RunSpec,
    out: &RunOutput,
    signals: &mut Signals,
) -> Result<Lease> {
    if let Some(id) = &spec.lease {
        return lease::resolve(client, id).await.map(|h| h.lease);
    }
    let boards = client.boards(None).await?;
    let target = if boards.iter().any(|b| b.id == spec.target) {
        lease::Target::Board(spec.target.clone())
    } else {
        lease::Target::Family(spec.target.clone())
    };
    let wish = lease::LeaseWish {
        target,
        location: spec.location.clone(),
        priority: spec.priority,
        ttl: Some(RUN_TTL),
        wait: Some(lease::WaitLimit::For(spec.wait)),
        // A batch shows the wait on its own progress lines.
        quiet: out.hides(),
    };
    let lease = lease::acquire(client, &wish, signals).await?;
    out.say(format_args!(
        "leased {} (lease {})",
        lease.board_id, lease.id
    ));
    Ok(lease)
}

/// An unknown family or board is refused before anything is leased.
pub async fn check_target(client: &Client, target: &str) -> Result<()> {
    let boards = client.boards(None).await?;
    if boards.iter().any(|b| b.id == target || b.family == target) {
        return Ok(());
    }
    let mut families: Vec<&str> = boards.iter().map(|b| b.family.as_str()).collect();
    families.sort_unstable();
    families.dedup();
    Err(Error::NotFound(format!(
        "no board family or board named '{target}' in the lab (families: {})",
        families.join(", ")
    )))
}

/// Keeps the lease renewed while the run goes on (the task is aborted when it ends); a renewal
/// that fails for good is said once: the board may go to someone else.
fn spawn_renewals(client: Client, lease: &Lease) -> tokio::task::JoinHandle<()> {
    let lease = lease.clone();
    tokio::spawn(async move {
        let failed = lease::keep_renewed(&client, lease).await;
        eprintln!("socv: warning: {failed}");
    })
}

async fn report_health(client: &Client, board: &str, ok: bool, reason: Option<String>) {
    if let Err(e) = client.report_health(board, ok, reason).await {
        eprintln!("socv: warning: {e}");
    }
}

/// Releases the lease unless the person brought it (`--lease`).
async fn give_back(client: &Client, lease: &Lease, keep: bool) {
    if keep {
        return;
    }
    if let Err(e) = client.release(&lease.id).await {
        eprintln!("socv: warning: releasing {}: {e}", lease.board_id);
    }
}

async fn interrupted(
    signal: &str,
    lease: &Lease,
    client: &Client,
    spec: &RunSpec,
    out: &RunOutput,
) -> Result<i32> {
    give_back(client, lease, spec.lease.is_some()).await;
    out.say(format_args!(
        "{signal}: stopped; {} given back",
        lease.board_id
    ));
    Ok(exit_codes::INTERRUPTED)
}

pub fn lab_failure(e: Error) -> Error {
    Error::LabFailure(Box::new(e))
}

/// Where the binary goes on the board: its name under /tmp, made unique per run.
pub fn remote_name(binary: &std::path::Path) -> Result<String> {
    let base = binary
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Usage(format!("{} has no usable file name", binary.display())))?;
    let tag: u32 = rand::random();
    Ok(format!("/tmp/socv-{tag:08x}-{base}"))
}

/// The binary and its arguments, each quoted for the board's shell.
fn command_line(remote: &str, args: &[String]) -> String {
    std::iter::once(remote)
        .chain(args.iter().map(String::as_str))
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `'…'` quoting for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_for_the_shell() {
        assert_eq!(
            command_line("/tmp/t", &["a b".into(), "it's".into(), "$HOME".into()]),
            r"'/tmp/t' 'a b' 'it'\''s' '$HOME'"
        );
    }

    #[test]
    fn remote_names_are_unique_per_run() {
        let a = remote_name(std::path::Path::new("./test.elf")).unwrap();
        let b = remote_name(std::path::Path::new("./test.elf")).unwrap();
        assert!(
            a.starts_with("/tmp/socv-") && a.ends_with("-test.elf"),
            "{a}"
        );
        assert_ne!(a, b);
    }
}
