//! A simulated board's telnetd and login: greets like busybox telnetd, shows the boot log
//! after a power-on, asks `login:` and `Password:` like getty/login, then relays between the
//! client and a real shell on a pty.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::Instant;

use super::board::Board;
use super::fault::Fault;
use super::shell::Shell;
use super::telnet::TelnetServer;
use super::{Settings, SimBoard};
use crate::telnet::wire::put_escaped;

/// busybox login gives up after this many wrong logins and the connection closes.
const MAX_LOGIN_ATTEMPTS: u32 = 3;
/// Longest user name or password login reads; the rest of the line is dropped.
const MAX_LOGIN_LINE: usize = 256;
/// Client input waiting for the pty beyond this is not read (backpressure, not memory).
const MAX_PTY_BACKLOG: usize = 64 * 1024;
/// The size a shell gets when the client never sent NAWS (a serial console's).
const DEFAULT_WINDOW: (u16, u16) = (80, 24);
const BUFFER: usize = 4096;

/// The client's side of the console, in board terms: decoded input, encoded output.
struct Console<IO> {
    reader: ReadHalf<IO>,
    writer: WriteHalf<IO>,
    telnet: TelnetServer,
    /// Decoded input not consumed yet (typed ahead of a prompt).
    typed: VecDeque<u8>,
    window: (u16, u16),
    /// The window changed since the shell last heard of it.
    resized: bool,
}

impl<IO: AsyncRead + AsyncWrite> Console<IO> {
    /// Board output, IAC-escaped.
    async fn send(&mut self, text: &[u8]) -> io::Result<()> {
        let mut wire = Vec::with_capacity(text.len() + text.len() / 64);
        put_escaped(&mut wire, text);
        self.writer.write_all(&wire).await
    }

    /// Takes one piece of client input: notes the window size, keeps the data, and returns
    /// the negotiation answers to send.
    fn take_input(&mut self, raw: &[u8]) -> Vec<u8> {
        let decoded = self.telnet.decode(raw);
        if let Some(window) = decoded.window {
            self.window = window;
            self.resized = true;
        }
        self.typed.extend(decoded.data);
        decoded.replies
    }

    /// Reads and takes one piece of client input; `Ok(false)` when the client is gone.
    async fn read_more(&mut self) -> io::Result<bool> {
        let mut raw = [0; BUFFER];
        let n = self.reader.read(&mut raw).await?;
        if n == 0 {
            return Ok(false);
        }
        let replies = self.take_input(&raw[..n]);
        if !replies.is_empty() {
            self.writer.write_all(&replies).await?;
        }
        Ok(true)
    }

    /// Reads one line as login does: CR or LF ends it, backspace edits it, control
    /// characters are dropped; echoed when `echo` and the client lets us echo. `None` when
    /// the client is gone.
    async fn read_line(&mut self, echo: bool) -> io::Result<Option<String>> {
        let mut line: Vec<u8> = Vec::new();
        loop {
            while let Some(byte) = self.typed.pop_front() {
                let echo = echo && self.telnet.we_echo();
                match byte {
                    b'\r' | b'\n' => {
                        if echo {
                            self.send(b"\r\n").await?;
                        }
                        return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
                    }
                    0x08 | 0x7f => {
                        if line.pop().is_some() && echo {
                            self.send(b"\x08 \x08").await?;
                        }
                    }
                    byte if byte < 0x20 => {}
                    byte => {
                        if line.len() < MAX_LOGIN_LINE {
                            line.push(byte);
                            if echo {
                                self.send(&[byte]).await?;
                            }
                        }
                    }
                }
            }
            if !self.read_more().await? {
                return Ok(None);
            }
        }
    }
}

/// Serves one console on `io` until the client leaves, login gives up or the shell exits.
/// The shell, once started, is left in `shell` for the caller to kill.
pub(crate) async fn serve<IO: AsyncRead + AsyncWrite>(
    board: &Board,
    settings: &Settings,
    session: u64,
    io: IO,
    shell: &mut Option<Shell>,
) -> io::Result<()> {
    let (reader, writer) = tokio::io::split(io);
    let mut console = Console {
        reader,
        writer,
        telnet: TelnetServer::new(),
        typed: VecDeque::new(),
        window: DEFAULT_WINDOW,
        resized: false,
    };
    let greeting = console.telnet.greeting();
    console.writer.write_all(&greeting).await?;
    if let Some(ready_at) = board.take_boot() {
        boot_log(&mut console, &board.info, ready_at).await?;
    }
    let issue = format!(
        "\r\nsocv simulated board {} ({}, {})\r\n\r\n",
        board.info.board_id, board.info.family, board.info.lab_location
    );
    console.send(issue.as_bytes()).await?;
    let Some(user) = login(&mut console, board, settings).await? else {
        return Ok(());
    };

    let started = Shell::spawn(&settings.shell, &board.info.workdir, &user, console.window);
    let started = match started {
        Ok(started) => started,
        Err(e) => {
            tracing::warn!(board = %board.info.board_id, "cannot start {}: {e}", settings.shell.display());
            let message = format!("\r\ncannot start {}: {e}\r\n", settings.shell.display());
            console.send(message.as_bytes()).await?;
            return Err(e);
        }
    };
    board.set_shell(session, Some(started.pid()));
    console.resized = false;
    relay(&mut console, shell.insert(started)).await
}

