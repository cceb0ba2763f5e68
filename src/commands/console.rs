//! `socv console`: your terminal on a board's console (raw, like telnet), left with `~.`.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::lease::held;
use crate::session::{BoardSession, ConsoleEnd};
use clap::Args;
use tokio::sync::mpsc;

#[derive(Debug, Args)]
#[command(after_help = "\
socv logs in for you (the console's credentials stay with the daemon), turns your terminal
raw and relays every key. Type ~. at the start of a line to leave (~~ sends a ~); leaving
logs out, and the lease stays held.

Examples:
  socv console soc-a-001
  socv console l-7f3a0c1b2d4e

Exit codes:
  0  success
  1  other failure
  4  lease, board or family not found
  5  permission denied
  6  leased unreachable, not a socv daemon, or its store unavailable")]
pub struct ConsoleArgs {
    /// The lease id, or the board whose lease you hold
    #[arg(value_name = "LEASE | BOARD")]
    pub target: String,
}

/// Puts a terminal on stdin into raw mode for as long as it lives; restores it on drop (also
/// on errors and panics), so the person's shell is never left raw.
struct RawTerminal {
    saved: Option<rustix::termios::Termios>,
}

impl RawTerminal {
    fn enter() -> Result<RawTerminal> {
        let stdin = std::io::stdin();
        if !rustix::termios::isatty(&stdin) {
            return Ok(RawTerminal { saved: None });
        }
        let saved = rustix::termios::tcgetattr(&stdin)
            .map_err(|e| Error::io("reading the terminal's settings", e.into()))?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw)
            .map_err(|e| Error::io("making the terminal raw", e.into()))?;
        Ok(RawTerminal { saved: Some(saved) })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

pub async fn run(client: &Client, args: ConsoleArgs) -> Result<()> {
    let board = held::resolve(client, &args.target).await?;
    let session = BoardSession::connect(board.session).await?;
    eprintln!(
        "socv: on the console of {} (lease {}); type ~. at the start of a line to leave\r",
        board.lease.board_id, board.lease.id
    );
    // Keys come from a thread of their own (a blocked read of a terminal cannot be cancelled;
    // on tokio's blocking pool it would hold up the runtime's shutdown until the next key).
    let (keys, mut typed) = mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stdin, &mut buf) {
            if n == 0 || keys.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let end = {
        let _raw = RawTerminal::enter()?;
        session.interact(&mut typed, &mut tokio::io::stdout()).await
    };
    let said = match end? {
        ConsoleEnd::Escape | ConsoleEnd::InputClosed => "left the console",
        ConsoleEnd::BoardClosed => "the board closed the console",
    };
    eprintln!(
        "\nsocv: {said} of {}; the lease {} stays held (socv release {} gives it back)",
        board.lease.board_id, board.lease.id, board.lease.board_id
    );
    Ok(())
}
