//! Pushing a file to a board through its shell (the board may have no network): base64 in
//! here-documents, the board's checksum compared with ours, then `chmod +x` and `mv` into
//! place, so a destination file is either the exact file or left alone.

use super::{BoardSession, CapturedOutput, ErrorKind, SessionError, protocol};
use base64::Engine as _;
use sha2::Digest as _;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// Raw bytes per base64 line: 57 bytes make 76 characters, the MIME line, far below both the
/// 1 KiB of busybox's line editor and the tty's 4 KiB canonical buffer (telnet.md §0.4).
const RAW_PER_LINE: usize = 57;
/// Lines per here-document: 850 lines of 77 bytes keep each one under 64 KiB, so the board's
/// shell, which holds a here-document in memory, never needs much.
const LINES_PER_HEREDOC: usize = 850;
const RAW_PER_HEREDOC: usize = RAW_PER_LINE * LINES_PER_HEREDOC;
/// The slowest link a push must finish on: base64 over a 115200-baud UART moves 8.3 KiB/s;
/// half of that leaves room.
const SLOWEST_BYTES_PER_SEC: u64 = 4 * 1024;

/// A local file read into memory, with its checksums: read it before connecting, so a missing
/// or unreadable file fails before anything is sent to the board.
#[derive(Clone)]
pub struct LocalFile {
    path: PathBuf,
    data: Vec<u8>,
    sha256: String,
    md5: String,
}

