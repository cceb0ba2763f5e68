//! The `socv` lease commands end to end: the real binary against an in-process leased on
//! 127.0.0.1:0 with an embedded store in a temporary directory.

use leased::api::{BoardHealth, BoardView, DaemonHealth, Lease};
use leased::config::StoreSpec;
use socv::exit_codes;
use socv_testkit::LabFile;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SOCV: &str = env!("CARGO_BIN_EXE_socv");

/// A leased serving a lab of `socA` boards, stopped on drop.
struct Lab {
    url: String,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Lab {
    fn start(boards: usize) -> Lab {
        Lab::start_with(boards, None)
    }

    /// `tokens`: the tokens file's text; without it the daemon trusts the claimed holder.
    fn start_with(boards: usize, tokens: Option<&str>) -> Lab {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let lab = write_lab(dir.path(), boards);
        let loaded = leased::lab::Lab::load(&lab)
            .map(|l| l.boards.len())
            .unwrap_or_else(|e| panic!("leased rejects the test lab: {e}"));
        assert_eq!(
            loaded, boards,
            "leased read {loaded} of {boards} boards from the lab file"
        );
        let mut config =
            leased::Config::new(lab, StoreSpec::Embedded(dir.path().join("leases.redb")));
        if let Some(tokens) = tokens {
            let path = dir.path().join("tokens.toml");
            std::fs::write(&path, tokens).expect("writing the tokens file");
            config.tokens = Some(path);
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for leased");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                let shutdown = async move {
                    let _ = stopped.await;
                };
                if let Err(e) = leased::serve(config, listener, shutdown).await {
                    eprintln!("leased failed: {e:#}");
                }
            });
        });
        let lab = Lab {
            url,
            dir,
            stop: Some(stop),
            thread: Some(thread),
        };
        lab.wait_ready();
        lab
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // Any answer (even "token missing") means the daemon is up.
            let code = self.socv("probe", &["status"]).status.code();
            if code != Some(exit_codes::DAEMON_UNAVAILABLE) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("leased at {} did not come up", self.url);
    }

    /// `socv ARGS` as `user`, against this lab; waits for it to end.
    fn socv(&self, user: &str, args: &[&str]) -> Output {
        self.command(user, args).output().expect("running socv")
    }

    /// `socv ARGS` as `user`, not yet started.
    fn command(&self, user: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(SOCV);
        cmd.args(args)
            .env("SOCV_DAEMON", &self.url)
            .env("USER", user)
            .env("XDG_CONFIG_HOME", self.dir.path())
            .env("RUST_LOG", "warn")
            .env_remove("LOGNAME")
            .env_remove("SOCV_TOKEN")
            .env_remove("DEVICE_MANAGER_URL")
            .stdin(Stdio::null());
        cmd
    }

    fn leases(&self, user: &str) -> Vec<Lease> {
        json(&ok(self.socv(user, &["leases", "--json"])))
    }

    fn health(&self) -> DaemonHealth {
        json(&ok(self.socv("probe", &["status", "--json"])))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_lab(dir: &Path, n: usize) -> std::path::PathBuf {
    // Consoles on ports nobody listens on: these tests never open them.
    LabFile::new()
        .family("socA", n, 21000, |board| {
            board
                .lab_location("lab-sh")
                .telnet_username("root")
                .telnet_password("hunter2")
        })
        .write(dir.join("boards.yaml"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The output of a run that must have succeeded.
fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "socv failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Asserts the exit code and returns stderr.
fn fails_with(out: Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

fn json<T: serde::de::DeserializeOwned>(out: &Output) -> T {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", stdout(out)))
}

/// The lease id from the first line of `socv lease` for people (`lease     l-…`).
fn lease_id(out: &Output) -> String {
    let text = stdout(out);
    let first = text.lines().next().unwrap_or_default();
    match first.split_whitespace().collect::<Vec<_>>()[..] {
        ["lease", id] => id.to_owned(),
        _ => panic!("no lease line in:\n{text}"),
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{name} failed");
}

fn wait_exit(child: &mut Child, within: Duration) -> Output {
    let deadline = Instant::now() + within;
    loop {
        if child.try_wait().expect("polling socv").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("socv did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = Vec::new();
    let mut err = Vec::new();
    use std::io::Read;
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_end(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_end(&mut err);
    }
    Output {
        status: child.wait().expect("its status"),
        stdout: out,
        stderr: err,
    }
}

/// Starts `socv lease … --hold` and returns it once it printed the lease, with the lines.
fn start_hold(lab: &Lab, user: &str, args: &[&str]) -> (Child, Vec<String>) {
    let mut child = lab
        .command(user, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting socv lease --hold");
    let Some(out) = child.stdout.take() else {
        panic!("no stdout pipe")
    };
    let mut reader = BufReader::new(out);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("reading socv's stdout");
        assert!(n > 0, "socv ended before printing the lease: {lines:?}");
        let done = line.starts_with("expires");
        lines.push(line.trim_end().to_owned());
        if done {
            break;
        }
    }
    (child, lines)
}

#[test]
fn boards_lease_leases_and_release() {
    let lab = Lab::start(2);

    let out = ok(lab.socv("ann", &["boards"]));
    let text = stdout(&out);
    assert!(
        text.starts_with("BOARD     FAMILY  LOCATION  STATE  HEALTH   HOLDER  EXPIRES  FAILURES\n"),
        "{text}"
    );
    assert!(
        text.contains("socA-001  socA    lab-sh    free   healthy  -"),
        "{text}"
    );
    let boards: Vec<BoardView> = json(&ok(lab.socv("ann", &["boards", "--json"])));
    assert_eq!(boards.len(), 2);

    let out = ok(lab.socv("ann", &["lease", "socA", "--ttl", "10m"]));
    let id = lease_id(&out);
    let text = stdout(&out);
    assert!(text.contains("endpoint  telnet 127.0.0.1:2100"), "{text}");
    assert!(text.contains("login     root"), "{text}");
    assert!(
        !text.contains("hunter2"),
        "the password must not be printed:\n{text}"
    );
    assert!(stderr(&out).contains(&format!("socv release {id}")));

    let mine = lab.leases("ann");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].id, id);
    assert!(mine[0].console.is_some(), "the holder sees the console");
    let listing = stdout(&ok(lab.socv("ann", &["leases", "--json"])));
    assert!(!listing.contains("hunter2"), "{listing}");
    assert!(lab.leases("bob")[0].console.is_none());
    let board = mine[0].board_id.clone();

    let text = stdout(&ok(lab.socv("ann", &["boards"])));
    let row = text
        .lines()
        .find(|l| l.starts_with(&board))
        .unwrap_or_default();
    assert!(
        row.contains("leased") && row.contains("ann@") && row.contains("in 9m"),
        "{row}"
    );

    let err = fails_with(
        lab.socv("bob", &["release", &board]),
        exit_codes::PERMISSION_DENIED,
    );
    assert!(err.contains("it is held by ann@"), "{err}");
    assert!(err.contains("not by you"), "{err}");

    let err = fails_with(lab.socv("ann", &["release", "nope"]), exit_codes::NOT_FOUND);
    assert!(
        err.contains("no lease or board named 'nope' is held by you"),
        "{err}"
    );

    let out = ok(lab.socv("ann", &["release", &board]));
    assert_eq!(stdout(&out), format!("released {board} (lease {id})\n"));
    assert!(lab.leases("ann").is_empty());

    let err = fails_with(lab.socv("ann", &["release", &id]), exit_codes::NOT_FOUND);
    assert!(err.contains(&id), "{err}");
}

#[test]
fn no_free_board_waiting_and_the_queue() {
    let lab = Lab::start(1);
    ok(lab.socv("ann", &["lease", "socA"]));
    let board = lab.leases("ann")[0].board_id.clone();

    let err = fails_with(lab.socv("bob", &["lease", "socA"]), exit_codes::NO_BOARD);
    assert!(err.contains("add --wait"), "{err}");

    let started = Instant::now();
    let err = fails_with(
        lab.socv("bob", &["lease", "socA", "--wait", "2s"]),
        exit_codes::NO_BOARD,
    );
    assert!(err.contains("no socA board became free within 2s"), "{err}");
    // A guard against waiting on, not a speed check.
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(lab.health().waiting, 0, "the ticket left the queue");

    let err = fails_with(lab.socv("bob", &["lease", "socZ"]), exit_codes::NOT_FOUND);
    assert!(err.contains("socZ"), "{err}");

    // Bob waits; Ann releases; Bob gets the board.
    let waiter = lab
        .command("bob", &["lease", "socA", "--wait", "30s", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the waiter");
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.health().waiting == 0 {
        assert!(Instant::now() < deadline, "bob never queued");
        std::thread::sleep(Duration::from_millis(50));
    }
    ok(lab.socv("ann", &["release", &board]));
    let mut waiter = waiter;
    let out = ok(wait_exit(&mut waiter, Duration::from_secs(15)));
    let lease: Lease = json(&out);
    assert_eq!(lease.board_id, board);
    assert!(lease.holder.starts_with("bob@"), "{}", lease.holder);
    assert!(!stdout(&out).contains("hunter2"));
    assert!(
        stderr(&out).is_empty(),
        "--json keeps stderr quiet: {}",
        stderr(&out)
    );
}

#[test]
fn ctrl_c_while_waiting_leaves_the_queue() {
    let lab = Lab::start(1);
    ok(lab.socv("ann", &["lease", "socA"]));
    let mut waiter = lab
        .command("bob", &["lease", "socA", "--wait"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the waiter");
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.health().waiting == 0 {
        assert!(Instant::now() < deadline, "bob never queued");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&waiter, "INT");
    let err = fails_with(
        wait_exit(&mut waiter, Duration::from_secs(10)),
        exit_codes::NO_BOARD,
    );
    assert!(err.contains("stopped by Ctrl-C"), "{err}");
    assert!(err.contains("position 1"), "the position is shown: {err}");
    assert_eq!(lab.health().waiting, 0);
}

#[test]
fn hold_renews_past_the_ttl_and_releases_on_ctrl_c() {
    let lab = Lab::start(1);
    let (mut child, lines) = start_hold(&lab, "ann", &["lease", "socA", "--hold", "--ttl", "3s"]);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("endpoint  telnet 127.0.0.1:21001")),
        "{lines:?}"
    );
    let id = lines[0]
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();

    // Past the TTL the lease is still there: it was renewed.
    std::thread::sleep(Duration::from_millis(4500));
    let leases = lab.leases("ann");
    assert_eq!(leases.len(), 1, "the lease expired despite --hold");
    assert_eq!(leases[0].id, id);
    assert!(
        child.try_wait().expect("polling").is_none(),
        "--hold ended early"
    );

    signal(&child, "INT");
    let out = ok(wait_exit(&mut child, Duration::from_secs(10)));
    assert!(
        stderr(&out).contains("released socA-001"),
        "{}",
        stderr(&out)
    );
    assert!(lab.leases("ann").is_empty());
}

#[test]
fn boards_shows_a_held_lease_and_a_killed_holder_frees_it_within_ttl_plus_a_second() {
    let lab = Lab::start(1);
    let (mut child, _) = start_hold(&lab, "ann", &["lease", "socA", "--hold", "--ttl", "2s"]);
    // Another terminal sees the lease in the boards table.
    let table = stdout(&ok(lab.socv("bob", &["boards"])));
    let row = table
        .lines()
        .find(|l| l.contains("socA-001"))
        .unwrap_or_else(|| panic!("no row for socA-001 in:\n{table}"));
    assert!(row.contains("leased") && row.contains("ann@"), "{row}");

    // SIGKILL: socv cannot release; the daemon must free the board at the TTL (+1 s).
    let boards: Vec<BoardView> = json(&ok(lab.socv("bob", &["boards", "--json"])));
    let expires = boards[0].lease_expires_at_ms.expect("an expiry");
    child.kill().expect("kill -9 socv");
    let _ = child.wait();
    let ttl_ms = 2000;
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_millis() as u64;
        let boards: Vec<BoardView> = json(&ok(lab.socv("bob", &["boards", "--json"])));
        if boards[0].holder.is_none() {
            // The last renewal may have come just before the kill: the deadline is its expiry.
            assert!(
                now <= expires + ttl_ms + 1000,
                "freed {} ms after expiry",
                now - expires
            );
            break;
        }
        let deadline = boards[0].lease_expires_at_ms.unwrap_or(expires);
        assert!(
            now <= deadline + 1000,
            "still held {} ms after its expiry",
            now - deadline
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // And it can be leased again at once.
    ok(lab.socv("bob", &["lease", "socA"]));
}

#[test]
fn hold_releases_on_sigterm() {
    let lab = Lab::start(1);
    let (mut child, _) = start_hold(&lab, "ann", &["lease", "socA", "--hold"]);
    signal(&child, "TERM");
    let out = ok(wait_exit(&mut child, Duration::from_secs(10)));
    assert!(
        stderr(&out).contains("SIGTERM: released socA-001"),
        "{}",
        stderr(&out)
    );
    assert!(lab.leases("ann").is_empty());
}

#[test]
fn hold_fails_loudly_when_the_lease_is_gone() {
    let lab = Lab::start(1);
    let (mut child, _) = start_hold(&lab, "ann", &["lease", "socA", "--hold", "--ttl", "3s"]);
    // Someone (here: Ann from another terminal) releases it under the holder's feet.
    ok(lab.socv("ann", &["release", "socA-001"]));
    let out = wait_exit(&mut child, Duration::from_secs(10));
    let err = fails_with(out, exit_codes::NOT_FOUND);
    assert!(err.contains("LEASE RENEWAL FAILED for socA-001"), "{err}");
}

#[test]
fn status_and_admin_drain() {
    let tokens = "[[tokens]]\nname = \"ann\"\ntoken = \"ann-token-0123456789\"\nrole = \"user\"\n\n\
                  [[tokens]]\nname = \"root\"\ntoken = \"root-token-0123456789\"\nrole = \"admin\"\n";
    let lab = Lab::start_with(1, Some(tokens));

    let text = stdout(&ok(lab
        .command("ann", &["status"])
        .env("SOCV_TOKEN", "ann-token-0123456789")
        .output()
        .expect("running socv")));
    assert!(text.contains("store    embedded"), "{text}");
    assert!(text.contains("you      ann (user)"), "{text}");

    let out = lab.socv("ann", &["boards"]);
    let err = fails_with(out, exit_codes::PERMISSION_DENIED);
    assert!(err.contains("SOCV_TOKEN"), "{err}");

    let out = lab
        .command("ann", &["board", "drain", "socA-001", "--reason", "UART"])
        .env("SOCV_TOKEN", "ann-token-0123456789")
        .output()
        .expect("running socv");
    fails_with(out, exit_codes::PERMISSION_DENIED);

    let out = ok(lab
        .command("root", &["board", "drain", "socA-001", "--reason", "UART"])
        .env("SOCV_TOKEN", "root-token-0123456789")
        .output()
        .expect("running socv"));
    assert_eq!(
        stdout(&out),
        "drained socA-001 (health: maintenance): UART\n"
    );
    let boards: Vec<BoardView> = json(&ok(lab
        .command("root", &["boards", "--json"])
        .env("SOCV_TOKEN", "root-token-0123456789")
        .output()
        .expect("running socv")));
    assert_eq!(boards[0].health, BoardHealth::Maintenance);

    let out = lab
        .command("ann", &["lease", "socA"])
        .env("SOCV_TOKEN", "ann-token-0123456789")
        .output()
        .expect("running socv");
    fails_with(out, exit_codes::NO_BOARD);

    let out = ok(lab
        .command("root", &["board", "undrain", "socA-001"])
        .env("SOCV_TOKEN", "root-token-0123456789")
        .output()
        .expect("running socv"));
    assert_eq!(
        stdout(&out),
        "socA-001 is back in service (health: healthy)\n"
    );

    let out = lab
        .command("root", &["board", "drain", "socZ-404"])
        .env("SOCV_TOKEN", "root-token-0123456789")
        .output()
        .expect("running socv");
    fails_with(out, exit_codes::NOT_FOUND);
}

#[test]
fn an_unreachable_daemon_is_exit_6_with_a_hint() {
    let port = socv_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = Command::new(SOCV)
        .args(["--daemon", &url, "boards"])
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .output()
        .expect("running socv");
    let err = fails_with(out, exit_codes::DAEMON_UNAVAILABLE);
    assert_eq!(
        err,
        format!(
            "socv: error: cannot reach leased at {url}: connection refused \
             (is it running? set --daemon or SOCV_DAEMON)\n"
        )
    );
}

#[test]
fn usage_errors_are_exit_2() {
    for args in [
        &["lease"][..],
        &["lease", "socA", "--ttl", "soon"],
        &["lease", "--wait", "socA"],
        &["lease", "socA", "--priority", "urgent"],
        &["frobnicate"],
    ] {
        let out = Command::new(SOCV)
            .args(args)
            .output()
            .expect("running socv");
        fails_with(out, exit_codes::USAGE);
    }
    let out = Command::new(SOCV)
        .arg("boards")
        .env("SOCV_DAEMON", "ftp://lab")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .output()
        .expect("running socv");
    let err = fails_with(out, exit_codes::USAGE);
    assert!(err.contains("SOCV_DAEMON"), "{err}");
}
