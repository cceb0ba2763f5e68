//! The lab description (boards.yaml): boards, their telnet consoles and their PDUs, parsed and
//! validated on load so that a bad file is refused with file, line, item and field.
//!
//! The file has two sections:
//!
//! ```yaml
//! pdus:                          # optional: how each `pdu_host` is driven
//!   pdu-a.lab.local:
//!     driver: http               # http | pdudaemon | apc-snmp | command
//!     base_url: http://pdu-a.lab.local
//! boards:
//!   - board_id: soc-a-001        # the original plan's fields
//!     soc_family: socA
//!     soc_revision: rev2         # optional
//!     board_ip: 10.1.1.101       # IPv4, IPv6 or DNS hostname of the telnet console
//!     telnet_port: 23
//!     pdu_host: pdu-a.lab.local  # optional, together with pdu_outlet
//!     pdu_outlet: 1
//!     lab_location: Lab Site A
//!     telnet_username: root      # optional
//!     telnet_password: ${BOARD_A001_PASSWORD}   # optional
//!     login_prompt: "login:"     # optional, plain substrings the console prints
//!     password_prompt: "Password:"
//! ```
//!
//! `${NAME}` is replaced by the environment variable `NAME` in the credential fields
//! (`telnet_username`, `telnet_password`, a PDU's `username`, `password` and `community`), so
//! passwords stay out of the file; `$${` writes a literal `${`. Every other field is taken as
//! written (a `command` PDU's templates go to the shell, which expands its own variables).
//! Credentials are kept as [`Secret`]s and never appear in errors or `Debug` output.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, MessageFormatter, Spanned};

/// A credential from boards.yaml (after `${VAR}` expansion); `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it (a login, an HTTP request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One board of the lab: its console, its power outlet and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    /// Unique name: letters, digits, `-`, `_` and `.`, starting with a letter or digit.
    pub board_id: String,
    /// What a lease asks for (`socA`); follows the same naming rule as `board_id`.
    pub soc_family: String,
    pub soc_revision: Option<String>,
    /// IPv4 or IPv6 address, or DNS hostname, of the telnet console (the board itself or a
    /// console server in front of its serial port).
    pub board_ip: String,
    pub telnet_port: u16,
    /// A key of [`Lab::pdus`]; set exactly when `pdu_outlet` is.
    pub pdu_host: Option<String>,
    /// Outlet number on `pdu_host`, from 1.
    pub pdu_outlet: Option<u32>,
    pub lab_location: String,
    pub telnet_username: Option<String>,
    pub telnet_password: Option<Secret>,
    /// Plain substring that means the console asks for the user name.
    pub login_prompt: String,
    /// Plain substring that means the console asks for the password.
    pub password_prompt: String,
}

impl Board {
    pub const DEFAULT_LOGIN_PROMPT: &str = "login:";
    pub const DEFAULT_PASSWORD_PROMPT: &str = "Password:";

    /// The console as `host:port` (an IPv6 address in brackets), ready to connect to.
    pub fn address(&self) -> String {
        if self.board_ip.contains(':') {
            format!("[{}]:{}", self.board_ip, self.telnet_port)
        } else {
            format!("{}:{}", self.board_ip, self.telnet_port)
        }
    }
}

/// The placeholder that URL and command templates use for a board's outlet number.
pub const OUTLET_PLACEHOLDER: &str = "{outlet}";

/// How leased drives one PDU (an entry of `pdus:`, keyed by the boards' `pdu_host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PduConfig {
    /// `driver: http`: a PDU or smart plug with an HTTP API, one URL per action.
    Http(HttpPdu),
    /// `driver: pdudaemon`: a pdudaemon server drives the PDU.
    Pdudaemon(PdudaemonPdu),
    /// `driver: apc-snmp`: an APC switched PDU, SNMP SET on its PowerNet-MIB outlet control.
    ApcSnmp(ApcSnmpPdu),
    /// `driver: command`: local shell commands (a vendor CLI, a relay script).
    Command(CommandPdu),
}

impl PduConfig {
    /// The `driver:` name as written in boards.yaml.
    pub fn driver(&self) -> &'static str {
        match self {
            PduConfig::Http(_) => "http",
            PduConfig::Pdudaemon(_) => "pdudaemon",
            PduConfig::ApcSnmp(_) => "apc-snmp",
            PduConfig::Command(_) => "command",
        }
    }

    pub fn policy(&self) -> &PduPolicy {
        match self {
            PduConfig::Http(pdu) => &pdu.policy,
            PduConfig::Pdudaemon(pdu) => &pdu.policy,
            PduConfig::ApcSnmp(pdu) => &pdu.policy,
            PduConfig::Command(pdu) => &pdu.policy,
        }
    }
}

/// Fields every driver accepts: `retries`, `cycle_delay_s`, `timeout_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PduPolicy {
    /// Further attempts after a failed action (default 3).
    pub retries: u32,
    /// Off time of a power cycle that leased does as off, wait, on (default 2 s).
    pub cycle_delay: Duration,
    /// Limit for one attempt of one action (default 30 s; pdudaemon answers only when done).
    pub timeout: Duration,
}

impl Default for PduPolicy {
    fn default() -> Self {
        PduPolicy {
            retries: 3,
            cycle_delay: Duration::from_secs(2),
            timeout: Duration::from_secs(30),
        }
    }
}

/// An HTTP PDU. Templates are full URLs with an optional `{outlet}` placeholder; `base_url`
/// in the file gives the defaults `{base_url}/outlets/{outlet}/on|off|cycle|status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPdu {
    pub on: String,
    pub off: String,
    /// Without it, a cycle is off, `cycle_delay`, on.
    pub cycle: Option<String>,
    /// Without it, the outlet state cannot be read.
    pub status: Option<String>,
    /// For on/off/cycle (default POST); status is always a GET.
    pub method: HttpMethod,
    /// HTTP basic auth.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The status code that means success (default 200).
    pub expect_status: u16,
    pub policy: PduPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
        }
    }
}

/// A PDU behind pdudaemon: `GET {url}/power/control/{on|off|reboot}?hostname=…&port=<outlet>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdudaemonPdu {
    /// The pdudaemon HTTP listener, e.g. `http://pdudaemon.lab.local:16421`, no trailing `/`.
    pub url: String,
    /// The PDU's key in pdudaemon's configuration (default: the PDU's name in boards.yaml).
    pub hostname: String,
    /// pdudaemon's `delay` for a reboot; pdudaemon's own default (5 s) when absent.
    pub delay_s: Option<u32>,
    pub policy: PduPolicy,
}

/// An APC switched PDU driven over SNMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApcSnmpPdu {
    /// Address of the PDU (default: the PDU's name in boards.yaml).
    pub host: String,
    /// UDP port (default 161).
    pub port: u16,
    /// Write community (default `private`).
    pub community: Secret,
    pub version: SnmpVersion,
    pub mib: ApcMib,
    pub policy: PduPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnmpVersion {
    V1,
    V2c,
}

/// Which PowerNet-MIB table controls the outlets; the APC models differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApcMib {
    /// `sPDUOutletCtl`: MasterSwitch and older AP79xx.
    SPdu,
    /// `rPDUOutletControlOutletCommand`: Switched Rack PDU.
    RPdu,
    /// `rPDU2OutletSwitchedControlCommand`: AP84xx/86xx/89xx (the default).
    RPdu2,
}

impl ApcMib {
    /// The OID to SET for `outlet`; the values 1, 2 and 3 mean on, off and reboot in all three.
    pub fn outlet_control_oid(self, outlet: u32) -> String {
        let table = match self {
            ApcMib::SPdu => "1.3.6.1.4.1.318.1.1.4.4.2.1.3",
            ApcMib::RPdu => "1.3.6.1.4.1.318.1.1.12.3.3.1.1.4",
            ApcMib::RPdu2 => "1.3.6.1.4.1.318.1.1.26.9.2.4.1.5",
        };
        format!("{table}.{outlet}")
    }
}

/// A PDU driven by shell commands; templates may use `{outlet}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPdu {
    pub on: String,
    pub off: String,
    /// Without it, a cycle is off, `cycle_delay`, on.
    pub cycle: Option<String>,
    /// Prints the outlet state; without it, the state cannot be read.
    pub status: Option<String>,
    pub policy: PduPolicy,
}

/// The whole lab as described by one boards.yaml.
#[derive(Debug, Clone)]
pub struct Lab {
    pub source: PathBuf,
    /// In file order.
    pub boards: Vec<Board>,
    pub pdus: BTreeMap<String, PduConfig>,
}

