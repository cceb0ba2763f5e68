//! The lab description (boards.yaml): boards, their consoles and PDUs, validated on load.
//!
//! STUB: being written (parsing with file/line/field errors and validation).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A secret from boards.yaml (after `${VAR}` expansion); never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    pub board_id: String,
    pub soc_family: String,
    pub soc_revision: Option<String>,
    pub board_ip: String,
    pub telnet_port: u16,
    pub pdu_host: Option<String>,
    pub pdu_outlet: Option<u32>,
    pub lab_location: String,
    pub telnet_username: Option<String>,
    pub telnet_password: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PduConfig {
    Http { base_url: String },
}

#[derive(Debug, Clone)]
pub struct Lab {
    pub source: PathBuf,
    pub boards: Vec<Board>,
    pub pdus: BTreeMap<String, PduConfig>,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct LabError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl Lab {
    pub fn load(path: &Path) -> Result<Lab, LabError> {
        let text = std::fs::read_to_string(path).map_err(|e| LabError {
            file: path.to_path_buf(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        Lab::parse(&text, path)
    }

    pub fn parse(_text: &str, path: &Path) -> Result<Lab, LabError> {
        Ok(Lab { source: path.to_path_buf(), boards: vec![], pdus: BTreeMap::new() })
    }
}
