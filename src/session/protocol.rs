//! The shell protocol of a taken-over console: nonce markers around every command, and the
//! streaming parser that finds them in the board's output, however the output is split.
//!
//! A command `cmd` with nonce `<n>` is sent as one line (telnet.md §7.3):
//!
//! ```text
//! printf '__SOCV_BE''GIN_<n>__\n'; { cmd
//! } </dev/null; printf '__SOCV_R''C_<n>_%d__\n' $?
//! ```
//!
//! The quotes split the markers so that an echo of the line (if `stty -echo` failed) never
//! matches; the fresh nonce makes text a program prints, even a copy of a marker, harmless.
//! Output is everything between `BEGIN…\n` and `__SOCV_RC_<n>_`, which may follow the output
//! on the same line: output without a final newline comes back exactly, and a line the
//! program has ended is passed on at once (a marker with a newline of its own in front would
//! make the parser hold back every final `\n` until more output shows it was not the
//! marker's, so a test that prints a line and then works for a minute would show it late).

use std::fmt::Write as _;

/// A fresh nonce: 12 hex digits, random, so that no output of an earlier command or session
/// can match.
pub(crate) fn nonce() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// `'…'` with every `'` written as `'\''`: safe for any text in a POSIX shell.
pub(crate) fn shell_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// The line that runs `body` between the markers of `nonce`. `body` runs in the shell itself
/// (a `{ }` group), so its variables persist; it must be valid shell code, since a syntax
/// error makes an interactive shell drop the whole line, markers included.
pub(crate) fn wrap(body: &str, nonce: &str) -> String {
    let mut line = String::with_capacity(body.len() + 128);
    // The newline before `}` ends a trailing comment or `&` in `body`.
    let _ = write!(
        line,
        "printf '__SOCV_BE''GIN_{nonce}__\\n'; {{ {body}\n}} </dev/null; \
         printf '__SOCV_R''C_{nonce}_%d__\\n' $?\n"
    );
    line
}

/// The line that runs a caller's command: in a subshell through `eval`, so that a syntax
/// error is an ordinary failure (status 2) instead of a line the shell drops without ever
/// printing the RC marker, and so that `cd` or `exit` in one command cannot break the session.
pub(crate) fn wrap_isolated(command: &str, nonce: &str) -> String {
    wrap(&format!("( eval {} )", shell_quote(command)), nonce)
}

/// The line that takes a shell over (and brings it back in line after Ctrl-C): echo off, no
/// output processing (`-opost`: the bytes a program writes arrive as written, no `\r` added,
/// no tabs expanded), a recognisable prompt, no continuation prompt, then the sync marker.
pub(crate) fn sync_line(nonce: &str, quiet_kernel: bool) -> String {
    let dmesg = if quiet_kernel {
        // Kernel messages on a serial console would land in the output.
        " dmesg -n 1 2>/dev/null;"
    } else {
        ""
    };
    format!(
        "stty -echo -opost; PS1='{PROMPT}'; PS2=''; unset HISTFILE;{dmesg} \
         printf '__SOCV_SY''NC_{nonce}__\\n'\n"
    )
}

/// The shell prompt socv sets; it ends in `$ ` so that a console found in this state later
/// (a serial console keeps its shell) is recognised as a shell prompt.
pub(crate) const PROMPT: &str = "{socv}$ ";

/// The marker `sync_line` prints.
pub(crate) fn sync_marker(nonce: &str) -> Vec<u8> {
    format!("__SOCV_SYNC_{nonce}__").into_bytes()
}

/// Finds the sync marker in a stream and tells whether the tty still adds `\r` before `\n`
/// (`stty -opost` failed, or the server translates line ends).
#[derive(Debug)]
pub(crate) struct SyncMatcher {
    marker: Vec<u8>,
    window: Vec<u8>,
}

impl SyncMatcher {
    pub(crate) fn new(nonce: &str) -> Self {
        SyncMatcher {
            marker: sync_marker(nonce),
            window: Vec::new(),
        }
    }