impl Lab {
    /// Reads and validates `path`, expanding `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<Lab, LabError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Scope::file(path).err(
                Location::UNKNOWN,
                None,
                format!("cannot read the lab file: {e}"),
            )
        })?;
        Lab::parse(&text, path)
    }

    /// Validates `text`; `path` names it in errors. `${VAR}` comes from the process environment.
    pub fn parse(text: &str, path: &Path) -> Result<Lab, LabError> {
        Lab::parse_with_env(text, path, &|name| std::env::var(name).ok())
    }

    /// Like [`Lab::parse`], with `${VAR}` looked up through `env`.
    pub fn parse_with_env(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Lab, LabError> {
        match serde_saphyr::from_str::<Option<RawLab>>(text) {
            Ok(Some(raw)) => Loader { file: path, env }.lab(&raw),
            Ok(None) => Err(Scope::file(path).err(
                Location::UNKNOWN,
                Some("boards"),
                "the file is empty; it needs a `boards:` list",
            )),
            Err(e) => Err(yaml_error(path, text, &e)),
        }
    }

    pub fn board(&self, board_id: &str) -> Option<&Board> {
        self.boards.iter().find(|b| b.board_id == board_id)
    }

    /// Every `soc_family`, sorted.
    pub fn families(&self) -> BTreeSet<&str> {
        self.boards.iter().map(|b| b.soc_family.as_str()).collect()
    }

    /// The PDU and outlet that power `board`, if it has one.
    pub fn pdu_for(&self, board: &Board) -> Option<(&PduConfig, u32)> {
        let pdu = self.pdus.get(board.pdu_host.as_deref()?)?;
        Some((pdu, board.pdu_outlet?))
    }
}

/// Why a lab file was refused. Displays as
/// `boards.yaml:14:5: board soc-b-001: telnet_password: environment variable … is not set`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabError {
    pub file: PathBuf,
    /// 1-based; `None` when the problem is not at one place (an unreadable file).
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// The board or PDU the problem is in.
    pub item: Option<LabItem>,
    pub field: Option<String>,
    /// What is wrong; never contains a secret.
    pub message: String,
}

/// A board or a PDU of the file, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabItem {
    /// The board id, or `#n` (its position in `boards:`) when it has none.
    Board(String),
    Pdu(String),
}

impl fmt::Display for LabItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabItem::Board(id) => write!(f, "board {}", printable(id)),
            LabItem::Pdu(name) => write!(f, "PDU {}", printable(name)),
        }
    }
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(item) = &self.item {
            write!(f, ": {item}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {}", printable(field))?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LabError {}

// ---- the file as written ----------------------------------------------------------------------

/// A scalar with where it was written. Numbers are read as text too and checked here, so an
/// error can name the field and the allowed range instead of serde's "invalid u16".
type Text = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLab {
    pdus: Option<HashMap<Text, Spanned<RawPdu>>>,
    boards: Option<Spanned<Vec<Spanned<RawBoard>>>>,
}

/// Every field is optional for serde so that a missing one is reported with the board's id.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoard {
    board_id: Option<Text>,
    soc_family: Option<Text>,
    soc_revision: Option<Text>,
    board_ip: Option<Text>,
    telnet_port: Option<Text>,
    pdu_host: Option<Text>,
    pdu_outlet: Option<Text>,
    lab_location: Option<Text>,
    telnet_username: Option<Text>,
    telnet_password: Option<Text>,
    login_prompt: Option<Text>,
    password_prompt: Option<Text>,
}

/// A PDU as a plain map of fields rather than a `#[serde(tag = "driver")]` enum: serde buffers
/// internally tagged enums, and `Spanned` loses every location inside them. Each driver takes
/// its own fields from the map (see [`DRIVERS`]); a null value counts as absent.
type RawPdu = HashMap<Text, Option<Text>>;

// ---- building the lab ---------------------------------------------------------------------------

struct Loader<'a> {
    file: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
}

/// The first board that used an id, outlet, console or family: its id and line.
type Claims<K> = HashMap<K, (String, u32)>;

