//! One simulated board: its telnet port (listening while powered, refusing while off), its
//! power switch, and its console sessions (one at a time; a new client kicks the old one,
//! like ser2net's `kickolduser`).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::fault::Fault;
use super::telnetd;
use super::{BoardStatus, PowerState, Settings, SimBoard, SimError, link};

/// How many connections may wait to be accepted.
const BACKLOG: u32 = 16;

/// What the board's own task is asked to do; the answer comes when it is done.
enum Command {
    Power {
        on: bool,
        done: oneshot::Sender<Result<(), SimError>>,
    },
}

/// What the API and the sessions see of a board's state.
#[derive(Debug, Default)]
struct State {
    powered: bool,
    /// Set by a power-on: the first console after it shows the boot log, which ends (and the
    /// login prompt appears) no sooner than this.
    boot_until: Option<Instant>,
    /// The session that holds the console, by number, if any.
    session: Option<u64>,
    /// The shell of that session, once someone logged in.
    shell_pid: Option<u32>,
}

/// A board as the rest of the sim shares it.
pub(crate) struct Board {
    pub info: SimBoard,
    pub fault: watch::Sender<Fault>,
    state: Mutex<State>,
    commands: mpsc::Sender<Command>,
}

impl Board {
    /// Binds the board's telnet port (powered on and booted) and starts its task.
    pub fn start(
        info: SimBoard,
        settings: Arc<Settings>,
        shutdown: CancellationToken,
    ) -> Result<(Arc<Board>, JoinHandle<()>), SimError> {
        let listener = listen(info.address).map_err(|source| SimError::Listen {
            what: format!("board {}", info.board_id),
            address: info.address,
            source,
        })?;
        let address = listener.local_addr().map_err(|source| SimError::Listen {
            what: format!("board {}", info.board_id),
            address: info.address,
            source,
        })?;
        let (commands, receiver) = mpsc::channel(8);
        let board = Arc::new(Board {
            info: SimBoard { address, ..info },
            fault: watch::Sender::new(Fault::None),
            state: Mutex::new(State {
                powered: true,
                ..State::default()
            }),
            commands,
        });
        let task = tokio::spawn(run(
            Arc::clone(&board),
            settings,
            Port::Listening(listener),
            receiver,
            shutdown,
        ));
        Ok((board, task))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent under every lock holder (plain field writes), so a
        // poisoned lock still holds usable data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn powered(&self) -> bool {
        self.state().powered
    }

    pub fn status(&self) -> BoardStatus {
        let state = self.state();
        BoardStatus {
            board_id: self.info.board_id.clone(),
            family: self.info.family.clone(),
            lab_location: self.info.lab_location.clone(),
            address: self.info.address,
            outlet: self.info.outlet,
            pdu: self.info.pdu.clone(),
            power: if state.powered {
                PowerState::On
            } else {
                PowerState::Off
            },
            booting: state.boot_until.is_some_and(|t| t > Instant::now()),
            fault: *self.fault.borrow(),
            connected: state.session.is_some(),
            shell_pid: state.shell_pid,
        }
    }

    /// The pid of the live shell, for the last-resort kill when the sim is dropped.
    pub fn shell_pid(&self) -> Option<u32> {
        self.state().shell_pid
    }

    /// Switches the board on or off and returns when that is done: when off, its session is
    /// gone, its shell dead and its port refusing connections.
    pub async fn power(&self, on: bool) -> Result<(), SimError> {
        let (done, answer) = oneshot::channel();
        let stopped = || SimError::Stopped {
            board_id: self.info.board_id.clone(),
        };
        self.commands
            .send(Command::Power { on, done })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Off, `off_time`, on.
    pub async fn cycle(&self, off_time: Duration) -> Result<(), SimError> {
        self.power(false).await?;
        tokio::time::sleep(off_time).await;
        self.power(true).await
    }

    /// Takes the pending boot log, if this is the first console since a power-on.
    pub fn take_boot(&self) -> Option<Instant> {
        self.state().boot_until.take()
    }

    /// Records the shell of session `session`, so that it can be killed from outside.
    pub fn set_shell(&self, session: u64, pid: Option<u32>) {
        let mut state = self.state();
        if state.session == Some(session) {
            state.shell_pid = pid;
        }
    }
}

/// The board's telnet port.
enum Port {
    Listening(TcpListener),
    /// Powered off: bound but not listening, so connections are refused (RST) while no other
    /// program can take the port before power-on.
    Closed(TcpSocket),
    /// The port could not be kept (see [`SimError::Rebind`]); power-on tries to bind it again.
    Lost,
}

fn socket_for(address: SocketAddr) -> io::Result<TcpSocket> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Connections we closed linger in TIME_WAIT on this port; they must not keep the board
    // from coming back on it.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    Ok(socket)
}

