//! `socv power` end to end: the real binary, leased in-process, and the simulated lab whose PDU
//! really cuts its boards (the http driver for socA, pdudaemon's API for socB).

use crate::support::simlab::{SOCV, SimLeased, expect_code, stderr, stdout};
use socv::exit_codes;
use socv_testkit::{Board, LabFile, Pdu};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Leases `board` as `user`; its console address.
fn lease(lab: &SimLeased, user: &str, board: &str) -> String {
    let out = lab.socv(user, &["lease", "--board", board, "--json"]);
    expect_code(&out, 0);
    let lease: leased::api::Lease = serde_json::from_slice(&out.stdout).expect("lease JSON");
    let console = lease.console.expect("the holder sees the console");
    format!("{}:{}", console.host, console.port)
}

fn power(lab: &SimLeased, user: &str, board: &str, action: &str) -> leased::api::PowerResult {
    let out = lab.socv(user, &["power", board, action, "--json"]);
    expect_code(&out, 0);
    serde_json::from_slice(&out.stdout).expect("power JSON")
}

fn refuses(address: &str) -> bool {
    let addr = address.parse().expect("a socket address");
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
}

#[test]
fn the_holder_switches_cycles_and_reads_a_board_through_both_pdus() {
    let lab = SimLeased::start(&["socA:1", "socB:1"]);
    let yaml = std::fs::read_to_string(&lab.boards_file).unwrap();
    assert!(
        yaml.contains("driver: http") && yaml.contains("driver: pdudaemon"),
        "{yaml}"
    );
    let a = lease(&lab, "ann", "soca-001");
    let b = lease(&lab, "ann", "socb-001");

    // Off: the board refuses connections, and the http PDU says so.
    let off = power(&lab, "ann", "soca-001", "off");
    assert_eq!(off.pdu, socv::sim::HTTP_PDU_NAME);
    assert_eq!(off.state, leased::api::PowerState::Off);
    assert!(refuses(&a), "soca-001 still answers at {a}");
    let out = lab.socv("ann", &["power", "soca-001", "status"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).starts_with("soca-001: power is off (PDU sim-pdu-http outlet 1"),
        "{}",
        stdout(&out)
    );
    // On: it boots, and the console logs in again.
    let out = lab.socv("ann", &["power", "soca-001", "on"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).starts_with("soca-001 is on"),
        "{}",
        stdout(&out)
    );
    expect_code(&lab.socv("ann", &["exec", "soca-001", "--", "echo up"]), 0);

    // Cycle through the http PDU and through pdudaemon; both boards come back.
    let cycle = power(&lab, "ann", "soca-001", "cycle");
    assert_eq!(cycle.state, leased::api::PowerState::On);
    let cycle = power(&lab, "ann", "socb-001", "cycle");
    assert_eq!(cycle.pdu, socv::sim::PDUDAEMON_PDU_NAME);
    assert_eq!(cycle.state, leased::api::PowerState::On);
    for board in ["soca-001", "socb-001"] {
        let out = lab.socv("ann", &["exec", board, "--", "echo up"]);
        expect_code(&out, 0);
        assert_eq!(stdout(&out), "up\n");
    }
    // pdudaemon switches too, but cannot tell the state.
    power(&lab, "ann", "socb-001", "off");
    assert!(refuses(&b), "socb-001 still answers at {b}");
    let status = power(&lab, "ann", "socb-001", "status");
    assert_eq!(status.state, leased::api::PowerState::Unknown);
    power(&lab, "ann", "socb-001", "on");
    expect_code(&lab.socv("ann", &["exec", "socb-001", "--", "true"]), 0);
}

#[test]
fn only_the_holder_may_power_a_board() {
    let lab = SimLeased::start(&["socA:2"]);
    let a = lease(&lab, "ann", "soca-001");
    let out = lab.socv("bob", &["power", "soca-001", "off"]);
    expect_code(&out, exit_codes::PERMISSION_DENIED);
    assert!(stderr(&out).contains("held by ann@"), "{}", stderr(&out));
    let out = lab.socv("bob", &["power", "soca-002", "status"]);
    expect_code(&out, exit_codes::PERMISSION_DENIED);
    assert!(stderr(&out).contains("not leased"), "{}", stderr(&out));
    let out = lab.socv("bob", &["power", "soca-009", "on"]);
    expect_code(&out, exit_codes::NOT_FOUND);
    assert!(
        !refuses(&a),
        "bob's refused request must not cut ann's board"
    );
}

/// leased on a handwritten boards.yaml whose PDU listens nowhere.
#[test]
fn an_unreachable_pdu_is_named_with_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let closed = socv_testkit::free_port();
    let boards = LabFile::new()
        .pdu(
            Pdu::new("rack-7-pdu", "http")
                .field("base_url", format!("http://127.0.0.1:{closed}"))
                .field("retries", 1),
        )
        .board(Board::new("soc-z-001", "socZ", closed).pdu("rack-7-pdu", 4))
        .write(dir.path().join("boards.yaml"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = leased::Config::new(
        &boards,
        leased::config::StoreSpec::Embedded(dir.path().join("leases.redb")),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            leased::serve(config, listener, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
    });
    let socv = |args: &[&str]| {
        Command::new(SOCV)
            .args(args)
            .env("SOCV_DAEMON", &url)
            .env("USER", "ann")
            .env("XDG_CONFIG_HOME", dir.path())
            .env("RUST_LOG", "warn")
            .env_remove("LOGNAME")
            .env_remove("SOCV_TOKEN")
            .env_remove("DEVICE_MANAGER_URL")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let mut up = false;
    for _ in 0..100 {
        if socv(&["status"]).status.success() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "leased did not come up at {url}");
    expect_code(&socv(&["lease", "--board", "soc-z-001"]), 0);
    let out = socv(&["power", "soc-z-001", "cycle"]);
    expect_code(&out, exit_codes::FAILURE);
    let err = stderr(&out);
    assert!(
        err.contains(
            "power-cycling soc-z-001: PDU rack-7-pdu (http driver), outlet 4: cycle failed after \
             2 attempts: POST http://127.0.0.1:"
        ),
        "{err}"
    );
    assert!(
        err.contains("/outlets/4/cycle: cannot connect: connection refused"),
        "{err}"
    );
    let _ = stop.send(());
    daemon.join().unwrap();
}