impl Loader<'_> {
    fn lab(&self, raw: &RawLab) -> Result<Lab, LabError> {
        let file = Scope::file(self.file);
        let mut raw_pdus: Vec<(&Text, &Spanned<RawPdu>)> = raw.pdus.iter().flatten().collect();
        raw_pdus.sort_by_key(|(name, _)| position(name.referenced));
        let pdu_names: BTreeSet<&str> = raw_pdus.iter().map(|(n, _)| n.value.as_str()).collect();

        let Some(raw_boards) = &raw.boards else {
            return Err(file.err(
                Location::UNKNOWN,
                Some("boards"),
                "missing; the lab needs a `boards:` list",
            ));
        };
        if raw_boards.value.is_empty() {
            return Err(file.err(
                raw_boards.referenced,
                Some("boards"),
                "the list is empty; describe at least one board",
            ));
        }
        let boards = self.boards(&raw_boards.value, &pdu_names)?;

        let mut pdus = BTreeMap::new();
        for (name, raw_pdu) in raw_pdus {
            let outlets: BTreeSet<u32> = boards
                .iter()
                .filter(|b| b.pdu_host.as_deref() == Some(name.value.as_str()))
                .filter_map(|b| b.pdu_outlet)
                .collect();
            let pdu = self.pdu(name, raw_pdu, outlets.len())?;
            pdus.insert(name.value.clone(), pdu);
        }
        Ok(Lab {
            source: self.file.to_path_buf(),
            boards,
            pdus,
        })
    }

    /// Checks each board, then what boards must not share.
    fn boards(
        &self,
        raw: &[Spanned<RawBoard>],
        pdu_names: &BTreeSet<&str>,
    ) -> Result<Vec<Board>, LabError> {
        let mut boards = Vec::with_capacity(raw.len());
        let mut ids: Claims<String> = HashMap::new();
        let mut families: Claims<String> = HashMap::new();
        let mut outlets: Claims<(String, u32)> = HashMap::new();
        let mut consoles: Claims<(String, u16)> = HashMap::new();
        for (index, raw_board) in raw.iter().enumerate() {
            let (scope, board) = self.board(index, raw_board, pdu_names)?;
            let fields = &raw_board.value;
            let id = board.board_id.as_str();
            let line = |field: &Option<Text>| line_of(located(field));

            if let Some((_, first)) = claim(&mut ids, id.to_owned(), id, line(&fields.board_id)) {
                return Err(scope.err(
                    located(&fields.board_id),
                    Some("board_id"),
                    format!("duplicate board id; first defined at line {first}"),
                ));
            }
            if let Some((other, first)) = families.get(id) {
                return Err(scope.err(
                    located(&fields.board_id),
                    Some("board_id"),
                    format!(
                        "{} is also the soc_family of board {other} (line {first}); a lease \
                         request for it would be ambiguous",
                        shown(id)
                    ),
                ));
            }
            if let Some((other, first)) = ids.get(&board.soc_family) {
                return Err(scope.err(
                    located(&fields.soc_family),
                    Some("soc_family"),
                    format!(
                        "{} is also the id of board {other} (line {first}); a lease request \
                         for it would be ambiguous",
                        shown(&board.soc_family)
                    ),
                ));
            }
            families
                .entry(board.soc_family.clone())
                .or_insert_with(|| (id.to_owned(), line(&fields.soc_family)));

            if let (Some(host), Some(outlet)) = (&board.pdu_host, board.pdu_outlet) {
                let key = (host.clone(), outlet);
                if let Some((other, first)) = claim(&mut outlets, key, id, line(&fields.pdu_outlet))
                {
                    return Err(scope.err(
                        located(&fields.pdu_outlet),
                        Some("pdu_outlet"),
                        format!(
                            "outlet {outlet} of {host} is already used by board {other} \
                             (line {first})"
                        ),
                    ));
                }
            }

            // Two spellings of one IP address are one console.
            let host = board
                .board_ip
                .parse::<IpAddr>()
                .map_or_else(|_| board.board_ip.to_ascii_lowercase(), |ip| ip.to_string());
            let key = (host, board.telnet_port);
            if let Some((other, first)) = claim(&mut consoles, key, id, line(&fields.board_ip)) {
                return Err(scope.err(
                    located(&fields.board_ip),
                    Some("board_ip"),
                    format!(
                        "{} is already the console of board {other} (line {first})",
                        board.address()
                    ),
                ));
            }
            boards.push(board);
        }
        Ok(boards)
    }

    /// One board on its own; also returns the scope that names it in errors.
    fn board(
        &self,
        index: usize,
        raw: &Spanned<RawBoard>,
        pdu_names: &BTreeSet<&str>,
    ) -> Result<(Scope<'_>, Board), LabError> {
        let b = &raw.value;
        let label = b
            .board_id
            .as_ref()
            .map(|id| id.value.trim())
            .filter(|id| !id.is_empty())
            .map_or_else(|| format!("#{}", index + 1), str::to_owned);
        let s = Scope {
            file: self.file,
            item: Some(LabItem::Board(label)),
        };
        let at = raw.referenced;

        let board_id = s.name("board_id", s.required(at, "board_id", &b.board_id)?)?;
        let soc_family = s.name("soc_family", s.required(at, "soc_family", &b.soc_family)?)?;
        let soc_revision = b
            .soc_revision
            .as_ref()
            .map(|v| s.text("soc_revision", v))
            .transpose()?;
        let board_ip = s.address("board_ip", s.required(at, "board_ip", &b.board_ip)?)?;
        let telnet_port = s.integer(
            "telnet_port",
            s.required(at, "telnet_port", &b.telnet_port)?,
            1,
            65535,
        )?;
        let (pdu_host, pdu_outlet) = match (&b.pdu_host, &b.pdu_outlet) {
            (None, None) => (None, None),
            (Some(host), None) => {
                return Err(s.err(
                    host.referenced,
                    Some("pdu_outlet"),
                    "missing: a board with a pdu_host needs the pdu_outlet it is plugged into",
                ));
            }
            (None, Some(outlet)) => {
                return Err(s.err(
                    outlet.referenced,
                    Some("pdu_host"),
                    "missing: a board with a pdu_outlet needs the pdu_host the outlet is on",
                ));
            }
            (Some(host), Some(outlet)) => {
                if !pdu_names.contains(host.value.as_str()) {
                    let defined = if pdu_names.is_empty() {
                        "no PDUs are defined".to_owned()
                    } else {
                        format!(
                            "defined: {}",
                            pdu_names.iter().copied().collect::<Vec<_>>().join(", ")
                        )
                    };
                    return Err(s.err(
                        host.referenced,
                        Some("pdu_host"),
                        format!(
                            "PDU {} is not defined in `pdus:` ({defined})",
                            shown(&host.value)
                        ),
                    ));
                }
                let outlet: u32 = s.integer("pdu_outlet", outlet, 1, u64::from(u32::MAX))?;
                (Some(host.value.clone()), Some(outlet))
            }
        };
        let lab_location = s.text(
            "lab_location",
            s.required(at, "lab_location", &b.lab_location)?,
        )?;
        let telnet_username = b
            .telnet_username
            .as_ref()
            .map(|v| s.credential("telnet_username", v, self.env))
            .transpose()?;
        let telnet_password = b
            .telnet_password
            .as_ref()
            .map(|v| s.credential("telnet_password", v, self.env).map(Secret))
            .transpose()?;
        let login_prompt = b
            .login_prompt
            .as_ref()
            .map(|v| s.text("login_prompt", v))
            .transpose()?
            .unwrap_or_else(|| Board::DEFAULT_LOGIN_PROMPT.to_owned());
        let password_prompt = b
            .password_prompt
            .as_ref()
            .map(|v| s.text("password_prompt", v))
            .transpose()?
            .unwrap_or_else(|| Board::DEFAULT_PASSWORD_PROMPT.to_owned());

        let board = Board {
            board_id,
            soc_family,
            soc_revision,
            board_ip,
            telnet_port,
            pdu_host,
            pdu_outlet,
            lab_location,
            telnet_username,
            telnet_password,
            login_prompt,
            password_prompt,
        };
        Ok((s, board))
    }

    /// One PDU: its driver, then only the fields that driver knows.
    fn pdu(
        &self,
        name: &Text,
        raw: &Spanned<RawPdu>,
        outlets_in_use: usize,
    ) -> Result<PduConfig, LabError> {
        let scope = Scope {
            file: self.file,
            item: Some(LabItem::Pdu(name.value.clone())),
        };
        if let Err(why) = check_name(&name.value) {
            return Err(scope.err(name.referenced, None, format!("the PDU name {why}")));
        }
        let mut keys: Vec<&Text> = raw.value.keys().collect();
        keys.sort_by_key(|key| position(key.referenced));
        let fields = PduFields {
            scope,
            name: &name.value,
            values: raw
                .value
                .iter()
                .filter_map(|(key, value)| Some((key.value.as_str(), value.as_ref()?)))
                .collect(),
            env: self.env,
            outlets_in_use,
        };
        let known = || {
            DRIVERS
                .iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(driver_name) = fields.get("driver") else {
            return Err(fields.scope.err(
                raw.referenced,
                Some("driver"),
                format!("missing; one of: {}", known()),
            ));
        };
        let Some(driver) = DRIVERS.iter().find(|d| d.name == driver_name.value.trim()) else {
            return Err(fields.scope.err(
                driver_name.referenced,
                Some("driver"),
                format!(
                    "unknown driver {}; known drivers: {}",
                    shown(&driver_name.value),
                    known()
                ),
            ));
        };
        for key in keys {
            let key_name = key.value.as_str();
            if !COMMON_FIELDS.contains(&key_name) && !driver.fields.contains(&key_name) {
                let mut accepted = driver.fields.to_vec();
                accepted.extend(COMMON_FIELDS.iter().filter(|f| **f != "driver"));
                return Err(fields.scope.err(
                    key.referenced,
                    Some(key_name),
                    format!(
                        "not a field of the {} driver; its fields are: {}",
                        driver.name,
                        accepted.join(", ")
                    ),
                ));
            }
        }
        let s = &fields.scope;
        let defaults = PduPolicy::default();
        let policy = PduPolicy {
            retries: fields.or("retries", defaults.retries, |v| {
                s.integer("retries", v, 0, 10)
            })?,
            cycle_delay: fields.or("cycle_delay_s", defaults.cycle_delay, |v| {
                s.seconds("cycle_delay_s", v, 0.0, 600.0)
            })?,
            timeout: fields.or("timeout_s", defaults.timeout, |v| {
                s.seconds("timeout_s", v, 1.0, 600.0)
            })?,
        };
        (driver.build)(&fields, policy)
    }
}

/// Records that board `id` (at `line`) uses `key`; returns who already did, if anyone.
fn claim<K: Eq + Hash>(seen: &mut Claims<K>, key: K, id: &str, line: u32) -> Option<(String, u32)> {
    match seen.entry(key) {
        Entry::Occupied(first) => Some(first.get().clone()),
        Entry::Vacant(slot) => {
            slot.insert((id.to_owned(), line));
            None
        }
    }
}

// ---- PDU drivers --------------------------------------------------------------------------------

/// What a PDU driver reads from its entry in `pdus:`.
struct Driver {
    name: &'static str,
    /// Its own fields, besides [`COMMON_FIELDS`].
    fields: &'static [&'static str],
    build: fn(&PduFields<'_>, PduPolicy) -> Result<PduConfig, LabError>,
}

const COMMON_FIELDS: &[&str] = &["driver", "retries", "cycle_delay_s", "timeout_s"];

const DRIVERS: &[Driver] = &[
    Driver {
        name: "http",
        fields: &[
            "base_url",
            "on",
            "off",
            "cycle",
            "status",
            "method",
            "username",
            "password",
            "expect_status",
        ],
        build: http_pdu,
    },
    Driver {
        name: "pdudaemon",
        fields: &["url", "hostname", "delay_s"],
        build: pdudaemon_pdu,
    },
    Driver {
        name: "apc-snmp",
        fields: &["host", "port", "community", "version", "mib"],
        build: apc_snmp_pdu,
    },
    Driver {
        name: "command",
        fields: &["on", "off", "cycle", "status"],
        build: command_pdu,
    },
];

/// One PDU's fields (null values dropped), with what its drivers need to check them.
struct PduFields<'a> {
    scope: Scope<'a>,
    name: &'a str,
    values: HashMap<&'a str, &'a Text>,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// How many different outlets of this PDU the boards use.
    outlets_in_use: usize,
}

