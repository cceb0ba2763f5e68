//! The command line of socv as clap definitions; completions and man pages are generated from
//! [`Cli::command()`](clap::CommandFactory::command).

use crate::commands::{
    batch::BatchArgs, board::BoardArgs, boards::BoardsArgs, completions::CompletionsArgs,
    console::ConsoleArgs, demo::DemoArgs, exec::ExecArgs, history::HistoryArgs, lease::LeaseArgs,
    leases::LeasesArgs, man::ManArgs, power::PowerArgs, push::PushArgs, release::ReleaseArgs,
    run::RunArgs, sim::SimArgs, status::StatusArgs, workers::WorkersArgs,
};
use crate::config::parse_daemon_url;
use clap::{Args, Parser, Subcommand};
use reqwest::Url;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "socv",
    version,
    about = "Run tests on real SoC boards from a shared lab: lease, push, run, report.",
    long_about = "Run tests on real SoC boards from a shared lab: lease, push, run, report.\n\n\
        socv talks to leased, the lab daemon that owns leases, the wait queue and board \
        health. A lease gives you one board (and its telnet console) until it expires or you \
        release it; when no board is free you can wait in a fair queue.",
    after_help = TOP_AFTER_HELP,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// URL of leased [default: http://127.0.0.1:8000]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        value_parser = parse_daemon_url,
        long_help = "URL of leased, http:// or https://. Else from $SOCV_DAEMON, \
            $DEVICE_MANAGER_URL, the `daemon` key of $XDG_CONFIG_HOME/socv/config.toml, or \
            http://127.0.0.1:8000."
    )]
    pub daemon: Option<Url>,
    /// Extra CA certificates (PEM) to trust for an https daemon
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        long_help = "Extra CA certificates (PEM) to trust besides the system's, for a daemon \
            whose certificate comes from the lab's own CA. Else from $SOCV_CA_CERT or the \
            `ca_cert` key of the config file. $SSL_CERT_FILE replaces the system's roots \
            instead, as for other tools."
    )]
    pub ca_cert: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a test binary on a board of a family: lease, push, run, stream, release
    Run(RunArgs),
    /// Run the tests of a plan file concurrently across the lab, with one summary and JUnit file
    Batch(BatchArgs),
    /// List the lab's boards: state, health, holder and lease expiry
    Boards(BoardsArgs),
    /// Lease a board of a family (or one named board), waiting in the queue if asked
    Lease(LeaseArgs),
    /// List the active leases
    Leases(LeasesArgs),
    /// Release a lease you hold, by lease id or board
    Release(ReleaseArgs),
    /// Show whether leased and its lease store are up
    Status(StatusArgs),
    /// List the workers of the lab's Prefect work pool: status, last heartbeat, runs held
    Workers(WorkersArgs),
    /// List recorded runs: board, binary, holder, result, duration, Prefect link
    History(HistoryArgs),
    /// Run a shell command on a board you hold; its exit status is socv's
    Exec(ExecArgs),
    /// Copy a file to a board you hold, through its console, verified by checksum
    Push(PushArgs),
    /// Your terminal on the console of a board you hold; `~.` leaves
    Console(ConsoleArgs),
    /// Administer a board: drain it for maintenance, or put it back into service
    Board(BoardArgs),
    /// Switch, power-cycle or read the PDU outlet of a board you hold
    Power(PowerArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell
    Completions(CompletionsArgs),
    /// Print socv's man page, or write all man pages (also leased's) into a directory
    Man(ManArgs),
    /// Try socv on a simulated lab, in one process: lease, push and run a test, release
    Demo(DemoArgs),
    /// Run a simulated lab: telnet boards with a real shell, a PDU, injectable faults
    Sim(SimArgs),
}

