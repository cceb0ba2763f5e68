//! net-snmp's `snmpd` on a free loopback port, as the APC PDU the `apc-snmp` driver talks to.
//! Needs `snmpd` (Debian: snmpd, in /usr/sbin); `tests/run.sh` installs it.

use crate::port::free_udp_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// snmpd's `pass` protocol: `-g OID` reads, `-s OID TYPE VALUE` writes (silence means done).
const APC_HANDLER: &str = r#"#!/bin/sh
DIR="$(dirname "$0")"
oid="$2"
case "$oid" in
  .1.3.6.1.4.1.318.1.1.4.4.2.1.3.*|.1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.*|.1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.*) ;;
  *) [ "$1" = -s ] && echo not-writable; exit 0 ;;
esac
case "$1" in
  -g)
    echo "$oid"; echo integer; cat "$DIR/state$oid" 2>/dev/null || echo 1 ;;
  -s)
    [ "$3" = integer ] || { echo wrong-type; exit 0; }
    case "$4" in
      1|3) echo 1 > "$DIR/state$oid" ;;
      2) echo 2 > "$DIR/state$oid" ;;
      *) echo wrong-value; exit 0 ;;
    esac
    echo "SET $oid $4" >> "$DIR/sets.log" ;;
esac
"#;

/// A running `snmpd` on a free UDP port of 127.0.0.1 whose `pass` handler plays the three APC
/// PowerNet-MIB outlet-control tables (each outlet's state in a file, every SET logged), killed
/// on drop. Communities: `private` (read-write) and `public` (read-only).
pub struct ApcSnmpAgent {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl ApcSnmpAgent {
    /// Starts the agent with its files in `dir/snmpd` and waits until it holds its port.
    pub fn start(dir: &Path) -> ApcSnmpAgent {
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("snmpd").is_file()))
            .unwrap_or(false)
            || Path::new("/usr/sbin/snmpd").is_file();
        assert!(
            on_path,
            "snmpd is not installed; run tests/run.sh, which installs it (Debian: snmpd); the \
             SNMP tests never skip"
        );
        let dir = dir.join("snmpd");
        std::fs::create_dir_all(&dir).unwrap();
        let handler = dir.join("apc.sh");
        std::fs::write(&handler, APC_HANDLER).unwrap();
        let conf = dir.join("snmpd.conf");
        std::fs::write(
            &conf,
            format!(
                "rwcommunity private 127.0.0.1\nrocommunity public 127.0.0.1\n\
                 pass .1.3.6.1.4.1.318 /bin/sh {}\n",
                handler.display()
            ),
        )
        .unwrap();
        let port = free_udp_port();
        let snmpd = if Path::new("/usr/sbin/snmpd").is_file() {
            "/usr/sbin/snmpd"
        } else {
            "snmpd"
        };
        let child = Command::new(snmpd)
            .args(["-f", "-Lf"])
            .arg(dir.join("snmpd.log"))
            .arg("-C")
            .arg("-c")
            .arg(&conf)
            .arg(format!("udp:127.0.0.1:{port}"))
            .env("SNMP_PERSISTENT_DIR", &dir)
            .env("MIBS", "")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {snmpd}: {e}"));
        let mut agent = ApcSnmpAgent { child, port, dir };
        // Ready once the agent holds its UDP port.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            if let Ok(Some(status)) = agent.child.try_wait() {
                let log = std::fs::read_to_string(agent.dir.join("snmpd.log")).unwrap_or_default();
                panic!("snmpd exited with {status}:\n{log}");
            }
            assert!(Instant::now() < deadline, "snmpd did not bind port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        agent
    }

    /// The SETs the agent took, in order: `SET <oid> <value>`.
    pub fn sets(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("sets.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for ApcSnmpAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