impl PduFields<'_> {
    fn get(&self, field: &str) -> Option<&Text> {
        self.values.get(field).copied()
    }

    /// The field checked by `check`, or `default` when absent.
    fn or<T>(
        &self,
        field: &str,
        default: T,
        check: impl FnOnce(&Text) -> Result<T, LabError>,
    ) -> Result<T, LabError> {
        self.get(field).map_or(Ok(default), check)
    }

    /// An action's template (checked by `check`), else `default`. A template for switching
    /// must name the outlet when boards use several: without `{outlet}` every board's power
    /// action would switch the same outlet.
    fn template(
        &self,
        action: &str,
        check: impl FnOnce(&Text) -> Result<String, LabError>,
        default: Option<String>,
    ) -> Result<Option<String>, LabError> {
        let Some(value) = self.get(action) else {
            return Ok(default);
        };
        let template = check(value)?;
        if action != "status" && self.outlets_in_use > 1 && !template.contains(OUTLET_PLACEHOLDER) {
            return Err(self.scope.err(
                value.referenced,
                Some(action),
                format!(
                    "has no {OUTLET_PLACEHOLDER} placeholder, but boards use {} outlets of this \
                     PDU; every board would switch the same outlet",
                    self.outlets_in_use
                ),
            ));
        }
        Ok(Some(template))
    }

    /// For the actions every driver must be able to do.
    fn missing(&self, field: &str, hint: &str) -> LabError {
        let at = self
            .get("driver")
            .map_or(Location::UNKNOWN, |driver| driver.referenced);
        self.scope.err(
            at,
            Some(field),
            format!("required field is missing; {hint}"),
        )
    }
}

fn http_pdu(f: &PduFields<'_>, policy: PduPolicy) -> Result<PduConfig, LabError> {
    let s = &f.scope;
    let base_url = f
        .get("base_url")
        .map(|v| s.url("base_url", v, false))
        .transpose()?
        .map(|url| url.trim_end_matches('/').to_owned());
    let template = |action: &str| {
        let default = base_url
            .as_ref()
            .map(|base| format!("{base}/outlets/{OUTLET_PLACEHOLDER}/{action}"));
        f.template(action, |v| s.url(action, v, true), default)
    };
    let hint = "give `on` and `off` URL templates, or a `base_url`";
    let on = template("on")?.ok_or_else(|| f.missing("on", hint))?;
    let off = template("off")?.ok_or_else(|| f.missing("off", hint))?;
    let cycle = template("cycle")?;
    let status = template("status")?;
    let method = f.or("method", HttpMethod::Post, |v| {
        s.choice(
            "method",
            v,
            &[
                ("GET", HttpMethod::Get),
                ("POST", HttpMethod::Post),
                ("PUT", HttpMethod::Put),
            ],
        )
    })?;
    let username = f
        .get("username")
        .map(|v| s.credential("username", v, f.env))
        .transpose()?;
    let password = match f.get("password") {
        Some(v) if username.is_none() => {
            return Err(s.err(
                v.referenced,
                Some("password"),
                "needs a `username` (HTTP basic auth)",
            ));
        }
        Some(v) => Some(Secret(s.credential("password", v, f.env)?)),
        None => None,
    };
    let expect_status = f.or("expect_status", 200, |v| {
        s.integer("expect_status", v, 100, 599)
    })?;
    Ok(PduConfig::Http(HttpPdu {
        on,
        off,
        cycle,
        status,
        method,
        username,
        password,
        expect_status,
        policy,
    }))
}

fn pdudaemon_pdu(f: &PduFields<'_>, policy: PduPolicy) -> Result<PduConfig, LabError> {
    let s = &f.scope;
    let url = f
        .get("url")
        .ok_or_else(|| f.missing("url", "the pdudaemon listener, e.g. http://pdudaemon:16421"))?;
    let url = s.url("url", url, false)?.trim_end_matches('/').to_owned();
    let hostname = f.or("hostname", f.name.to_owned(), |v| s.text("hostname", v))?;
    let delay_s = f
        .get("delay_s")
        .map(|v| s.integer("delay_s", v, 0, 3600))
        .transpose()?;
    Ok(PduConfig::Pdudaemon(PdudaemonPdu {
        url,
        hostname,
        delay_s,
        policy,
    }))
}

fn apc_snmp_pdu(f: &PduFields<'_>, policy: PduPolicy) -> Result<PduConfig, LabError> {
    let s = &f.scope;
    let host = match f.get("host") {
        Some(v) => s.address("host", v)?,
        None => match check_host(f.name) {
            Ok(()) => f.name.to_owned(),
            Err(why) => return Err(f.missing("host", &format!("the PDU name {why}"))),
        },
    };
    let port = f.or("port", 161, |v| s.integer("port", v, 1, 65535))?;
    let community = f.or("community", "private".to_owned(), |v| {
        s.credential("community", v, f.env)
    })?;
    let version = f.or("version", SnmpVersion::V2c, |v| {
        s.choice(
            "version",
            v,
            &[("1", SnmpVersion::V1), ("2c", SnmpVersion::V2c)],
        )
    })?;
    let mib = f.or("mib", ApcMib::RPdu2, |v| {
        s.choice(
            "mib",
            v,
            &[
                ("sPDU", ApcMib::SPdu),
                ("rPDU", ApcMib::RPdu),
                ("rPDU2", ApcMib::RPdu2),
            ],
        )
    })?;
    Ok(PduConfig::ApcSnmp(ApcSnmpPdu {
        host,
        port,
        community: Secret(community),
        version,
        mib,
        policy,
    }))
}

fn command_pdu(f: &PduFields<'_>, policy: PduPolicy) -> Result<PduConfig, LabError> {
    let s = &f.scope;
    let template = |action: &str| f.template(action, |v| s.text(action, v), None);
    let hint = "give `on` and `off` shell commands";
    Ok(PduConfig::Command(CommandPdu {
        on: template("on")?.ok_or_else(|| f.missing("on", hint))?,
        off: template("off")?.ok_or_else(|| f.missing("off", hint))?,
        cycle: template("cycle")?,
        status: template("status")?,
        policy,
    }))
}

// ---- checking one value -------------------------------------------------------------------------

/// Makes the errors about one item of the file (a board, a PDU, or the file as a whole) and
/// checks its values.
struct Scope<'a> {
    file: &'a Path,
    item: Option<LabItem>,
}

impl<'a> Scope<'a> {
    fn file(file: &'a Path) -> Self {
        Scope { file, item: None }
    }

    fn err(&self, at: Location, field: Option<&str>, message: impl Into<String>) -> LabError {
        let known = at.line() > 0;
        LabError {
            file: self.file.to_path_buf(),
            line: u32::try_from(at.line()).ok().filter(|_| known),
            column: u32::try_from(at.column()).ok().filter(|_| known),
            item: self.item.clone(),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    /// A field the item cannot do without; `owner` is where the item starts.
    fn required<'t>(
        &self,
        owner: Location,
        field: &str,
        value: &'t Option<Text>,
    ) -> Result<&'t Text, LabError> {
        value
            .as_ref()
            .ok_or_else(|| self.err(owner, Some(field), "required field is missing"))
    }

    /// Any non-blank text, kept as written.
    fn text(&self, field: &str, v: &Text) -> Result<String, LabError> {
        if v.value.trim().is_empty() {
            return Err(self.err(v.referenced, Some(field), "is empty"));
        }
        Ok(v.value.clone())
    }

    fn name(&self, field: &str, v: &Text) -> Result<String, LabError> {
        check_name(&v.value).map_err(|why| self.err(v.referenced, Some(field), why))?;
        Ok(v.value.clone())
    }

    fn address(&self, field: &str, v: &Text) -> Result<String, LabError> {
        check_host(&v.value).map_err(|why| self.err(v.referenced, Some(field), why))?;
        Ok(v.value.clone())
    }

    /// An http(s) URL; with `templated`, `{outlet}` may appear in it.
    fn url(&self, field: &str, v: &Text, templated: bool) -> Result<String, LabError> {
        let url = v.value.trim();
        check_url(url, templated).map_err(|why| self.err(v.referenced, Some(field), why))?;
        Ok(url.to_owned())
    }

    fn integer<T: TryFrom<u64>>(
        &self,
        field: &str,
        v: &Text,
        min: u64,
        max: u64,
    ) -> Result<T, LabError> {
        v.value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| {
                let what = format!(
                    "{} is not a whole number from {min} to {max}",
                    shown(&v.value)
                );
                self.err(v.referenced, Some(field), what)
            })
    }

    fn seconds(&self, field: &str, v: &Text, min: f64, max: f64) -> Result<Duration, LabError> {
        v.value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| (min..=max).contains(s))
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                let what = format!(
                    "{} is not a number of seconds from {min} to {max}",
                    shown(&v.value)
                );
                self.err(v.referenced, Some(field), what)
            })
    }

    /// One of `options`, matched without regard to case.
    fn choice<T: Copy>(&self, field: &str, v: &Text, options: &[(&str, T)]) -> Result<T, LabError> {
        let given = v.value.trim();
        options
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(given))
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
                let what = format!("{} is not one of: {}", shown(given), names.join(", "));
                self.err(v.referenced, Some(field), what)
            })
    }

    /// A credential with `${VAR}` expanded. Its value is never put in an error.
    fn credential(
        &self,
        field: &str,
        v: &Text,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, LabError> {
        expand(&v.value, env).map_err(|e| {
            let what = match e {
                Expansion::Unset(name) => format!("environment variable {name} is not set"),
                Expansion::Malformed(at) => format!(
                    "malformed ${{...}} at character {at}; write ${{NAME}} with a NAME of \
                     letters, digits and _, or $${{ for a literal ${{"
                ),
            };
            self.err(v.referenced, Some(field), what)
        })
    }
}

