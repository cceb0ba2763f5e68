//! Errors at one place of a YAML file: `file:line:column: what: field: message`.
//!
//! Made from a span or from a serde-saphyr error; boards.yaml and socv's batch plans share them.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::{Location, MessageFormatter};

/// A problem at one place of a YAML file. Displays as
/// `boards.yaml:14:5: board soc-b-001: telnet_password: environment variable … is not set` or
/// `plan.yaml:7:13: tests[2].binary: cannot read …`; the parts that are unknown are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub file: PathBuf,
    /// 1-based; `None` when the problem is not at one place (an unreadable file).
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// What the problem is in, as people call it: `board soc-a-001`.
    pub what: Option<String>,
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl YamlError {
    /// A problem at `at`: a span's `referenced`, or [`Location::UNKNOWN`] for the whole file.
    pub fn at(file: &Path, at: Location, message: impl Into<String>) -> YamlError {
        // serde-saphyr counts from 1 and says 0 when it does not know.
        let known = at.line() > 0;
        YamlError {
            file: file.to_path_buf(),
            line: u32::try_from(at.line()).ok().filter(|_| known),
            column: u32::try_from(at.column()).ok().filter(|_| known),
            what: None,
            field: None,
            message: message.into(),
        }
    }

    /// serde-saphyr's `error` where it happened. An unknown field is named as the field, with
    /// the fields allowed there; any other error is serde-saphyr's message for people.
    pub fn from_serde(file: &Path, error: &serde_saphyr::Error) -> YamlError {
        let error = innermost(error);
        let at = error.location().unwrap_or(Location::UNKNOWN);
        match error {
            serde_saphyr::Error::SerdeUnknownField {
                field, expected, ..
            } => YamlError::at(
                file,
                at,
                format!("unknown field; expected one of: {}", expected.join(", ")),
            )
            .with_field(Some(field)),
            other => YamlError::at(
                file,
                at,
                serde_saphyr::UserMessageFormatter
                    .format_message(other)
                    .into_owned(),
            ),
        }
    }

    /// The same problem, said to be in `what` (`board soc-a-001`).
    pub fn with_what(mut self, what: Option<String>) -> YamlError {
        self.what = what;
        self
    }

    /// The same problem, said to be in `field`.
    pub fn with_field(mut self, field: Option<&str>) -> YamlError {
        self.field = field.map(str::to_owned);
        self
    }
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(what) = &self.what {
            write!(f, ": {what}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for YamlError {}

/// The error itself, under the snippet and alias wrappers that serde-saphyr puts around it.
pub fn innermost(error: &serde_saphyr::Error) -> &serde_saphyr::Error {
    match error {
        serde_saphyr::Error::WithSnippet { error, .. }
        | serde_saphyr::Error::AliasError { error, .. } => innermost(error),
        other => other,
    }
}

/// The key written on `line` (from 1) of `text`, if the line is a plain `key: value` or
/// `- key: value`: a fair guess at the field of an error in YAML too broken to read.
pub fn key_on_line(text: &str, line: u64) -> Option<&str> {
    let index = usize::try_from(line.checked_sub(1)?).ok()?;
    let content = text.lines().nth(index)?.trim_start();
    let content = content.strip_prefix("- ").unwrap_or(content);
    let key = content.split_once(':')?.0.trim();
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    plain.then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Plan {
        tests: Vec<String>,
    }

    #[test]
    fn shows_only_the_parts_it_knows() {
        let file = Path::new("plan.yaml");
        let whole_file = YamlError::at(file, Location::UNKNOWN, "cannot read it");
        assert_eq!(whole_file.to_string(), "plan.yaml: cannot read it");
        let in_item = whole_file
            .with_what(Some("board b1".to_owned()))
            .with_field(Some("board_ip"));
        assert_eq!(
            in_item.to_string(),
            "plan.yaml: board b1: board_ip: cannot read it"
        );
    }

    #[test]
    fn an_unknown_field_is_named_with_its_place() {
        let text = "tests: []\ncolour: red\n";
        let Err(error) = serde_saphyr::from_str::<Plan>(text) else {
            panic!("accepted an unknown field");
        };
        let found = YamlError::from_serde(Path::new("plan.yaml"), &error);
        assert_eq!(
            found.to_string(),
            "plan.yaml:2:1: colour: unknown field; expected one of: tests"
        );
    }

    #[test]
    fn keys_are_read_from_plain_lines_only() {
        let text = "a: 1\n  - board_ip: x\n'quoted': 2\n";
        assert_eq!(key_on_line(text, 1), Some("a"));
        assert_eq!(key_on_line(text, 2), Some("board_ip"));
        assert_eq!(key_on_line(text, 3), None);
        assert_eq!(key_on_line(text, 0), None);
        assert_eq!(key_on_line(text, 9), None);
    }
}
