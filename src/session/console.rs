//! Handing a logged-in board shell to a person: a raw relay between the terminal and the
//! console, left with `~.` at the start of a line (as ssh does).

use super::BoardSession;
use super::error::SessionError;
use super::link::Pumped;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Why an interactive console ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleEnd {
    /// The person typed `~.` at the start of a line.
    Escape,
    /// The person's input ended (a pipe closed).
    InputClosed,
    /// The board closed the connection (powered off, logged out, link dropped).
    BoardClosed,
}

/// Finds `~.` at the start of a line in typed input, passing everything else on. As in ssh:
/// `~~` sends one `~`, and a `~` followed by anything else is sent as typed.
#[derive(Debug)]
pub struct EscapeScanner {
    at_line_start: bool,
    tilde_held: bool,
}

impl Default for EscapeScanner {
    fn default() -> Self {
        EscapeScanner {
            at_line_start: true,
            tilde_held: false,
        }
    }
}

impl EscapeScanner {
    /// Appends to `out` what should go to the board; `true` when the escape was typed (what
    /// followed it is dropped).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            if self.tilde_held {
                self.tilde_held = false;
                match b {
                    b'.' => return true,
                    b'~' => {
                        out.push(b'~');
                        self.at_line_start = false;
                        continue;
                    }
                    _ => out.push(b'~'),
                }
            } else if self.at_line_start && b == b'~' {
                self.tilde_held = true;
                continue;
            }
            out.push(b);
            self.at_line_start = matches!(b, b'\r' | b'\n');
        }
        false
    }
}

impl BoardSession {
    /// Gives the shell back its usual manners (echo, output processing, a plain prompt) and
    /// relays: board output to `output`, each chunk from `input` to the board, until the
    /// person types `~.`, the input ends, or the board closes. Then logs out.
    pub async fn interact<W>(
        mut self,
        input: &mut mpsc::Receiver<Vec<u8>>,
        output: &mut W,
    ) -> Result<ConsoleEnd, SessionError>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        if self.dirty {
            self.recover("stopping a command before handing over the console")
                .await?;
        }
        self.send(b"stty echo opost; [ \"$(id -u)\" = 0 ] && PS1='# ' || PS1='$ '\n")?;
        let mut scanner = EscapeScanner::default();
        let mut forward = Vec::new();
        let end = loop {
            tokio::select! {
                pumped = self.link.pump() => {
                    match pumped.map_err(|e| self.link_error("relaying the console", e))? {
                        Pumped::Data(data) => {
                            let written = async {
                                output.write_all(&data).await?;
                                output.flush().await
                            };
                            written
                                .await
                                .map_err(|e| self.io_error("writing the console's output", e))?;
                        }
                        Pumped::Wrote => {}
                        Pumped::Eof => break ConsoleEnd::BoardClosed,
                    }
                }
                typed = input.recv() => {
                    let Some(typed) = typed else {
                        break ConsoleEnd::InputClosed;
                    };
                    forward.clear();
                    let escaped = scanner.feed(&typed, &mut forward);
                    self.send(&forward)?;
                    if escaped {
                        break ConsoleEnd::Escape;
                    }
                }
            }
        };
        if end != ConsoleEnd::BoardClosed {
            // Interrupt whatever the person left running, then log out.
            self.send(b"\x03")?;
            self.close().await?;
        }
        Ok(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut s = EscapeScanner::default();
        let mut out = Vec::new();
        for c in chunks {
            if s.feed(c, &mut out) {
                return (out, true);
            }
        }
        (out, false)
    }

    #[test]
    fn tilde_dot_at_a_line_start_escapes() {
        assert_eq!(scan(&[b"~."]), (vec![], true));
        assert_eq!(scan(&[b"ls\r~.rest"]), (b"ls\r".to_vec(), true));
        assert_eq!(scan(&[b"ls\n", b"~", b"."]), (b"ls\n".to_vec(), true));
    }

    #[test]
    fn other_tildes_pass() {
        assert_eq!(scan(&[b"a~."]), (b"a~.".to_vec(), false));
        assert_eq!(scan(&[b"~~."]), (b"~.".to_vec(), false));
        assert_eq!(scan(&[b"~x\r"]), (b"~x\r".to_vec(), false));
        assert_eq!(scan(&[b"cd ~/x\r"]), (b"cd ~/x\r".to_vec(), false));
    }
}
