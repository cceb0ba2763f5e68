//! Console text as a person or a prompt matcher reads it: VT100 sequences stripped, and a
//! bounded window of the latest output for prompts and error messages.

/// Removes VT100/ANSI escape sequences, as labgrid's `re_vt100` does:
/// `\x1b\[[^@-_a-z]*[@-_a-z]` (CSI, e.g. busybox's `ESC[6n` after every prompt), plus every
/// two-byte escape of ECMA-48 (`ESC` and a byte from `0` to `~`, so also `ESC 7`/`ESC 8`,
/// which labgrid's pattern misses). An escape cut off at the end is dropped, since its end is
/// still on the way. The 8-bit CSI (0x9b) is left alone: in UTF-8 it is a continuation byte.
pub(crate) fn strip_vt100(input: &[u8]) -> Vec<u8> {
    let is_final = |b: u8| (b'@'..=b'_').contains(&b) || b.is_ascii_lowercase();
    let is_two_byte = |b: u8| (b'0'..=b'~').contains(&b);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] != 0x1b {
            out.push(input[i]);
            i += 1;
            continue;
        }
        match input.get(i + 1) {
            Some(b'[') => {
                let params = &input[i + 2..];
                match params.iter().position(|&b| is_final(b)) {
                    Some(end) => i += 2 + end + 1,
                    None => break,
                }
            }
            Some(&b) if is_two_byte(b) => i += 2,
            Some(_) => {
                // Not an escape sequence we know: keep the byte after ESC as text.
                i += 1;
            }
            None => break,
        }
    }
    out
}

/// The last bytes received, raw, up to a limit; read as stripped text.
#[derive(Debug, Clone)]
pub(crate) struct ConsoleTail {
    bytes: Vec<u8>,
    limit: usize,
}

impl ConsoleTail {
    pub(crate) fn new(limit: usize) -> Self {
        ConsoleTail {
            bytes: Vec::new(),
            limit,
        }
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.len() >= self.limit {
            self.bytes.clear();
            self.bytes
                .extend_from_slice(&data[data.len() - self.limit..]);
            return;
        }
        let overflow = (self.bytes.len() + data.len()).saturating_sub(self.limit);
        self.bytes.drain(..overflow);
        self.bytes.extend_from_slice(data);
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
    }

    /// The window with escape sequences removed, as (lossy) UTF-8.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&strip_vt100(&self.bytes)).into_owned()
    }

    /// The last `max_chars` characters for an error message: escapes stripped, CRs and NULs
    /// dropped, surrounding blank space trimmed; `(nothing)` when there is nothing to show.
    pub(crate) fn excerpt(&self, max_chars: usize) -> String {
        let text: String = self
            .text()
            .chars()
            .filter(|&c| c != '\r' && c != '\0')
            .collect();
        let text = text.trim();
        let count = text.chars().count();
        let shown: String = if count > max_chars {
            let skip = count - max_chars;
            format!("…{}", text.chars().skip(skip).collect::<String>())
        } else {
            text.to_owned()
        };
        if shown.is_empty() {
            "(nothing)".to_owned()
        } else {
            format!("{shown:?}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_cursor_queries_colours_and_two_byte_escapes() {
        assert_eq!(strip_vt100(b"# \x1b[6n"), b"# ");
        assert_eq!(strip_vt100(b"\x1b[1;32mok\x1b[0m done"), b"ok done");
        assert_eq!(strip_vt100(b"a\x1b7b\x1b8c\x1b=d"), b"abcd");
        assert_eq!(strip_vt100(b"\x1b[?2004hroot@b:~# "), b"root@b:~# ");
    }

    #[test]
    fn an_escape_cut_off_at_the_end_is_held_back() {
        assert_eq!(strip_vt100(b"login: \x1b"), b"login: ");
        assert_eq!(strip_vt100(b"login: \x1b[6"), b"login: ");
        // Plain text after a lone ESC that starts no sequence stays.
        assert_eq!(strip_vt100(b"a\x1b b"), b"a b");
    }

    #[test]
    fn tail_keeps_the_latest_bytes() {
        let mut tail = ConsoleTail::new(8);
        tail.push(b"0123456789");
        tail.push(b"ab");
        assert_eq!(tail.text(), "456789ab");
        tail.push(b"cdefghijklmnop");
        assert_eq!(tail.text(), "ijklmnop");
        tail.clear();
        assert_eq!(tail.excerpt(10), "(nothing)");
    }

    #[test]
    fn excerpt_is_one_quoted_line() {
        let mut tail = ConsoleTail::new(1024);
        tail.push(b"U-Boot 2024.01\r\n\x1b[0mStarting kernel ...\r\n\r\n");
        assert_eq!(
            tail.excerpt(100),
            r#""U-Boot 2024.01\nStarting kernel ...""#
        );
        assert_eq!(tail.excerpt(10), r#""…kernel ...""#);
    }
}
