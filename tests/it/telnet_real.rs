//! `BoardSession` against real telnet servers on loopback: busybox telnetd (a board's own
//! telnetd) and ser2net in front of a pty (a serial console server), plus the faults a lab
//! produces: wrong password, nothing listening, a console that never prompts, no `base64`,
//! a full disk, a program that ignores Ctrl-C.

use base64::Engine as _;
use socv::session::{
    BoardSession, ErrorKind, LocalFile, SessionConfig, SessionError, TimedOutcome,
};
use socv_testkit::{BoardShell, BusyboxTelnetd, PASSWORD, Ser2net, SmallDisk, USER, free_port};
use std::path::Path;
use std::time::{Duration, Instant};

fn config(board: &str, port: u16) -> SessionConfig {
    let mut config = SessionConfig::new(board, "127.0.0.1", port);
    config.username = Some(USER.into());
    config.password = Some(PASSWORD.into());
    config.connect_timeout = Duration::from_secs(5);
    config.login_timeout = Duration::from_secs(15);
    config.interrupt_grace = Duration::from_secs(5);
    config
}

async fn connect(board: &str, port: u16) -> BoardSession {
    match BoardSession::connect(config(board, port)).await {
        Ok(session) => session,
        Err(e) => panic!("connecting to {board}: {e}"),
    }
}

async fn capture(session: &mut BoardSession, command: &str) -> (i32, Vec<u8>) {
    match session.exec_capture(command).await {
        Ok(out) => (out.status, out.output),
        Err(e) => panic!("running {command:?}: {e}"),
    }
}

async fn text(session: &mut BoardSession, command: &str) -> String {
    let (status, output) = capture(session, command).await;
    assert_eq!(
        status,
        0,
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output)
    );
    String::from_utf8_lossy(&output).into_owned()
}

fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

// ------------------------------------------------------------------------------------------
// The cases every server must pass.

async fn exit_codes(port: u16) {
    let mut s = connect("board-exit", port).await;
    for code in 0..=255 {
        let (status, output) = capture(&mut s, &format!("exit {code}")).await;
        assert_eq!((status, output.len()), (code, 0), "exit {code}");
    }
    // A signal, and a syntax error (which an interactive shell would otherwise answer by
    // dropping the whole line, markers included).
    assert_eq!(capture(&mut s, "sh -c 'kill -SEGV $$'").await.0, 139);
    let (status, _) = capture(&mut s, "echo (").await;
    assert_eq!(status, 2);
    // `cd` and `exit` in one command do not leak into the next.
    capture(&mut s, "cd / && exit 0").await;
    assert_eq!(text(&mut s, "echo still here").await, "still here\n");
    s.close().await.expect("logging out");
}

/// `nul_survives`: whether the server agrees to BINARY, so that a NUL the program prints
/// reaches socv (ser2net); busybox telnetd stays in NVT mode, where a NUL means nothing.
async fn exact_output(port: u16, nul_survives: bool) {
    let mut s = connect("board-output", port).await;
    let (_, output) = capture(&mut s, "printf 'a\\000b'").await;
    let want: &[u8] = if nul_survives { b"a\0b" } else { b"ab" };
    assert_eq!(output, want);
    let cases: &[(&str, &[u8])] = &[
        ("printf abc", b"abc"),
        ("printf ''", b""),
        ("printf 'a\\nb'", b"a\nb"),
        ("printf 'crlf\\r\\n'", b"crlf\r\n"),
        ("printf 'ends in cr\\r'", b"ends in cr\r"),
        ("printf 'tab\\there\\n\\n\\n'", b"tab\there\n\n\n"),
        ("echo out; echo err >&2; echo out2", b"out\nerr\nout2\n"),
        ("printf '\\377\\001\\033[6n'", b"\xff\x01\x1b[6n"),
    ];
    for (command, want) in cases {
        let (status, output) = capture(&mut s, command).await;
        assert_eq!(status, 0, "{command}");
        assert_eq!(
            String::from_utf8_lossy(&output),
            String::from_utf8_lossy(want),
            "{command}"
        );
    }
    // Streaming: a long output arrives whole, in order.
    let (_, output) = capture(&mut s, "seq 1 20000").await;
    let want: String = (1..=20000).map(|i| format!("{i}\n")).collect();
    assert!(output == want.as_bytes(), "seq 1 20000 differs");
}