fn listen(address: SocketAddr) -> io::Result<TcpListener> {
    socket_for(address)?.listen(BACKLOG)
}

/// A session in progress and how to end it.
struct Session {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Session {
    async fn end(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// The board's task: accepts consoles while powered and carries out power commands.
async fn run(
    board: Arc<Board>,
    settings: Arc<Settings>,
    mut port: Port,
    mut commands: mpsc::Receiver<Command>,
    shutdown: CancellationToken,
) {
    let mut current: Option<Session> = None;
    let mut sessions: u64 = 0;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            command = commands.recv() => {
                let Some(Command::Power { on, done }) = command else { break };
                let result = if on {
                    power_on(&board, &settings, &mut port)
                } else {
                    if let Some(session) = current.take() {
                        session.end().await;
                    }
                    power_off(&board, &mut port)
                };
                let _ = done.send(result);
            }
            accepted = accept(&port) => match accepted {
                Ok((stream, peer)) => {
                    // kickolduser: the newcomer wins, the old session ends first.
                    if let Some(session) = current.take() {
                        tracing::info!(board = %board.info.board_id, %peer, "new console kicks the old one");
                        session.end().await;
                    }
                    sessions += 1;
                    let cancel = shutdown.child_token();
                    board.state().session = Some(sessions);
                    let task = tokio::spawn(session(
                        Arc::clone(&board),
                        Arc::clone(&settings),
                        stream,
                        sessions,
                        cancel.clone(),
                    ));
                    current = Some(Session { cancel, task });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(board = %board.info.board_id, "accepting a console: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    if let Some(session) = current.take() {
        session.end().await;
    }
}

async fn accept(port: &Port) -> io::Result<(TcpStream, SocketAddr)> {
    match port {
        Port::Listening(listener) => listener.accept().await,
        Port::Closed(_) | Port::Lost => std::future::pending().await,
    }
}

fn power_off(board: &Board, port: &mut Port) -> Result<(), SimError> {
    {
        let mut state = board.state();
        state.powered = false;
        state.boot_until = None;
    }
    // A power cut ends a hang.
    board.fault.send_if_modified(|fault| {
        let hung = *fault == Fault::Hang;
        if hung {
            *fault = Fault::None;
        }
        hung
    });
    if !matches!(port, Port::Listening(_)) {
        return Ok(());
    }
    // Close the listener first (the port refuses from now on), then hold the port.
    *port = Port::Lost;
    match socket_for(board.info.address) {
        Ok(socket) => {
            *port = Port::Closed(socket);
            Ok(())
        }
        Err(source) => Err(SimError::Rebind {
            board_id: board.info.board_id.clone(),
            address: board.info.address,
            source,
        }),
    }
}

fn power_on(board: &Board, settings: &Settings, port: &mut Port) -> Result<(), SimError> {
    if matches!(port, Port::Listening(_)) {
        return Ok(());
    }
    let listening = match std::mem::replace(port, Port::Lost) {
        Port::Closed(socket) => socket.listen(BACKLOG),
        Port::Lost | Port::Listening(_) => listen(board.info.address),
    };
    let listener = listening.map_err(|source| SimError::Rebind {
        board_id: board.info.board_id.clone(),
        address: board.info.address,
        source,
    })?;
    *port = Port::Listening(listener);
    let mut state = board.state();
    state.powered = true;
    state.boot_until = Some(Instant::now() + settings.boot_delay);
    Ok(())
}

/// One console connection, from accept to the killing of its shell.
async fn session(
    board: Arc<Board>,
    settings: Arc<Settings>,
    stream: TcpStream,
    number: u64,
    cancel: CancellationToken,
) {
    // A sim serves tests: no Nagle delay on the console (real telnetds leave it on).
    let _ = stream.set_nodelay(true);
    let (board_end, wire_end) = tokio::io::duplex(64 * 1024);
    let mut shell = None;
    {
        let link = link::run(stream, wire_end, board.fault.subscribe());
        let telnetd = telnetd::serve(&board, &settings, number, board_end, &mut shell);
        tokio::pin!(link, telnetd);
        let mut telnetd_done = false;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                // The link ends when the client leaves, a fault drops it, or the telnetd side
                // closed and everything it said has been sent.
                () = &mut link => break,
                result = &mut telnetd, if !telnetd_done => {
                    telnetd_done = true;
                    if let Err(e) = result {
                        tracing::debug!(board = %board.info.board_id, "console session: {e}");
                    }
                }
            }
        }
    }
    board.set_shell(number, None);
    if let Some(shell) = shell.take() {
        shell.terminate().await;
    }
    let mut state = board.state();
    if state.session == Some(number) {
        state.session = None;
        state.shell_pid = None;
    }
}
