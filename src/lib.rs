//! socv: run tests on real SoC boards from a shared lab. This library is the `socv` binary
//! minus its `main`: the command line, the client of leased, and one module per command.

pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod error;
pub mod exit_codes;
pub mod lease;
pub mod output;
pub mod report;
pub mod run;
pub mod session;
pub mod signals;
pub mod sim;
pub mod telnet;

pub use error::{Error, Result};

/// Runs one parsed command line to completion on a single-threaded runtime (a CLI must start
/// in milliseconds).
pub fn run(cli: cli::Cli) -> Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    runtime.block_on(commands::run(cli))
}

/// Diagnostics go to stderr, filtered by `RUST_LOG` (default: warnings and errors).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second initialisation (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
