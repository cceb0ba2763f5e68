//! A board session: a logged-in shell on a board's telnet console, taken over so that every
//! command's output and exit status come back exact, with Ctrl-C, timeouts and file pushes.
//!
//! ```no_run
//! # async fn demo(console: &socv_api::Console) -> Result<(), Box<dyn std::error::Error>> {
//! use socv::session::{BoardSession, LocalFile, SessionConfig};
//! let file = LocalFile::read("./test.elf").await?; // before connecting: fail early
//! let config = SessionConfig::from_console("soc-a-001", console);
//! let mut board = BoardSession::connect(config).await?;
//! board.push(&file, "/tmp/test.elf", |sent| eprintln!("{sent} bytes")).await?;
//! let outcome = board.run("/tmp/test.elf --quick", &mut tokio::io::stdout()).await?;
//! println!("exit status {}", outcome.status);
//! board.close().await?;
//! # Ok(()) }
//! ```
//!
//! How it works (measured in `docs/reference/telnet.md`): socv answers the telnet negotiation,
//! logs in when the console asks (`login:`, `Password:`; a serial console that says nothing is
//! woken with `\n`), then turns echo and output processing off (`stty -echo -opost`), sets its
//! own prompt and waits for a nonce marker. Each command is sent as one line wrapped in fresh
//! nonce markers (see `protocol`), and its output streams as it arrives.

mod console;
mod error;
mod link;
mod login;
mod protocol;
mod push;
mod screen;

pub use console::{ConsoleEnd, EscapeScanner};
pub use error::{ErrorKind, SessionError};
pub use push::{LocalFile, LocalFileError, PushReport};

use crate::telnet::TelnetConfig;
use bytes::Bytes;
use link::{Link, LinkError, Pumped};
use login::{Prompts, Seen};
use protocol::{CommandParser, CrlfFilter, SyncMatcher};
use screen::ConsoleTail;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// How to reach and log in to one board's console, and how long to wait for it.
#[derive(Clone)]
pub struct SessionConfig {
    /// The board's id or label; every error names it.
    pub board: String,
    pub host: String,
    pub port: u16,
    /// Sent when the console shows `login_prompt`.
    pub username: Option<String>,
    /// Sent when the console shows `password_prompt`.
    pub password: Option<String>,
    /// Text at the end of the output that means "user name, please" (a plain substring, as
    /// in boards.yaml; default `login:`).
    pub login_prompt: String,
    /// Likewise for the password (default `Password:`).
    pub password_prompt: String,
    /// Endings of a shell prompt, matched at the end of the output, trailing blanks aside
    /// (default `#` and `$`).
    pub shell_prompts: Vec<String>,
    pub connect_timeout: Duration,
    /// From connected to a shell taken over: login, prompts, sync. A board that is still
    /// booting after a power cycle needs more.
    pub login_timeout: Duration,
    /// Silence after which the console gets a `\n` (serial consoles print nothing on
    /// connect); later wake-ups alternate Ctrl-C and `\n`, every 2 s at most. A login that
    /// takes a wake-up for a user name is handled: socv answers prompts only once the console
    /// has been quiet for a moment, and if the login is refused after wake-ups it restarts the
    /// login once with Ctrl-C (which throws typed-ahead input away).
    pub wake_after: Duration,
    /// How long the shell has to come back after Ctrl-C before the board counts as hung.
    pub interrupt_grace: Duration,
    /// Limit for socv's own short commands (tool probes, checksums, `mv`).
    pub command_timeout: Duration,
    /// Run `dmesg -n 1` after login, so kernel messages stay out of the output on serial
    /// consoles (as labgrid does); failures are ignored.
    pub quiet_kernel: bool,
    pub telnet: TelnetConfig,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("board", &self.board)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("login_prompt", &self.login_prompt)
            .field("password_prompt", &self.password_prompt)
            .field("shell_prompts", &self.shell_prompts)
            .field("connect_timeout", &self.connect_timeout)
            .field("login_timeout", &self.login_timeout)
            .field("wake_after", &self.wake_after)
            .field("interrupt_grace", &self.interrupt_grace)
            .field("command_timeout", &self.command_timeout)
            .field("quiet_kernel", &self.quiet_kernel)
            .field("telnet", &self.telnet)
            .finish()
    }
}

