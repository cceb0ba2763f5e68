//! The wire between a simulated board and its client: copies bytes both ways and applies the
//! board's link faults (drop after N bytes or N seconds, hang, slow link) as they are set, so
//! the board's telnetd and shell above it stay ordinary.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use super::fault::Fault;

const BUFFER: usize = 4096;
/// A throttled link sends in pieces this often (50 per second), so a slow link trickles
/// evenly instead of in one-second bursts.
const PIECES_PER_SECOND: u64 = 50;

/// Bytes read from one side, waiting to be written to the other.
struct Pending {
    buf: Vec<u8>,
    pos: usize,
    /// When a throttled link may send its next piece.
    next_slot: Instant,
}

impl Pending {
    fn new() -> Self {
        Pending {
            buf: Vec::with_capacity(BUFFER),
            pos: 0,
            next_slot: Instant::now(),
        }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn fill(&mut self, data: &[u8]) {
        self.buf.clear();
        self.buf.extend_from_slice(data);
        self.pos = 0;
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }

    /// The next bytes to write: all of them, or one piece on a slow link, never more than
    /// `budget`.
    fn piece(&self, rate: Option<u64>, budget: Option<u64>) -> &[u8] {
        let mut len = self.buf.len() - self.pos;
        if let Some(rate) = rate {
            len = len.min(piece_size(rate));
        }
        if let Some(budget) = budget {
            len = len.min(usize::try_from(budget).unwrap_or(usize::MAX));
        }
        &self.buf[self.pos..self.pos + len]
    }

    fn advance(&mut self, written: usize, rate: Option<u64>) {
        self.pos += written;
        if let Some(rate) = rate {
            // No credit for idle time: a slow link never bursts.
            let start = self.next_slot.max(Instant::now());
            self.next_slot = start + Duration::from_secs_f64(written as f64 / rate as f64);
        }
    }
}

fn piece_size(rate: u64) -> usize {
    usize::try_from((rate / PIECES_PER_SECOND).max(1)).unwrap_or(usize::MAX)
}

/// Waits for the link's next slot (on a slow link), then writes what the writer takes.
/// Cancel-safe: a write either happened and is reported, or did not happen.
async fn paced_write<W: AsyncWrite + Unpin>(
    writer: &mut W,
    piece: &[u8],
    slot: Instant,
    rate: Option<u64>,
) -> io::Result<usize> {
    if rate.is_some() {
        sleep_until(slot).await;
    }
    writer.write(piece).await
}

/// The limits a fault puts on a connection, counted from `now`.
fn limits(fault: Fault, now: Instant) -> (Option<u64>, Option<Instant>) {
    match fault {
        Fault::DropAfterBytes(bytes) => (Some(bytes), None),
        Fault::DropAfterSecs(after) => (None, Some(now + after)),
        Fault::None | Fault::Hang | Fault::SlowLink(_) | Fault::RefuseLogin => (None, None),
    }
}

enum Event {
    FaultChanged,
    BoardGone,
    Deadline,
    ClientRead(io::Result<usize>),
    BoardWrote(io::Result<usize>),
    BoardRead(io::Result<usize>),
    ClientWrote(io::Result<usize>),
}

/// Relays between the client's `tcp` and the `board` side until one of them closes or a
/// fault drops the link. Dropping the future drops the connection too.
pub async fn run<B>(tcp: TcpStream, board: B, mut faults: watch::Receiver<Fault>)
where
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut tcp_rd, mut tcp_wr) = tcp.into_split();
    let (mut board_rd, mut board_wr) = tokio::io::split(board);
    let mut fault = *faults.borrow_and_update();
    let (mut budget, mut deadline) = limits(fault, Instant::now());
    let mut up = Pending::new();
    let mut down = Pending::new();
    let mut from_client = vec![0; BUFFER];
    let mut from_board = vec![0; BUFFER];
    loop {
        if budget == Some(0) {
            break;
        }
        let hung = fault == Fault::Hang;
        let rate = match fault {
            Fault::SlowLink(rate) => Some(rate),
            _ => None,
        };
        let event = tokio::select! {
            // A fault set before some data arrived applies to that data.
            biased;
            changed = faults.changed() => match changed {
                Ok(()) => Event::FaultChanged,
                Err(_) => Event::BoardGone,
            },
            () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                Event::Deadline
            }
            // While hung, the client is still read (and ignored) so that its leaving is seen.
            read = tcp_rd.read(&mut from_client), if up.is_empty() => Event::ClientRead(read),
            wrote = paced_write(&mut board_wr, up.piece(rate, None), up.next_slot, rate),
                if !up.is_empty() && !hung => Event::BoardWrote(wrote),
            read = board_rd.read(&mut from_board), if down.is_empty() && !hung => {
                Event::BoardRead(read)
            }
            wrote = paced_write(&mut tcp_wr, down.piece(rate, budget), down.next_slot, rate),
                if !down.is_empty() && !hung => Event::ClientWrote(wrote),
        };
        match event {
            Event::FaultChanged => {
                fault = *faults.borrow_and_update();
                (budget, deadline) = limits(fault, Instant::now());
                if fault == Fault::Hang {
                    // A frozen board loses what was in flight.
                    up.clear();
                    down.clear();
                }
                up.next_slot = Instant::now();
                down.next_slot = Instant::now();
            }
            Event::BoardGone | Event::Deadline => break,
            Event::ClientRead(Ok(0) | Err(_)) => break,
            Event::ClientRead(Ok(n)) => {
                if !hung {
                    up.fill(&from_client[..n]);
                }
            }
            Event::BoardWrote(Ok(n)) => up.advance(n, rate),
            Event::BoardWrote(Err(_)) => break,
            Event::BoardRead(Ok(0) | Err(_)) => {
                // The board side ended the session (logout, too many failed logins).
                let _ = tcp_wr.shutdown().await;
                break;
            }
            Event::BoardRead(Ok(n)) => down.fill(&from_board[..n]),
            Event::ClientWrote(Ok(n)) => {
                down.advance(n, rate);
                if let Some(left) = &mut budget {
                    *left = left.saturating_sub(u64::try_from(n).unwrap_or(u64::MAX));
                }
            }
            Event::ClientWrote(Err(_)) => break,
        }
    }
    // FIN rather than waiting for the halves to drop, so the client sees the end at once.
    let _ = tcp_wr.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_respect_rate_and_budget() {
        let mut pending = Pending::new();
        pending.fill(&[7; 1000]);
        assert_eq!(pending.piece(None, None).len(), 1000);
        assert_eq!(pending.piece(Some(500), None).len(), 10);
        assert_eq!(pending.piece(Some(10), None).len(), 1);
        assert_eq!(pending.piece(None, Some(3)).len(), 3);
        pending.advance(990, None);
        assert_eq!(pending.piece(None, None).len(), 10);
        pending.advance(10, None);
        assert!(pending.is_empty());
    }

    #[test]
    fn a_slow_link_spaces_its_pieces() {
        let mut pending = Pending::new();
        pending.fill(&[0; 100]);
        let before = Instant::now();
        pending.advance(50, Some(100));
        assert!(pending.next_slot >= before + Duration::from_millis(500));
    }
}
