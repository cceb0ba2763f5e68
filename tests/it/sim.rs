//! The simulated lab seen from outside: a raw TCP client logs in and runs commands, the PDU
//! cuts and boots boards (both APIs), faults have their effect, the written boards.yaml loads,
//! and no shell outlives the lab.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socv::sim::{Fault, PowerAction, PowerState, SimConfig, SimLab};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);
const BOOT_DELAY: Duration = Duration::from_millis(300);

fn config() -> SimConfig {
    SimConfig {
        families: vec!["socA:2".parse().unwrap(), "socB:1".parse().unwrap()],
        login: "tester:s3cret".parse().unwrap(),
        boot_delay: BOOT_DELAY,
        cycle_off_time: Duration::from_millis(100),
        login_failure_delay: Duration::from_millis(20),
        ..SimConfig::default()
    }
}

/// A bare telnet client: answers nothing, strips commands from what it shows.
struct Client {
    stream: TcpStream,
    /// Everything received, commands stripped.
    text: Vec<u8>,
    /// Everything received, as sent.
    raw: Vec<u8>,
    /// Where the next `expect` starts looking.
    cursor: usize,
    iac: IacState,
    eof: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum IacState {
    Data,
    Iac,
    Option,
    Sb,
    SbIac,
}

impl Client {
    async fn connect(address: SocketAddr) -> Client {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(address))
            .await
            .expect("connect timed out")
            .unwrap_or_else(|e| panic!("connect to {address}: {e}"));
        Client {
            stream,
            text: Vec::new(),
            raw: Vec::new(),
            cursor: 0,
            iac: IacState::Data,
            eof: false,
        }
    }

    fn strip(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.iac = match (self.iac, b) {
                (IacState::Data, 255) => IacState::Iac,
                (IacState::Data, _) => {
                    self.text.push(b);
                    IacState::Data
                }
                (IacState::Iac, 255) => {
                    self.text.push(255);
                    IacState::Data
                }
                (IacState::Iac, 251..=254) => IacState::Option,
                (IacState::Iac, 250) => IacState::Sb,
                (IacState::Iac, _) | (IacState::Option, _) => IacState::Data,
                (IacState::Sb, 255) => IacState::SbIac,
                (IacState::Sb, _) => IacState::Sb,
                (IacState::SbIac, 240) => IacState::Data,
                (IacState::SbIac, _) => IacState::Sb,
            };
        }
    }

    /// Reads once, waiting at most `within`; false on timeout or EOF.
    async fn read_some(&mut self, within: Duration) -> bool {
        let mut buf = [0; 4096];
        match tokio::time::timeout(within, self.stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.eof = true;
                false
            }
            Ok(Ok(n)) => {
                self.raw.extend_from_slice(&buf[..n]);
                self.strip(&buf[..n]);
                true
            }
            Err(_) => false,
        }
    }

    fn shown(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }

    /// Waits for `needle` after the cursor and returns the text up to and including it.
    async fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let seen = String::from_utf8_lossy(&self.text[self.cursor..]).into_owned();
            if let Some(at) = seen.find(needle) {
                let upto = &seen[..at + needle.len()];
                self.cursor += upto.len();
                return upto.to_owned();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if self.eof || left.is_zero() {
                panic!(
                    "no {needle:?} (eof: {}); after the cursor: {seen:?}",
                    self.eof
                );
            }
            self.read_some(left).await;
        }
    }

    async fn send(&mut self, text: &[u8]) {
        self.stream.write_all(text).await.unwrap();
    }

    async fn login(&mut self, user: &str, password: &str) {
        self.expect("login: ").await;
        self.send(format!("{user}\n").as_bytes()).await;
        self.expect("Password: ").await;
        self.send(format!("{password}\n").as_bytes()).await;
        self.expect("# ").await;
    }

    /// Reads until EOF; the number of bytes received in all, or None if it did not come.
    async fn until_eof(&mut self, within: Duration) -> Option<usize> {
        let deadline = Instant::now() + within;
        while !self.eof {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.read_some(left).await;
        }
        Some(self.raw.len())
    }
}