impl SessionConfig {
    /// A board at `host:port` without credentials, with the default prompts and timeouts.
    pub fn new(board: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        SessionConfig {
            board: board.into(),
            host: host.into(),
            port,
            username: None,
            password: None,
            login_prompt: socv_api::DEFAULT_LOGIN_PROMPT.to_owned(),
            password_prompt: socv_api::DEFAULT_PASSWORD_PROMPT.to_owned(),
            shell_prompts: vec!["#".to_owned(), "$".to_owned()],
            connect_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(30),
            wake_after: Duration::from_millis(500),
            interrupt_grace: Duration::from_secs(10),
            command_timeout: Duration::from_secs(30),
            quiet_kernel: true,
            telnet: TelnetConfig::default(),
        }
    }

    /// The console of a lease: address, credentials and the board's prompts (the defaults
    /// where the lease names none).
    pub fn from_console(board: impl Into<String>, console: &socv_api::Console) -> Self {
        let defaults = SessionConfig::new(board, console.host.clone(), console.port);
        SessionConfig {
            username: console.username.clone(),
            password: console.password.clone(),
            login_prompt: console
                .login_prompt
                .clone()
                .unwrap_or(defaults.login_prompt.clone()),
            password_prompt: console
                .password_prompt
                .clone()
                .unwrap_or(defaults.password_prompt.clone()),
            ..defaults
        }
    }

    /// Sets the prompts a board's boards.yaml entry declares (`login_prompt`,
    /// `password_prompt`).
    pub fn with_prompts(mut self, login: impl Into<String>, password: impl Into<String>) -> Self {
        self.login_prompt = login.into();
        self.password_prompt = password.into();
        self
    }

    /// `host:port`, as errors show it.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandOutcome {
    /// Its exit status as the shell's `$?`: 0–255, 128+N when signal N killed it.
    pub status: i32,
}

/// How a command with a time limit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimedOutcome {
    Finished(CommandOutcome),
    /// It ran past its limit; socv sent Ctrl-C and the shell came back, so the session is
    /// still usable.
    TimedOut,
}

/// A command's whole output and exit status, from [`BoardSession::exec_capture`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedOutput {
    pub status: i32,
    pub output: Vec<u8>,
}

impl CapturedOutput {
    /// The output as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// The most output [`BoardSession::exec_capture`] keeps.
pub const CAPTURE_LIMIT: usize = 16 * 1024 * 1024;

/// The longest command line a board takes: the tty's canonical buffer is 4096 bytes with the
/// newline (telnet.md §0.4), and the markers take some of it.
pub const MAX_COMMAND_LEN: usize = 3800;

/// A logged-in shell on one board, taken over by socv (see the module docs).
///
/// One command at a time (`&mut self`). If a `run` future is dropped before the command ends
/// (the caller's own Ctrl-C, say), the next call first interrupts it with Ctrl-C and
/// resynchronises.
#[derive(Debug)]
pub struct BoardSession {
    config: SessionConfig,
    addr: String,
    link: Link,
    /// The end of everything received, for error messages.
    tail: ConsoleTail,
    /// The end of what came outside command output (errors of pushed chunks, stale text).
    noise: ConsoleTail,
    /// The tty still turns `\n` into `\r\n` (`stty -opost` did not take).
    translated: bool,
    /// A command may still be running: its run was cancelled or timed out.
    dirty: bool,
}

/// Wake-ups after the first come at most this often.
const WAKE_INTERVAL: Duration = Duration::from_secs(2);
/// Quiet that says a console has answered a wake-up (see `login`).
const SETTLE: Duration = Duration::from_millis(300);
/// Characters of output shown in an error.
const EXCERPT_CHARS: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoginStage {
    Start,
    SentUser,
    SentPassword,
}

impl BoardSession {
    /// Connects to the console, logs in if it asks, and takes the shell over. Fails within
    /// `connect_timeout` when the console cannot be reached and within `login_timeout` when
    /// no shell comes (the error shows the last output).
    pub async fn connect(config: SessionConfig) -> Result<BoardSession, SessionError> {
        let addr = config.addr();
        let fail = |kind| SessionError::new(config.board.clone(), addr.clone(), kind);
        let link = match Link::connect(
            &config.host,
            config.port,
            config.connect_timeout,
            config.telnet.clone(),
        )
        .await
        {
            Ok(link) => link,
            Err(Some(source)) => return Err(fail(ErrorKind::Connect { source })),
            Err(None) => {
                return Err(fail(ErrorKind::ConnectTimeout {
                    after: config.connect_timeout,
                }));
            }
        };
        let mut session = BoardSession {
            addr,
            link,
            tail: ConsoleTail::new(4096),
            noise: ConsoleTail::new(2048),
            translated: false,
            dirty: false,
            config,
        };
        let deadline = Instant::now() + session.config.login_timeout;
        session.login(deadline).await?;
        session.take_over(deadline).await?;
        Ok(session)
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Runs `command` (shell syntax) and streams its output to `out` as it arrives; returns
    /// once the command has ended. It runs in a subshell with stdin from `/dev/null`: a
    /// syntax error is status 2, and `cd` or variables do not carry over to later commands.
    /// Output is byte for byte what the command wrote (stdout and stderr, in the order the
    /// tty saw them), except NUL bytes where the server stays out of BINARY mode (busybox
    /// telnetd), since a NUL means nothing in telnet's NVT mode.
    pub async fn run<W>(
        &mut self,
        command: &str,
        out: &mut W,
    ) -> Result<CommandOutcome, SessionError>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let nonce = protocol::nonce();
        let line = protocol::wrap_isolated(command, &nonce);
        match self.execute(&line, &nonce, out, None).await? {
            Some(status) => Ok(CommandOutcome { status }),
            // Without a deadline only an error ends the wait.
            None => Err(self.error(ErrorKind::Closed {
                doing: "running a command".into(),
                tail: self.tail.excerpt(EXCERPT_CHARS),
            })),
        }
    }

