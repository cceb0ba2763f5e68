//! Taking a board: a lease now, or a place in the fair queue long-polled until granted, with
//! the place shown; a signal leaves the queue or gives back what was granted meanwhile.

use crate::cli::ceil_secs;
use crate::client::{Client, LeaseAnswer};
use crate::error::{Error, Result};
use crate::output;
use crate::signals::Signals;
use indicatif::{ProgressBar, ProgressStyle};
use socv_api::{Lease, LeaseRequest, Priority, QueueTicket, TicketStatus};
use std::time::Duration;
use tokio::time::{Instant, sleep};

/// `wait_s` that asks the daemon to wait without limit (one year).
pub const WAIT_FOREVER_S: u64 = 31_536_000;
/// Long-poll length of one queue poll; well inside the daemon's 30 s cap and its lapse time.
pub const POLL_WAIT_S: u64 = 20;

/// What is asked for: any board of a family, or one board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Family(String),
    Board(String),
}

/// How long to wait in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitLimit {
    For(Duration),
    Forever,
}

impl WaitLimit {
    /// The `wait_s` of the request.
    pub fn wait_s(self) -> u64 {
        match self {
            WaitLimit::For(d) => ceil_secs(d).min(WAIT_FOREVER_S),
            WaitLimit::Forever => WAIT_FOREVER_S,
        }
    }
}

/// A lease as the caller wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseWish {
    pub target: Target,
    /// Prefer a board at this lab location (others still qualify).
    pub location: Option<String>,
    pub priority: Option<Priority>,
    /// How long the lease lasts unless renewed; `None`: the daemon's default.
    pub ttl: Option<Duration>,
    /// Wait in the queue when nothing is free; `None`: answer at once.
    pub wait: Option<WaitLimit>,
    /// Show nothing of the wait (`--json`, or a batch that shows it its own way).
    pub quiet: bool,
}

impl LeaseWish {
    /// The request to send.
    pub fn request(&self) -> LeaseRequest {
        let (board_family, board_id) = match &self.target {
            Target::Family(f) => (Some(f.clone()), None),
            Target::Board(b) => (None, Some(b.clone())),
        };
        LeaseRequest {
            board_family,
            board_id,
            location: self.location.clone(),
            priority: self.priority,
            ttl_s: self.ttl.map(ceil_secs),
            wait_s: self.wait.map(WaitLimit::wait_s),
        }
    }

    /// What is asked for, in words: `a socA board` or `board soc-a-001`.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Board(board) => format!("board {board}"),
            Target::Family(family) => format!("a {family} board"),
        }
    }
}

/// Asks for the lease and waits in the queue when told to; gives back what it got when
/// interrupted.
pub async fn acquire(client: &Client, wish: &LeaseWish, signals: &mut Signals) -> Result<Lease> {
    let request = wish.request();
    let started = Instant::now();
    let post = client.request_lease(&request);
    tokio::pin!(post);
    let answer = tokio::select! {
        answer = &mut post => answer,
        signal = signals.recv() => {
            // The daemon may have granted or queued already: let the answer arrive, undo it.
            tokio::select! {
                answer = &mut post => undo(client, answer).await,
                _ = signals.recv() => {}
            }
            return Err(interrupted(signal, wish));
        }
    };
    match answer.map_err(|e| explain_no_board(e, wish))? {
        LeaseAnswer::Granted(lease) => Ok(lease),
        LeaseAnswer::Queued(ticket) => {
            let deadline = match wish.wait {
                Some(WaitLimit::For(d)) => Some(started + d),
                _ => None,
            };
            wait_in_queue(client, wish, ticket, deadline, signals).await
        }
    }
}

async fn undo(client: &Client, answer: Result<LeaseAnswer>) {
    let result = match answer {
        Ok(LeaseAnswer::Granted(lease)) => client.release(&lease.id).await.map(drop),
        Ok(LeaseAnswer::Queued(ticket)) => client.leave_queue(&ticket.ticket).await,
        Err(_) => Ok(()),
    };
    if let Err(e) = result {
        eprintln!("socv: warning: {e}");
    }
}

fn interrupted(signal: &'static str, wish: &LeaseWish) -> Error {
    Error::Interrupted {
        signal,
        doing: format!("asking for {}", wish.describe()),
        waiting_for_board: true,
    }
}

fn explain_no_board(err: Error, wish: &LeaseWish) -> Error {
    match err {
        Error::NoBoard {
            message,
            none_healthy: false,
        } if wish.wait.is_none() => Error::NoBoard {
            message: format!("{message} (add --wait to queue for one)"),
            none_healthy: false,
        },
        other => other,
    }
}

/// Shows the place in the queue: a spinner for a person, a line per change for a log, nothing
/// under `--json`.
struct QueueProgress {
    spinner: Option<ProgressBar>,
    quiet: bool,
    target: String,
}

impl QueueProgress {
    fn new(wish: &LeaseWish) -> QueueProgress {
        let spinner = output::interactive(wish.quiet).then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        QueueProgress {
            spinner,
            quiet: wish.quiet,
            target: wish.describe(),
        }
    }