fn address(lab: &SimLab, index: usize) -> SocketAddr {
    lab.boards()[index].address
}

async fn http_post(url: &str, body: Option<serde_json::Value>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = client.post(url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn http_get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Pids of the live processes whose session is one of `sessions`, from /proc.
fn processes_in(sessions: &BTreeSet<u32>) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((name, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (state, ppid, session) = (fields[0], fields[1], fields[3]);
        let ours = ppid.parse::<u32>().ok() == Some(std::process::id());
        let session: u32 = session.parse().unwrap_or(0);
        // A zombie of ours is a leak (we failed to reap it); one of init's is not ours.
        if sessions.contains(&session) && (state != "Z" || ours) {
            found.push((pid, format!("{name}) {state}")));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_then_commands_run_in_the_boards_own_directory() {
    let lab = SimLab::start(config()).await.unwrap();
    let mut client = Client::connect(address(&lab, 0)).await;
    let greeting = client.expect("soca-001 login: ").await;
    assert!(
        greeting.contains("socv simulated board soca-001"),
        "{greeting}"
    );
    // busybox telnetd's negotiation comes first.
    assert_eq!(
        client.raw[..12],
        [255, 253, 1, 255, 253, 31, 255, 251, 1, 255, 251, 3]
    );

    client.send(b"tester\n").await;
    client.expect("Password: ").await;
    client.send(b"wrong-password\n").await;
    let refused = client.expect("Login incorrect").await;
    assert!(
        !refused.contains("wrong-password"),
        "the password was echoed: {refused}"
    );
    client.login("tester", "s3cret").await;

    client.send(b"echo hello; pwd\n").await;
    client.expect("hello\r\n").await;
    let workdir = lab.boards()[0].workdir.to_str().unwrap().to_owned();
    client.expect(&format!("{workdir}\r\n")).await;
    client.expect("# ").await;
    assert!(workdir.ends_with("/soca-001"), "{workdir}");
    assert!(
        lab.boards()[0]
            .workdir
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("socv-sim-")
    );

    // Another board, another directory; a line ended with CR LF, sent in pieces.
    let mut other = Client::connect(address(&lab, 2)).await;
    other.login("tester", "s3cret").await;
    other.send(b"pw").await;
    other.send(b"d\r").await;
    other.send(b"\n").await;
    other.expect("/socb-001\r\n").await;
    let status = lab.board_status("socb-001").unwrap();
    assert!(status.connected && status.shell_pid.is_some(), "{status:?}");

    // `exit` ends the session and closes the connection.
    client.send(b"exit\n").await;
    assert!(client.until_eof(WAIT).await.is_some());
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_without_a_password_is_not_asked_for_one() {
    let lab = SimLab::start(SimConfig {
        families: vec!["socA:1".parse().unwrap()],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut client = Client::connect(address(&lab, 0)).await;
    client.expect("login: ").await;
    client.send(b"root\n").await;
    let answer = client.expect("# ").await;
    assert!(!answer.contains("Password"), "{answer}");
    // A wrong name is asked for a password, and refused.
    client.send(b"exit\n").await;
    client.until_eof(WAIT).await;
    let mut client = Client::connect(address(&lab, 0)).await;
    client.expect("login: ").await;
    client.send(b"admin\n").await;
    client.expect("Password: ").await;
    client.send(b"\n").await;
    client.expect("Login incorrect").await;
    client.expect("login: ").await;
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_interrupts_the_foreground_program() {
    let lab = SimLab::start(config()).await.unwrap();
    let mut client = Client::connect(address(&lab, 0)).await;
    client.login("tester", "s3cret").await;
    client.send(b"sleep 100\n").await;
    client.expect("sleep 100\r\n").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    client.send(b"\x03").await;
    client.expect("# ").await;
    // Not a speed check: `sleep 100` left alone would hold the prompt for 100 s.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "not interrupted"
    );
    client.send(b"echo rc=$?\n").await;
    client.expect("rc=130").await;
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_size_and_iac_bytes_cross_the_wire() {
    let lab = SimLab::start(config()).await.unwrap();
    let mut client = Client::connect(address(&lab, 0)).await;
    // NAWS 100x40, split across two writes.
    client.send(&[255, 251, 31, 255, 250, 31, 0, 100]).await;
    client.send(&[0, 40, 255, 240]).await;
    client.login("tester", "s3cret").await;
    client.send(b"stty size\n").await;
    client.expect("40 100\r\n").await;
    // An IAC IAC from the client is one 0xFF byte for the shell; a 0xFF from the board is
    // doubled on the wire.
    client
        .send(b"printf '\\377' | od -An -tx1; printf 'A\\377B'\n")
        .await;
    client.expect(" ff\r\n").await;
    client.expect("# ").await;
    assert!(
        client.raw.windows(4).any(|w| w == [b'A', 255, 255, b'B']),
        "{:?}",
        client.shown()
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_console_kicks_the_old_one() {
    let lab = SimLab::start(config()).await.unwrap();
    let mut first = Client::connect(address(&lab, 0)).await;
    first.login("tester", "s3cret").await;
    let mut second = Client::connect(address(&lab, 0)).await;
    second.expect("login: ").await;
    assert!(first.until_eof(WAIT).await.is_some());
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_power_off_cuts_the_board_and_power_on_boots_it() {
    let lab = SimLab::start(config()).await.unwrap();
    let url = lab.pdu_url();
    let board = &lab.boards()[1];
    let mut client = Client::connect(board.address).await;
    client.login("tester", "s3cret").await;
    let shell = lab
        .board_status(&board.board_id)
        .unwrap()
        .shell_pid
        .unwrap();

    let (status, body) = http_post(&format!("{url}/outlets/{}/status", board.outlet), None).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"outlet":2,"state":"on"}"#)
    );
    let (status, body) = http_post(&format!("{url}/outlets/2/off"), None).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"outlet":2,"state":"off"}"#)
    );
    // Done when answered: the session is gone, the shell dead, the port refusing.
    assert!(client.until_eof(Duration::from_secs(2)).await.is_some());
    assert!(!std::path::Path::new(&format!("/proc/{shell}")).exists());
    let refused = TcpStream::connect(board.address).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    // The http driver reads the state with a GET.
    let (_, body) = http_get(&format!("{url}/outlets/2/status")).await;
    assert_eq!(body, r#"{"outlet":2,"state":"off"}"#);
    assert_eq!(
        lab.power(&board.board_id, PowerAction::Status)
            .await
            .unwrap(),
        PowerState::Off
    );

    let (status, _) = http_post(&format!("{url}/outlets/2/on"), None).await;
    assert_eq!(status, 200);
    let on = Instant::now();
    let mut client = Client::connect(board.address).await;
    client.expect("U-Boot SPL").await;
    client.expect("Starting kernel ...").await;
    client.expect("login: ").await;
    assert!(on.elapsed() >= BOOT_DELAY - Duration::from_millis(20));
    client.login_after_prompt("tester", "s3cret").await;

    // A cycle drops the session too; later consoles get no boot log once it was shown.
    let (status, body) = http_post(&format!("{url}/outlets/2/cycle"), None).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"outlet":2,"state":"on"}"#)
    );
    assert!(client.until_eof(Duration::from_secs(2)).await.is_some());
    let mut client = Client::connect(board.address).await;
    client.expect("U-Boot SPL").await;
    client.expect("login: ").await;
    let mut again = Client::connect(board.address).await;
    let greeting = again.expect("login: ").await;
    assert!(!greeting.contains("U-Boot"), "{greeting}");

    let (status, body) = http_post(&format!("{url}/outlets/99/on"), None).await;
    assert_eq!(status, 404);
    assert!(body.contains(r#""code":"unknown_outlet""#), "{body}");
    let (status, body) = http_post(&format!("{url}/outlets/1/explode"), None).await;
    assert_eq!(status, 404);
    assert!(body.contains("on, off, cycle, status"), "{body}");
    lab.shutdown().await;
}

impl Client {
    /// For a client that already saw the prompt.
    async fn login_after_prompt(&mut self, user: &str, password: &str) {
        self.send(format!("{user}\n").as_bytes()).await;
        self.expect("Password: ").await;
        self.send(format!("{password}\n").as_bytes()).await;
        self.expect("# ").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdudaemon_reboot_answers_after_the_action() {
    let lab = SimLab::start(config()).await.unwrap();
    let url = lab.pdu_url();
    let board = lab.boards()[2].clone();
    let mut client = Client::connect(board.address).await;
    client.login("tester", "s3cret").await;

    let reboot = format!("{url}/power/control/reboot?hostname=sim-pdu&port=3&delay=1");
    let started = Instant::now();
    let request = tokio::spawn(async move { http_get(&reboot).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Off during the delay.
    assert_eq!(lab.board_status("socb-001").unwrap().power, PowerState::Off);
    assert_eq!(
        TcpStream::connect(board.address).await.unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
    let (status, body) = request.await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((status, body.as_str()), (200, "OK - accepted request\n"));
    assert!(client.until_eof(Duration::from_secs(1)).await.is_some());
    assert_eq!(lab.board_status("socb-001").unwrap().power, PowerState::On);
    Client::connect(board.address).await.expect("login: ").await;

    for bad in [
        "on?hostname=nosuch&port=3",
        "on?hostname=sim-pdu&port=42",
        "on?hostname=sim-pdu",
        "off?hostname=sim-pdu&port=x",
        "reboot?hostname=sim-pdu&port=3&delay=soon",
    ] {
        let (status, body) = http_get(&format!("{url}/power/control/{bad}")).await;
        assert_eq!((status, body.as_str()), (500, "Invalid request\n"), "{bad}");
    }
    let (status, _) = http_get(&format!(
        "{url}/power/control/cycle?hostname=sim-pdu&port=3"
    ))
    .await;
    assert_eq!(status, 404);
    let (status, _) = http_post(
        &format!("{url}/power/control/on?hostname=sim-pdu&port=3"),
        None,
    )
    .await;
    assert_eq!(status, 405);

    let (status, body) =
        http_get(&format!("{url}/power/control/off?hostname=sim-pdu&port=3")).await;
    assert_eq!((status, body.as_str()), (200, "OK - accepted request\n"));
    assert_eq!(lab.board_status("socb-001").unwrap().power, PowerState::Off);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_after_bytes_closes_after_exactly_that_many() {
    let lab = SimLab::start(config()).await.unwrap();
    let url = lab.pdu_url();
    let (status, body) = http_post(
        &format!("{url}/boards/soca-001/fault"),
        Some(serde_json::json!({"kind": "drop_after_bytes", "value": 40})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""fault":{"kind":"drop_after_bytes","value":40}"#),
        "{body}"
    );
    let mut client = Client::connect(address(&lab, 0)).await;
    assert_eq!(client.until_eof(WAIT).await, Some(40));

    // Set during a session, it counts from then.
    lab.set_fault("soca-002", Fault::None).unwrap();
    let mut client = Client::connect(address(&lab, 1)).await;
    client.login("tester", "s3cret").await;
    let before = client.raw.len();
    lab.set_fault("soca-002", Fault::DropAfterBytes(100))
        .unwrap();
    client.send(b"yes | head -c 100000\n").await;
    assert_eq!(client.until_eof(WAIT).await, Some(before + 100));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_after_secs_closes_on_time() {
    let mut config = config();
    config.faults = vec![(
        "soca-001".to_owned(),
        Fault::DropAfterSecs(Duration::from_millis(800)),
    )];
    let lab = SimLab::start(config).await.unwrap();
    let started = Instant::now();
    let mut client = Client::connect(address(&lab, 0)).await;
    client.login("tester", "s3cret").await;
    assert!(client.until_eof(WAIT).await.is_some());
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(750) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_freezes_the_board_until_power_cycled() {
    let lab = SimLab::start(config()).await.unwrap();
    let mut client = Client::connect(address(&lab, 0)).await;
    client.login("tester", "s3cret").await;
    lab.set_fault("soca-001", Fault::Hang).unwrap();
    client.send(b"echo frozen\n").await;
    let before = client.raw.len();
    assert!(!client.read_some(Duration::from_secs(1)).await);
    assert_eq!(client.raw.len(), before, "{}", client.shown());
    // A new console reaches nothing either.
    let mut other = Client::connect(address(&lab, 0)).await;
    assert!(!other.read_some(Duration::from_millis(500)).await);
    assert!(other.raw.is_empty());

    assert_eq!(
        lab.power("soca-001", PowerAction::Cycle).await.unwrap(),
        PowerState::On
    );
    assert_eq!(lab.fault("soca-001").unwrap(), Fault::None);
    let mut client = Client::connect(address(&lab, 0)).await;
    client.login("tester", "s3cret").await;
    client.send(b"echo thawed\n").await;
    client.expect("thawed\r\n").await;
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_link_is_measurably_slower() {
    let lab = SimLab::start(config()).await.unwrap();
    let mut client = Client::connect(address(&lab, 0)).await;
    client.login("tester", "s3cret").await;
    // 600 bytes of output plus the echo and the prompt.
    let command = b"printf '%0600d\\n' 0; echo done\n";

    let started = Instant::now();
    client.send(command).await;
    client.expect("done\r\n").await;
    client.expect("# ").await;
    let fast = started.elapsed();

    lab.set_fault("soca-001", Fault::SlowLink(500)).unwrap();
    let started = Instant::now();
    client.send(command).await;
    client.expect("done\r\n").await;
    client.expect("# ").await;
    let slow = started.elapsed();
    // About 700 bytes at 500 B/s.
    assert!(slow >= Duration::from_millis(1200), "{slow:?}");
    assert!(slow > fast * 3, "slow {slow:?}, fast {fast:?}");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_login_refuses_the_right_password() {
    let mut config = config();
    config.faults = vec![("socb-001".to_owned(), Fault::RefuseLogin)];
    let lab = SimLab::start(config).await.unwrap();
    let mut client = Client::connect(address(&lab, 2)).await;
    client.expect("login: ").await;
    for _ in 0..3 {
        client.send(b"tester\n").await;
        client.expect("Password: ").await;
        client.send(b"s3cret\n").await;
        client.expect("Login incorrect").await;
    }
    // Like login: three strikes and the connection closes.
    assert!(client.until_eof(WAIT).await.is_some());
    lab.set_fault("socb-001", Fault::None).unwrap();
    Client::connect(address(&lab, 2))
        .await
        .login("tester", "s3cret")
        .await;
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_api_explains_its_errors() {
    let lab = SimLab::start(config()).await.unwrap();
    let url = lab.pdu_url();
    let fault = |board: &str| format!("{url}/boards/{board}/fault");
    let cases = [
        (
            fault("nosuch"),
            serde_json::json!({"kind": "hang"}),
            404,
            "unknown_board",
        ),
        (
            fault("soca-001"),
            serde_json::json!({"kind": "melt"}),
            400,
            "known kinds: none, drop_after_bytes",
        ),
        (
            fault("soca-001"),
            serde_json::json!({"kind": "slow_link", "value": 0}),
            400,
            "board soca-001: fault `slow_link`: `0` is not a whole number",
        ),
        (
            fault("soca-001"),
            serde_json::json!({"kind": "slow_link"}),
            400,
            "needs a value",
        ),
        (
            fault("soca-001"),
            serde_json::json!({"kind": "hang", "value": "x"}),
            400,
            "must be a number",
        ),
        (fault("soca-001"), serde_json::json!([1]), 400, "expected {"),
    ];
    for (url, body, status, message) in cases {
        let (got, text) = http_post(&url, Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {text}");
        assert!(text.contains(message), "{body}: {text}");
        assert!(text.starts_with(r#"{"error":{"code":"#), "{text}");
    }
    let response = reqwest::Client::new()
        .post(fault("soca-001"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);

    let (status, body) = http_post(
        &fault("soca-002"),
        Some(serde_json::json!({"kind": "slow-link", "value": 1200})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(&format!("{url}/boards")).await;
    assert_eq!(status, 200);
    let listing: serde_json::Value = serde_json::from_str(&body).unwrap();
    let boards = listing["boards"].as_array().unwrap();
    assert_eq!(boards.len(), 3);
    assert_eq!(boards[1]["board_id"], "soca-002");
    assert_eq!(boards[1]["fault"]["kind"], "slow_link");
    assert_eq!(boards[1]["fault"]["value"], 1200);
    assert_eq!(boards[1]["power"], "on");
    assert_eq!(boards[1]["connected"], false);
    let (status, _) = http_get(&format!("{url}/nowhere")).await;
    assert_eq!(status, 404);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_written_boards_yaml_loads() {
    let lab = SimLab::start(SimConfig {
        families: vec!["socA:3".parse().unwrap(), "socB:2".parse().unwrap()],
        login: "admin:pa${ss}".parse().unwrap(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("boards.yaml");
    lab.write_boards(&path).unwrap();
    let loaded = leased::lab::Lab::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.boards.len(), 5);
    assert_eq!(
        loaded.families().into_iter().collect::<Vec<_>>(),
        ["socA", "socB"]
    );
    for (board, sim) in loaded.boards.iter().zip(lab.boards()) {
        assert_eq!(board.board_id, sim.board_id);
        assert_eq!(board.address(), sim.address.to_string());
        assert_eq!(board.telnet_username.as_deref(), Some("admin"));
        assert_eq!(
            board.telnet_password.as_ref().map(|p| p.expose()),
            Some("pa${ss}")
        );
        let (pdu, outlet) = loaded.pdu_for(board).unwrap();
        assert_eq!(outlet, sim.outlet);
        let expected = if board.soc_family == "socA" {
            "http"
        } else {
            "pdudaemon"
        };
        assert_eq!(pdu.driver(), expected);
    }
    let sites: BTreeSet<_> = loaded
        .boards
        .iter()
        .map(|b| b.lab_location.as_str())
        .collect();
    assert_eq!(
        sites.into_iter().collect::<Vec<_>>(),
        ["Sim Site A", "Sim Site B"]
    );
    lab.shutdown().await;
}

/// Logs in on two boards and leaves a background job and a foreground job running; returns
/// the shells' sessions.
async fn busy_lab(lab: &SimLab) -> (BTreeSet<u32>, Vec<Client>) {
    let mut clients = Vec::new();
    for index in 0..2 {
        let mut client = Client::connect(address(lab, index)).await;
        client.login("tester", "s3cret").await;
        client.send(b"sleep 300 &\n").await;
        client.expect("# ").await;
        client.send(b"sleep 200\n").await;
        client.expect("sleep 200\r\n").await;
        clients.push(client);
    }
    let sessions: BTreeSet<u32> = lab.status().iter().filter_map(|s| s.shell_pid).collect();
    assert_eq!(sessions.len(), 2);
    // Give the jobs a moment to start.
    let deadline = Instant::now() + WAIT;
    while processes_in(&sessions).len() < 6 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        processes_in(&sessions).len() >= 6,
        "{:?}",
        processes_in(&sessions)
    );
    (sessions, clients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_process_behind() {
    let lab = SimLab::start(config()).await.unwrap();
    let root = lab.root_dir().unwrap().to_path_buf();
    let (sessions, _clients) = busy_lab(&lab).await;
    lab.shutdown().await;
    assert_eq!(processes_in(&sessions), []);
    for shell in &sessions {
        assert!(!std::path::Path::new(&format!("/proc/{shell}")).exists());
    }
    assert!(!root.exists(), "{}", root.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_leaves_no_process_behind() {
    let lab = SimLab::start(config()).await.unwrap();
    let (sessions, _clients) = busy_lab(&lab).await;
    drop(lab);
    // Killed at once; reaped by the lab's tasks on this runtime.
    let deadline = Instant::now() + WAIT;
    while !processes_in(&sessions).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(processes_in(&sessions), []);
}