    /// Like [`run`](Self::run), but after `limit` the command is interrupted with Ctrl-C and
    /// the result is [`TimedOutcome::TimedOut`]. If the shell does not come back within
    /// `interrupt_grace`, the error is [`ErrorKind::Unresponsive`]: power-cycle the board.
    pub async fn run_with_timeout<W>(
        &mut self,
        command: &str,
        limit: Duration,
        out: &mut W,
    ) -> Result<TimedOutcome, SessionError>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let nonce = protocol::nonce();
        let line = protocol::wrap_isolated(command, &nonce);
        let deadline = Instant::now() + limit;
        match self.execute(&line, &nonce, out, Some(deadline)).await? {
            Some(status) => Ok(TimedOutcome::Finished(CommandOutcome { status })),
            None => {
                self.recover("interrupting a command that ran past its time limit")
                    .await?;
                Ok(TimedOutcome::TimedOut)
            }
        }
    }

    /// Runs a short command and returns its whole output (at most [`CAPTURE_LIMIT`] bytes).
    pub async fn exec_capture(&mut self, command: &str) -> Result<CapturedOutput, SessionError> {
        let mut sink = CappedBuffer::new(CAPTURE_LIMIT);
        let outcome = self.run(command, &mut sink).await?;
        Ok(CapturedOutput {
            status: outcome.status,
            output: sink.data,
        })
    }

    /// Sends Ctrl-C and waits until the shell answers a fresh sync marker. Use it when a
    /// command must stop now; [`ErrorKind::Unresponsive`] means the board needs a power cycle.
    pub async fn interrupt(&mut self) -> Result<(), SessionError> {
        self.recover("interrupting a command").await
    }

    /// Logs out (`exit`, after turning echo back on for the next person on a serial console)
    /// and closes the connection.
    pub async fn close(mut self) -> Result<(), SessionError> {
        if self.dirty {
            self.recover("stopping a command before logging out")
                .await?;
        }
        self.send(b"stty echo opost; exit\n")?;
        self.link
            .shutdown()
            .await
            .map_err(|source| self.io_error("logging out", source))
    }

    // ---------------------------------------------------------------------------------------

    fn error(&self, kind: ErrorKind) -> SessionError {
        SessionError::new(self.config.board.clone(), self.addr.clone(), kind)
    }

    fn io_error(&self, doing: &str, source: io::Error) -> SessionError {
        self.error(ErrorKind::Io {
            doing: doing.to_owned(),
            source,
        })
    }

    fn link_error(&self, doing: &str, e: LinkError) -> SessionError {
        match e {
            LinkError::Io(source) => self.io_error(doing, source),
            LinkError::Telnet(source) => self.error(ErrorKind::Protocol { source }),
        }
    }

    fn timeout_error(&self, waiting_for: &str, after: Duration) -> SessionError {
        self.error(ErrorKind::Timeout {
            waiting_for: waiting_for.to_owned(),
            after,
            tail: self.tail.excerpt(EXCERPT_CHARS),
        })
    }

    fn send(&mut self, data: &[u8]) -> Result<(), SessionError> {
        self.link
            .queue(data)
            .map_err(|e| self.link_error("sending to the console", e))
    }

