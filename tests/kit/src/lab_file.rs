//! A lab file (boards.yaml) built in code: the boards and the PDUs a test needs, written as the
//! YAML leased loads. Tests that check how a malformed or unusual file is reported keep their
//! literal text instead.
//!
//! ```
//! use socv_testkit::lab_file::{Board, LabFile, Pdu};
//!
//! let yaml = LabFile::new()
//!     .pdu(Pdu::new("pdu-1", "http").field("base_url", "http://127.0.0.1:9/pdu").field("retries", 1))
//!     .board(Board::new("a-1", "socA", 2301).pdu("pdu-1", 1).telnet_username("root"))
//!     .to_yaml();
//! assert!(yaml.contains("  - board_id: a-1\n    soc_family: socA\n"));
//! assert!(yaml.contains("    retries: 1\n"));
//! ```

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

/// The whole file: `pdus:` (when there are any), then `boards:` in the order they were added.
#[derive(Debug, Clone, Default)]
pub struct LabFile {
    pdus: Vec<Pdu>,
    boards: Vec<Board>,
}

impl LabFile {
    pub fn new() -> LabFile {
        LabFile::default()
    }

    /// `n` boards of `family` on 127.0.0.1 (consoles nobody listens on unless the test starts
    /// them): `<family>-001`, `<family>-002`, … with telnet ports `first_port + 1`, `+ 2`, …,
    /// each made by `each` from its default.
    pub fn family(
        mut self,
        family: &str,
        n: usize,
        first_port: u16,
        each: impl Fn(Board) -> Board,
    ) -> LabFile {
        for i in 1..=n {
            let port = u16::try_from(i)
                .ok()
                .and_then(|i| first_port.checked_add(i))
                .unwrap_or_else(|| panic!("telnet port {first_port} + {i} is beyond 65535"));
            self.boards
                .push(each(Board::new(&format!("{family}-{i:03}"), family, port)));
        }
        self
    }

    pub fn board(mut self, board: Board) -> LabFile {
        self.boards.push(board);
        self
    }

    pub fn boards(mut self, boards: impl IntoIterator<Item = Board>) -> LabFile {
        self.boards.extend(boards);
        self
    }

    pub fn pdu(mut self, pdu: Pdu) -> LabFile {
        self.pdus.push(pdu);
        self
    }

    pub fn pdus(mut self, pdus: impl IntoIterator<Item = Pdu>) -> LabFile {
        self.pdus.extend(pdus);
        self
    }

    /// The YAML text.
    pub fn to_yaml(&self) -> String {
        let mut yaml = String::new();
        if !self.pdus.is_empty() {
            yaml.push_str("pdus:\n");
            for pdu in &self.pdus {
                let _ = writeln!(yaml, "  {}:", key(&pdu.name));
                for (field, value) in &pdu.fields {
                    let _ = writeln!(yaml, "    {}: {value}", key(field));
                }
            }
        }
        yaml.push_str("boards:\n");
        for board in &self.boards {
            for (i, (field, value)) in board.fields.iter().enumerate() {
                let lead = if i == 0 { "  - " } else { "    " };
                let _ = writeln!(yaml, "{lead}{}: {value}", key(field));
            }
        }
        yaml
    }

    /// Writes the file to `path` and answers `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        std::fs::write(path, self.to_yaml())
            .unwrap_or_else(|e| panic!("writing the lab file {}: {e}", path.display()));
        path.to_path_buf()
    }
}

/// One entry of `boards:`. Its fields are written in the order leased documents them, then
/// whatever [`Board::field`] adds.
#[derive(Debug, Clone)]
pub struct Board {
    fields: Vec<(String, Scalar)>,
}

impl Board {
    /// Board `board_id` of `soc_family` with its console on 127.0.0.1:`telnet_port`, at
    /// `Lab Site A`, without a PDU or credentials.
    pub fn new(board_id: &str, soc_family: &str, telnet_port: u16) -> Board {
        Board { fields: Vec::new() }
            .set("board_id", board_id)
            .set("soc_family", soc_family)
            .set("board_ip", "127.0.0.1")
            .set("telnet_port", telnet_port)
            .set("lab_location", "Lab Site A")
    }

