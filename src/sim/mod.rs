//! The simulated lab (`socv sim`, `socv demo`, the tests): boards that are real telnet
//! servers with a login and a real `/bin/sh` on a pty, a PDU whose power actions really cut
//! them, and injectable faults.
//!
//! ```no_run
//! # async fn demo() -> Result<(), socv::sim::SimError> {
//! use socv::sim::{Fault, SimConfig, SimLab};
//! let lab = SimLab::start(SimConfig::default()).await?;
//! for board in lab.boards() {
//!     println!("{} telnet {}", board.board_id, board.address);
//! }
//! lab.write_boards(std::path::Path::new("boards.yaml"))?;
//! lab.set_fault("soca-001", Fault::SlowLink(1200))?;
//! lab.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Every board listens on its own port of the listen address (127.0.0.1 by default) and
//! nowhere else. The PDU listens on one more port and answers both the `http` driver's URLs
//! and pdudaemon's; the boards.yaml the sim writes puts the boards of every other family
//! behind each, so both drivers get exercised.

mod board;
mod boards_yaml;
mod fault;
mod link;
mod pdu;
mod shell;
mod telnet;
mod telnetd;

pub use fault::{FAULT_KINDS, Fault, FaultError};

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use board::Board;

/// The name of the `http`-driver PDU in the written boards.yaml.
pub const HTTP_PDU_NAME: &str = "sim-pdu-http";
/// The name of the `pdudaemon`-driver PDU in the written boards.yaml.
pub const PDUDAEMON_PDU_NAME: &str = "sim-pdudaemon";
/// The PDU key (`hostname=`) the sim's pdudaemon API knows.
pub const PDUDAEMON_HOSTNAME: &str = "sim-pdu";

/// How long shutdown waits for in-flight PDU requests (a pdudaemon reboot sleeps).
const PDU_DRAIN_TIME: Duration = Duration::from_secs(3);

/// Why the sim could not start or do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("bad board families: {0}")]
    Families(String),
    #[error("--fault for board {board_id}: no such board in the sim (boards: {known})")]
    FaultForUnknownBoard { board_id: String, known: String },
    #[error("{what}: cannot listen on {address}: {source}")]
    Listen {
        what: String,
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("board {board_id}: cannot hold or reopen its port {address}: {source}")]
    Rebind {
        board_id: String,
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot create the boards' working directory {}: {source}", path.display())]
    WorkDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    WriteBoards {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no board {board_id} in the sim")]
    UnknownBoard { board_id: String },
    #[error("board {board_id}: {source}")]
    BadFault {
        board_id: String,
        #[source]
        source: FaultError,
    },
    #[error("board {board_id}: the sim is shutting down")]
    Stopped { board_id: String },
}

/// A family and how many boards of it: `socA:5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilySpec {
    pub name: String,
    pub boards: u32,
}

impl FromStr for FamilySpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (name, count) = text.split_once(':').unwrap_or((text, "1"));
        let name = name.trim();
        let plain = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if name.is_empty()
            || !plain
            || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
            || name.len() > 56
        {
            return Err(format!(
                "`{name}` is not a family name (up to 56 letters, digits, `-`, `_` and `.`, \
                 starting with a letter or digit)"
            ));
        }
        let boards = count
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=999).contains(n))
            .ok_or_else(|| format!("`{count}` is not a number of boards from 1 to 999"))?;
        Ok(FamilySpec {
            name: name.to_owned(),
            boards,
        })
    }
}

/// The one account of every sim board: `USER:PASS` (the password may be empty).
#[derive(Clone, PartialEq, Eq)]
pub struct SimLogin {
    pub username: String,
    pub password: String,
}

impl Default for SimLogin {
    /// `root` without a password, as on a fresh board image.
    fn default() -> Self {
        SimLogin {
            username: "root".to_owned(),
            password: String::new(),
        }
    }
}