async fn marker_lookalikes(port: u16) {
    let mut s = connect("board-markers", port).await;
    let fake = "__SOCV_RC_deadbeef_0__\n__SOCV_BEGIN_deadbeef__\n\n__SOCV_SYNC_x__\n__SOCV_RC_";
    let command = format!("printf '{}'; exit 3", fake.replace('\n', "\\n"));
    let (status, output) = capture(&mut s, &command).await;
    assert_eq!(
        (status, String::from_utf8_lossy(&output).as_ref()),
        (3, fake)
    );
}

async fn push_all_byte_values(port: u16, home: &Path) {
    let data: Vec<u8> = (0..=255u8).collect();
    let file = LocalFile::from_bytes("all-bytes.bin", data.clone());
    let mut s = connect("board-push", port).await;
    let remote = home.join("all-bytes.bin");
    let remote_str = remote.display().to_string();
    let mut progress = Vec::new();
    let report = s
        .push(&file, &remote_str, |n| progress.push(n))
        .await
        .unwrap_or_else(|e| panic!("push: {e}"));
    assert_eq!(report.bytes, 256);
    assert_eq!(report.digest, file.sha256());
    assert_eq!(progress.last(), Some(&256));
    // Read back on the board (its own checksum, and od), and on the host.
    let sum = text(&mut s, &format!("sha256sum {}", quote(&remote))).await;
    assert!(sum.starts_with(file.sha256()), "{sum}");
    let od = text(&mut s, &format!("od -An -v -tx1 {}", quote(&remote))).await;
    let back: Vec<u8> = od
        .split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).expect("od prints hex"))
        .collect();
    assert_eq!(back, data);
    assert_eq!(
        std::fs::read(&remote).expect("reading the pushed file"),
        data
    );
    let mode = text(&mut s, &format!("ls -l {}", quote(&remote))).await;
    assert!(mode.starts_with("-rwx"), "executable: {mode}");
    s.close().await.expect("logging out");
}

async fn push_4_mib_random(port: u16, home: &Path) {
    let mut data = vec![0u8; 4 * 1024 * 1024];
    rand::Rng::fill(&mut rand::rng(), &mut data[..]);
    let file = LocalFile::from_bytes("random.bin", data.clone());
    let mut s = connect("board-push-4m", port).await;
    let remote = home.join("random.bin");
    let started = Instant::now();
    let report = s
        .push(&file, &remote.display().to_string(), |_| {})
        .await
        .unwrap_or_else(|e| panic!("push: {e}"));
    eprintln!(
        "pushed 4 MiB in {:.2} s ({:.1} MiB/s)",
        started.elapsed().as_secs_f64(),
        4.0 / started.elapsed().as_secs_f64()
    );
    assert_eq!(report.digest, file.sha256());
    let sum = text(&mut s, &format!("sha256sum {}", quote(&remote))).await;
    assert!(sum.starts_with(file.sha256()), "{sum}");
    // Copy it back through the console and compare byte for byte.
    let encoded = text(&mut s, &format!("base64 {}", quote(&remote))).await;
    let compact: String = encoded.split_whitespace().collect();
    let back = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .expect("the board's base64");
    assert!(back == data, "the copy read back differs");
    // No partial copies left beside it.
    let listing = text(&mut s, &format!("ls -a {}", quote(home))).await;
    assert!(!listing.contains(".part"), "{listing}");
}

async fn ctrl_c(port: u16) {
    let mut s = connect("board-ctrl-c", port).await;
    let started = Instant::now();
    let mut out = Vec::new();
    let outcome = s
        .run_with_timeout(
            "echo started; sleep 100",
            Duration::from_millis(500),
            &mut out,
        )
        .await
        .unwrap_or_else(|e| panic!("sleep 100: {e}"));
    assert_eq!(outcome, TimedOutcome::TimedOut);
    assert_eq!(out, b"started\n");
    // Not a speed check: left alone, `sleep 100` would hold the session for 100 s.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "not interrupted: {:?}",
        started.elapsed()
    );
    assert_eq!(text(&mut s, "echo alive").await, "alive\n");

    // A run whose future is dropped (the caller's own Ctrl-C) is stopped before the next.
    let mut sink = Vec::new();
    let cancelled =
        tokio::time::timeout(Duration::from_millis(300), s.run("sleep 100", &mut sink)).await;
    assert!(cancelled.is_err(), "sleep 100 ended early");
    assert_eq!(text(&mut s, "echo next").await, "next\n");

    // An explicit interrupt at an idle prompt is harmless.
    s.interrupt().await.expect("interrupt at the prompt");
    let finished = s
        .run_with_timeout("exit 4", Duration::from_secs(10), &mut tokio::io::sink())
        .await
        .expect("exit 4");
    assert_eq!(
        finished,
        TimedOutcome::Finished(socv::session::CommandOutcome { status: 4 })
    );
}