fn located(value: &Option<Text>) -> Location {
    value.as_ref().map_or(Location::UNKNOWN, |v| v.referenced)
}

fn line_of(at: Location) -> u32 {
    u32::try_from(at.line()).unwrap_or(u32::MAX)
}

fn position(at: Location) -> (u64, u64) {
    (at.line(), at.column())
}

/// Board ids and family names end up in URLs, shell arguments and file names, so they are
/// plain: ASCII letters, digits, `-`, `_`, `.`, starting with a letter or digit (so never `..`).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_owned());
    }
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !starts_well || !plain || name.len() > 64 {
        return Err(format!(
            "{} is not a simple name (up to 64 letters, digits, `-`, `_` and `.`, starting with \
             a letter or digit)",
            shown(name)
        ));
    }
    Ok(())
}

/// An IPv4 or IPv6 address, or a DNS hostname (RFC 1123). A name whose last label is all
/// digits is taken for a mistyped IPv4 address (no top-level domain is numeric).
fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host.contains(':') {
        return Err(format!("{} is not a valid IPv6 address", shown(host)));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = name.split('.').collect();
    if labels
        .last()
        .is_some_and(|last| !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("{} is not a valid IPv4 address", shown(host)));
    }
    let good_label = |label: &&str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.len() > 253 || !labels.iter().all(good_label) {
        return Err(format!(
            "{} is neither an IP address nor a valid DNS hostname",
            shown(host)
        ));
    }
    Ok(())
}

/// An `http://` or `https://` URL with a valid host. The URL itself is never echoed: it may
/// carry a token in its query.
fn check_url(url: &str, templated: bool) -> Result<(), String> {
    let filled = if templated {
        Cow::Owned(url.replace(OUTLET_PLACEHOLDER, "1"))
    } else {
        Cow::Borrowed(url)
    };
    if filled.contains(['{', '}']) {
        return Err(if templated {
            format!("unknown placeholder; the only one is {OUTLET_PLACEHOLDER}")
        } else {
            "must not contain `{` or `}`".to_owned()
        });
    }
    let rest = filled
        .split_once("://")
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
        })
        .map(|(_, rest)| rest)
        .ok_or("must start with http:// or https://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("must not carry credentials; use `username` and `password`".to_owned());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (ip, after) = bracketed.split_once(']').ok_or("has an unclosed `[`")?;
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{} is not a valid IPv6 address", shown(ip)));
        }
        match after {
            "" => (None, None),
            _ => (
                None,
                Some(after.strip_prefix(':').ok_or("has text after `]`")?),
            ),
        }
    } else if authority.matches(':').count() > 1 {
        return Err("an IPv6 address in a URL goes in brackets: http://[::1]:8080/".to_owned());
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(authority), None),
        }
    };
    if let Some(host) = host {
        check_host(host)?;
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(format!(
            "port {} is not a number from 1 to 65535",
            shown(port)
        ));
    }
    Ok(())
}

enum Expansion {
    Unset(String),
    /// At this 1-based character of the value.
    Malformed(usize),
}

/// Replaces each `${NAME}` by `env(NAME)`; `$${` is a literal `${`, any other `$` is itself.
fn expand(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Expansion> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let tail = &rest[dollar..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let at = value[..value.len() - tail.len()].chars().count() + 1;
            let (name, after) = after.split_once('}').ok_or(Expansion::Malformed(at))?;
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(Expansion::Malformed(at));
            }
            out.push_str(&env(name).ok_or_else(|| Expansion::Unset(name.to_owned()))?);
            rest = after;
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A user's text quoted for a message, control characters escaped.
fn shown(text: &str) -> String {
    format!("`{}`", printable(text))
}

fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(text.chars().flat_map(char::escape_default).collect())
    } else {
        Cow::Borrowed(text)
    }
}

// ---- YAML errors -------------------------------------------------------------------------------

/// Fields whose value is a credential: a YAML error inside one is reported without its text.
const SECRET_FIELDS: &[&str] = &["telnet_password", "password", "community"];

/// Turns a serde-saphyr error into a [`LabError`] that names the board or PDU and the field.
fn yaml_error(file: &Path, text: &str, error: &serde_saphyr::Error) -> LabError {
    let error = innermost(error);
    let at = error.location().unwrap_or(Location::UNKNOWN);
    let (item, mut field) = if at.line() > 0 {
        context_at(text, at)
    } else {
        (None, None)
    };
    let message = match error {
        serde_saphyr::Error::SerdeUnknownField {
            field: name,
            expected,
            ..
        } => {
            field = Some(name.clone());
            format!("unknown field; expected one of: {}", expected.join(", "))
        }
        serde_saphyr::Error::DuplicateMappingKey { key: Some(key), .. } => {
            field = Some(key.clone());
            "given twice".to_owned()
        }
        _ => serde_saphyr::UserMessageFormatter
            .format_message(error)
            .into_owned(),
    };
    if item.is_none() && field.is_none() {
        // Invalid YAML cannot be read for context; the key on the error's line is a fair guess.
        field = field_on_line(text, at.line()).map(str::to_owned);
    }
    let secret = field.as_deref().is_some_and(|f| SECRET_FIELDS.contains(&f));
    let message = if secret {
        "invalid value (not shown: it is a credential)".to_owned()
    } else {
        printable(&message).into_owned()
    };
    Scope { file, item }.err(at, field.as_deref(), message)
}

fn innermost(error: &serde_saphyr::Error) -> &serde_saphyr::Error {
    match error {
        serde_saphyr::Error::WithSnippet { error, .. }
        | serde_saphyr::Error::AliasError { error, .. } => innermost(error),
        other => other,
    }
}

/// The key written on `line`, if the line is a plain `key: value` or `- key: value`.
fn field_on_line(text: &str, line: u64) -> Option<&str> {
    let index = usize::try_from(line.checked_sub(1)?).ok()?;
    let content = text.lines().nth(index)?.trim_start();
    let content = content.strip_prefix("- ").unwrap_or(content);
    let key = content.split_once(':')?.0.trim();
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    plain.then_some(key)
}

/// Any YAML value with its location: read only after the strict parse failed, to find which
/// board or PDU, and which field, an error is in.
/// Keys are read as text: read as any value, `on:` would be the boolean true (YAML 1.1).
enum Node {
    Text(String),
    /// A number or boolean, as serde-saphyr typed it; [`scalar`] reads its source text.
    Typed(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Text, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;

        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Text(v.to_owned()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Typed(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Typed(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Typed(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Typed(v.to_string()))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Node, E> {
                Ok(Node::Text(String::from_utf8_lossy(v).into_owned()))
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Text(String::new()))
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Text(String::new()))
            }
            fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Node::Map(entries))
            }
        }

        deserializer.deserialize_any(NodeVisitor)
    }
}

/// The board or PDU, and the field, that the position `at` of `text` falls in.
fn context_at(text: &str, at: Location) -> (Option<LabItem>, Option<String>) {
    // A duplicate key is one of the errors being explained, so it must not stop this parse.
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::FirstWins,
    };
    let Ok(root) = serde_saphyr::from_str_with_options::<Spanned<Node>>(text, options) else {
        return (None, None);
    };
    let at = position(at);
    let Node::Map(sections) = &root.value else {
        return (None, None);
    };
    let Some((section, value)) = last_key_before(sections, at) else {
        return (None, None);
    };
    let section = Some(section.value.clone());
    let (item, fields) = match (section.as_deref(), &value.value) {
        (Some("boards"), Node::Seq(boards)) => {
            let found = boards
                .iter()
                .enumerate()
                .rfind(|(_, board)| position(board.referenced) <= at);
            let Some((index, board)) = found else {
                return (None, section);
            };
            let id = match &board.value {
                Node::Map(fields) => fields
                    .iter()
                    .find(|(key, _)| key.value == "board_id")
                    .and_then(|(_, id)| scalar(text, id)),
                _ => None,
            };
            let id = id.unwrap_or_else(|| format!("#{}", index + 1));
            (LabItem::Board(id), &board.value)
        }
        (Some("pdus"), Node::Map(pdus)) => match last_key_before(pdus, at) {
            Some((name, pdu)) => (LabItem::Pdu(name.value.clone()), &pdu.value),
            None => return (None, section),
        },
        _ => return (None, section),
    };
    let field = match fields {
        Node::Map(entries) => last_key_before(entries, at).map(|(key, _)| key.value.clone()),
        _ => None,
    };
    (Some(item), field)
}

