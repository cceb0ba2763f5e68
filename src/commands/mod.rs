//! One module per `socv` verb, each with its `…Args` and its `run`.

pub mod board;
pub mod boards;
pub mod lease;
pub mod leases;
pub mod release;
pub mod status;

use crate::cli::{Cli, Command};
use crate::client::Client;
use crate::config::Config;
use crate::error::Result;

/// Runs the command the user asked for.
pub async fn run(cli: Cli) -> Result<()> {
    // Built only by the commands that talk to leased, so a bad SOCV_DAEMON cannot break others.
    let client = || Client::new(&Config::load(cli.global.daemon.as_ref())?);
    match cli.command {
        Command::Boards(args) => boards::run(&client()?, args).await,
        Command::Lease(args) => lease::run(&client()?, args).await,
        Command::Leases(args) => leases::run(&client()?, args).await,
        Command::Release(args) => release::run(&client()?, args).await,
        Command::Status(args) => status::run(&client()?, args).await,
        Command::Board(args) => board::run(&client()?, args).await,
    }
}