fn config_login_timeout() -> Duration {
    config("any", 1).login_timeout
}

async fn wrong_password(port: u16) {
    let mut config = config("board-wrong-pw", port);
    config.password = Some("not-the-password".into());
    let started = Instant::now();
    let err = BoardSession::connect(config)
        .await
        .expect_err("wrong password");
    assert!(
        matches!(err.kind(), ErrorKind::LoginRejected { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("board-wrong-pw"), "{message}");
    assert!(message.contains("refused the login"), "{message}");
    // Not a speed check: the refusal is read, not waited out (the login timeout is 30 s).
    assert!(
        started.elapsed() < config_login_timeout(),
        "waited for the login timeout: {:?}",
        started.elapsed()
    );
}

// ------------------------------------------------------------------------------------------
// busybox telnetd

#[tokio::test]
async fn busybox_exit_codes() {
    exit_codes(BusyboxTelnetd::start().port).await;
}

#[tokio::test]
async fn busybox_exact_output() {
    exact_output(BusyboxTelnetd::start().port, false).await;
}

#[tokio::test]
async fn busybox_marker_lookalikes() {
    marker_lookalikes(BusyboxTelnetd::start().port).await;
}

#[tokio::test]
async fn busybox_push_all_byte_values() {
    let server = BusyboxTelnetd::start();
    push_all_byte_values(server.port, &server.home).await;
}

#[tokio::test]
async fn busybox_push_4_mib_random() {
    let server = BusyboxTelnetd::start();
    push_4_mib_random(server.port, &server.home).await;
}

#[tokio::test]
async fn busybox_ctrl_c() {
    ctrl_c(BusyboxTelnetd::start().port).await;
}

#[tokio::test]
async fn busybox_wrong_password() {
    wrong_password(BusyboxTelnetd::start().port).await;
}

// ------------------------------------------------------------------------------------------
// ser2net in front of a serial console

#[tokio::test]
async fn ser2net_exit_codes() {
    exit_codes(Ser2net::start().port).await;
}

#[tokio::test]
async fn ser2net_exact_output() {
    exact_output(Ser2net::start().port, true).await;
}

#[tokio::test]
async fn ser2net_marker_lookalikes() {
    marker_lookalikes(Ser2net::start().port).await;
}

#[tokio::test]
async fn ser2net_push_all_byte_values() {
    let server = Ser2net::start();
    push_all_byte_values(server.port, &server.home).await;
}

#[tokio::test]
async fn ser2net_push_4_mib_random() {
    let server = Ser2net::start();
    push_4_mib_random(server.port, &server.home).await;
}

#[tokio::test]
async fn ser2net_ctrl_c() {
    ctrl_c(Ser2net::start().port).await;
}

#[tokio::test]
async fn ser2net_wrong_password() {
    wrong_password(Ser2net::start().port).await;
}

/// A board silent for a while before its login prompt (still booting) gets wake-ups; its
/// getty throws typed-ahead input away when it starts (as agetty and busybox getty do), and
/// socv logs in at the prompt that follows.
#[tokio::test]
async fn busybox_slow_login_prompt() {
    let server = BusyboxTelnetd::start_with(BoardShell {
        before_login: "sleep 2.5; timeout 0.2 cat >/dev/null".into(),
        ..BoardShell::default()
    });
    let mut s = connect("board-slow", server.port).await;
    assert_eq!(text(&mut s, "echo in").await, "in\n");
}

/// The same board without the input flush, and slow to ask for the password: the wake-up is
/// read as an empty user name, every answer of socv lands one prompt late and the login is
/// refused; socv restarts the login once with Ctrl-C (which throws typed-ahead input away)
/// and gets in.
#[tokio::test]
async fn busybox_typed_ahead_wake_up_is_recovered() {
    let server = BusyboxTelnetd::start_with(BoardShell {
        before_login: "sleep 1.5".into(),
        after_user: "sleep 0.5".into(),
        ..BoardShell::default()
    });
    let mut s = connect("board-typed-ahead", server.port).await;
    assert_eq!(text(&mut s, "echo in").await, "in\n");
}

/// A serial console keeps its shell: the next connection finds it logged in (no prompt at
/// all until woken), and socv takes it over again.
#[tokio::test]
async fn ser2net_console_stays_logged_in() {
    let server = Ser2net::start();
    let mut first = connect("serial", server.port).await;
    text(&mut first, "touch was-here").await;
    drop(first);
    let mut config = config("serial", server.port);
    // Without credentials: a login prompt now would be an error.
    config.username = None;
    config.password = None;
    let mut second = BoardSession::connect(config)
        .await
        .unwrap_or_else(|e| panic!("reconnecting: {e}"));
    assert_eq!(text(&mut second, "ls was-here").await, "was-here\n");
    // Logging out brings the login prompt back for the next one.
    second.close().await.expect("logging out");
    let mut third = connect("serial", server.port).await;
    assert_eq!(text(&mut third, "echo again").await, "again\n");
}

// ------------------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn connection_refused_is_quick_and_clear() {
    let port = free_port();
    let started = Instant::now();
    let err = BoardSession::connect(config("board-off", port))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err.kind(), ErrorKind::Connect { .. }), "{err}");
    // Not a speed check: the refusal is taken as it comes, not waited out.
    assert!(started.elapsed() < config("any", 1).connect_timeout);
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "board board-off (127.0.0.1:{port}): cannot connect"
        )),
        "{message}"
    );
    assert!(message.contains("refused"), "{message}");
}

