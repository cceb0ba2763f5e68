//! The checks of boards.yaml beyond one field: boards whole, what they must not share, PDUs.
//!
//! Boards must not share an id, an outlet or a console, and an id must not also be a family.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::net::IpAddr;
use std::path::Path;

use serde_saphyr::{Location, Spanned};

use super::fields::{PduFields, Scope, check_name, line_of, located, position, shown};
use super::load::{RawBoard, RawLab, RawPdu, Text};
use super::{Board, Lab, LabError, LabItem, Secret};
use crate::power::PduConfig;

pub(super) struct Loader<'a> {
    pub(super) file: &'a Path,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

/// The first board that used an id, outlet, console or family: its id and line.
type Claims<K> = HashMap<K, (String, u32)>;

impl Loader<'_> {
    pub(super) fn lab(&self, raw: &RawLab) -> Result<Lab, LabError> {
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
            .map(|v| {
                s.credential("telnet_password", v, self.env)
                    .map(Secret::new)
            })
            .transpose()?;
        let login_prompt = b
            .login_prompt
            .as_ref()
            .map(|v| s.text("login_prompt", v))
            .transpose()?
            .unwrap_or_else(|| crate::api::DEFAULT_LOGIN_PROMPT.to_owned());
        let password_prompt = b
            .password_prompt
            .as_ref()
            .map(|v| s.text("password_prompt", v))
            .transpose()?
            .unwrap_or_else(|| crate::api::DEFAULT_PASSWORD_PROMPT.to_owned());

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
        PduConfig::from_lab(&PduFields::new(
            scope,
            &name.value,
            raw,
            self.env,
            outlets_in_use,
        ))
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

#[cfg(test)]
mod tests {
    use super::super::samples::{edit, refused};

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
    fn rejects_a_family_that_is_also_a_board_id() {
        refused(
            &edit(15, "    soc_family: b1"),
            15,
            &["board b2: soc_family: `b1` is also the id of board b1 (line 7)"],
        );
    }
}