impl fmt::Debug for SimLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLogin")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

impl FromStr for SimLogin {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (username, password) = text.split_once(':').unwrap_or((text, ""));
        let bad = |c: char| c.is_whitespace() || c.is_control();
        if username.is_empty() || username.contains(bad) {
            return Err("expected USER:PASS with a user name without spaces".to_owned());
        }
        if password.contains(|c: char| c.is_control()) {
            return Err("the password must not contain control characters".to_owned());
        }
        Ok(SimLogin {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Families in order (default `socA:3,socB:2`).
    pub families: Vec<FamilySpec>,
    /// The address every board and the PDU listen on (default 127.0.0.1).
    pub listen: IpAddr,
    pub login: SimLogin,
    /// Faults the boards start with.
    pub faults: Vec<(String, Fault)>,
    /// From power-on to the login prompt (default 300 ms).
    pub boot_delay: Duration,
    /// How long an `http` driver `cycle` keeps the board off (default 500 ms).
    pub cycle_off_time: Duration,
    /// pdudaemon's `delay` is capped at this (default 10 s), so a test never sleeps long.
    pub max_pdudaemon_delay: Duration,
    /// The pause before `Login incorrect`, as login makes (default 200 ms).
    pub login_failure_delay: Duration,
    /// Where the boards' working directories go (`<dir>/<board_id>/`, kept); default a new
    /// temporary directory `socv-sim-XXXX` removed when the sim stops.
    pub root_dir: Option<PathBuf>,
    /// The boards' shell, started with `-i` (default `/bin/sh`).
    pub shell: PathBuf,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            families: vec![
                FamilySpec {
                    name: "socA".to_owned(),
                    boards: 3,
                },
                FamilySpec {
                    name: "socB".to_owned(),
                    boards: 2,
                },
            ],
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            login: SimLogin::default(),
            faults: Vec::new(),
            boot_delay: Duration::from_millis(300),
            cycle_off_time: Duration::from_millis(500),
            max_pdudaemon_delay: Duration::from_secs(10),
            login_failure_delay: Duration::from_millis(200),
            root_dir: None,
            shell: PathBuf::from("/bin/sh"),
        }
    }
}

/// The settings the running boards and the PDU share.
pub(crate) struct Settings {
    pub login: SimLogin,
    pub boot_delay: Duration,
    pub cycle_off_time: Duration,
    pub max_pdudaemon_delay: Duration,
    pub login_failure_delay: Duration,
    pub shell: PathBuf,
}

/// One board of the sim, as started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimBoard {
    pub board_id: String,
    pub family: String,
    /// `Sim Site A` or `Sim Site B` (alternating within a family).
    pub lab_location: String,
    /// Its telnet server.
    pub address: SocketAddr,
    /// Its outlet on the sim's PDU (1, 2, … across all boards).
    pub outlet: u32,
    /// The PDU entry of the written boards.yaml that powers it: [`HTTP_PDU_NAME`] or
    /// [`PDUDAEMON_PDU_NAME`].
    pub pdu: String,
    /// The shell's working directory and `$HOME`.
    pub workdir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    On,
    Off,
    /// Off, [`SimConfig::cycle_off_time`], on.
    Cycle,
    Status,
}

/// A board's state right now (also what `GET /boards` lists).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoardStatus {
    pub board_id: String,
    pub family: String,
    pub lab_location: String,
    pub address: SocketAddr,
    pub outlet: u32,
    pub pdu: String,
    pub power: PowerState,
    /// Powered on, and its boot log is not over yet.
    pub booting: bool,
    pub fault: Fault,
    /// A client holds its console.
    pub connected: bool,
    /// The shell of the logged-in session.
    pub shell_pid: Option<u32>,
}

/// What the PDU handlers and the lab share.
pub(crate) struct SimShared {
    pub boards: Vec<Arc<Board>>,
    pub settings: Arc<Settings>,
    pub pdudaemon_hostname: String,
}