const TOP_AFTER_HELP: &str = "\
Examples:
  socv run socA ./test.elf             lease a socA board, push and run the test, give it back
  socv batch nightly.yaml              run the tests of a plan concurrently across the lab
  socv boards --family socA            list the socA boards and who holds them
  socv lease socA --wait 10m --hold    wait up to 10m for a socA board, keep it until Ctrl-C
  socv lease socA --ttl 2h             lease a socA board for 2 hours and return
  socv release soc-a-001               give the board back
  socv status                          is leased up, and is its store healthy?
  socv history --state failed          the runs that failed, newest first
  socv exec soc-a-001 -- uname -a      run a command on a board you hold
  socv push soc-a-001 ./test.elf       copy a file to it (to /tmp/test.elf), verified
  socv power soc-a-001 cycle           power-cycle a board you hold through its PDU
  socv demo                            try it all on a simulated lab, nothing to install

Environment:
  SOCV_DAEMON, DEVICE_MANAGER_URL      URL of leased (like --daemon)
  SOCV_TOKEN                           API token, sent as a bearer token
  RUST_LOG                             diagnostics on stderr, e.g. RUST_LOG=socv=debug
  Config file: $XDG_CONFIG_HOME/socv/config.toml with keys `daemon` and `token`.

Exit codes:
  0  success
  1  other failure
  2  usage error (bad flag, environment variable or config file)
  3  no board available in time
  4  lease, board or family not found
  5  permission denied
  6  leased unreachable, not a socv daemon, or its store unavailable
  124  the command ran past its time limit and was interrupted
  125  socv run: socv or the lab failed (after the retries)
  126  socv run: the binary could not be executed on the board
  127  socv run: the binary was not found on the board
  130  interrupted (Ctrl-C, SIGTERM, SIGHUP); every lease was released
`socv run` and `socv exec` exit with the test's own status; `socv demo` with the sample test's.";

/// Parses a duration such as `90s`, `30m`, `2h` or `1h30m`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value.trim())
        .map_err(|e| format!("'{value}' is not a duration like 90s, 30m or 2h ({e})"))
}

/// Whole seconds of `d`, rounded up (the API counts in seconds; never wait less than asked).
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_codes;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn top_help_documents_every_exit_code() {
        let help = Cli::command().render_long_help().to_string();
        for (code, _) in exit_codes::ALL {
            let line = exit_codes::help_line(*code).unwrap();
            assert!(help.contains(&line), "missing {line:?} in\n{help}");
        }
    }

    #[test]
    fn every_exit_code_line_in_any_help_is_the_documented_one() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut stack = vec![cmd];
        while let Some(mut cmd) = stack.pop() {
            let help = cmd.render_long_help().to_string();
            if let Some((_, codes)) = help.split_once("Exit codes:\n") {
                for line in codes.lines().take_while(|l| l.starts_with("  ")) {
                    let code: i32 = line.trim().split(' ').next().unwrap().parse().unwrap();
                    assert_eq!(
                        Some(line.to_owned()),
                        exit_codes::help_line(code),
                        "in help of {}",
                        cmd.get_name()
                    );
                }
            }
            stack.extend(cmd.get_subcommands().cloned());
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("soon").unwrap_err().contains("'soon'"));
        assert_eq!(ceil_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ceil_secs(Duration::from_secs(3)), 3);
    }

    #[test]
    fn daemon_flag_is_global_and_validated() {
        let cli = Cli::try_parse_from(["socv", "boards", "--daemon", "lab-gw:8000"]).unwrap();
        assert_eq!(
            cli.global.daemon.map(|u| u.to_string()).as_deref(),
            Some("http://lab-gw:8000/")
        );
        let cli = Cli::try_parse_from(["socv", "--daemon", "https://lab-gw", "boards"]).unwrap();
        assert_eq!(
            cli.global.daemon.map(|u| u.to_string()).as_deref(),
            Some("https://lab-gw/")
        );
        let err = Cli::try_parse_from(["socv", "--daemon", "ftp://x", "boards"]).unwrap_err();
        assert_eq!(err.exit_code(), exit_codes::USAGE);
    }
}
