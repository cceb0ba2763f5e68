//! `socv run`: one test on a board of a family, start to end. The work is the run engine's
//! ([`crate::run`]); this file checks what can be checked before a board is taken, turns the
//! flags into a [`RunSpec`], and writes the result (JUnit, JSON).

use crate::cli::parse_duration;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::output;
use crate::report;
use crate::run::{self, RunOutput, RunSpec};
use crate::session::LocalFile;
use crate::signals::Signals;
use clap::Args;
use socv_api::Priority;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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

impl RunArgs {
    /// The run these flags ask for, with its binary read.
    pub fn spec(&self, binary: Arc<LocalFile>) -> RunSpec {
        RunSpec {
            target: self.target.clone(),
            binary,
            args: self.args.clone(),
            timeout: self.timeout,
            power_cycle: self.power_cycle,
            retries: self.retries,
            lease: self.lease.clone(),
            location: self.location.clone(),
            priority: self.priority,
            wait: self.wait,
            record: !self.no_record,
        }
    }
}

pub async fn run(client: &Client, args: RunArgs) -> Result<i32> {
    let mut signals = Signals::install()?;
    // Everything that can be checked is checked before a board is taken.
    let file = LocalFile::read(&args.binary)
        .await
        .map_err(|e| run::lab_failure(e.into()))?;
    report::Retention::from_env().map_err(|e| Error::Usage(e.to_string()))?;
    run::remote_name(&args.binary)?;
    if args.lease.is_none() {
        run::check_target(client, &args.target)
            .await
            .map_err(run::lab_failure)?;
    }

    let out = RunOutput::terminal(args.json);
    let spec = args.spec(Arc::new(file));
    let (result, driven) = run::execute(client, &spec, out, &mut signals).await;
    if let Some(path) = &args.junit {
        report::write_junit(path, std::slice::from_ref(&result))
            .map_err(|e| Error::Usage(format!("writing JUnit: {e}")))?;
    }
    if args.json {
        output::print_json(&result)?;
    }
    driven
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The flags' defaults are the engine's: `socv run` and anything else that makes a
    /// [`RunSpec::new`] (batch plans, the worker) run a test alike.
    #[test]
    fn the_flags_defaults_are_the_engines_defaults() {
        let args = match crate::cli::Cli::try_parse_from(["socv", "run", "socA", "t.elf"]) {
            Ok(cli) => match cli.command {
                crate::cli::Command::Run(args) => args,
                other => panic!("parsed as another verb: {other:?}"),
            },
            Err(e) => panic!("{e}"),
        };
        let binary = Arc::new(LocalFile::from_bytes("t.elf", b"#!/bin/sh\n".to_vec()));
        let from_flags = args.spec(binary.clone());
        let engine = RunSpec::new("socA", binary);
        assert_eq!(format!("{from_flags:?}"), format!("{engine:?}"));
    }
}
