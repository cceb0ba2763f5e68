//! Lab files for the unit tests, and the checks that one is refused where and why it should be.
//!
//! The example, a small lab to break one line of, and one PDU on its own.

use std::path::Path;

use super::{Lab, LabError};
use crate::power::PduConfig;

pub(crate) const EXAMPLE: &str = include_str!("../../../boards.yaml");

/// A small valid lab; each test breaks one line of it (see `edit`).
pub(crate) const LAB: &str = "\
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
pub(crate) fn env(name: &str) -> Option<String> {
    let number = name.strip_prefix("BOARD_B")?.strip_suffix("_PASSWORD")?;
    Some(format!("pw-{number}"))
}

pub(crate) fn parse(text: &str) -> Result<Lab, LabError> {
    Lab::parse_with_env(text, Path::new("boards.yaml"), &env)
}

/// LAB with its line `number` (from 1) replaced by `new`: several lines, or none if empty.
pub(crate) fn edit(number: usize, new: &str) -> String {
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
pub(crate) fn refused(text: &str, line: u32, needles: &[&str]) -> String {
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

pub(crate) fn line_of_text(text: &str, needle: &str) -> u32 {
    let index = text.lines().position(|l| l.contains(needle)).unwrap();
    u32::try_from(index + 1).unwrap()
}

/// The PDU `p.lab` with `fields` (one `key: value` a line), powering board b1 on outlet 1.
pub(crate) fn pdu(fields: &[&str]) -> Result<PduConfig, LabError> {
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

/// Asserts for each case that the PDU `p.lab` with its fields (see [`pdu`]) is refused with a
/// message containing its text.
#[track_caller]
pub(crate) fn pdu_refused(cases: &[(&[&str], &str)]) {
    for (fields, expected) in cases {
        let Err(error) = pdu(fields) else {
            panic!("{fields:?} accepted");
        };
        let shown = error.to_string();
        assert!(shown.starts_with("boards.yaml:"), "{shown}");
        assert!(shown.contains(expected), "{shown:?} lacks {expected:?}");
    }
}
