//! The boards.yaml that points leased at a running sim lab: every board's console, its
//! credentials, and two PDU entries (one per driver) naming the sim's one PDU server.

use std::fmt::Write as _;

use super::{HTTP_PDU_NAME, PDUDAEMON_HOSTNAME, PDUDAEMON_PDU_NAME, SimBoard, SimLogin};

/// A YAML scalar that reads back as exactly `text`: a JSON string is a YAML double-quoted one.
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// A credential field's value: boards.yaml expands `${VAR}` there, so a literal `${` is
/// written `$${`.
fn credential(text: &str) -> String {
    quoted(&text.replace("${", "$${"))
}

/// The text of boards.yaml for `boards`, the sim's `login` and the PDU at `pdu_url`.
pub(crate) fn render(boards: &[SimBoard], login: &SimLogin, pdu_url: &str) -> String {
    let mut out = String::new();
    out.push_str(
        "# The simulated lab of `socv sim`: every board is a telnet server on this machine.\n\
         # The boards of the 1st, 3rd, ... family are on the http-driver PDU, the others on\n\
         # the pdudaemon-driver PDU; both entries name the sim's one PDU server.\n\
         # Written by socv; valid while that `socv sim` runs (its ports change every run).\n\n",
    );
    out.push_str("pdus:\n");
    let _ = writeln!(out, "  {HTTP_PDU_NAME}:");
    out.push_str("    driver: http\n");
    let _ = writeln!(out, "    base_url: {}", quoted(pdu_url));
    out.push_str("    method: POST\n");
    out.push_str("    timeout_s: 10\n");
    let _ = writeln!(out, "  {PDUDAEMON_PDU_NAME}:");
    out.push_str("    driver: pdudaemon\n");
    let _ = writeln!(out, "    url: {}", quoted(pdu_url));
    let _ = writeln!(out, "    hostname: {PDUDAEMON_HOSTNAME}");
    // A short reboot keeps tests quick; pdudaemon's own default would be 5 s.
    out.push_str("    delay_s: 1\n");
    out.push_str("    timeout_s: 10\n");
    out.push_str("\nboards:\n");
    for board in boards {
        let ip = board.address.ip();
        let ip = if ip.is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            ip.to_string()
        };
        let _ = writeln!(out, "  - board_id: {}", board.board_id);
        let _ = writeln!(out, "    soc_family: {}", board.family);
        let _ = writeln!(out, "    board_ip: {}", quoted(&ip));
        let _ = writeln!(out, "    telnet_port: {}", board.address.port());
        let _ = writeln!(out, "    pdu_host: {}", board.pdu);
        let _ = writeln!(out, "    pdu_outlet: {}", board.outlet);
        let _ = writeln!(out, "    lab_location: {}", quoted(&board.lab_location));
        let _ = writeln!(out, "    telnet_username: {}", credential(&login.username));
        if !login.password.is_empty() {
            // Literal on purpose: the sim's password guards nothing, and the file must load
            // without extra environment.
            let _ = writeln!(out, "    telnet_password: {}", credential(&login.password));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use leased::lab::Lab;
    use leased::power::PduConfig;
    use std::path::{Path, PathBuf};

    fn board(id: &str, family: &str, port: u16, outlet: u32, pdu: &str) -> SimBoard {
        SimBoard {
            board_id: id.to_owned(),
            family: family.to_owned(),
            lab_location: "Sim Site A".to_owned(),
            address: ([127, 0, 0, 1], port).into(),
            outlet,
            pdu: pdu.to_owned(),
            workdir: PathBuf::from("/tmp/x"),
        }
    }

    #[test]
    fn loads_with_both_drivers_and_odd_passwords() {
        let boards = [
            board("soca-001", "socA", 4001, 1, HTTP_PDU_NAME),
            board("socb-001", "socB", 4002, 2, PDUDAEMON_PDU_NAME),
        ];
        let login = SimLogin {
            username: "admin".to_owned(),
            password: "p@ss: \"${HOME}\" #x".to_owned(),
        };
        let text = render(&boards, &login, "http://127.0.0.1:9999");
        let lab = Lab::parse_with_env(&text, Path::new("boards.yaml"), &|_| None)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let b = lab.board("socb-001").unwrap();
        assert_eq!(b.address(), "127.0.0.1:4002");
        assert_eq!(b.telnet_username.as_deref(), Some("admin"));
        assert_eq!(
            b.telnet_password.as_ref().map(|p| p.expose()),
            Some(login.password.as_str())
        );
        let Some((PduConfig::Pdudaemon(daemon), 2)) = lab.pdu_for(b) else {
            panic!("{:?}", lab.pdu_for(b));
        };
        assert_eq!(daemon.url, "http://127.0.0.1:9999");
        assert_eq!(daemon.hostname, PDUDAEMON_HOSTNAME);
        let a = lab.board("soca-001").unwrap();
        let Some((PduConfig::Http(http), 1)) = lab.pdu_for(a) else {
            panic!("{:?}", lab.pdu_for(a));
        };
        assert_eq!(http.off, "http://127.0.0.1:9999/outlets/{outlet}/off");
        assert_eq!(
            http.status.as_deref(),
            Some("http://127.0.0.1:9999/outlets/{outlet}/status")
        );
    }

    #[test]
    fn no_password_line_without_a_password() {
        let boards = [board("soca-001", "socA", 4001, 1, HTTP_PDU_NAME)];
        let text = render(&boards, &SimLogin::default(), "http://127.0.0.1:9");
        assert!(!text.contains("telnet_password"));
        let lab = Lab::parse_with_env(&text, Path::new("b.yaml"), &|_| None).unwrap();
        assert_eq!(lab.boards[0].telnet_password, None);
    }
}
