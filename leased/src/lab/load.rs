//! Reading boards.yaml: the file read, its YAML deserialized as written, `${VAR}` expanded.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::checks::Loader;
use super::context::yaml_error;
use super::fields::Scope;
use super::{Lab, LabError};

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
}

/// A scalar with where it was written. Numbers are read as text too and checked here, so an
/// error can name the field and the allowed range instead of serde's "invalid u16".
pub(crate) type Text = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLab {
    pub(super) pdus: Option<HashMap<Text, Spanned<RawPdu>>>,
    pub(super) boards: Option<Spanned<Vec<Spanned<RawBoard>>>>,
}

/// Every field is optional for serde so that a missing one is reported with the board's id.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBoard {
    pub(super) board_id: Option<Text>,
    pub(super) soc_family: Option<Text>,
    pub(super) soc_revision: Option<Text>,
    pub(super) board_ip: Option<Text>,
    pub(super) telnet_port: Option<Text>,
    pub(super) pdu_host: Option<Text>,
    pub(super) pdu_outlet: Option<Text>,
    pub(super) lab_location: Option<Text>,
    pub(super) telnet_username: Option<Text>,
    pub(super) telnet_password: Option<Text>,
    pub(super) login_prompt: Option<Text>,
    pub(super) password_prompt: Option<Text>,
}

/// A PDU as a plain map of fields rather than a `#[serde(tag = "driver")]` enum: serde buffers
/// internally tagged enums, and `Spanned` loses every location inside them. Each driver takes
/// its own fields from the map (see `power::Driver`); a null value counts as absent.
pub(super) type RawPdu = HashMap<Text, Option<Text>>;

pub(super) enum Expansion {
    Unset(String),
    /// At this 1-based character of the value.
    Malformed(usize),
}

/// Replaces each `${NAME}` by `env(NAME)`; `$${` is a literal `${`, any other `$` is itself.
pub(super) fn expand(
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Expansion> {
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

#[cfg(test)]
mod tests {
    use super::super::samples::{edit, parse, refused};
    use super::*;

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
    fn load_reports_an_unreadable_file() {
        let missing = Path::new("/nonexistent/boards.yaml");
        let message = Lab::load(missing).unwrap_err().to_string();
        assert!(
            message.starts_with("/nonexistent/boards.yaml: cannot read the lab file:"),
            "{message}"
        );
    }
}