    fn show(&self, ticket: &QueueTicket) {
        let text = format!(
            "waiting for {}: position {} in the queue",
            self.target, ticket.position
        );
        match &self.spinner {
            Some(bar) => bar.set_message(text),
            None if !self.quiet => eprintln!("socv: {text} (ticket {})", ticket.ticket),
            None => {}
        }
    }

    fn warn(&self, text: &str) {
        match &self.spinner {
            Some(bar) => bar.suspend(|| eprintln!("socv: warning: {text}")),
            None => eprintln!("socv: warning: {text}"),
        }
    }
}

impl Drop for QueueProgress {
    fn drop(&mut self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}

/// Long-polls the ticket until granted, the deadline, or a signal; leaves the queue on the
/// way out unless granted.
async fn wait_in_queue(
    client: &Client,
    wish: &LeaseWish,
    mut ticket: QueueTicket,
    deadline: Option<Instant>,
    signals: &mut Signals,
) -> Result<Lease> {
    let progress = QueueProgress::new(wish);
    progress.show(&ticket);
    loop {
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if remaining == Some(Duration::ZERO) {
            drop(progress);
            leave_queue(client, &ticket).await;
            return Err(timed_out(wish));
        }
        let wait_s = remaining.map_or(POLL_WAIT_S, |r| ceil_secs(r).clamp(1, POLL_WAIT_S));
        let asked = Instant::now();
        let status = tokio::select! {
            status = client.poll_ticket(&ticket.ticket, wait_s) => status,
            signal = signals.recv() => {
                drop(progress);
                leave_queue(client, &ticket).await;
                return Err(interrupted(signal, wish));
            }
        };
        match status {
            Ok(TicketStatus::Granted { lease }) => return Ok(lease),
            Ok(TicketStatus::Waiting(now)) => {
                if now.position != ticket.position {
                    progress.show(&now);
                }
                ticket = now;
                // A daemon that answers a long poll at once must not make socv spin.
                let floor = Duration::from_millis(250);
                if asked.elapsed() < floor {
                    sleep(floor).await;
                }
            }
            Err(e) if e.is_transient() && output::now_ms() + 1500 < ticket.poll_by_ms => {
                // The ticket survives until its poll_by: ride out a daemon restart.
                progress.warn(&format!("{e}; retrying"));
                tokio::select! {
                    _ = sleep(Duration::from_secs(1)) => {}
                    signal = signals.recv() => {
                        drop(progress);
                        leave_queue(client, &ticket).await;
                        return Err(interrupted(signal, wish));
                    }
                }
            }
            // The daemon gives the ticket up at its give_up_at, which may come a moment
            // before the local deadline: that is the ordinary end of the wait.
            Err(Error::LeaseEnded { .. } | Error::NotFound(_))
                if ticket
                    .give_up_at_ms
                    .is_some_and(|at| output::now_ms() + 1000 >= at) =>
            {
                return Err(timed_out(wish));
            }
            Err(Error::LeaseEnded { message, .. }) => {
                return Err(Error::NoBoard {
                    message: format!(
                        "the daemon ended the wait for {}: {message}",
                        wish.describe()
                    ),
                    none_healthy: false,
                });
            }
            Err(Error::NotFound(message)) => {
                return Err(Error::NoBoard {
                    message: format!(
                        "{message}: the queue ticket lapsed (socv could not poll it in time) \
                         or leased lost it; ask again"
                    ),
                    none_healthy: false,
                });
            }
            Err(e) => {
                drop(progress);
                leave_queue(client, &ticket).await;
                return Err(e);
            }
        }
    }
}

fn timed_out(wish: &LeaseWish) -> Error {
    let waited = match wish.wait {
        Some(WaitLimit::For(d)) => humantime::format_duration(d).to_string(),
        _ => "the time asked".to_owned(),
    };
    Error::NoBoard {
        message: format!(
            "no {} became free within {waited}",
            wish.describe().trim_start_matches("a ")
        ),
        none_healthy: false,
    }
}

async fn leave_queue(client: &Client, ticket: &QueueTicket) {
    match client.leave_queue(&ticket.ticket).await {
        Ok(()) | Err(Error::NotFound(_) | Error::LeaseEnded { .. }) => {}
        Err(e) => eprintln!("socv: warning: {e} (the ticket lapses by itself)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_board_without_wait_suggests_waiting() {
        let wish = LeaseWish {
            target: Target::Family("socA".into()),
            location: None,
            priority: None,
            ttl: None,
            wait: None,
            quiet: false,
        };
        let err = explain_no_board(
            Error::NoBoard {
                message: "asking for a socA board: all 4 socA boards are leased".into(),
                none_healthy: false,
            },
            &wish,
        );
        assert!(
            err.to_string().ends_with("(add --wait to queue for one)"),
            "{err}"
        );
        let err = explain_no_board(
            Error::NoBoard {
                message: "no healthy socA board".into(),
                none_healthy: true,
            },
            &wish,
        );
        assert!(!err.to_string().contains("--wait"), "{err}");
    }
}