impl SimShared {
    fn board(&self, board_id: &str) -> Result<&Board, SimError> {
        self.boards
            .iter()
            .find(|b| b.info.board_id == board_id)
            .map(|b| &**b)
            .ok_or_else(|| SimError::UnknownBoard {
                board_id: board_id.to_owned(),
            })
    }

    fn board_on_outlet(&self, outlet: u32) -> Option<&Board> {
        self.boards
            .iter()
            .find(|b| b.info.outlet == outlet)
            .map(|b| &**b)
    }
}

/// Where the boards' working directories live.
enum Root {
    Temporary(tempfile::TempDir),
    Kept(PathBuf),
}

impl Root {
    fn path(&self) -> &Path {
        match self {
            Root::Temporary(dir) => dir.path(),
            Root::Kept(path) => path,
        }
    }
}

/// A running simulated lab. [`SimLab::shutdown`] stops it and waits; dropping it stops it
/// too (its shells are killed at once, the rest winds down on the runtime).
pub struct SimLab {
    shared: Arc<SimShared>,
    boards: Vec<SimBoard>,
    pdu_address: SocketAddr,
    login: SimLogin,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    pdu_task: Option<JoinHandle<()>>,
    /// Dropped last, after the shells are gone.
    root: Option<Root>,
}

/// The boards `config` describes, before anything is bound.
fn plan_boards(config: &SimConfig, root: &Path) -> Result<Vec<SimBoard>, SimError> {
    if config.families.is_empty() {
        return Err(SimError::Families("no family given".to_owned()));
    }
    let mut boards = Vec::new();
    for (index, family) in config.families.iter().enumerate() {
        let pdu = if index % 2 == 0 {
            HTTP_PDU_NAME
        } else {
            PDUDAEMON_PDU_NAME
        };
        let prefix = family.name.to_ascii_lowercase();
        for n in 1..=family.boards {
            let board_id = format!("{prefix}-{n:03}");
            if boards.iter().any(|b: &SimBoard| b.board_id == board_id) {
                return Err(SimError::Families(format!(
                    "two families make the board id {board_id}; family names must differ in \
                     more than case"
                )));
            }
            let outlet = u32::try_from(boards.len() + 1).unwrap_or(u32::MAX);
            boards.push(SimBoard {
                workdir: root.join(&board_id),
                board_id,
                family: family.name.clone(),
                lab_location: if n % 2 == 1 {
                    "Sim Site A"
                } else {
                    "Sim Site B"
                }
                .to_owned(),
                address: SocketAddr::new(config.listen, 0),
                outlet,
                pdu: pdu.to_owned(),
            });
        }
    }
    if let Some(clash) = boards
        .iter()
        .find(|b| config.families.iter().any(|f| f.name == b.board_id))
    {
        return Err(SimError::Families(format!(
            "family {} is also a board id",
            clash.board_id
        )));
    }
    Ok(boards)
}