/// A scalar as written: a typed one from the source, so `board_id: 1.10` stays `1.10`.
fn scalar(text: &str, node: &Spanned<Node>) -> Option<String> {
    let written = || {
        let span = node.referenced.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        text.get(start..start.checked_add(len)?)
    };
    match &node.value {
        Node::Text(value) if !value.is_empty() => Some(value.clone()),
        Node::Typed(value) => Some(written().unwrap_or(value).to_owned()),
        _ => None,
    }
}

/// The last entry whose key is at or before `at`.
fn last_key_before(
    entries: &[(Text, Spanned<Node>)],
    at: (u64, u64),
) -> Option<&(Text, Spanned<Node>)> {
    entries
        .iter()
        .rfind(|(key, _)| position(key.referenced) <= at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = include_str!("../../boards.yaml");

    /// A small valid lab; each test breaks one line of it (see `edit`).
    const LAB: &str = "\
pdus:
  pdu-1:
    driver: command
    on: relay {outlet} on
    off: relay {outlet} off
boards:
  - board_id: b1
    soc_family: socX
    board_ip: 10.0.0.1
    telnet_port: 23
    pdu_host: pdu-1
    pdu_outlet: 1
    lab_location: here
  - board_id: b2
    soc_family: socX
    board_ip: 10.0.0.2
    telnet_port: 23
    pdu_host: pdu-1
    pdu_outlet: 2
    lab_location: here
";

    /// The example's passwords: BOARD_B003_PASSWORD is `pw-003`.
    fn env(name: &str) -> Option<String> {
        let number = name.strip_prefix("BOARD_B")?.strip_suffix("_PASSWORD")?;
        Some(format!("pw-{number}"))
    }

    fn parse(text: &str) -> Result<Lab, LabError> {
        Lab::parse_with_env(text, Path::new("boards.yaml"), &env)
    }

    /// LAB with its line `number` (from 1) replaced by `new`: several lines, or none if empty.
    fn edit(number: usize, new: &str) -> String {
        let mut lines: Vec<&str> = LAB.lines().collect();
        if new.is_empty() {
            lines.remove(number - 1);
        } else {
            lines[number - 1] = new;
        }
        lines.join("\n") + "\n"
    }

    /// Asserts that `text` is refused at `line` with a message containing each of `needles`.
    #[track_caller]
    fn refused(text: &str, line: u32, needles: &[&str]) -> String {
        let message = match parse(text) {
            Ok(_) => panic!("accepted, but should be refused at line {line}:\n{text}"),
            Err(e) => e.to_string(),
        };
        let at = format!("boards.yaml:{line}:");
        assert!(message.starts_with(&at), "{message:?} is not at {at}");
        for needle in needles {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        message
    }

    fn line_of_text(text: &str, needle: &str) -> u32 {
        let index = text.lines().position(|l| l.contains(needle)).unwrap();
        u32::try_from(index + 1).unwrap()
    }

    #[test]
    fn example_lab_loads() {
        let lab = parse(EXAMPLE).unwrap();
        assert_eq!(lab.boards.len(), 20);
        assert_eq!(lab.families(), BTreeSet::from(["socA", "socB", "socC"]));
        assert_eq!(lab.pdus.len(), 3);
        let drivers: Vec<&str> = lab.pdus.values().map(PduConfig::driver).collect();
        assert_eq!(drivers, ["http", "pdudaemon", "apc-snmp"]);

        let a1 = lab.board("soc-a-001").unwrap();
        assert_eq!(a1.address(), "10.1.1.101:23");
        assert_eq!(a1.soc_revision.as_deref(), Some("rev2"));
        assert_eq!(a1.telnet_username.as_deref(), Some("root"));
        assert_eq!(a1.telnet_password, None);
        assert_eq!(a1.login_prompt, "login:");
        let Some((PduConfig::Http(http), 1)) = lab.pdu_for(a1) else {
            panic!("soc-a-001 is on outlet 1 of an http PDU");
        };
        assert_eq!(http.on, "http://pdu-a.lab.local/outlets/{outlet}/on");
        assert_eq!(http.method, HttpMethod::Post);
        assert_eq!(http.expect_status, 200);
        assert_eq!(http.policy, PduPolicy::default());

        let b3 = lab.board("soc-b-003").unwrap();
        assert_eq!(
            b3.telnet_password.as_ref().map(Secret::expose),
            Some("pw-003")
        );
        assert_eq!(b3.lab_location, "Lab Site B");
        let Some((PduConfig::Pdudaemon(pdudaemon), 3)) = lab.pdu_for(b3) else {
            panic!("soc-b-003 is on outlet 3 of pdudaemon");
        };
        assert_eq!(pdudaemon.url, "http://pdudaemon.lab.local:16421");
        assert_eq!(pdudaemon.hostname, "pdu-b");

        let c10 = lab.board("soc-c-010").unwrap();
        assert_eq!(
            (c10.board_ip.as_str(), c10.pdu_outlet),
            ("10.1.3.110", Some(10))
        );
        let Some((PduConfig::ApcSnmp(apc), 10)) = lab.pdu_for(c10) else {
            panic!("soc-c-010 is on outlet 10 of an APC");
        };
        assert_eq!((apc.host.as_str(), apc.port), ("pdu-c.lab.local", 161));
        assert_eq!(
            (apc.community.expose(), apc.version, apc.mib),
            ("private", SnmpVersion::V2c, ApcMib::RPdu2)
        );
        assert_eq!(
            apc.mib.outlet_control_oid(10),
            "1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.10"
        );

        assert!(
            !format!("{lab:?}").contains("pw-00"),
            "Debug shows a password"
        );
    }

    #[test]
    fn example_lab_names_its_unset_password_variable() {
        let err = Lab::parse_with_env(EXAMPLE, Path::new("boards.yaml"), &|_| None).unwrap_err();
        let line = line_of_text(EXAMPLE, "${BOARD_B001_PASSWORD}");
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("boards.yaml:{line}:")),
            "{shown}"
        );
        assert!(
            shown.ends_with(
                "board soc-b-001: telnet_password: environment variable BOARD_B001_PASSWORD is \
                 not set"
            ),
            "{shown}"
        );
        assert_eq!(err.item, Some(LabItem::Board("soc-b-001".into())));
        assert_eq!(err.field.as_deref(), Some("telnet_password"));
    }

    #[test]
    fn small_lab_loads() {
        let lab = parse(LAB).unwrap();
        assert_eq!(lab.boards.len(), 2);
        let Some(PduConfig::Command(command)) = lab.pdus.get("pdu-1") else {
            panic!("pdu-1 is a command PDU");
        };
        assert_eq!(command.on, "relay {outlet} on");
        assert_eq!(command.cycle, None);
    }

    #[test]
    fn rejects_yaml_syntax_errors() {
        refused(
            &edit(16, "    board_ip: \"10.0.0.2"),
            16,
            &["unclosed quote"],
        );
        refused(
            &edit(8, "    soc_family: [socX"),
            8,
            &["soc_family: expected"],
        );
    }

    #[test]
    fn rejects_unknown_fields() {
        refused(
            &edit(13, "    lab_location: here\n    colour: red"),
            14,
            &["board b1: colour: unknown field", "board_ip"],
        );
        refused(
            &(LAB.to_owned() + "extra: 1\n"),
            21,
            &["extra: unknown field", "boards"],
        );
        refused(
            &edit(5, "    off: relay {outlet} off\n    community: x"),
            6,
            &[
                "PDU pdu-1: community: not a field of the command driver",
                "cycle",
            ],
        );
    }

    #[test]
    fn rejects_missing_required_fields() {
        refused(
            &edit(16, ""),
            14,
            &["board b2: board_ip: required field is missing"],
        );
        refused(
            &edit(13, ""),
            7,
            &["board b1: lab_location: required field is missing"],
        );
        refused(
            &edit(14, "  - telnet_username: x"),
            14,
            &["board #2: board_id: required field"],
        );
    }

    #[test]
    fn rejects_duplicate_board_ids_naming_both_lines() {
        refused(
            &edit(14, "  - board_id: b1"),
            14,
            &["board b1: board_id: duplicate board id; first defined at line 7"],
        );
    }

    #[test]
    fn rejects_two_boards_on_one_outlet() {
        refused(
            &edit(19, "    pdu_outlet: 1"),
            19,
            &["board b2: pdu_outlet: outlet 1 of pdu-1 is already used by board b1 (line 12)"],
        );
    }

    #[test]
    fn rejects_two_boards_on_one_console() {
        refused(
            &edit(16, "    board_ip: 10.0.0.1"),
            16,
            &["board b2: board_ip: 10.0.0.1:23 is already the console of board b1 (line 9)"],
        );
    }

    #[test]
    fn rejects_bad_addresses() {
        refused(
            &edit(16, "    board_ip: 10.1.1.999"),
            16,
            &["board b2: board_ip: `10.1.1.999` is not a valid IPv4 address"],
        );
        refused(
            &edit(16, "    board_ip: 10.1.1"),
            16,
            &["not a valid IPv4 address"],
        );
        refused(
            &edit(16, "    board_ip: bad_host.lab"),
            16,
            &["board_ip: `bad_host.lab` is neither an IP address nor a valid DNS hostname"],
        );
        refused(
            &edit(16, "    board_ip: -x.lab"),
            16,
            &["valid DNS hostname"],
        );
        refused(
            &edit(16, "    board_ip: fe80::1::2"),
            16,
            &["not a valid IPv6 address"],
        );
    }

    #[test]
    fn accepts_hostnames_and_ipv6() {
        let lab = parse(&edit(16, "    board_ip: fe80::2")).unwrap();
        assert_eq!(lab.boards[1].address(), "[fe80::2]:23");
        let lab = parse(&edit(16, "    board_ip: console-1.lab.local")).unwrap();
        assert_eq!(lab.boards[1].address(), "console-1.lab.local:23");
    }

    #[test]
    fn rejects_bad_telnet_ports() {
        for port in ["0", "65536", "-1", "telnet"] {
            refused(
                &edit(17, &format!("    telnet_port: {port}")),
                17,
                &["board b2: telnet_port:", port, "from 1 to 65535"],
            );
        }
    }

    #[test]
    fn rejects_an_undefined_pdu_host() {
        refused(
            &edit(18, "    pdu_host: pdu-9"),
            18,
            &["board b2: pdu_host: PDU `pdu-9` is not defined in `pdus:` (defined: pdu-1)"],
        );
        let without_pdus = edit(1, "pdus: {}").replace("  pdu-1:\n    driver: command\n", "");
        let without_pdus = without_pdus.replace(
            "    on: relay {outlet} on\n    off: relay {outlet} off\n",
            "",
        );
        refused(
            &without_pdus,
            7,
            &["board b1: pdu_host:", "no PDUs are defined"],
        );
    }

    #[test]
    fn rejects_an_outlet_without_a_host_and_back() {
        refused(&edit(18, ""), 18, &["board b2: pdu_host: missing"]);
        refused(&edit(19, ""), 18, &["board b2: pdu_outlet: missing"]);
    }

    #[test]
    fn rejects_outlet_zero() {
        refused(
            &edit(19, "    pdu_outlet: 0"),
            19,
            &["board b2: pdu_outlet: `0` is not a whole number from 1"],
        );
    }

    #[test]
    fn rejects_an_unset_variable() {
        let text = edit(
            20,
            "    lab_location: here\n    telnet_username: admin\n    \
             telnet_password: x${NOPE_PASSWORD}",
        );
        let message = refused(
            &text,
            22,
            &["board b2: telnet_password: environment variable NOPE_PASSWORD is not set"],
        );
        assert!(!message.contains("x$"), "{message}");
        refused(
            &edit(
                20,
                "    lab_location: here\n    telnet_username: ${NOPE_USER}",
            ),
            21,
            &["board b2: telnet_username: environment variable NOPE_USER is not set"],
        );
    }

    #[test]
    fn rejects_malformed_variables_without_showing_the_value() {
        for value in [
            "${",
            "hidden${}",
            "hidden${1X}",
            "hidden${A B}",
            "hidden${OPEN",
        ] {
            let text = edit(
                20,
                &format!("    lab_location: here\n    telnet_password: '{value}'"),
            );
            let message = refused(&text, 21, &["board b2: telnet_password: malformed ${...}"]);
            assert!(!message.contains("hidden"), "{message}");
        }
    }

    #[test]
    fn expands_variables_and_escapes() {
        let lookup = |name: &str| (name == "PW").then(|| "secret".to_owned());
        let expanded = |value| expand(value, &lookup).ok();
        assert_eq!(expanded("a${PW}b").as_deref(), Some("asecretb"));
        assert_eq!(expanded("pa$$word").as_deref(), Some("pa$$word"));
        assert_eq!(expanded("$${PW}").as_deref(), Some("${PW}"));
        assert_eq!(expanded("pa$word$").as_deref(), Some("pa$word$"));
        assert_eq!(expanded("ü${PW}").as_deref(), Some("üsecret"));
        assert!(matches!(
            expand("ab${X", &lookup),
            Err(Expansion::Malformed(3))
        ));
        assert!(
            matches!(expand("${NOPE}", &lookup), Err(Expansion::Unset(name)) if name == "NOPE")
        );
    }

    #[test]
    fn secrets_never_appear_in_errors_or_debug() {
        let with_password = |password: &str| {
            edit(
                20,
                &format!("    lab_location: here\n    telnet_password: {password}"),
            )
        };
        let lab = parse(&with_password("hunter2-secret")).unwrap();
        assert!(!format!("{lab:?}").contains("hunter2"));
        assert_eq!(
            lab.boards[1].telnet_password.as_ref().map(Secret::expose),
            Some("hunter2-secret")
        );

        let message = refused(
            &with_password("[hunter2-secret]"),
            21,
            &["board b2: telnet_password:"],
        );
        assert!(!message.contains("hunter2"), "{message}");
        let message = refused(&with_password("\"hunter2-secret"), 21, &[]);
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn rejects_empty_names() {
        refused(
            &edit(14, "  - board_id: \"\""),
            14,
            &["board #2: board_id: is empty"],
        );
        refused(
            &edit(15, "    soc_family: ''"),
            15,
            &["board b2: soc_family: is empty"],
        );
        refused(
            &edit(20, "    lab_location: ' '"),
            20,
            &["board b2: lab_location: is empty"],
        );
    }

    #[test]
    fn rejects_board_ids_that_are_not_simple_names() {
        for id in ["b 2", "b/2", "..", "-b2", "b2!"] {
            refused(
                &edit(14, &format!("  - board_id: '{id}'")),
                14,
                &["board_id:", "is not a simple name"],
            );
        }
    }

    #[test]
    fn rejects_a_family_that_is_also_a_board_id() {
        refused(
            &edit(15, "    soc_family: b1"),
            15,
            &["board b2: soc_family: `b1` is also the id of board b1 (line 7)"],
        );
    }

    #[test]
    fn rejects_an_empty_or_missing_board_list() {
        refused("boards: []\n", 1, &["boards: the list is empty"]);
        for text in ["", "# nothing yet\n"] {
            let message = parse(text).unwrap_err().to_string();
            assert_eq!(
                message,
                "boards.yaml: boards: the file is empty; it needs a `boards:` list"
            );
        }
        let message = parse("pdus: {}\n").unwrap_err().to_string();
        assert_eq!(
            message,
            "boards.yaml: boards: missing; the lab needs a `boards:` list"
        );
    }

    #[test]
    fn rejects_an_unknown_driver_listing_the_known_ones() {
        refused(
            &edit(3, "    driver: snmp"),
            3,
            &[
                "PDU pdu-1: driver: unknown driver `snmp`; known drivers: http, pdudaemon, \
                 apc-snmp, command",
            ],
        );
        refused(
            &edit(3, ""),
            3,
            &["PDU pdu-1: driver: missing; one of: http"],
        );
    }

    #[test]
    fn rejects_a_switching_template_without_the_outlet() {
        refused(
            &edit(4, "    on: relay on"),
            4,
            &["PDU pdu-1: on: has no {outlet} placeholder", "2 outlets"],
        );
        // One board on the PDU: nothing to tell apart.
        let one_board =
            edit(4, "    on: relay on").replace("    pdu_host: pdu-1\n    pdu_outlet: 2\n", "");
        assert!(parse(&one_board).is_ok());
    }

    #[test]
    fn type_errors_name_the_board_and_field() {
        refused(
            &edit(17, "    telnet_port: [23]"),
            17,
            &["board b2: telnet_port:"],
        );
        refused(
            &edit(14, "  - board_id: b2\n    board_id: b3"),
            15,
            &["board b2: board_id: given twice"],
        );
        refused(&edit(4, "    on: {relay: on}"), 4, &["PDU pdu-1: on:"]);
        refused(
            "boards:\n  - just a string\n",
            2,
            &["board #1: expected mapping"],
        );
    }

    /// The PDU `p.lab` with `fields` (one `key: value` a line), powering board b1 on outlet 1.
    fn pdu(fields: &[&str]) -> Result<PduConfig, LabError> {
        let mut text = "pdus:\n  p.lab:\n".to_owned();
        for field in fields {
            text += &format!("    {field}\n");
        }
        text += "boards:\n  - board_id: b1\n    soc_family: f\n    board_ip: 10.0.0.1\n    \
                 telnet_port: 23\n    pdu_host: p.lab\n    pdu_outlet: 1\n    lab_location: here\n";
        let env = |name: &str| (name == "PDU_PW").then(|| "pdu-secret".to_owned());
        let mut lab = Lab::parse_with_env(&text, Path::new("boards.yaml"), &env)?;
        Ok(lab.pdus.remove("p.lab").unwrap())
    }

    #[test]
    fn reads_every_driver() {
        let http = pdu(&[
            "driver: http",
            "on: https://p/api?o={outlet}&a=on",
            "off: https://p/api?o={outlet}&a=off",
            "method: get",
            "username: u",
            "password: ${PDU_PW}",
            "expect_status: 204",
            "retries: 0",
            "cycle_delay_s: 0.5",
            "timeout_s: 5",
        ]);
        let Ok(PduConfig::Http(http)) = http else {
            panic!("{http:?}");
        };
        assert_eq!(http.off, "https://p/api?o={outlet}&a=off");
        assert_eq!((http.cycle, http.status), (None, None));
        assert_eq!((http.method, http.expect_status), (HttpMethod::Get, 204));
        assert_eq!(
            http.password.as_ref().map(Secret::expose),
            Some("pdu-secret")
        );
        let policy = PduPolicy {
            retries: 0,
            cycle_delay: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
        };
        assert_eq!(http.policy, policy);

        let http = pdu(&[
            "driver: http",
            "base_url: http://[fd00::1]:8080/",
            "status: http://p/all",
        ]);
        let Ok(PduConfig::Http(http)) = http else {
            panic!("{http:?}");
        };
        let cycle = "http://[fd00::1]:8080/outlets/{outlet}/cycle";
        assert_eq!(http.cycle.as_deref(), Some(cycle));
        assert_eq!(http.status.as_deref(), Some("http://p/all"));

        let daemon = pdu(&[
            "driver: pdudaemon",
            "url: http://localhost:16421",
            "delay_s: 5",
        ]);
        let Ok(PduConfig::Pdudaemon(daemon)) = daemon else {
            panic!("{daemon:?}");
        };
        assert_eq!(daemon.hostname, "p.lab");
        assert_eq!(daemon.delay_s, Some(5));

        let apc = pdu(&[
            "driver: apc-snmp",
            "host: 10.0.9.9",
            "port: 1161",
            "community: ${PDU_PW}",
            "version: 1",
            "mib: spdu",
        ]);
        let Ok(PduConfig::ApcSnmp(apc)) = apc else {
            panic!("{apc:?}");
        };
        assert_eq!((apc.host.as_str(), apc.port), ("10.0.9.9", 1161));
        assert_eq!((apc.version, apc.mib), (SnmpVersion::V1, ApcMib::SPdu));
        assert_eq!(apc.community.expose(), "pdu-secret");

        let command = pdu(&[
            "driver: command",
            "on: 'x on'",
            "off: 'x off'",
            "cycle: x cycle",
            "status: x status",
        ]);
        let Ok(PduConfig::Command(command)) = command else {
            panic!("{command:?}");
        };
        assert_eq!(command.cycle.as_deref(), Some("x cycle"));
        assert_eq!(command.status.as_deref(), Some("x status"));
    }

    #[test]
    fn rejects_bad_driver_fields() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["driver: http", "off: http://p/off"],
                "PDU p.lab: on: required field is missing",
            ),
            (
                &["driver: http", "base_url: ftp://p"],
                "base_url: must start with http://",
            ),
            (
                &["driver: http", "base_url: http://u:pw@p"],
                "base_url: must not carry credentials",
            ),
            (
                &["driver: http", "base_url: http://p:0"],
                "base_url: port `0` is not a number",
            ),
            (
                &["driver: http", "base_url: http://p", "on: http://p/{x}"],
                "on: unknown placeholder",
            ),
            (
                &["driver: http", "base_url: http://p", "password: x"],
                "password: needs a `username`",
            ),
            (
                &["driver: http", "base_url: http://p", "method: FETCH"],
                "`FETCH` is not one of: GET",
            ),
            (
                &["driver: http", "base_url: http://p", "hostname: x"],
                "not a field of the http driver",
            ),
            (
                &["driver: pdudaemon"],
                "PDU p.lab: url: required field is missing",
            ),
            (
                &["driver: pdudaemon", "url: http://::1:16421"],
                "url: an IPv6 address in a URL goes",
            ),
            (
                &["driver: apc-snmp", "mib: xPDU"],
                "mib: `xPDU` is not one of: sPDU, rPDU, rPDU2",
            ),
            (
                &["driver: apc-snmp", "version: 3"],
                "version: `3` is not one of: 1, 2c",
            ),
            (
                &["driver: apc-snmp", "community: ${NOPE}"],
                "environment variable NOPE is not set",
            ),
            (
                &["driver: apc-snmp", "retries: 11"],
                "retries: `11` is not a whole number from 0 to",
            ),
            (
                &["driver: command", "on: a", "off: b", "cycle_delay_s: -1"],
                "`-1` is not a number of",
            ),
            (
                &["driver: command", "on: a", "off: b", "timeout_s: .nan"],
                "timeout_s: `.nan` is not",
            ),
            (
                &["driver: command", "on: ''", "off: b"],
                "PDU p.lab: on: is empty",
            ),
        ];
        for (fields, expected) in cases {
            let Err(error) = pdu(fields) else {
                panic!("{fields:?} accepted");
            };
            let shown = error.to_string();
            assert!(shown.starts_with("boards.yaml:"), "{shown}");
            assert!(shown.contains(expected), "{shown:?} lacks {expected:?}");
        }
    }

    #[test]
    fn load_reports_an_unreadable_file() {
        let missing = Path::new("/nonexistent/boards.yaml");
        let message = Lab::load(missing).unwrap_err().to_string();
        assert!(
            message.starts_with("/nonexistent/boards.yaml: cannot read the lab file:"),
            "{message}"
        );
    }

    /// Chunks that make random text look like YAML, to reach deeper into the parser.
    fn yamlish() -> impl Strategy<Value = String> {
        let chunks = [
            "boards:",
            "pdus:",
            "\n",
            "  ",
            "- ",
            ": ",
            "board_id",
            "pdu_host",
            "telnet_port",
            "driver",
            "http",
            "[",
            "]",
            "{",
            "}",
            "'",
            "\"",
            "${",
            "$${",
            "}",
            "#",
            "&a ",
            "*a",
            "<<: ",
            "10.1.1.1",
            "0",
            "-1",
            "99999999999999999999",
            "~",
            "!!binary ",
            ",",
            "ü",
        ];
        prop::collection::vec(prop::sample::select(chunks.to_vec()), 0..80)
            .prop_map(|chunks| chunks.concat())
    }

    proptest! {
        #[test]
        fn random_text_never_panics(text in "\\PC*") {
            let _ = parse(&text);
        }

        #[test]
        fn yamlish_text_never_panics(text in yamlish()) {
            let _ = parse(&text);
        }

        /// The example, cut and spliced anywhere, is refused or accepted without a panic and
        /// without showing a password.
        #[test]
        fn mangled_example_never_shows_a_secret(
            cut in 0..EXAMPLE.len(),
            len in 0..40usize,
            insert in yamlish(),
        ) {
            let chars: Vec<char> = EXAMPLE.chars().collect();
            let cut = cut.min(chars.len());
            let end = (cut + len).min(chars.len());
            let head: String = chars[..cut].iter().collect();
            let tail: String = chars[end..].iter().collect();
            let text = format!("{head}{insert}{tail}");
            let leaky = |_: &str| Some("s3cret-value".to_owned());
            let shown = match Lab::parse_with_env(&text, Path::new("boards.yaml"), &leaky) {
                Ok(lab) => format!("{lab:?}"),
                Err(e) => format!("{e} {e:?}"),
            };
            prop_assert!(!shown.contains("s3cret"), "{}", shown);
        }
    }
}
