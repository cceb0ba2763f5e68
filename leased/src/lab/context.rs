//! Which board or PDU, and which field, a serde-saphyr error in boards.yaml is in.
//!
//! Read only after the strict parse failed, so that the error names them as the checks do.

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use super::fields::{Scope, position, printable};
use super::load::Text;
use super::{LabError, LabItem};
use socv_api::located::{YamlError, innermost, key_on_line};

/// Fields whose value is a credential: a YAML error inside one is reported without its text.
const SECRET_FIELDS: &[&str] = &["telnet_password", "password", "community"];

/// Turns a serde-saphyr error into a [`LabError`] that names the board or PDU and the field.
pub(super) fn yaml_error(file: &Path, text: &str, error: &serde_saphyr::Error) -> LabError {
    let error = innermost(error);
    let at = error.location().unwrap_or(Location::UNKNOWN);
    let (item, in_field) = if at.line() > 0 {
        context_at(text, at)
    } else {
        (None, None)
    };
    let found = YamlError::from_serde(file, error);
    let (mut field, message) = match error {
        serde_saphyr::Error::DuplicateMappingKey { key: Some(key), .. } => {
            (Some(key.clone()), "given twice".to_owned())
        }
        // An unknown field is named by serde-saphyr; any other error is in the field found.
        _ => (found.field.or(in_field), found.message),
    };
    if item.is_none() && field.is_none() {
        // Invalid YAML cannot be read for context; the key on the error's line is a fair guess.
        field = key_on_line(text, at.line()).map(str::to_owned);
    }
    let secret = field.as_deref().is_some_and(|f| SECRET_FIELDS.contains(&f));
    let message = if secret {
        "invalid value (not shown: it is a credential)".to_owned()
    } else {
        printable(&message).into_owned()
    };
    Scope { file, item }.err(at, field.as_deref(), message)
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
    use super::super::samples::{LAB, edit, refused};

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
}
