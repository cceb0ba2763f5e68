//! `socv run`: the main job. Lease a board, push the binary, run it with its output streamed,
//! give the board back, and exit with the test's own status (as `docker run` does).

pub mod record;

use crate::cli::parse_duration;
use crate::client::Client;
use crate::commands::{held, lease};
use crate::error::{Error, Result};
use crate::exit_codes;
use crate::output;
use crate::report::{self, CaseScanner, RunDir, RunResult, Scanned};
use crate::session::{BoardSession, ErrorKind, LocalFile, SessionError, TimedOutcome};
use crate::signals::Signals;
use clap::Args;
use record::RunRecorder;
use socv_api::{Lease, LogLevel, PowerAction, Priority, RunState, RunUpdate};
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

#[derive(Debug, Clone, Args)]
#[command(after_help = "\
socv leases a board (waiting in the queue, with a spinner showing your place), optionally
power-cycles it, pushes BINARY through the console (checked by sha256 on the board), runs it
with ARGS and streams its output, and always gives the board back: on success, failure, error,
Ctrl-C and SIGTERM. A failure of the board itself (telnet refused, login failed, link dropped,
a corrupt push) is reported to leased against that board and the run is retried on another
board of the family; a test that fails on its own is never retried. When the test runs past
--timeout, socv interrupts it (Ctrl-C), power-cycles the board if the shell does not come back,
and exits 124.

socv exits with the test's own exit status; its own failures use the codes below.