/// The lines a board prints from power-on to its login prompt, spread until `ready_at`.
async fn boot_log<IO: AsyncRead + AsyncWrite>(
    console: &mut Console<IO>,
    board: &SimBoard,
    ready_at: Instant,
) -> io::Result<()> {
    let lines = [
        "U-Boot SPL 2024.01 (socv sim)".to_owned(),
        "DRAM:  2 GiB".to_owned(),
        "Trying to boot from MMC1".to_owned(),
        format!("U-Boot 2024.01 (socv sim) for {}", board.family),
        "Hit any key to stop autoboot:  0".to_owned(),
        "Starting kernel ...".to_owned(),
        "[    0.000000] Booting Linux on physical CPU 0x0".to_owned(),
        format!(
            "[    1.024000] Run /sbin/init as init process on {}",
            board.board_id
        ),
    ];
    let count = u32::try_from(lines.len()).unwrap_or(1);
    for (index, line) in lines.iter().enumerate() {
        let left = ready_at.saturating_duration_since(Instant::now());
        let lines_left = count.saturating_sub(u32::try_from(index).unwrap_or(count));
        tokio::time::sleep(left / lines_left.max(1)).await;
        console.send(format!("{line}\r\n").as_bytes()).await?;
    }
    tokio::time::sleep_until(ready_at).await;
    Ok(())
}

/// Asks for a user name and password until they are right (`Some(user)`), the client leaves
/// or gives up, or [`MAX_LOGIN_ATTEMPTS`] wrong logins (`None`).
async fn login<IO: AsyncRead + AsyncWrite>(
    console: &mut Console<IO>,
    board: &Board,
    settings: &Settings,
) -> io::Result<Option<String>> {
    let prompt = format!("{} login: ", board.info.board_id);
    let mut failures = 0;
    loop {
        console.send(prompt.as_bytes()).await?;
        let Some(user) = console.read_line(true).await? else {
            return Ok(None);
        };
        if user.is_empty() {
            continue;
        }
        let refused = *board.fault.borrow() == Fault::RefuseLogin;
        let right_user = user == settings.login.username;
        // Like login: an account without a password is not asked for one, but a wrong
        // user name is, so that it does not show which names exist.
        let password = if refused || !right_user || !settings.login.password.is_empty() {
            console.send(b"Password: ").await?;
            let Some(password) = console.read_line(false).await? else {
                return Ok(None);
            };
            console.send(b"\r\n").await?;
            password
        } else {
            String::new()
        };
        if !refused && right_user && password == settings.login.password {
            return Ok(Some(user));
        }
        tokio::time::sleep(settings.login_failure_delay).await;
        console.send(b"\r\nLogin incorrect\r\n").await?;
        failures += 1;
        if failures >= MAX_LOGIN_ATTEMPTS {
            return Ok(None);
        }
    }
}

enum Event {
    ClientRead(io::Result<usize>),
    PtyWrote(io::Result<usize>),
    PtyRead(io::Result<usize>),
    ShellExited,
}

/// Relays between the client and the shell until one of them is gone.
async fn relay<IO: AsyncRead + AsyncWrite>(
    console: &mut Console<IO>,
    shell: &mut Shell,
) -> io::Result<()> {
    // What was typed ahead of the prompt goes to the shell first.
    let mut to_pty: Vec<u8> = console.typed.drain(..).collect();
    let mut from_client = [0; BUFFER];
    let mut from_pty = [0; BUFFER];
    loop {
        if console.resized {
            console.resized = false;
            shell.resize(console.window);
        }
        let Shell {
            reader,
            writer,
            process,
            ..
        } = shell;
        // The pty's input is written as it drains, never blocking the output: a shell that
        // is busy printing must not wait for us while we wait for it.
        let event = tokio::select! {
            read = console.reader.read(&mut from_client), if to_pty.len() < MAX_PTY_BACKLOG => {
                Event::ClientRead(read)
            }
            wrote = writer.write(&to_pty), if !to_pty.is_empty() => Event::PtyWrote(wrote),
            read = reader.read(&mut from_pty) => Event::PtyRead(read),
            () = process.exited() => Event::ShellExited,
        };
        match event {
            Event::ClientRead(read) => {
                let n = read?;
                if n == 0 {
                    return Ok(());
                }
                let replies = console.take_input(&from_client[..n]);
                if !replies.is_empty() {
                    console.writer.write_all(&replies).await?;
                }
                to_pty.extend(console.typed.drain(..));
            }
            Event::PtyWrote(wrote) => {
                let n = wrote?;
                to_pty.drain(..n);
            }
            Event::PtyRead(Ok(n)) if n > 0 => console.send(&from_pty[..n]).await?,
            // EOF, or EIO: the last process holding the pty's other side is gone.
            Event::PtyRead(_) => return Ok(()),
            Event::ShellExited => {
                // What the shell printed last (the echo of `exit`) is still in the pty.
                while let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(50), reader.read(&mut from_pty))
                        .await
                {
                    if n == 0 {
                        break;
                    }
                    console.send(&from_pty[..n]).await?;
                }
                return Ok(());
            }
        }
    }
}