impl SimLab {
    /// Starts every board and the PDU on free ports of `config.listen`. Must be called within
    /// a tokio runtime (with I/O and time enabled), which then runs the lab.
    pub async fn start(config: SimConfig) -> Result<SimLab, SimError> {
        let root = match &config.root_dir {
            Some(dir) => Root::Kept(dir.clone()),
            None => Root::Temporary(
                tempfile::Builder::new()
                    .prefix("socv-sim-")
                    .tempdir()
                    .map_err(|source| SimError::WorkDir {
                        path: std::env::temp_dir(),
                        source,
                    })?,
            ),
        };
        let planned = plan_boards(&config, root.path())?;
        for (board_id, _) in &config.faults {
            if !planned.iter().any(|b| &b.board_id == board_id) {
                return Err(SimError::FaultForUnknownBoard {
                    board_id: board_id.clone(),
                    known: planned
                        .iter()
                        .map(|b| b.board_id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        for board in &planned {
            std::fs::create_dir_all(&board.workdir).map_err(|source| SimError::WorkDir {
                path: board.workdir.clone(),
                source,
            })?;
        }

        let settings = Arc::new(Settings {
            login: config.login.clone(),
            boot_delay: config.boot_delay,
            cycle_off_time: config.cycle_off_time,
            max_pdudaemon_delay: config.max_pdudaemon_delay,
            login_failure_delay: config.login_failure_delay,
            shell: config.shell.clone(),
        });
        let shutdown = CancellationToken::new();
        // From here on, an early return drops what was started: the token stops it.
        let guard = shutdown.clone().drop_guard();
        let mut boards = Vec::new();
        let mut tasks = Vec::new();
        for info in planned {
            let (board, task) = Board::start(info, Arc::clone(&settings), shutdown.clone())?;
            boards.push(board);
            tasks.push(task);
        }
        for (board_id, fault) in &config.faults {
            if let Some(board) = boards.iter().find(|b| &b.info.board_id == board_id) {
                board.fault.send_replace(*fault);
            }
        }

        let pdu_bind = SocketAddr::new(config.listen, 0);
        let pdu_error = |source| SimError::Listen {
            what: "the sim PDU".to_owned(),
            address: pdu_bind,
            source,
        };
        let listener = tokio::net::TcpListener::bind(pdu_bind)
            .await
            .map_err(pdu_error)?;
        let pdu_address = listener.local_addr().map_err(pdu_error)?;
        let shared = Arc::new(SimShared {
            boards,
            settings,
            pdudaemon_hostname: PDUDAEMON_HOSTNAME.to_owned(),
        });
        let app = pdu::router(Arc::clone(&shared));
        let stop = shutdown.clone();
        let pdu_task = tokio::spawn(async move {
            let serving = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await });
            if let Err(e) = serving.await {
                tracing::warn!("the sim PDU stopped: {e}");
            }
        });
        guard.disarm();

        let boards = shared.boards.iter().map(|b| b.info.clone()).collect();
        Ok(SimLab {
            shared,
            boards,
            pdu_address,
            login: config.login,
            shutdown,
            tasks,
            pdu_task: Some(pdu_task),
            root: Some(root),
        })
    }

    /// The boards in order (by family, then number).
    pub fn boards(&self) -> &[SimBoard] {
        &self.boards
    }

    pub fn board(&self, board_id: &str) -> Option<&SimBoard> {
        self.boards.iter().find(|b| b.board_id == board_id)
    }

    /// The PDU's address.
    pub fn pdu_address(&self) -> SocketAddr {
        self.pdu_address
    }

    /// The PDU's URL, without a trailing `/`: the `http` driver's `base_url` and the
    /// pdudaemon driver's `url` alike.
    pub fn pdu_url(&self) -> String {
        let ip = match self.pdu_address.ip() {
            ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.pdu_address.port()))
    }

    /// The directory that holds the boards' working directories.
    pub fn root_dir(&self) -> Option<&Path> {
        self.root.as_ref().map(Root::path)
    }

    /// A boards.yaml describing this lab; it loads with `leased::lab::Lab::load` as it is.
    pub fn boards_yaml(&self) -> String {
        boards_yaml::render(&self.boards, &self.login, &self.pdu_url())
    }

    /// Writes [`SimLab::boards_yaml`] to `path`.
    pub fn write_boards(&self, path: &Path) -> Result<(), SimError> {
        std::fs::write(path, self.boards_yaml()).map_err(|source| SimError::WriteBoards {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Every board's state.
    pub fn status(&self) -> Vec<BoardStatus> {
        self.shared.boards.iter().map(|b| b.status()).collect()
    }

    pub fn board_status(&self, board_id: &str) -> Result<BoardStatus, SimError> {
        Ok(self.shared.board(board_id)?.status())
    }

    /// Sets a board's fault; it applies to the live session at once.
    pub fn set_fault(&self, board_id: &str, fault: Fault) -> Result<(), SimError> {
        self.shared.board(board_id)?.fault.send_replace(fault);
        Ok(())
    }

    pub fn fault(&self, board_id: &str) -> Result<Fault, SimError> {
        Ok(*self.shared.board(board_id)?.fault.borrow())
    }

    /// Does what the PDU would do and returns when it is done, with the state after it.
    pub async fn power(&self, board_id: &str, action: PowerAction) -> Result<PowerState, SimError> {
        let board = self.shared.board(board_id)?;
        match action {
            PowerAction::On => board.power(true).await?,
            PowerAction::Off => board.power(false).await?,
            PowerAction::Cycle => board.cycle(self.shared.settings.cycle_off_time).await?,
            PowerAction::Status => {}
        }
        Ok(board.status().power)
    }

    /// Stops every board (killing its shell) and the PDU, and waits for them.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        if let Some(mut pdu) = self.pdu_task.take()
            && tokio::time::timeout(PDU_DRAIN_TIME, &mut pdu)
                .await
                .is_err()
        {
            pdu.abort();
        }
    }
}

impl Drop for SimLab {
    fn drop(&mut self) {
        self.shutdown.cancel();
        // The tasks reap their shells if the runtime lives on; killing here makes sure none
        // outlives the lab even if it does not.
        for board in &self.shared.boards {
            if let Some(pid) = board.shell_pid() {
                shell::kill_session(pid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_families_and_logins() {
        let spec: FamilySpec = "socA:5".parse().unwrap();
        assert_eq!((spec.name.as_str(), spec.boards), ("socA", 5));
        assert_eq!("socB".parse::<FamilySpec>().unwrap().boards, 1);
        assert!("soc A:1".parse::<FamilySpec>().is_err());
        assert!(
            "socA:0"
                .parse::<FamilySpec>()
                .unwrap_err()
                .contains("from 1 to 999")
        );
        assert!("-x:1".parse::<FamilySpec>().is_err());

        let login: SimLogin = "admin:s3:cret".parse().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("admin", "s3:cret")
        );
        assert_eq!("root".parse::<SimLogin>().unwrap().password, "");
        assert!(":pw".parse::<SimLogin>().is_err());
        assert!(!format!("{login:?}").contains("s3"));
    }

    #[test]
    fn plans_ids_outlets_sites_and_pdus() {
        let config = SimConfig::default();
        let boards = plan_boards(&config, Path::new("/r")).unwrap();
        let ids: Vec<_> = boards.iter().map(|b| b.board_id.as_str()).collect();
        assert_eq!(
            ids,
            ["soca-001", "soca-002", "soca-003", "socb-001", "socb-002"]
        );
        let outlets: Vec<_> = boards.iter().map(|b| b.outlet).collect();
        assert_eq!(outlets, [1, 2, 3, 4, 5]);
        assert_eq!(boards[1].lab_location, "Sim Site B");
        assert_eq!(boards[2].pdu, HTTP_PDU_NAME);
        assert_eq!(boards[3].pdu, PDUDAEMON_PDU_NAME);
        assert_eq!(boards[4].workdir, Path::new("/r/socb-002"));
    }

    #[test]
    fn refuses_families_that_collide() {
        let config = |names: &[&str]| SimConfig {
            families: names.iter().map(|n| n.parse().unwrap()).collect(),
            ..SimConfig::default()
        };
        let err = plan_boards(&config(&["socA:1", "soca:1"]), Path::new("/r")).unwrap_err();
        assert!(err.to_string().contains("soca-001"), "{err}");
        let err = plan_boards(&config(&["x:1", "x-001:1"]), Path::new("/r")).unwrap_err();
        assert!(err.to_string().contains("also a board id"), "{err}");
        assert!(plan_boards(&config(&[]), Path::new("/r")).is_err());
    }
}
