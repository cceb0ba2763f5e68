//! `socv demo`: a whole lab in one process (a simulated lab, leased on an embedded store), and
//! one real run on it: lease a board, push a sample test, run it, show the lab, release.

use crate::client::{Client, LeaseAnswer};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::lease::held;
use crate::output;
use crate::session::{BoardSession, LocalFile};
use crate::signals::Signals;
use crate::sim::{FamilySpec, SimConfig, SimLab};
use clap::Args;
use leased::config::StoreSpec;
use socv_api::LeaseRequest;

/// The sample test the demo pushes and runs (TAP output, exit 0 when every point passes).
pub const SAMPLE_TEST: &[u8] = include_bytes!("../../tests/fixtures/sample-test.sh");

#[derive(Debug, Args)]
#[command(after_help = "\
Nothing to install: the lab's boards are telnet servers with a real shell on this machine, and
leased runs in-process with its embedded store in a temporary directory. Everything is removed
when the demo ends.

Examples:
  socv demo           lease a socA board, push and run the sample test, release, exit
  socv demo --keep    the same, then keep the lab and leased running until Ctrl-C and print
                      the environment that points socv (and another leased) at them

socv exits with the sample test's status: 0 when every test point passed.

Exit codes:
  0  success
  1  other failure")]
pub struct DemoArgs {
    /// Keep the simulated lab and leased running after the demo, until Ctrl-C
    #[arg(long)]
    pub keep: bool,
}

fn say(text: &str) {
    eprintln!("socv demo: {text}");
}

pub async fn run(args: DemoArgs) -> Result<i32> {
    let mut signals = Signals::install()?;
    let dir = tempfile::Builder::new()
        .prefix("socv-demo-")
        .tempdir()
        .map_err(|e| Error::io("creating the demo's temporary directory", e))?;
    let families = vec![
        "socA:3".parse::<FamilySpec>().map_err(Error::Usage)?,
        "socB:2".parse::<FamilySpec>().map_err(Error::Usage)?,
    ];
    let lab = SimLab::start(SimConfig {
        families,
        root_dir: Some(dir.path().join("boards")),
        ..SimConfig::default()
    })
    .await?;
    let boards_file = dir.path().join("boards.yaml");
    lab.write_boards(&boards_file)?;
    say(&format!(
        "simulated lab: {} boards (socA ×3, socB ×2), PDU at {}",
        lab.boards().len(),
        lab.pdu_url()
    ));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::io("binding leased to 127.0.0.1:0", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading leased's address", e))?;
    let mut daemon_config = leased::Config::new(
        &boards_file,
        StoreSpec::Embedded(dir.path().join("leased.redb")),
    );
    daemon_config.listen = addr;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(leased::serve(daemon_config, listener, async move {
        let _ = stopped.await;
    }));
    let url = format!("http://{addr}");
    say(&format!(
        "leased at {url} (embedded store in {})",
        dir.path().display()
    ));

    let mut config = Config::load(None, None)?;
    config.daemon = url
        .parse()
        .map_err(|e| Error::Usage(format!("leased's own URL {url}: {e}")))?;
    config.token = None;
    let client = Client::new(&config)?;
    let outcome = tokio::select! {
        r = one_run(&client) => r,
        signal = signals.recv() => Err(Error::Usage(format!("{signal}: demo stopped"))),
    };

    if args.keep && outcome.is_ok() {
        output::print(&format!(
            "\nThe lab and leased keep running until Ctrl-C. In another terminal:\n\n  \
             export SOCV_DAEMON={url}\n  export LEASED_BOARDS={}\n\n  \
             socv boards; socv lease socA --hold; socv exec soca-001 -- uname -a\n\n\
             SOCV_DAEMON points socv at this leased; LEASED_BOARDS is the lab's boards.yaml \
             (for another leased). Faults and power: {} (see `socv sim --help`).",
            boards_file.display(),
            lab.pdu_url()
        ))?;
        let signal = signals.recv().await;
        say(&format!("{signal}: stopping"));
    }
    let _ = stop.send(());
    if let Ok(Err(e)) = daemon.await {
        say(&format!("leased stopped with an error: {e:#}"));
    }
    lab.shutdown().await;
    outcome
}

/// Lease, push, run, show, release: what `socv run` will do, step by step and out loud.
async fn one_run(client: &Client) -> Result<i32> {
    let answer = client
        .request_lease(&LeaseRequest {
            board_family: Some("socA".into()),
            ttl_s: Some(600),
            ..LeaseRequest::default()
        })
        .await?;
    let LeaseAnswer::Granted(lease) = answer else {
        return Err(Error::NotFound(
            "the demo lab had no free socA board".into(),
        ));
    };
    say(&format!("leased {} (lease {})", lease.board_id, lease.id));
    let result = use_board(client, &lease.id).await;
    let released = client.release(&lease.id).await;
    let status = result?;
    released?;
    say(&format!("released {}", lease.board_id));
    Ok(status)
}

async fn use_board(client: &Client, lease_id: &str) -> Result<i32> {
    let board = held::resolve(client, lease_id).await?;
    let file = LocalFile::from_bytes("sample-test.sh", SAMPLE_TEST.to_vec());
    let mut session = BoardSession::connect(board.session).await?;
    say(&format!(
        "logged in to {} over telnet; pushing sample-test.sh ({} bytes)",
        board.lease.board_id,
        file.len()
    ));
    let report = session.push(&file, "sample-test", |_| {}).await?;
    say(&format!(
        "pushed and verified ({} {}); running ./sample-test:",
        report.algorithm,
        &report.digest[..12.min(report.digest.len())]
    ));
    let mut out = tokio::io::stdout();
    let outcome = session.run("./sample-test", &mut out).await?;
    tokio::io::AsyncWriteExt::flush(&mut out)
        .await
        .map_err(|e| Error::io("writing the test's output", e))?;
    say(&format!("the test exited {}", outcome.status));
    if let Err(e) = session.close().await {
        tracing::debug!(error = %e, "logging out");
    }
    let lab = client.boards(None).await?;
    output::print(&output::boards_table(&lab, output::now_ms()))?;
    Ok(outcome.status)
}
