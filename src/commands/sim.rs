//! `socv sim`: runs a simulated lab (telnet boards with a real shell, a PDU, faults) until
//! Ctrl-C, and prints where everything is.

use crate::error::{Error, Result};
use crate::output;
use crate::signals::Signals;
use crate::sim::{FamilySpec, Fault, SimConfig, SimError, SimLab, SimLogin};
use clap::Args;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(after_help = "\
Every board is a telnet server on its own free port of the listen address: it greets like
busybox telnetd, asks `login:` and `Password:`, and gives a real /bin/sh on a pseudo-terminal
in the board's own working directory. A new connection kicks the old one; a disconnect kills
the shell.

The PDU (one more port) answers:
  POST {url}/outlets/{outlet}/on|off|cycle|status     the `http` driver's default URLs
  GET  {url}/power/control/on|off|reboot?hostname=sim-pdu&port={outlet}[&delay=S]   pdudaemon
  GET  {url}/boards                                   every board's power, fault, connection
  POST {url}/boards/{id}/fault  {\"kind\": KIND, \"value\": N}   set a fault (`none` clears it)
Power off drops the board's session, kills its shell and refuses connections; power on boots
it (boot log, then the login prompt).

Fault kinds: none, drop_after_bytes=N, drop_after_secs=N, hang (until power-cycled),
slow_link=BYTES_PER_SECOND, refuse_login.

Examples:
  socv sim
  socv sim --families socA:5,socB:3 --write-boards sim-boards.yaml
  socv sim --login admin:secret --fault soca-002:slow_link=1200 --fault socb-001:hang
  leased --boards sim-boards.yaml          # in another terminal, then use socv as usual
  curl -X POST 127.0.0.1:PORT/boards/soca-001/fault -d '{\"kind\":\"drop_after_bytes\",\"value\":100}'

Exit codes:
  0  success
  1  other failure
  2  usage error (bad flag, environment variable or config file)")]
pub struct SimArgs {
    /// Board families and how many boards of each (ids like soca-001)
    #[arg(
        long,
        value_name = "FAMILY:N,...",
        value_delimiter = ',',
        default_value = "socA:3,socB:2"
    )]
    pub families: Vec<FamilySpec>,
    /// The address every board and the PDU listen on
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub listen: IpAddr,
    /// Write a boards.yaml describing this lab to FILE (for `leased --boards FILE`)
    #[arg(long, value_name = "FILE")]
    pub write_boards: Option<PathBuf>,
    /// The boards' login [default: root without a password]
    #[arg(long, value_name = "USER:PASS")]
    pub login: Option<SimLogin>,
    /// Start a board with a fault; repeatable
    #[arg(long = "fault", value_name = "BOARD:KIND[=ARG]", value_parser = parse_fault)]
    pub faults: Vec<(String, Fault)>,
    /// Time from power-on to the login prompt
    #[arg(long, value_name = "DURATION", default_value = "300ms", value_parser = crate::cli::parse_duration)]
    pub boot_delay: Duration,
    /// Keep the boards' working directories under DIR [default: a temporary directory,
    /// removed on exit]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print the boards and endpoints as one JSON document
    #[arg(long)]
    pub json: bool,
}

/// `BOARD:KIND[=ARG]`, e.g. `soca-001:drop_after_bytes=100`.
fn parse_fault(text: &str) -> std::result::Result<(String, Fault), String> {
    let (board, fault) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not BOARD:KIND[=ARG], e.g. soca-001:hang"))?;
    let fault = Fault::parse(fault).map_err(|e| e.to_string())?;
    Ok((board.trim().to_owned(), fault))
}

pub async fn run(args: SimArgs) -> Result<()> {
    let config = SimConfig {
        families: args.families,
        listen: args.listen,
        login: args.login.unwrap_or_default(),
        faults: args.faults,
        boot_delay: args.boot_delay,
        root_dir: args.dir,
        ..SimConfig::default()
    };
    // Before starting, so that a Ctrl-C during startup also stops the lab cleanly.
    let mut signals = Signals::install()?;
    let lab = SimLab::start(config).await.map_err(sim_error)?;
    if let Some(path) = &args.write_boards {
        lab.write_boards(path).map_err(sim_error)?;
    }
    if args.json {
        output::print_json(&serde_json::json!({
            "boards": lab.boards(),
            "pdu_url": lab.pdu_url(),
            "pdudaemon_hostname": crate::sim::PDUDAEMON_HOSTNAME,
            "boards_yaml": args.write_boards,
        }))?;
    } else {
        output::print(&render(&lab, args.write_boards.as_deref()))?;
    }
    eprintln!("socv sim: running; Ctrl-C stops the lab");
    let signal = signals.recv().await;
    eprintln!("socv sim: {signal}: stopping the boards");
    lab.shutdown().await;
    Ok(())
}

/// A bad family list or a fault for a board that does not exist is a usage error (exit 2).
fn sim_error(e: SimError) -> Error {
    match e {
        SimError::Families(_) | SimError::FaultForUnknownBoard { .. } => {
            Error::Usage(e.to_string())
        }
        e => Error::Sim(e),
    }
}

/// The boards table and the endpoints, for people.
fn render(lab: &SimLab, boards_yaml: Option<&std::path::Path>) -> String {
    let rows = lab.status().into_iter().map(|b| {
        vec![
            b.board_id,
            b.family,
            b.address.to_string(),
            format!("{} #{}", b.pdu, b.outlet),
            b.lab_location,
            match b.fault {
                Fault::None => String::new(),
                fault => fault.to_string(),
            },
        ]
    });
    let mut text = output::table(
        &[
            "BOARD",
            "FAMILY",
            "TELNET",
            "PDU OUTLET",
            "LOCATION",
            "FAULT",
        ],
        rows,
    );
    let url = lab.pdu_url();
    text.push_str(&format!(
        "\nPDU        {url}  (http driver: {url}/outlets/N/on|off|cycle|status)\n\
         pdudaemon  {url}/power/control/on|off|reboot?hostname={}&port=N\n\
         faults     POST {url}/boards/BOARD/fault  {{\"kind\": ..., \"value\": N}}\n",
        crate::sim::PDUDAEMON_HOSTNAME
    ));
    if let Some(root) = lab.root_dir() {
        text.push_str(&format!("workdirs   {}\n", root.display()));
    }
    if let Some(path) = boards_yaml {
        text.push_str(&format!("boards     {}\n", path.display()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fault_flags() {
        assert_eq!(
            parse_fault("soca-001:drop_after_bytes=100"),
            Ok(("soca-001".to_owned(), Fault::DropAfterBytes(100)))
        );
        assert_eq!(
            parse_fault("socb-002:hang"),
            Ok(("socb-002".to_owned(), Fault::Hang))
        );
        assert!(parse_fault("hang").unwrap_err().contains("BOARD:KIND"));
        assert!(
            parse_fault("soca-001:melt")
                .unwrap_err()
                .contains("unknown fault kind")
        );
    }
}