    /// `Some(translated)` once the marker and its line end have arrived; `translated` is
    /// true when the line ended in `\r\n`.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Option<bool> {
        self.window.extend_from_slice(data);
        if let Some(at) = find(&self.window, &self.marker) {
            let rest = &self.window[at + self.marker.len()..];
            return match rest {
                [] | [b'\r'] => None,
                [b'\r', b'\n', ..] => Some(true),
                _ => Some(false),
            };
        }
        let keep = self.marker.len();
        if self.window.len() > keep {
            self.window.drain(..self.window.len() - keep);
        }
        None
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Undoes the tty's ONLCR (`\n` → `\r\n`) exactly: every `\n` it produced has that `\r` just
/// before it, so dropping the `\r` before each `\n` restores what the program wrote (a
/// program's own `\r\n`, sent as `\r\r\n`, comes back as `\r\n`).
#[derive(Debug, Default)]
pub(crate) struct CrlfFilter {
    pending_cr: bool,
}

impl CrlfFilter {
    pub(crate) fn filter(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            if std::mem::take(&mut self.pending_cr) {
                if b == b'\n' {
                    out.push(b'\n');
                    continue;
                }
                out.push(b'\r');
            }
            if b == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(b);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Skipping what comes before the BEGIN marker line (prompts, stale output).
    Begin,
    /// Passing output through, watching for the RC marker.
    Output,
    /// After `__SOCV_RC_<n>_`: reading the status digits up to `__`.
    Status,
    Done,
}

/// The streaming parser of one command's output.
#[derive(Debug)]
pub(crate) struct CommandParser {
    begin: Vec<u8>,
    end: Vec<u8>,
    phase: Phase,
    /// Bytes that may still turn out to be (part of) a marker.
    held: Vec<u8>,
    status: Option<i32>,
}

/// Longest status text accepted (`$?` is at most 3 digits).
const MAX_STATUS_DIGITS: usize = 3;

impl CommandParser {
    pub(crate) fn new(nonce: &str) -> Self {
        CommandParser {
            begin: format!("__SOCV_BEGIN_{nonce}__\n").into_bytes(),
            end: format!("__SOCV_RC_{nonce}_").into_bytes(),
            phase: Phase::Begin,
            held: Vec::new(),
            status: None,
        }
    }

    /// The exit status, once the RC marker has been read.
    pub(crate) fn status(&self) -> Option<i32> {
        self.status
    }

    /// Whether the BEGIN marker has been seen (the command has started).
    #[cfg(test)]
    pub(crate) fn started(&self) -> bool {
        self.phase != Phase::Begin
    }

    /// The output held back as a possible start of the RC marker, for when no more will come
    /// (the command timed out): it was output after all.
    pub(crate) fn flush_held(&mut self, out: &mut Vec<u8>) {
        match self.phase {
            Phase::Output => out.append(&mut self.held),
            Phase::Status => {
                out.extend_from_slice(&self.end);
                out.append(&mut self.held);
            }
            Phase::Begin | Phase::Done => self.held.clear(),
        }
    }