/// A console whose connection never completes (the listener's queue is full, so the SYN is
/// dropped, as with a powered-off board behind a router): a timeout, on time.
#[tokio::test]
async fn connect_timeout_is_reported_on_time() {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    socket.bind(&addr.into()).expect("bind");
    socket.listen(0).expect("listen");
    let port = socket
        .local_addr()
        .expect("local addr")
        .as_socket()
        .expect("inet")
        .port();
    // Fill the accept queue; nothing is ever accepted.
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let filler = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        filler.set_nonblocking(true).expect("nonblocking");
        let target: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let _ = filler.connect(&target.into());
        fillers.push(filler);
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut config = config("board-unreachable", port);
    config.connect_timeout = Duration::from_millis(700);
    let started = Instant::now();
    let err = BoardSession::connect(config)
        .await
        .expect_err("no connection");
    let elapsed = started.elapsed();
    assert!(
        matches!(err.kind(), ErrorKind::ConnectTimeout { .. }),
        "{err}"
    );
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert!(
        err.to_string()
            .contains("connecting to the console timed out after 700ms"),
        "{err}"
    );
}

/// A console that accepts, prints boot noise and never prompts (a board stuck in boot).
#[tokio::test]
async fn silent_console_times_out_with_the_last_output() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut stream, _) = listener.accept().await.expect("accept");
        let _ = stream
            .write_all(b"U-Boot 2024.01\r\n\x1b[0mStarting kernel ...\r\n")
            .await;
        let mut buf = [0u8; 1024];
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let mut config = config("board-stuck", port);
    config.login_timeout = Duration::from_secs(2);
    let started = Instant::now();
    let err = BoardSession::connect(config).await.expect_err("no prompt");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    assert!(matches!(err.kind(), ErrorKind::Timeout { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("board-stuck"), "{message}");
    assert!(
        message.contains("no login or shell prompt within 2s"),
        "{message}"
    );
    assert!(message.contains(r#"Starting kernel ..."#), "{message}");
    server.abort();
}

#[tokio::test]
async fn missing_local_file_fails_before_connecting() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let err = LocalFile::read("/nonexistent/dir/test.elf")
        .await
        .expect_err("missing file");
    assert!(
        err.to_string().contains("/nonexistent/dir/test.elf"),
        "{err}"
    );
    // The documented order (read the file, then connect) means the board saw nothing.
    assert!(listener.accept().is_err(), "nothing connected");
}

/// A board whose shell finds no `base64`: dash with a PATH of a few tools (busybox ash would
/// find its own applet whatever the PATH).
#[tokio::test]
async fn push_without_base64_fails_cleanly() {
    let bin = tempfile::tempdir().expect("tempdir");
    for tool in [
        "sh",
        "stty",
        "cat",
        "rm",
        "mv",
        "chmod",
        "ls",
        "wc",
        "sha256sum",
    ] {
        let target = which(tool);
        std::os::unix::fs::symlink(&target, bin.path().join(tool)).expect("symlink");
    }
    let server = BusyboxTelnetd::start_with(BoardShell {
        shell: "/bin/sh".into(),
        path: bin.path().display().to_string(),
        ..BoardShell::default()
    });
    let mut s = connect("board-no-base64", server.port).await;
    let file = LocalFile::from_bytes("t.bin", vec![1, 2, 3]);
    let remote = server.home.join("t.bin");
    let err = s
        .push(&file, &remote.display().to_string(), |_| {})
        .await
        .expect_err("no base64");
    assert!(
        matches!(err.kind(), ErrorKind::ToolMissing { tool } if tool == "base64"),
        "{err}"
    );
    assert!(err.to_string().contains("no `base64`"), "{err}");
    assert_eq!(leftovers(&server.home), Vec::<String>::new());
    // The session is still fine.
    assert_eq!(text(&mut s, "echo ok").await, "ok\n");
}

/// A board with `md5sum` but no `sha256sum`: the push is verified with MD5.
#[tokio::test]
async fn push_verifies_with_md5sum_where_that_is_all() {
    let bin = tempfile::tempdir().expect("tempdir");
    for tool in [
        "sh", "stty", "cat", "rm", "mv", "chmod", "ls", "wc", "base64", "md5sum",
    ] {
        std::os::unix::fs::symlink(which(tool), bin.path().join(tool)).expect("symlink");
    }
    let server = BusyboxTelnetd::start_with(BoardShell {
        shell: "/bin/sh".into(),
        path: bin.path().display().to_string(),
        ..BoardShell::default()
    });
    let mut s = connect("board-md5", server.port).await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let file = LocalFile::from_bytes("m.bin", data.clone());
    let remote = server.home.join("m.bin");
    let report = s
        .push(&file, &remote.display().to_string(), |_| {})
        .await
        .unwrap_or_else(|e| panic!("push: {e}"));
    assert_eq!(report.algorithm, "md5");
    assert_eq!(std::fs::read(&remote).expect("pushed"), data);
}

fn which(tool: &str) -> String {
    for dir in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p.display().to_string();
        }
    }
    panic!("{tool} not found");
}