impl std::fmt::Debug for LocalFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFile")
            .field("path", &self.path)
            .field("len", &self.data.len())
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// The local file to push cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct LocalFileError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl LocalFile {
    /// Reads a regular file and computes its SHA-256 and MD5.
    pub async fn read(path: impl AsRef<Path>) -> Result<LocalFile, LocalFileError> {
        let path = path.as_ref().to_path_buf();
        let fail = |source| LocalFileError {
            path: path.clone(),
            source,
        };
        let meta = tokio::fs::metadata(&path).await.map_err(fail)?;
        if !meta.is_file() {
            return Err(fail(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        let data = tokio::fs::read(&path).await.map_err(fail)?;
        Ok(LocalFile::from_bytes(path, data))
    }

    /// A file already in memory; `path` is only its name in messages.
    pub fn from_bytes(path: impl Into<PathBuf>, data: Vec<u8>) -> LocalFile {
        let sha256 = hex(&sha2::Sha256::digest(&data));
        let md5 = hex(&md5::Md5::digest(&data));
        LocalFile {
            path: path.into(),
            data,
            sha256,
            md5,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> u64 {
        self.data.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Lowercase hex SHA-256 of the content.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// What a successful push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub remote_path: String,
    pub bytes: u64,
    /// `sha256` or, on a board without `sha256sum`, `md5`.
    pub algorithm: &'static str,
    /// The checksum the board computed, equal to the local file's.
    pub digest: String,
    pub elapsed: Duration,
}

/// Which of the tools a push uses the board has.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tools {
    base64: bool,
    sha256sum: bool,
    md5sum: bool,
}

impl Tools {
    /// Reads the output of `command -v` for each tool: a path or a bare name per found tool.
    fn parse(output: &str) -> Tools {
        let mut tools = Tools::default();
        for line in output.lines() {
            match line.trim().rsplit('/').next() {
                Some("base64") => tools.base64 = true,
                Some("sha256sum") => tools.sha256sum = true,
                Some("md5sum") => tools.md5sum = true,
                _ => {}
            }
        }
        tools
    }
}

/// Where the copy is written before it is verified: beside the destination, so the final `mv`
/// is a rename within one file system and never leaves a half-copied destination.
fn part_path(remote: &str, nonce: &str) -> String {
    match remote.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}.socv-{nonce}.part"),
        None => format!(".{remote}.socv-{nonce}.part"),
    }
}

fn check_remote_path(remote: &str) -> Result<(), String> {
    if remote.is_empty() {
        return Err("the path is empty".into());
    }
    if remote.ends_with('/') {
        return Err("the path names a directory; give the file name too".into());
    }
    if remote.chars().any(|c| c == '\n' || c == '\r' || c == '\0') {
        return Err("the path contains a line break or NUL".into());
    }
    if remote.len() > 1024 {
        return Err("the path is longer than 1024 bytes".into());
    }
    Ok(())
}

/// One here-document that appends `raw` (decoded) to `part`, recording a failure of
/// `base64 -d` (a full disk, a size limit) in `$__socv_rc`.
fn heredoc(raw: &[u8], part_quoted: &str, nonce: &str, out: &mut Vec<u8>) {
    let engine = base64::engine::general_purpose::STANDARD;
    let _ = writeln!(
        AsFmt(out),
        "base64 -d >> {part_quoted} <<'__SOCV_EOF_{nonce}' || __socv_rc=$?"
    );
    let mut line = [0u8; 76];
    for chunk in raw.chunks(RAW_PER_LINE) {
        let n = engine.encode_slice(chunk, &mut line).unwrap_or_default();
        out.extend_from_slice(&line[..n]);
        out.push(b'\n');
    }
    let _ = writeln!(AsFmt(out), "__SOCV_EOF_{nonce}");
}

/// `fmt::Write` into a byte vector.
struct AsFmt<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for AsFmt<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// What the board's verification command printed: base64's status, size, checksum.
#[derive(Debug, PartialEq, Eq)]
struct Verification {
    rc: String,
    size: Option<u64>,
    digest: String,
}

impl Verification {
    fn parse(output: &str) -> Verification {
        let mut lines = output.lines();
        let rc = lines.next().unwrap_or_default().trim().to_owned();
        let size = lines.next().and_then(|l| l.trim().parse().ok());
        let digest = lines
            .next()
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_default()
            .to_ascii_lowercase();
        Verification { rc, size, digest }
    }
}

fn short(output: &CapturedOutput) -> String {
    let text = output.text();
    let text = text.trim();
    if text.is_empty() {
        format!("exit status {}", output.status)
    } else {
        format!("exit status {}: {}", output.status, text)
    }
}

impl BoardSession {
    /// Pushes `file` to `remote_path` on the board (made executable). `progress` gets the
    /// number of bytes sent so far after each piece.
    ///
    /// The copy is written beside the destination, its SHA-256 (or MD5 where the board has
    /// only `md5sum`) must match the local file's, and only then is it moved into place. On
    /// any failure (no `base64` on the board, a full disk, a checksum mismatch) the partial
    /// copy is removed and the destination is left as it was.
    pub async fn push<P>(
        &mut self,
        file: &LocalFile,
        remote_path: &str,
        mut progress: P,
    ) -> Result<PushReport, SessionError>
    where
        P: FnMut(u64),
    {
        let started = Instant::now();
        let fail = |this: &Self, reason: String| {
            this.error(ErrorKind::PushFailed {
                local: file.path.clone(),
                remote: remote_path.to_owned(),
                reason,
            })
        };
        check_remote_path(remote_path).map_err(|reason| {
            self.error(ErrorKind::InvalidRemotePath {
                path: remote_path.to_owned(),
                reason,
            })
        })?;

        let probe = self
            .exec_internal(
                "for t in base64 sha256sum md5sum; do command -v \"$t\"; done",
                "checking the board's tools",
                self.config.command_timeout,
            )
            .await?;
        let tools = Tools::parse(&probe.text());
        if !tools.base64 {
            return Err(self.error(ErrorKind::ToolMissing {
                tool: "base64".into(),
            }));
        }
        let (algorithm, tool, local_digest) = if tools.sha256sum {
            ("sha256", "sha256sum", file.sha256.as_str())
        } else if tools.md5sum {
            ("md5", "md5sum", file.md5.as_str())
        } else {
            return Err(self.error(ErrorKind::ToolMissing {
                tool: "sha256sum or md5sum".into(),
            }));
        };

        let nonce = protocol::nonce();
        let part = part_path(remote_path, &nonce);
        let part_q = protocol::shell_quote(&part);
        let remote_q = protocol::shell_quote(remote_path);
        let created = self
            .exec_internal(
                &format!("__socv_rc=0; : > {part_q}"),
                "creating the copy",
                self.config.command_timeout,
            )
            .await?;
        if created.status != 0 {
            return Err(fail(
                self,
                format!("cannot create {part}: {}", short(&created)),
            ));
        }

        // Everything from here on removes the partial copy when it fails.
        let limit =
            self.config.command_timeout + Duration::from_secs(file.len() / SLOWEST_BYTES_PER_SEC);
        let deadline = started + limit;
        let result = self
            .stream_and_verify(file, &part_q, tool, deadline, limit, &mut progress)
            .await;
        let outcome = match result {
            Ok(v) => v,
            Err(e) => {
                if !e.link_lost() {
                    self.remove_quietly(&part_q).await;
                }
                return Err(e);
            }
        };
        if outcome.status != 0 {
            self.remove_quietly(&part_q).await;
            return Err(fail(
                self,
                format!("checking the copy failed: {}", short(&outcome)),
            ));
        }
        let v = Verification::parse(&outcome.text());
        if v.rc != "0" || v.size != Some(file.len()) {
            self.remove_quietly(&part_q).await;
            let written = v
                .size
                .map_or_else(|| "an unknown number of".to_owned(), |s| s.to_string());
            return Err(fail(
                self,
                format!(
                    "writing {part} failed (base64 -d exit status {}) after {written} of {} \
                     bytes (disk full?); the board said: {}; the partial copy was removed",
                    if v.rc.is_empty() { "unknown" } else { &v.rc },
                    file.len(),
                    self.noise.excerpt(300),
                ),
            ));
        }
        if v.digest != local_digest {
            self.remove_quietly(&part_q).await;
            return Err(self.error(ErrorKind::ChecksumMismatch {
                local: file.path.clone(),
                remote: remote_path.to_owned(),
                algorithm,
                local_digest: local_digest.to_owned(),
                board_digest: v.digest,
            }));
        }

        let installed = self
            .exec_internal(
                &format!("chmod +x {part_q} && mv -f {part_q} {remote_q}"),
                "moving the copy into place",
                self.config.command_timeout,
            )
            .await?;
        if installed.status != 0 {
            self.remove_quietly(&part_q).await;
            return Err(fail(
                self,
                format!(
                    "cannot move the verified copy into place: {}; the copy was removed",
                    short(&installed)
                ),
            ));
        }
        Ok(PushReport {
            remote_path: remote_path.to_owned(),
            bytes: file.len(),
            algorithm,
            digest: v.digest,
            elapsed: started.elapsed(),
        })
    }

    /// Streams every here-document without waiting for the board in between (only the
    /// socket's own back-pressure), then waits for the one verification command.
    async fn stream_and_verify<P>(
        &mut self,
        file: &LocalFile,
        part_q: &str,
        tool: &str,
        deadline: Instant,
        limit: Duration,
        progress: &mut P,
    ) -> Result<CapturedOutput, SessionError>
    where
        P: FnMut(u64),
    {
        const DOING: &str = "sending the file";
        self.noise.clear();
        // The shell is inside a here-document until the last one ends: a failure in between
        // needs Ctrl-C before the session is usable.
        self.dirty = true;
        let nonce = protocol::nonce();
        let mut text = Vec::with_capacity(LINES_PER_HEREDOC * 77 + 256);
        let mut sent = 0u64;
        for raw in file.data.chunks(RAW_PER_HEREDOC) {
            text.clear();
            heredoc(raw, part_q, &nonce, &mut text);
            self.send(&text)?;
            if !self.drain(deadline, DOING).await? {
                return Err(self.push_timeout(limit).await);
            }
            sent += raw.len() as u64;
            progress(sent);
        }
        self.dirty = false;
        let verify = format!("printf '%s\\n' \"$__socv_rc\"; wc -c < {part_q}; {tool} < {part_q}");
        let left = deadline.saturating_duration_since(Instant::now());
        self.exec_internal(&verify, "verifying the copy", left)
            .await
    }

    async fn push_timeout(&mut self, limit: Duration) -> SessionError {
        let err = self.timeout_error("end of sending the file", limit);
        match self.recover("stopping a push that ran out of time").await {
            Ok(()) => err,
            Err(unresponsive) => unresponsive,
        }
    }

    async fn remove_quietly(&mut self, part_q: &str) {
        // Best effort: the error being reported matters more than a failed cleanup.
        let _ = self
            .exec_internal(
                &format!("rm -f {part_q}"),
                "removing the partial copy",
                self.config.command_timeout,
            )
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_from_command_v() {
        assert_eq!(
            Tools::parse("/usr/bin/base64\n/usr/bin/sha256sum\nmd5sum\n"),
            Tools {
                base64: true,
                sha256sum: true,
                md5sum: true
            }
        );
        assert_eq!(
            Tools::parse("/bin/md5sum\n"),
            Tools {
                md5sum: true,
                ..Tools::default()
            }
        );
        assert_eq!(Tools::parse(""), Tools::default());
    }

    #[test]
    fn part_file_sits_beside_the_destination() {
        assert_eq!(part_path("/tmp/t.elf", "ab"), "/tmp/.t.elf.socv-ab.part");
        assert_eq!(part_path("t.elf", "ab"), ".t.elf.socv-ab.part");
        assert!(check_remote_path("/tmp/").is_err());
        assert!(check_remote_path("").is_err());
        assert!(check_remote_path("/tmp/a\nb").is_err());
        assert!(check_remote_path("/tmp/it's here").is_ok());
    }

    #[test]
    fn heredoc_lines_are_76_columns_and_decode_back() {
        let raw: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut text = Vec::new();
        heredoc(&raw, "'/tmp/p'", "n1", &mut text);
        let text = String::from_utf8(text).expect("ascii");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "base64 -d >> '/tmp/p' <<'__SOCV_EOF_n1' || __socv_rc=$?"
        );
        assert_eq!(*lines.last().expect("lines"), "__SOCV_EOF_n1");
        let body = &lines[1..lines.len() - 1];
        assert!(body.iter().all(|l| l.len() <= 76));
        assert!(body[..body.len() - 1].iter().all(|l| l.len() == 76));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(body.concat())
            .expect("valid base64");
        assert_eq!(decoded, raw);
    }

    #[test]
    fn a_heredoc_stays_under_64_kib() {
        let raw = vec![0xffu8; RAW_PER_HEREDOC];
        let mut text = Vec::new();
        heredoc(&raw, "'/tmp/p'", "0123456789ab", &mut text);
        assert!(text.len() <= 64 * 1024 + 128, "{}", text.len());
    }

    #[test]
    fn verification_output() {
        let sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(
            Verification::parse(&format!("0\n   4\n{sum}  -\n")),
            Verification {
                rc: "0".into(),
                size: Some(4),
                digest: sum.into()
            }
        );
        assert_eq!(Verification::parse("1\n0\n").size, Some(0));
        assert_eq!(Verification::parse("").rc, "");
    }

    #[test]
    fn digests_of_a_known_file() {
        let f = LocalFile::from_bytes("t", b"test".to_vec());
        assert_eq!(
            f.sha256(),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(f.md5, "098f6bcd4621d373cade4e832627b4f6");
    }

    #[tokio::test]
    async fn a_missing_file_fails_before_anything() {
        let err = LocalFile::read("/nonexistent/socv-test.elf")
            .await
            .expect_err("missing");
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/socv-test.elf: ")
        );
        let dir = std::env::temp_dir();
        let err = LocalFile::read(&dir).await.expect_err("a directory");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