    /// Feeds data (with `\n` line ends, see [`CrlfFilter`]); appends the command's output to
    /// `out` and anything outside the markers to `noise`.
    pub(crate) fn feed(&mut self, data: &[u8], out: &mut Vec<u8>, noise: &mut Vec<u8>) {
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(data);
        let mut rest: &[u8] = &buf;
        while !rest.is_empty() {
            match self.phase {
                Phase::Begin => match find(rest, &self.begin) {
                    Some(at) => {
                        noise.extend_from_slice(&rest[..at]);
                        rest = &rest[at + self.begin.len()..];
                        self.phase = Phase::Output;
                    }
                    None => {
                        let keep = held_suffix(rest, &self.begin);
                        noise.extend_from_slice(&rest[..rest.len() - keep]);
                        self.held = rest[rest.len() - keep..].to_vec();
                        return;
                    }
                },
                Phase::Output => match find(rest, &self.end) {
                    Some(at) => {
                        out.extend_from_slice(&rest[..at]);
                        rest = &rest[at + self.end.len()..];
                        self.phase = Phase::Status;
                    }
                    None => {
                        let keep = held_suffix(rest, &self.end);
                        out.extend_from_slice(&rest[..rest.len() - keep]);
                        self.held = rest[rest.len() - keep..].to_vec();
                        return;
                    }
                },
                Phase::Status => {
                    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                    let after = &rest[digits..];
                    if digits <= MAX_STATUS_DIGITS && after.starts_with(b"__") && digits > 0 {
                        let status = std::str::from_utf8(&rest[..digits])
                            .ok()
                            .and_then(|s| s.parse::<i32>().ok());
                        if let Some(status) = status {
                            self.status = Some(status);
                            self.phase = Phase::Done;
                            noise.extend_from_slice(&after[2..]);
                            return;
                        }
                    }
                    let complete_enough = digits > MAX_STATUS_DIGITS
                        || after.len() >= 2
                        || (after.len() == 1 && after[0] != b'_');
                    if !complete_enough {
                        // Wait for more: the digits or the `__` are still on the way.
                        self.held = rest.to_vec();
                        return;
                    }
                    // Not our marker after all (cannot happen with a fresh nonce unless a
                    // program prints it): it was output.
                    out.extend_from_slice(&self.end);
                    self.phase = Phase::Output;
                }
                Phase::Done => {
                    noise.extend_from_slice(rest);
                    return;
                }
            }
        }
    }
}

/// How many bytes at the end of `data` are a proper prefix of `marker` and must be held back
/// until the next bytes show whether the marker follows.
fn held_suffix(data: &[u8], marker: &[u8]) -> usize {
    let max = (marker.len() - 1).min(data.len());
    (1..=max)
        .rev()
        .find(|&k| data[data.len() - k..] == marker[..k])
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "0123456789ab";

    /// What a board with `-opost` sends for a command that prints `output` and exits `rc`.
    fn board_bytes(output: &[u8], rc: i32) -> Vec<u8> {
        let mut v = b"{socv}$ ".to_vec();
        v.extend_from_slice(format!("__SOCV_BEGIN_{N}__\n").as_bytes());
        v.extend_from_slice(output);
        v.extend_from_slice(format!("__SOCV_RC_{N}_{rc}__\n{{socv}}$ ").as_bytes());
        v
    }

    fn parse_chunks(chunks: &[&[u8]]) -> (Vec<u8>, Option<i32>) {
        let mut parser = CommandParser::new(N);
        let mut out = Vec::new();
        let mut noise = Vec::new();
        for c in chunks {
            parser.feed(c, &mut out, &mut noise);
        }
        (out, parser.status())
    }

    fn assert_every_split(output: &[u8], rc: i32) {
        let bytes = board_bytes(output, rc);
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            assert_eq!(
                parse_chunks(&[a, b]),
                (output.to_vec(), Some(rc)),
                "split at {at}"
            );
        }
        // Cut off anywhere inside the output, what was held back comes out on a flush.
        let start = bytes.len() - output.len() - format!("__SOCV_RC_{N}_{rc}__\n{{socv}}$ ").len();
        for cut in start..=start + output.len() {
            let mut parser = CommandParser::new(N);
            let (mut out, mut noise) = (Vec::new(), Vec::new());
            parser.feed(&bytes[..cut], &mut out, &mut noise);
            parser.flush_held(&mut out);
            assert_eq!(out, &output[..cut - start], "cut at {cut}");
        }
        let ones: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            parse_chunks(&ones),
            (output.to_vec(), Some(rc)),
            "byte by byte"
        );
    }

    #[test]
    fn a_finished_line_is_passed_on_at_once() {
        let mut parser = CommandParser::new(N);
        let (mut out, mut noise) = (Vec::new(), Vec::new());
        parser.feed(
            format!("__SOCV_BEGIN_{N}__\nstarted\n").as_bytes(),
            &mut out,
            &mut noise,
        );
        assert_eq!(out, b"started\n", "nothing of a finished line is held back");
        parser.feed(b"__SOCV_R", &mut out, &mut noise);
        assert_eq!(out, b"started\n", "a possible marker start is held back");
    }

