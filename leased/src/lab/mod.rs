//! The lab description (boards.yaml): boards, their telnet consoles and their PDUs.
//!
//! It is parsed and validated on load so that a bad file is refused with file, line, item and
//! field.
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

mod checks;
mod context;
pub(crate) mod fields;
mod load;
#[cfg(test)]
pub(crate) mod samples;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use crate::power::PduConfig;
use fields::printable;
use socv_api::located::YamlError;

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
    /// The console as `host:port` (an IPv6 address in brackets), ready to connect to.
    pub fn address(&self) -> String {
        if self.board_ip.contains(':') {
            format!("[{}]:{}", self.board_ip, self.telnet_port)
        } else {
            format!("{}:{}", self.board_ip, self.telnet_port)
        }
    }
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

impl LabError {
    /// This error as a [`YamlError`], its item and field as they are shown.
    pub fn located(&self) -> YamlError {
        YamlError {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            what: self.item.as_ref().map(LabItem::to_string),
            field: self.field.as_deref().map(|f| printable(f).into_owned()),
            message: self.message.clone(),
        }
    }
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.located().fmt(f)
    }
}

impl std::error::Error for LabError {}

#[cfg(test)]
mod tests {
    use super::samples::{EXAMPLE, LAB, edit, line_of_text, parse, refused};
    use super::*;
    use crate::power::PduPolicy;
    use crate::power::apc_snmp::{ApcMib, SnmpVersion};
    use crate::power::http::HttpMethod;
    use proptest::prelude::*;
    use std::path::Path;

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