    pub fn board_ip(self, ip: &str) -> Board {
        self.set("board_ip", ip)
    }

    pub fn lab_location(self, location: &str) -> Board {
        self.set("lab_location", location)
    }

    pub fn soc_revision(self, revision: &str) -> Board {
        self.set("soc_revision", revision)
    }

    /// Powered by outlet `outlet` of the PDU `pdu_host` (a key of `pdus:`).
    pub fn pdu(self, pdu_host: &str, outlet: u32) -> Board {
        self.set("pdu_host", pdu_host).set("pdu_outlet", outlet)
    }

    pub fn telnet_username(self, user: &str) -> Board {
        self.set("telnet_username", user)
    }

    pub fn telnet_password(self, password: &str) -> Board {
        self.set("telnet_password", password)
    }

    pub fn login_prompt(self, prompt: &str) -> Board {
        self.set("login_prompt", prompt)
    }

    pub fn password_prompt(self, prompt: &str) -> Board {
        self.set("password_prompt", prompt)
    }

    /// Any other field, as written (a field leased does not know tests its error).
    pub fn field(self, field: &str, value: impl Into<Scalar>) -> Board {
        self.set(field, value)
    }

    /// Sets `field`, in its place when it is there already, else at the end.
    fn set(mut self, field: &str, value: impl Into<Scalar>) -> Board {
        set(&mut self.fields, field, value.into());
        self
    }
}

/// One entry of `pdus:`: its name, `driver`, and the fields of that driver in the order given.
#[derive(Debug, Clone)]
pub struct Pdu {
    name: String,
    fields: Vec<(String, Scalar)>,
}

impl Pdu {
    /// PDU `name` of `driver` (`http`, `pdudaemon`, `apc-snmp`, `command`).
    pub fn new(name: &str, driver: &str) -> Pdu {
        Pdu {
            name: name.to_string(),
            fields: vec![("driver".to_string(), driver.into())],
        }
    }

    /// A field of the driver (`base_url`, `url`, `on`, `host`, …) or of every driver
    /// (`retries`, `cycle_delay_s`, `timeout_s`).
    pub fn field(mut self, field: &str, value: impl Into<Scalar>) -> Pdu {
        set(&mut self.fields, field, value.into());
        self
    }

    /// The PDU's name, its key under `pdus:`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn set(fields: &mut Vec<(String, Scalar)>, field: &str, value: Scalar) {
    match fields.iter_mut().find(|(f, _)| f == field) {
        Some((_, v)) => *v = value,
        None => fields.push((field.to_string(), value)),
    }
}

/// A field's value: a number written as one, text quoted when YAML would read it otherwise.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Text(t) => f.write_str(&text(t)),
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl From<&str> for Scalar {
    fn from(t: &str) -> Scalar {
        Scalar::Text(t.to_string())
    }
}

impl From<String> for Scalar {
    fn from(t: String) -> Scalar {
        Scalar::Text(t)
    }
}

impl From<&String> for Scalar {
    fn from(t: &String) -> Scalar {
        Scalar::Text(t.clone())
    }
}

impl From<&Path> for Scalar {
    fn from(p: &Path) -> Scalar {
        Scalar::Text(p.display().to_string())
    }
}

macro_rules! int_scalar {
    ($($t:ty),*) => {$(
        impl From<$t> for Scalar {
            fn from(n: $t) -> Scalar {
                Scalar::Int(i64::from(n))
            }
        }
    )*};
}
int_scalar!(u8, u16, u32, i32, i64);

impl From<f64> for Scalar {
    fn from(x: f64) -> Scalar {
        Scalar::Float(x)
    }
}

impl From<bool> for Scalar {
    fn from(b: bool) -> Scalar {
        Scalar::Bool(b)
    }
}

/// A mapping key: field and PDU names are written plain, as leased's documentation does.
fn key(name: &str) -> String {
    if is_plain(name) {
        name.to_string()
    } else {
        quoted(name)
    }
}

/// Text as YAML reads it back: plain where that is unambiguous, else double-quoted.
fn text(t: &str) -> String {
    if is_plain(t) && !looks_typed(t) {
        t.to_string()
    } else {
        quoted(t)
    }
}