    /// The next data from the board, writing whatever is queued meanwhile. `None` once
    /// `deadline` has passed.
    async fn next_data(
        &mut self,
        deadline: Option<Instant>,
        doing: &str,
    ) -> Result<Option<Bytes>, SessionError> {
        loop {
            let step = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, self.link.pump()).await {
                    Ok(step) => step,
                    Err(_) => return Ok(None),
                },
                None => self.link.pump().await,
            };
            match step.map_err(|e| self.link_error(doing, e))? {
                Pumped::Data(data) => {
                    self.tail.push(&data);
                    return Ok(Some(data));
                }
                Pumped::Wrote => {}
                Pumped::Eof => {
                    return Err(self.error(ErrorKind::Closed {
                        doing: doing.to_owned(),
                        tail: self.tail.excerpt(EXCERPT_CHARS),
                    }));
                }
            }
        }
    }

    /// Writes everything queued, reading (into the noise window) meanwhile. `false` when the
    /// deadline passed first.
    async fn drain(&mut self, deadline: Instant, doing: &str) -> Result<bool, SessionError> {
        while self.link.queued() > 0 {
            let step = match tokio::time::timeout_at(deadline, self.link.pump()).await {
                Ok(step) => step,
                Err(_) => return Ok(false),
            };
            match step.map_err(|e| self.link_error(doing, e))? {
                Pumped::Data(data) => {
                    self.tail.push(&data);
                    self.noise.push(&data);
                }
                Pumped::Wrote => {}
                Pumped::Eof => {
                    return Err(self.error(ErrorKind::Closed {
                        doing: doing.to_owned(),
                        tail: self.tail.excerpt(EXCERPT_CHARS),
                    }));
                }
            }
        }
        Ok(true)
    }

    /// Answers the console until a shell prompt shows (labgrid's `_await_login`).
    async fn login(&mut self, deadline: Instant) -> Result<(), SessionError> {
        const DOING: &str = "logging in";
        let mut window = ConsoleTail::new(4096);
        let mut stage = LoginStage::Start;
        let mut user_prompts = 0;
        let mut flushes = 0;
        let mut wakes = 0u32;
        let mut next_wake = Instant::now() + self.config.wake_after;
        // A line socv typed on its own (a wake-up, an empty password) may still be on its way
        // to the board, so a prompt seen now may be one that line is about to answer (login
        // reads a wake-up as an empty user name and asks for a password). Until the console
        // has been quiet for SETTLE, such a prompt is not answered.
        let mut typed_unanswered = false;
        let mut restarted = false;
        let mut settle_until: Option<Instant> = None;
        loop {
            // Wake-ups only before socv has answered: later, a stray `\n` would be taken for
            // a password.
            let until = match settle_until {
                Some(t) => t.min(deadline),
                None if stage == LoginStage::Start => next_wake.min(deadline),
                None => deadline,
            };
            match self.next_data(Some(until), DOING).await? {
                Some(data) => {
                    tracing::trace!(
                        board = %self.config.board,
                        ?stage,
                        data = ?String::from_utf8_lossy(&data),
                        "console"
                    );
                    window.push(&data);
                    if stage == LoginStage::Start {
                        // Once socv has typed something, the console gets time to answer it
                        // before the next wake-up (a slow login program is no silent one).
                        let quiet = if wakes == 0 && flushes == 0 {
                            self.config.wake_after
                        } else {
                            self.config.wake_after.max(WAKE_INTERVAL)
                        };
                        next_wake = Instant::now() + quiet;
                    }
                    if typed_unanswered {
                        settle_until = Some(Instant::now() + SETTLE);
                        continue;
                    }
                }
                None if Instant::now() >= deadline => {
                    return Err(
                        self.timeout_error("login or shell prompt", self.config.login_timeout)
                    );
                }
                None if settle_until.is_some() => {
                    settle_until = None;
                    typed_unanswered = false;
                }
                None => {
                    // A serial console at a prompt needs a line to print it again; one left
                    // inside a program or a here-document needs a Ctrl-C.
                    let wake: &[u8] = if wakes.is_multiple_of(2) {
                        b"\n"
                    } else {
                        b"\x03"
                    };
                    self.send(wake)?;
                    wakes += 1;
                    typed_unanswered = true;
                    next_wake = Instant::now() + self.config.wake_after.max(WAKE_INTERVAL);
                    continue;
                }
            }
            let prompts = Prompts {
                login: &self.config.login_prompt,
                password: &self.config.password_prompt,
                shell: &self.config.shell_prompts,
            };
            let seen = prompts.classify(&window.text(), stage != LoginStage::Start);
            let refused = match seen {
                Seen::Rejected => true,
                // Asked again after the password: refused.
                Seen::LoginPrompt | Seen::PasswordPrompt => stage == LoginStage::SentPassword,
                // Asked for the user name again and again (socv answers a repeated prompt, which
                // may be the answer to an earlier line).
                _ => false,
            } || (seen == Seen::LoginPrompt && user_prompts >= 3);
            if refused {
                // If socv typed lines of its own (wake-ups), the board may have taken one of
                // them for the user name, and every answer since went one prompt too late.
                // Ctrl-C throws the typed-ahead input away and restarts the login, once.
                if wakes + flushes > 0 && !restarted {
                    tracing::debug!(
                        board = %self.config.board,
                        "login refused after socv typed wake-ups; restarting it with Ctrl-C"
                    );
                    restarted = true;
                    self.send(b"\x03")?;
                    stage = LoginStage::Start;
                    user_prompts = 0;
                    typed_unanswered = true;
                    window.clear();
                    continue;
                }
                return Err(self.error(ErrorKind::LoginRejected {
                    user: self.config.username.clone().unwrap_or_default(),
                }));
            }
            match seen {
                Seen::Nothing | Seen::Rejected => {}
                Seen::ShellPrompt => return Ok(()),
                Seen::LoginPrompt => {
                    let Some(user) = self.config.username.clone() else {
                        return Err(self.error(ErrorKind::MissingCredential { what: "user name" }));
                    };
                    self.send(format!("{user}\n").as_bytes())?;
                    user_prompts += 1;
                    stage = LoginStage::SentUser;
                    window.clear();
                }
                Seen::PasswordPrompt if stage == LoginStage::Start => {
                    // A password for a user name socv did not send: the answer to a wake-up
                    // `\n` or someone else's half-done login. An empty password brings the
                    // login prompt back.
                    if flushes >= 3 {
                        return Err(self.timeout_error(
                            "login prompt (the console keeps asking for a password)",
                            self.config.login_timeout,
                        ));
                    }
                    self.send(b"\n")?;
                    flushes += 1;
                    typed_unanswered = true;
                    next_wake = Instant::now() + self.config.wake_after.max(WAKE_INTERVAL);
                    window.clear();
                }
                Seen::PasswordPrompt => {
                    let Some(password) = self.config.password.clone() else {
                        return Err(self.error(ErrorKind::MissingCredential { what: "password" }));
                    };
                    self.send(format!("{password}\n").as_bytes())?;
                    stage = LoginStage::SentPassword;
                    window.clear();
                }
            }
        }
    }

    /// Sends the sync line (echo and output processing off, socv's prompt) and waits for its
    /// marker; `false` if the deadline passed first.
    async fn sync(&mut self, deadline: Instant, doing: &str) -> Result<bool, SessionError> {
        let nonce = protocol::nonce();
        self.send(protocol::sync_line(&nonce, self.config.quiet_kernel).as_bytes())?;
        let mut matcher = SyncMatcher::new(&nonce);
        while let Some(data) = self.next_data(Some(deadline), doing).await? {
            if let Some(translated) = matcher.feed(&data) {
                self.translated = translated;
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn take_over(&mut self, deadline: Instant) -> Result<(), SessionError> {
        if self.sync(deadline, "taking the shell over").await? {
            Ok(())
        } else {
            Err(self.timeout_error(
                "answer from the shell to socv's sync marker",
                self.config.login_timeout,
            ))
        }
    }

    /// Ctrl-C, then a fresh sync, until the shell answers or the grace period ends.
    async fn recover(&mut self, doing: &str) -> Result<(), SessionError> {
        let grace = self.config.interrupt_grace;
        let give_up = Instant::now() + grace;
        loop {
            self.send(b"\x03")?;
            // Give the shell a moment to handle SIGINT before the sync line comes: a line it
            // has read when the signal lands is thrown away with the aborted command. The
            // first thing it prints (its prompt) says it is ready.
            let settle = (Instant::now() + Duration::from_millis(300)).min(give_up);
            let _ = self.next_data(Some(settle), doing).await?;
            let attempt = (Instant::now() + Duration::from_secs(2)).min(give_up);
            if self.sync(attempt, doing).await? {
                self.dirty = false;
                return Ok(());
            }
            if Instant::now() >= give_up {
                return Err(self.error(ErrorKind::Unresponsive {
                    doing: doing.to_owned(),
                    grace,
                    tail: self.tail.excerpt(EXCERPT_CHARS),
                }));
            }
        }
    }

    /// Sends one wrapped command line and streams its output to `out` until its RC marker.
    /// `Ok(None)` when `deadline` passed first (the command is still running: `dirty`).
    async fn execute<W>(
        &mut self,
        line: &str,
        nonce: &str,
        out: &mut W,
        deadline: Option<Instant>,
    ) -> Result<Option<i32>, SessionError>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        const DOING: &str = "running a command";
        if line.len() > MAX_COMMAND_LEN {
            return Err(self.error(ErrorKind::CommandTooLong {
                len: line.len(),
                max: MAX_COMMAND_LEN,
            }));
        }
        if self.dirty {
            self.recover("stopping the previous command, whose run was cancelled")
                .await?;
        }
        self.dirty = true;
        self.send(line.as_bytes())?;
        let mut parser = CommandParser::new(nonce);
        let mut crlf = CrlfFilter::default();
        let mut filtered = Vec::new();
        let mut output = Vec::new();
        let mut noise = Vec::new();
        loop {
            let Some(data) = self.next_data(deadline, DOING).await? else {
                output.clear();
                parser.flush_held(&mut output);
                out.write_all(&output)
                    .await
                    .map_err(|source| self.error(ErrorKind::Output { source }))?;
                return Ok(None);
            };
            let data: &[u8] = if self.translated {
                filtered.clear();
                crlf.filter(&data, &mut filtered);
                &filtered
            } else {
                &data
            };
            output.clear();
            noise.clear();
            parser.feed(data, &mut output, &mut noise);
            self.noise.push(&noise);
            if !output.is_empty() {
                out.write_all(&output)
                    .await
                    .map_err(|source| self.error(ErrorKind::Output { source }))?;
            }
            if let Some(status) = parser.status() {
                out.flush()
                    .await
                    .map_err(|source| self.error(ErrorKind::Output { source }))?;
                self.dirty = false;
                return Ok(Some(status));
            }
        }
    }

    /// Runs socv's own short shell code (in the shell itself, so variables persist) within
    /// `limit`, capturing its output; past the limit it is interrupted and an error.
    async fn exec_internal(
        &mut self,
        body: &str,
        doing: &str,
        limit: Duration,
    ) -> Result<CapturedOutput, SessionError> {
        let nonce = protocol::nonce();
        let line = protocol::wrap(body, &nonce);
        let mut sink = CappedBuffer::new(CAPTURE_LIMIT);
        match self
            .execute(&line, &nonce, &mut sink, Some(Instant::now() + limit))
            .await?
        {
            Some(status) => Ok(CapturedOutput {
                status,
                output: sink.data,
            }),
            None => {
                let err = self.timeout_error(&format!("end of `{doing}`"), limit);
                self.recover(doing).await?;
                Err(err)
            }
        }
    }
}

/// An in-memory sink that refuses to grow past its limit.
struct CappedBuffer {
    data: Vec<u8>,
    limit: usize,
}

impl CappedBuffer {
    fn new(limit: usize) -> Self {
        CappedBuffer {
            data: Vec::new(),
            limit,
        }
    }
}

impl AsyncWrite for CappedBuffer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.data.len() + buf.len() > self.limit {
            let limit = self.limit;
            return Poll::Ready(Err(io::Error::other(format!(
                "the output is longer than {limit} bytes"
            ))));
        }
        self.data.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_a_lease_console() {
        let console = socv_api::Console {
            host: "10.1.2.3".into(),
            port: 2001,
            username: Some("root".into()),
            password: Some("pw".into()),
            login_prompt: Some("Username:".into()),
            password_prompt: None,
        };
        let config = SessionConfig::from_console("soc-a-001", &console);
        assert_eq!(config.addr(), "10.1.2.3:2001");
        assert_eq!(config.login_prompt, "Username:");
        assert_eq!(config.password_prompt, "Password:");
        assert_eq!(config.username.as_deref(), Some("root"));
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("pw\""),
            "the password stays out of logs: {debug}"
        );
        assert_eq!(SessionConfig::new("b", "::1", 23).addr(), "[::1]:23");
    }

    #[tokio::test]
    async fn capture_refuses_to_grow_past_its_limit() {
        let mut sink = CappedBuffer::new(4);
        sink.write_all(b"abcd").await.expect("fits");
        assert!(sink.write_all(b"e").await.is_err());
        assert_eq!(sink.data, b"abcd");
    }
}
