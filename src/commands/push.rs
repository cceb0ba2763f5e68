//! `socv push`: copy a file to a board you hold, through its console, verified by checksum.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::lease::held;
use crate::output;
use crate::session::{BoardSession, LocalFile};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_help = "\
The file goes through the board's shell as base64 (the board needs no network), then the
board's sha256sum (or md5sum) must match before it is made executable and moved into place.
On any failure nothing is left at DEST.

Examples:
  socv push soc-a-001 ./test.elf                 to /tmp/test.elf
  socv push soc-a-001 ./test.elf /root/bin/t     to that path
  socv push l-7f3a0c1b2d4e ./data.bin /tmp/data.bin --json

A file that cannot be read, or a failed push (no base64 on the board, a full disk, a checksum
mismatch), is exit 1.

Exit codes:
  0  success
  1  other failure
  4  lease, board or family not found
  5  permission denied
  6  leased unreachable, not a socv daemon, or its store unavailable")]
pub struct PushArgs {
    /// The lease id, or the board whose lease you hold
    #[arg(value_name = "LEASE | BOARD")]
    pub target: String,
    /// The local file
    pub file: PathBuf,
    /// Where on the board [default: /tmp/<file name>]
    pub dest: Option<String>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// The default destination: the file's name under /tmp.
pub fn default_dest(file: &std::path::Path) -> Result<String> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Usage(format!("{} has no usable file name", file.display())))?;
    Ok(format!("/tmp/{name}"))
}

pub async fn run(client: &Client, args: PushArgs) -> Result<()> {
    // Read first: a missing file fails before any lease lookup or connection.
    let file = LocalFile::read(&args.file).await?;
    let dest = match args.dest {
        Some(d) => d,
        None => default_dest(&args.file)?,
    };
    let board = held::resolve(client, &args.target).await?;
    let mut session = BoardSession::connect(board.session).await?;
    let bar = output::progress_bar(file.len(), !args.json);
    let report = session
        .push(&file, &dest, |sent| bar.set_position(sent))
        .await;
    bar.finish_and_clear();
    let report = report?;
    if let Err(e) = session.close().await {
        tracing::debug!(error = %e, "logging out");
    }
    if args.json {
        output::print_json(&serde_json::json!({
            "board": board.lease.board_id,
            "lease": board.lease.id,
            "local": file.path(),
            "remote": report.remote_path,
            "bytes": report.bytes,
            report.algorithm: report.digest,
            "seconds": report.elapsed.as_secs_f64(),
        }))
    } else {
        let secs = report.elapsed.as_secs_f64().max(1e-6);
        output::print(&format!(
            "pushed {} to {}:{} ({} bytes, {} {}, {:.1} MiB/s)",
            file.path().display(),
            board.lease.board_id,
            report.remote_path,
            report.bytes,
            report.algorithm,
            report.digest,
            report.bytes as f64 / secs / (1024.0 * 1024.0)
        ))
    }
}