/// Text of characters that mean nothing special inside a plain scalar: names, addresses,
/// `host:port`, URLs, paths and words between single spaces.
fn is_plain(t: &str) -> bool {
    let Some(first) = t.chars().next() else {
        return false;
    };
    (first.is_ascii_alphanumeric() || first == '/')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@+ ".contains(c))
        && !t.ends_with([':', ' '])
        && !t.contains(": ")
        && !t.contains("  ")
}

/// Text that YAML 1.1 or 1.2 would read as a number, a boolean or null.
fn looks_typed(t: &str) -> bool {
    let lower = t.to_ascii_lowercase();
    let digits = lower.replace('_', "");
    matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "y" | "n" | "on" | "off" | "null" | "~"
    ) || digits.parse::<f64>().is_ok()
        // YAML 1.1's base 60 (`1:30`), hexadecimal and octal.
        || digits.contains(':') && digits.chars().all(|c| c.is_ascii_digit() || c == ':')
        || digits.starts_with("0x")
        || digits.starts_with("0o")
}

/// A double-quoted YAML scalar (the JSON escapes, which YAML shares).
fn quoted(t: &str) -> String {
    let mut out = String::with_capacity(t.len() + 2);
    out.push('"');
    for c in t.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_and_pdus_are_written_in_order() {
        let yaml = LabFile::new()
            .pdu(
                Pdu::new("pdu-1", "http")
                    .field("base_url", "http://127.0.0.1:9/pdu")
                    .field("retries", 1u32),
            )
            .board(Board::new("a-1", "socA", 2301).pdu("pdu-1", 1))
            .board(
                Board::new("b-1", "socB", 2303)
                    .lab_location("Lab Site B")
                    .telnet_username("admin")
                    .telnet_password("hunter2"),
            )
            .to_yaml();
        assert_eq!(
            yaml,
            "pdus:\n  pdu-1:\n    driver: http\n    base_url: http://127.0.0.1:9/pdu\n    \
             retries: 1\nboards:\n  - board_id: a-1\n    soc_family: socA\n    \
             board_ip: 127.0.0.1\n    telnet_port: 2301\n    lab_location: Lab Site A\n    \
             pdu_host: pdu-1\n    pdu_outlet: 1\n  - board_id: b-1\n    soc_family: socB\n    \
             board_ip: 127.0.0.1\n    telnet_port: 2303\n    lab_location: Lab Site B\n    \
             telnet_username: admin\n    telnet_password: hunter2\n"
        );
    }

    #[test]
    fn a_family_is_numbered_from_one() {
        let yaml = LabFile::new()
            .family("socA", 2, 20000, |b| b.lab_location("lab-sh"))
            .to_yaml();
        assert_eq!(
            yaml,
            "boards:\n  - board_id: socA-001\n    soc_family: socA\n    board_ip: 127.0.0.1\n    \
             telnet_port: 20001\n    lab_location: lab-sh\n  - board_id: socA-002\n    \
             soc_family: socA\n    board_ip: 127.0.0.1\n    telnet_port: 20002\n    \
             lab_location: lab-sh\n"
        );
    }

    #[test]
    fn text_that_yaml_would_misread_is_quoted() {
        for (t, written) in [
            ("hunter2", "hunter2"),
            ("Lab Site A", "Lab Site A"),
            (" x", "\" x\""),
            ("a: b", "\"a: b\""),
            ("on", "\"on\""),
            ("1234", "\"1234\""),
            ("0.5", "\"0.5\""),
            ("1:30", "\"1:30\""),
            ("127.0.0.1", "127.0.0.1"),
            ("127.0.0.1:2301", "127.0.0.1:2301"),
            (
                "echo on 1 >> /tmp/x; sleep 0.3",
                "\"echo on 1 >> /tmp/x; sleep 0.3\"",
            ),
            ("pa\"s\\s", "\"pa\\\"s\\\\s\""),
            ("", "\"\""),
            ("http://127.0.0.1:9/pdu", "http://127.0.0.1:9/pdu"),
        ] {
            assert_eq!(Scalar::from(t).to_string(), written, "{t:?}");
        }
        assert_eq!(Scalar::from(0.1).to_string(), "0.1");
        assert_eq!(Scalar::from(3u32).to_string(), "3");
    }
}