Examples:
  socv run socA ./test.elf
  socv run socA ./test.elf -- --iterations 100 --seed 7
  socv run soc-a-001 ./boot-test --power-cycle --timeout 10m
  socv run socA ./test.elf --junit results.xml       (for Jenkins' junit step)
  socv run socA ./test.elf --lease l-7f3a0c1b2d4e    (a board you already hold)
  socv run socA ./test.elf --json | jq .outcome

Every run keeps console.log and result.json in a directory under the data dir
($SOCV_DATA_DIR, else ~/.local/share/socv/runs), pruned by age (ARTIFACT_RETENTION_DAYS,
default 7) and total size (MAX_DISK_USAGE_GB, default 100). Test cases come from TAP/KTAP
lines (`ok 1 - name`, `not ok 2 - name # SKIP`) and LAVA markers in the output. Under Jenkins,
BUILD_URL, JOB_NAME and BUILD_NUMBER go into the result.

Each run is recorded in leased's history (`socv history`, and Prefect when leased has it): its
state, console, result and test cases, one record per board tried. Recording never slows or
fails the run: when leased cannot take it, socv warns once and goes on. --no-record skips it.

Exit codes:
  124  the command ran past its time limit and was interrupted
  125  socv run: socv or the lab failed (after the retries)
  126  socv run: the binary could not be executed on the board
  127  socv run: the binary was not found on the board
  130  interrupted (Ctrl-C, SIGTERM, SIGHUP); every lease was released")]
pub struct RunArgs {
    /// A board family (socA) or one board (soc-a-001)
    #[arg(value_name = "FAMILY | BOARD")]
    pub target: String,
    /// The test binary (or script) to push and run
    pub binary: PathBuf,
    /// Arguments for the binary (after `--`)
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
    /// Interrupt the test after this long
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Power-cycle the board through its PDU before running, and wait for it to boot
    #[arg(long)]
    pub power_cycle: bool,
    /// How many other boards to try after a failure of the board itself
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Run on a board you already hold (it stays held afterwards)
    #[arg(long, value_name = "LEASE_ID")]
    pub lease: Option<String>,
    /// Prefer a board at this lab location
    #[arg(long)]
    pub location: Option<String>,
    /// Place in the queue: high, normal or low [default: normal]
    #[arg(long, value_parser = |s: &str| s.parse::<Priority>())]
    pub priority: Option<Priority>,
    /// How long to wait in the queue for a board
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub wait: Duration,
    /// Write the result as JUnit XML (for Jenkins' junit step)
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Print the result as one JSON object on stdout (the test's output goes to stderr)
    #[arg(long)]
    pub json: bool,
    /// Do not record the run in leased's history (`socv history`, Prefect)
    #[arg(long)]
    pub no_record: bool,
}

/// The lease lasts this long between renewals, so a killed socv frees the board soon.
const RUN_TTL: Duration = Duration::from_secs(10 * 60);
/// How long a freshly power-cycled board may take to show its login prompt.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// How one attempt on one board ended.
enum Attempt {
    /// The test ran to its end: its exit status.
    Finished(i32),
    TimedOut,
    /// The PDU failed during a requested power cycle: also the lab's fault.
    PowerFault(Error),
}

pub async fn run(client: &Client, args: RunArgs) -> Result<i32> {
    let mut signals = Signals::install()?;
    // Everything that can be checked is checked before a board is taken.
    let file = LocalFile::read(&args.binary)
        .await
        .map_err(|e| lab_failure(e.into()))?;
    report::Retention::from_env().map_err(|e| Error::Usage(e.to_string()))?;
    remote_name(&args.binary)?;
    if args.lease.is_none() {
        check_target(client, &args.target)
            .await
            .map_err(lab_failure)?;
    }

    let out = RunOutput::terminal(args.json);
    let (result, driven) = execute(client, &args, &file, out, &mut signals).await;
    if let Some(path) = &args.junit {
        report::write_junit(path, std::slice::from_ref(&result))
            .map_err(|e| Error::Usage(format!("writing JUnit: {e}")))?;
    }
    if args.json {
        output::print_json(&result)?;
    }
    driven
}

/// Runs one test from start to end: leases a board (waiting in the queue), pushes and runs the
/// binary with its output going to `out` and the run's console.log, retries board failures
/// elsewhere, gives the board back, and writes the run directory. A stop from `signals` leaves
/// the queue or abandons the test, releasing its lease. Used by `socv run` and `socv batch`.
pub async fn execute(
    client: &Client,
    args: &RunArgs,
    file: &LocalFile,
    mut out: RunOutput,
    signals: &mut Signals,
) -> (RunResult, Result<i32>) {
    // Checked by the callers before anything is leased.
    let name = remote_name(&args.binary)
        .unwrap_or_else(|_| format!("/tmp/socv-{:08x}-test", rand::random::<u32>()));
    let command = command_line(&name, &args.args);
    let started = output::now_ms();
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
    if !args.no_record {
        out.recorder = Some(RunRecorder::new(client.clone(), &run_id));
    }
    let mut record = Record::default();
    let driven = drive(
        client,
        args,
        file,
        &name,
        &command,
        &mut out,
        &mut record,
        signals,
    )
    .await;
    let ended = output::now_ms();
    if let Some(recorder) = out.recorder.take() {
        recorder.finish().await;
    }

    let (exit_code, error) = match &driven {
        Ok(code) => (*code, None),
        Err(e) => (e.exit_code(), Some(e.to_string())),
    };
    let scanned = record
        .scanned
        .take()
        .unwrap_or_else(|| std::mem::take(&mut out.scanner).finish());
    let mut result = RunResult::new(
        run_id,
        report::BinaryInfo {
            path: args.binary.display().to_string(),
            sha256: file.sha256().to_owned(),
        },
        started,
        ended,
        exit_code,
    );
    result.args = args.args.clone();
    if let Some(lease) = &record.lease {
        result.board = Some(lease.board_id.clone());
        result.family = Some(lease.family.clone());
        result.location = Some(lease.location.clone());
        result.lease_id = Some(lease.id.clone());
        result.holder = Some(lease.holder.clone());
    }
    result.error = error.or(record.note.take());
    result.attempts = std::mem::take(&mut record.attempts);
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
struct Record {
    /// The lease it last ran on.
    lease: Option<Lease>,
    /// Board failures that moved the run elsewhere.
    attempts: Vec<report::Attempt>,
    /// Why the run ended the way it did, when it was not the test's own doing.
    note: Option<String>,
    /// The test cases of the last attempt, when its end already needed them.
    scanned: Option<Scanned>,
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    client: &Client,
    args: &RunArgs,
    file: &LocalFile,
    name: &str,
    command: &str,
    out: &mut RunOutput,
    record: &mut Record,
    signals: &mut Signals,
) -> Result<i32> {
    let mut failures: Vec<String> = Vec::new();
    for attempt in 0..=args.retries {
        // Waiting in the queue handles signals itself: it leaves the queue, or gives back a
        // board granted meanwhile.
        let lease = match take_board(client, args, out, signals).await {
            Ok(lease) => lease,
            Err(Error::NoBoard { message, .. }) if message.starts_with("stopped by") => {
                out.say(&message);
                record.note = Some(message);
                return Ok(exit_codes::INTERRUPTED);
            }
            Err(e) => return Err(lab_failure(e)),
        };
        let keep = args.lease.is_some();
        record.lease = Some(lease.clone());
        out.start_attempt(&lease);
        if let Some(recorder) = &out.recorder {
            let why = record
                .attempts
                .last()
                .map(|a| format!("after {} failed: {}", a.board, a.error))
                .unwrap_or_default();
            let binary = args.binary.display().to_string();
            recorder.start(&lease, &binary, &args.args, attempt + 1, &why);
        }
        let renewals = spawn_renewals(client.clone(), &lease, keep);
        let result = tokio::select! {
            r = attempt_on(client, &lease, file, name, command, args, out) => r,
            signal = signals.recv() => {
                renewals.abort();
                let note = format!("stopped by {signal}");
                let cases = finish_cases(out, record);
                end_record(out, record::ended(
                    RunState::Cancelled,
                    note.clone(),
                    Some(exit_codes::INTERRUPTED),
                    &lease.board_id,
                    cases,
                ))
                .await;
                record.note = Some(note);
                return interrupted(signal, Some(&lease), client, args, out).await;
            }
        };
        renewals.abort();
        let outcome = result;
        let board = lease.board_id.clone();
        let left = args.retries - attempt;
        let last = keep || left == 0;
        match outcome {
            Ok(Attempt::Finished(status)) => {
                report(client, &board, true, None).await;
                let cases = finish_cases(out, record);
                end_record(out, record::finished(status, &board, cases)).await;
                give_back(client, &lease, keep).await;
                return Ok(status);
            }
            Ok(Attempt::TimedOut) => {
                let note = format!(
                    "ran past {} and was interrupted",
                    humantime::format_duration(args.timeout)
                );
                out.say(format_args!("{} on {board} {note}", args.binary.display()));
                let cases = finish_cases(out, record);
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
                record.note = Some(note);
                return Ok(exit_codes::TIMED_OUT);
            }
            Err(AttemptError::Board(e)) => {
                report(client, &board, false, Some(e.to_string())).await;
                end_crashed(out, &board, &e.to_string(), last, left).await;
                give_back(client, &lease, keep).await;
                failures.push(e.to_string());
            }
            Ok(Attempt::PowerFault(e)) => {
                report(client, &board, false, Some(e.to_string())).await;
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
        record.attempts.push(report::Attempt {
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
fn finish_cases(out: &mut RunOutput, record: &mut Record) -> Vec<socv_api::RunCase> {
    let scanned = std::mem::take(&mut out.scanner).finish();
    let cases = record::run_cases(&scanned.cases);
    record.scanned = Some(scanned);
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
    file: &LocalFile,
    name: &str,
    command: &str,
    args: &RunArgs,
    out: &mut RunOutput,
) -> std::result::Result<Attempt, AttemptError> {
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
    let mut config = held::session_config(&lease.board_id, console);
    if args.power_cycle {
        out.say(format_args!("power-cycling {}", lease.board_id));
        if let Err(e) = client.power(&lease.board_id, PowerAction::Cycle).await {
            return Ok(Attempt::PowerFault(e));
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
    let bar = output::progress_bar(file.len(), !args.json && !out.hides());
    let pushed = session
        .push(file, name, |sent| bar.set_position(sent))
        .await;
    bar.finish_and_clear();
    pushed.map_err(board_fault)?;
    out.say(format_args!(
        "running {} on {} (lease {})",
        file.path().display(),
        lease.board_id,
        lease.id
    ));
    if let Some(recorder) = &out.recorder {
        recorder.running();
    }
    let ran = session.run_with_timeout(command, args.timeout, out).await;
    let _ = out.flush().await;
    let outcome = match ran {
        Ok(TimedOutcome::Finished(o)) => Attempt::Finished(o.status),
        Ok(TimedOutcome::TimedOut) => Attempt::TimedOut,
        Err(e) if matches!(e.kind(), ErrorKind::Unresponsive { .. }) => {
            // The test hung the board: the next person must find it working.
            out.say(format_args!(
                "{} does not answer after Ctrl-C; power-cycling it",
                lease.board_id
            ));
            if let Err(p) = client.power(&lease.board_id, PowerAction::Cycle).await {
                eprintln!("socv: warning: {p}");
            }
            return Ok(Attempt::TimedOut);
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
    args: &RunArgs,
    out: &RunOutput,
    signals: &mut Signals,
) -> Result<Lease> {
    if let Some(id) = &args.lease {
        return held::resolve(client, id).await.map(|h| h.lease);
    }
    let boards = client.boards(None).await?;
    let is_board = boards.iter().any(|b| b.id == args.target);
    let lease_args = lease::LeaseArgs {
        family: (!is_board).then(|| args.target.clone()),
        board: is_board.then(|| args.target.clone()),
        location: args.location.clone(),
        priority: args.priority,
        ttl: Some(RUN_TTL),
        wait: Some(lease::WaitLimit::For(args.wait)),
        hold: false,
        // A batch shows the wait on its own progress lines.
        json: out.hides(),
    };
    let lease = lease::acquire(client, &lease_args, signals).await?;
    out.say(format_args!(
        "leased {} (lease {})",
        lease.board_id, lease.id
    ));
    Ok(lease)
}

/// An unknown family or board is refused before anything is leased.
async fn check_target(client: &Client, target: &str) -> Result<()> {
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

/// Renews the lease every third of its TTL while the run goes on.
fn spawn_renewals(client: Client, lease: &Lease, keep: bool) -> tokio::task::JoinHandle<()> {
    let id = lease.id.clone();
    let every = if keep {
        lease::renew_interval(lease, output::now_ms())
    } else {
        RUN_TTL / 3
    };
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = client.renew(&id, None).await {
                eprintln!("socv: warning: renewing lease {id}: {e}");
            }
        }
    })
}

async fn report(client: &Client, board: &str, ok: bool, reason: Option<String>) {
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
    lease: Option<&Lease>,
    client: &Client,
    args: &RunArgs,
    out: &RunOutput,
) -> Result<i32> {
    if let Some(lease) = lease {
        give_back(client, lease, args.lease.is_some()).await;
        out.say(format_args!(
            "{signal}: stopped; {} given back",
            lease.board_id
        ));
    } else {
        out.say(format_args!("{signal}: stopped"));
    }
    Ok(exit_codes::INTERRUPTED)
}

fn lab_failure(e: Error) -> Error {
    Error::LabFailure(Box::new(e))
}

/// Where the binary goes on the board: its name under /tmp, made unique per run.
fn remote_name(binary: &std::path::Path) -> Result<String> {
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

/// Where the test's output goes as it arrives: the terminal (stdout; stderr under `--json`,
/// where stdout carries the result) or nowhere (one run of a batch), the run's console.log, and
/// the test-case scanner. Writes are plain blocking writes: a terminal or a file keeps up with
/// any console.
pub struct RunOutput {
    shown: Shown,
    log: Option<std::fs::File>,
    scanner: CaseScanner,
    /// Told of every board the run goes to (a batch's progress line names it).
    on_lease: Option<OnLease>,
    /// The run's record in leased's history, when it is recorded.
    recorder: Option<RunRecorder>,
}

type OnLease = Box<dyn Fn(&Lease) + Send + Sync>;

enum Shown {
    Stdout,
    Stderr,
    /// Neither the output nor socv's notes about the run (a batch reports them itself).
    Hidden,
}

impl RunOutput {
    /// `socv run`: the output on stdout, or on stderr under `--json`.
    pub fn terminal(json: bool) -> RunOutput {
        RunOutput {
            shown: if json { Shown::Stderr } else { Shown::Stdout },
            log: None,
            scanner: CaseScanner::new(),
            on_lease: None,
            recorder: None,
        }
    }

    /// One run of many: the output only in console.log and the scanner, no progress or notes.
    pub fn hidden(on_lease: impl Fn(&Lease) + Send + Sync + 'static) -> RunOutput {
        RunOutput {
            shown: Shown::Hidden,
            log: None,
            scanner: CaseScanner::new(),
            on_lease: Some(Box::new(on_lease)),
            recorder: None,
        }
    }

    fn hides(&self) -> bool {
        matches!(self.shown, Shown::Hidden)
    }

    /// A note about the run on stderr, unless the run is one of a batch.
    fn say(&self, text: impl std::fmt::Display) {
        let text = text.to_string();
        if let Some(recorder) = &self.recorder {
            recorder.note(LogLevel::Info, &text);
        }
        if !self.hides() {
            eprintln!("socv: {text}");
        }
    }

    /// A failure of the board or of socv, for the record only (the caller says it its way).
    fn note_failure(&self, text: &str) {
        if let Some(recorder) = &self.recorder {
            recorder.note(LogLevel::Error, text);
        }
    }

    /// A new board: test cases of an attempt that failed do not count.
    fn start_attempt(&mut self, lease: &Lease) {
        self.scanner = CaseScanner::new();
        if let Some(log) = &mut self.log {
            let _ = writeln!(log, "--- socv: {} (lease {}) ---", lease.board_id, lease.id);
        }
        if let Some(on_lease) = &self.on_lease {
            on_lease(lease);
        }
    }
}

impl AsyncWrite for RunOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.scanner.feed(buf);
        if let Some(recorder) = &this.recorder {
            recorder.console(buf);
        }
        if let Some(log) = &mut this.log
            && let Err(e) = log.write_all(buf)
        {
            eprintln!("socv: warning: console.log: {e}; no longer written");
            this.log = None;
        }
        let shown = match this.shown {
            Shown::Stderr => std::io::stderr().write_all(buf),
            Shown::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(buf).and_then(|()| stdout.flush())
            }
            Shown::Hidden => Ok(()),
        };
        Poll::Ready(shown.map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.hides() {
            return Poll::Ready(Ok(()));
        }
        Poll::Ready(std::io::stdout().flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
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
