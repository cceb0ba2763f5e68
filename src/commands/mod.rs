//! One module per `socv` verb, each with its `…Args` and its `run`.

pub mod batch;
pub mod board;
pub mod boards;
pub mod completions;
pub mod console;
pub mod demo;
pub mod exec;
pub mod history;
pub mod lease;
pub mod leases;
pub mod man;
pub mod power;
pub mod push;
pub mod release;
pub mod run;
pub mod sim;
pub mod status;
pub mod workers;

use crate::cli::{Cli, Command};
use crate::client::Client;
use crate::config::Config;
use crate::error::Result;

/// Runs the command the user asked for; the answer is the process's exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    // Built only by the commands that talk to leased, so a bad SOCV_DAEMON cannot break others.
    let client = || {
        Client::new(&Config::load(
            cli.global.daemon.as_ref(),
            cli.global.ca_cert.as_deref(),
        )?)
    };
    let done = match cli.command {
        Command::Exec(args) => return exec::run(&client()?, args).await,
        Command::Demo(args) => return demo::run(args).await,
        Command::Run(args) => return run::run(&client()?, args).await,
        Command::Batch(args) => return batch::run(&client()?, args).await,
        Command::Boards(args) => boards::run(&client()?, args).await,
        Command::Lease(args) => lease::run(&client()?, args).await,
        Command::Leases(args) => leases::run(&client()?, args).await,
        Command::Release(args) => release::run(&client()?, args).await,
        Command::Status(args) => status::run(&client()?, args).await,
        Command::Workers(args) => workers::run(&client()?, args).await,
        Command::History(args) => history::run(&client()?, args).await,
        Command::Board(args) => board::run(&client()?, args).await,
        Command::Power(args) => power::run(&client()?, args).await,
        Command::Push(args) => push::run(&client()?, args).await,
        Command::Console(args) => console::run(&client()?, args).await,
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
        Command::Sim(args) => sim::run(args).await,
    };
    done.map(|()| crate::exit_codes::OK)
}