    #[test]
    fn output_and_status_at_every_split() {
        assert_every_split(b"hello\n", 0);
        assert_every_split(b"no final newline", 7);
        assert_every_split(b"", 255);
        assert_every_split(b"\n\n", 1);
        assert_every_split(b"ends in cr\r", 139);
    }

    #[test]
    fn marker_lookalikes_are_output() {
        let fake = format!(
            "__SOCV_RC_deadbeef_0__\n__SOCV_BEGIN_{N}__\n\n__SOCV_RC_{N}_x__\n\
             \n__SOCV_RC_{N}_12345__\n\n__SOCV_RC_{N}_"
        );
        // The last line ends in a prefix of the real marker: it is output all the same,
        // because what follows it is not a status.
        let mut output = fake.into_bytes();
        output.extend_from_slice(b"9x");
        assert_every_split(&output, 3);
    }

    #[test]
    fn nothing_before_begin_is_output() {
        let mut parser = CommandParser::new(N);
        let (mut out, mut noise) = (Vec::new(), Vec::new());
        parser.feed(b"stale \n__SOCV_RC_", &mut out, &mut noise);
        assert!(!parser.started());
        parser.feed(
            format!("{N}_0__\n__SOCV_BEGIN_{N}__\nx__SOCV_RC_{N}_4__\n$ ").as_bytes(),
            &mut out,
            &mut noise,
        );
        assert_eq!((out, parser.status()), (b"x".to_vec(), Some(4)));
        assert!(noise.starts_with(b"stale \n__SOCV_RC_"), "{noise:?}");
        assert!(noise.ends_with(b"\n$ "));
    }

    #[test]
    fn crlf_filter_undoes_onlcr_exactly() {
        // Program bytes `a\r\nb\n\rc\r` through ONLCR, split everywhere.
        let tty = b"a\r\r\nb\r\n\rc\r";
        for at in 0..=tty.len() {
            let mut f = CrlfFilter::default();
            let mut out = Vec::new();
            f.filter(&tty[..at], &mut out);
            f.filter(&tty[at..], &mut out);
            f.filter(b"\r\n", &mut out);
            assert_eq!(out, b"a\r\nb\n\rc\r\n", "split at {at}");
        }
    }

    #[test]
    fn sync_matcher_tells_the_line_end() {
        let marker = format!("junk__SOCV_SYNC_{N}__");
        for (tail, want) in [(&b"\r\n"[..], Some(true)), (&b"\n"[..], Some(false))] {
            let mut bytes = marker.clone().into_bytes();
            bytes.extend_from_slice(tail);
            for at in 0..=bytes.len() {
                let mut m = SyncMatcher::new(N);
                let first = m.feed(&bytes[..at]);
                let got = first.or_else(|| m.feed(&bytes[at..]));
                assert_eq!(got, want, "split at {at}");
            }
        }
        // The line of the sync command itself (if it is echoed) does not match.
        let mut m = SyncMatcher::new(N);
        assert_eq!(m.feed(sync_line(N, true).as_bytes()), None);
    }

    #[test]
    fn quoting_survives_any_text() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        let line = wrap_isolated("echo '__SOCV_RC_x'; exit 3", N);
        assert!(line.contains(r"( eval 'echo '\''__SOCV_RC_x'\''; exit 3' )"));
        assert!(
            !line.contains(&format!("__SOCV_RC_{N}")),
            "the marker is split"
        );
        assert!(!line.contains(&format!("__SOCV_BEGIN_{N}")));
        assert!(line.ends_with('\n'));
    }

    #[test]
    fn nonces_are_fresh() {
        let a = nonce();
        assert_eq!(a.len(), 12);
        assert_ne!(a, nonce());
    }
}