fn leftovers(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Pushing 4 MiB onto a 1 MiB file system: a clear error, the partial copy removed, the
/// destination never created. Where mounting is not permitted, a file size limit
/// (`ulimit -f`) makes the writes fail the same way.
#[tokio::test]
async fn push_to_a_full_disk_fails_cleanly() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let small = scratch.path().join("small");
    let disk = SmallDisk::mount(small.clone(), "1m");
    let board = match &disk {
        Some(_) => BoardShell::default(),
        None => {
            eprintln!("mount not permitted here: simulating a full disk with ulimit -f 1024");
            std::fs::create_dir_all(&small).expect("mkdir");
            BoardShell {
                setup: "ulimit -f 1024".into(),
                ..BoardShell::default()
            }
        }
    };
    let server = BusyboxTelnetd::start_with(board);
    let mut s = connect("board-full", server.port).await;
    let mut data = vec![0u8; 4 * 1024 * 1024];
    rand::Rng::fill(&mut rand::rng(), &mut data[..]);
    let file = LocalFile::from_bytes("big.bin", data);
    let remote = small.join("big.bin");
    let err = s
        .push(&file, &remote.display().to_string(), |_| {})
        .await
        .expect_err("disk full");
    assert!(matches!(err.kind(), ErrorKind::PushFailed { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("board-full"), "{message}");
    assert!(message.contains("of 4194304 bytes"), "{message}");
    if disk.is_some() {
        assert!(message.contains("No space left on device"), "{message}");
    }
    assert_eq!(leftovers(&small), Vec::<String>::new(), "no partial file");
    assert_eq!(text(&mut s, "echo ok").await, "ok\n");
    drop(s);
    drop(server);
}

/// A program that ignores SIGINT: Ctrl-C cannot bring the shell back, and the error says
/// the board needs a power cycle.
#[tokio::test]
async fn ignored_ctrl_c_is_reported_unresponsive() {
    let server = BusyboxTelnetd::start();
    let mut config = config("board-hung", server.port);
    config.interrupt_grace = Duration::from_secs(2);
    let mut s = BoardSession::connect(config).await.expect("connect");
    let started = Instant::now();
    let err: SessionError = s
        .run_with_timeout(
            "trap '' INT; sleep 30",
            Duration::from_millis(300),
            &mut tokio::io::sink(),
        )
        .await
        .expect_err("unresponsive");
    assert!(
        matches!(err.kind(), ErrorKind::Unresponsive { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("power cycle"), "{err}");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
}
