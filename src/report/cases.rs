//! Test cases found in a run's console output: TAP / KTAP test points and LAVA-style markers,
//! scanned chunk by chunk as the output arrives.

use crate::report::tail;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The longest line looked at; the rest of a longer line is dropped, so a board that prints
/// megabytes without a newline cannot grow memory without bound.
pub const MAX_LINE: usize = 8 * 1024;
/// How much output is kept per test case and for the whole run (the end of it).
pub const EXCERPT_BYTES: usize = 4 * 1024;

const LAVA_TESTCASE: &str = "<LAVA_SIGNAL_TESTCASE";

/// How a test case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Passed,
    Failed,
    Skipped,
    /// LAVA's `RESULT=unknown` (or a result word we do not know).
    Unknown,
}

/// A LAVA `MEASUREMENT=` value with its optional `UNITS=`, kept as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurement {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
}

/// One test case found in the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCase {
    /// Unique within a run: nested KTAP/TAP14 cases are `parent.child`, repeats get ` (2)`.
    pub name: String,
    pub status: CaseStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement: Option<Measurement>,
    /// The SKIP/TODO reason, the bail-out reason or a TAP YAML `message:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The output since the previous test case up to and including this one's line (and its
    /// TAP YAML block), at most [`EXCERPT_BYTES`], the end kept.
    #[serde(default)]
    pub output: String,
}

/// What a finished scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scanned {
    pub cases: Vec<TestCase>,
    /// The last [`EXCERPT_BYTES`] of the whole output, for a run without test cases.
    pub output_tail: String,
}

/// A test point waiting one line for a TAP YAML diagnostics block that belongs to it.
struct Held {
    case: TestCase,
    indent: usize,
    in_yaml: bool,
}

/// A nested (indented) TAP14 / KTAP stream whose cases wait for the parent's closing test
/// point, which names them.
struct Frame {
    indent: usize,
    name: Option<String>,
    cases: Vec<TestCase>,
}

/// Scans console output for test cases. Feed it chunks as they come ([`CaseScanner::feed`]);
/// lines may be split anywhere, even inside a UTF-8 sequence.
#[derive(Default)]
pub struct CaseScanner {
    line: Vec<u8>,
    excerpt: String,
    output_tail: String,
    held: Option<Held>,
    frames: Vec<Frame>,
    pending_subtest: Option<String>,
    cases: Vec<TestCase>,
    names: HashSet<String>,
    next_suffix: HashMap<String, usize>,
    unnamed: usize,
}

impl CaseScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Scans a chunk; returns the test cases it completed (nested ones come when their parent
    /// closes, a test point one line later, when it is clear whether a YAML block follows).
    pub fn feed(&mut self, chunk: &[u8]) -> &[TestCase] {
        let before = self.cases.len();
        let mut rest = chunk;
        while !rest.is_empty() {
            let (part, newline) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            let room = MAX_LINE.saturating_sub(self.line.len());
            self.line.extend_from_slice(&part[..part.len().min(room)]);
            if newline {
                self.end_line();
                rest = &rest[part.len() + 1..];
            } else {
                rest = &[];
            }
        }
        &self.cases[before..]
    }

    /// The cases completed so far.
    pub fn cases(&self) -> &[TestCase] {
        &self.cases
    }

    /// Ends the scan: a last line without newline counts, open nested streams are flushed.
    pub fn finish(mut self) -> Scanned {
        if !self.line.is_empty() {
            self.end_line();
        }
        self.place_held();
        if let Some(frame) = self.close_frames_deeper_than(0) {
            self.absorb(frame, None);
        }
        Scanned {
            cases: self.cases,
            output_tail: self.output_tail,
        }
    }

    fn end_line(&mut self) {
        let raw = std::mem::take(&mut self.line);
        let text = String::from_utf8_lossy(&raw);
        self.on_line(text.trim_end_matches('\r'));
        // Reuse the allocation: a line buffer is at most MAX_LINE.
        self.line = raw;
        self.line.clear();
    }

    fn on_line(&mut self, text: &str) {
        push_capped(&mut self.output_tail, text);
        let body = strip_kernel_timestamp(text);
        let (indent, rest) = split_indent(body);
        let trimmed = rest.trim_end();

        if let Some(held) = &mut self.held {
            if held.in_yaml {
                if indent > held.indent || trimmed.is_empty() {
                    push_capped(&mut held.case.output, text);
                    if trimmed == "..." {
                        self.place_held();
                    } else if let Some(m) = trimmed.strip_prefix("message:")
                        && held.case.message.is_none()
                    {
                        let m = unquote(m.trim());
                        if !m.is_empty() {
                            held.case.message = Some(m.to_string());
                        }
                    }
                    return;
                }
                // A YAML block without its closing `...`: this line is output again.
                self.place_held();
            } else if trimmed == "---" && indent > held.indent {
                held.in_yaml = true;
                push_capped(&mut held.case.output, text);
                return;
            } else {
                self.place_held();
            }
        }

        push_capped(&mut self.excerpt, text);

        if body.contains(LAVA_TESTCASE) {
            let found = lava_cases(body);
            if !found.is_empty() {
                let output = self.take_excerpt();
                for mut case in found {
                    case.output = output.clone();
                    self.emit(case);
                }
                return;
            }
        }
        if let Some(reason) = rest.strip_prefix("Bail out!") {
            let output = self.take_excerpt();
            if let Some(frame) = self.close_frames_deeper_than(0) {
                self.absorb(frame, None);
            }
            let reason = reason.trim();
            self.emit(TestCase {
                name: "bail out".to_string(),
                status: CaseStatus::Failed,
                measurement: None,
                message: (!reason.is_empty()).then(|| reason.to_string()),
                output,
            });
            return;
        }
        if let Some(name) = trimmed.strip_prefix("# Subtest:") {
            self.subtest(indent, name.trim());
            return;
        }
        if indent > 0 && (trimmed.starts_with("KTAP version") || trimmed.starts_with("TAP version"))
        {
            self.open_frame(indent, None);
            return;
        }
        if let Some(point) = parse_test_point(rest) {
            self.test_point(indent, point);
        }
    }

    fn take_excerpt(&mut self) -> String {
        let excerpt = std::mem::take(&mut self.excerpt);
        tail(&excerpt, EXCERPT_BYTES).to_string()
    }

    fn test_point(&mut self, indent: usize, point: TestPoint<'_>) {
        let output = self.take_excerpt();
        let name = if point.description.is_empty() {
            self.unnamed += 1;
            match point.number {
                Some(n) => format!("test {n}"),
                None => format!("test {}", self.unnamed),
            }
        } else {
            point.description
        };
        let (status, message) = match point.directive {
            Some(Directive::Skip(reason)) => (CaseStatus::Skipped, reason),
            Some(Directive::Todo(reason)) => (
                CaseStatus::Skipped,
                Some(match reason {
                    Some(r) => format!("TODO {r}"),
                    None => "TODO".to_string(),
                }),
            ),
            None if point.ok => (CaseStatus::Passed, None),
            None => (CaseStatus::Failed, None),
        };
        let case = TestCase {
            name,
            status,
            measurement: None,
            message,
            output,
        };
        if let Some(frame) = self.close_frames_deeper_than(indent) {
            // This test point closes a nested stream: it names the children, and it is kept
            // itself only when it adds something (no children, or a failure none of them has).
            let had_children = !frame.cases.is_empty();
            let children_failed = frame.cases.iter().any(|c| c.status == CaseStatus::Failed);
            let prefix = frame.name.clone().unwrap_or_else(|| case.name.clone());
            self.absorb(frame, Some(&prefix));
            if had_children && (case.status != CaseStatus::Failed || children_failed) {
                return;
            }
        }
        if indent == 0 {
            self.pending_subtest = None;
        }
        self.held = Some(Held {
            case,
            indent,
            in_yaml: false,
        });
    }

    fn subtest(&mut self, indent: usize, name: &str) {
        if indent == 0 {
            // TAP14 as some producers write it: the comment at the parent's level names the
            // indented stream that follows.
            self.pending_subtest = Some(name.to_string());
            return;
        }
        if let Some(top) = self.frames.last_mut()
            && top.indent == indent
        {
            if top.cases.is_empty() && top.name.is_none() {
                // KTAP: `KTAP version 1` opened the stream, `# Subtest:` names it.
                top.name = Some(name.to_string());
            } else {
                // TAP14 inside a stream that is already going: it names the next deeper one.
                self.pending_subtest = Some(name.to_string());
            }
            return;
        }
        self.open_frame(indent, Some(name.to_string()));
    }

    /// Opens a nested stream at `indent`, closing (without a closing test point) any stream at
    /// that depth or deeper that is still open.
    fn open_frame(&mut self, indent: usize, name: Option<String>) {
        if let Some(frame) = self.close_frames_deeper_than(indent.saturating_sub(1)) {
            let prefix = frame.name.clone();
            self.absorb(frame, prefix.as_deref());
        }
        let name = name.or_else(|| self.pending_subtest.take());
        self.frames.push(Frame {
            indent,
            name,
            cases: Vec::new(),
        });
    }

    /// Pops the streams deeper than `indent`, the deeper ones folded into the shallowest,
    /// which is returned for its closing test point (if any) to name.
    fn close_frames_deeper_than(&mut self, indent: usize) -> Option<Frame> {
        let mut closed: Option<Frame> = None;
        while let Some(top) = self.frames.last()
            && top.indent > indent
        {
            let Some(mut frame) = self.frames.pop() else {
                break;
            };
            if let Some(inner) = closed.take() {
                let prefix = inner.name.clone();
                for mut case in inner.cases {
                    case.name = prefixed(prefix.as_deref(), &case.name);
                    frame.cases.push(case);
                }
            }
            closed = Some(frame);
        }
        closed
    }

    /// Hands a closed stream's cases to the stream around it (or the run), names prefixed.
    fn absorb(&mut self, frame: Frame, prefix: Option<&str>) {
        let prefix = prefix.or(frame.name.as_deref()).map(str::to_string);
        for mut case in frame.cases {
            case.name = prefixed(prefix.as_deref(), &case.name);
            match self.frames.last_mut() {
                Some(parent) => parent.cases.push(case),
                None => self.emit(case),
            }
        }
    }

    fn place_held(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        let mut case = held.case;
        case.output = tail(&case.output, EXCERPT_BYTES).to_string();
        if held.indent == 0 {
            self.emit(case);
            return;
        }
        match self.frames.last_mut() {
            Some(top) if top.indent == held.indent => top.cases.push(case),
            _ => {
                self.open_frame(held.indent, None);
                if let Some(top) = self.frames.last_mut() {
                    top.cases.push(case);
                }
            }
        }
    }

    /// Adds a case to the run's list under a name no earlier case has.
    fn emit(&mut self, mut case: TestCase) {
        if !self.names.insert(case.name.clone()) {
            let base = case.name.clone();
            let mut n = self.next_suffix.get(&base).copied().unwrap_or(2);
            loop {
                let candidate = format!("{base} ({n})");
                n += 1;
                if self.names.insert(candidate.clone()) {
                    case.name = candidate;
                    break;
                }
            }
            self.next_suffix.insert(base, n);
        }
        self.cases.push(case);
    }
}

fn prefixed(prefix: Option<&str>, name: &str) -> String {
    match prefix {
        Some(p) if !p.is_empty() => format!("{p}.{name}"),
        _ => name.to_string(),
    }
}

/// Appends a line, keeping roughly the last [`EXCERPT_BYTES`] (trimmed in batches, so the
/// cost per byte stays constant).
fn push_capped(buf: &mut String, line: &str) {
    buf.push_str(line);
    buf.push('\n');
    if buf.len() > 2 * EXCERPT_BYTES {
        let keep = tail(buf, EXCERPT_BYTES).len();
        buf.drain(..buf.len() - keep);
    }
}

/// Kernel (KTAP) lines read from a console carry a `[   12.345678] ` prefix.
fn strip_kernel_timestamp(line: &str) -> &str {
    let Some(rest) = line.strip_prefix('[') else {
        return line;
    };
    let Some(end) = rest.find(']') else {
        return line;
    };
    let stamp = &rest[..end];
    if stamp.bytes().any(|b| b.is_ascii_digit())
        && stamp
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b' ')
    {
        let after = &rest[end + 1..];
        after.strip_prefix(' ').unwrap_or(after)
    } else {
        line
    }
}

/// The indentation width (a tab counts as 4, the width of one TAP14/KTAP level) and the rest.
fn split_indent(line: &str) -> (usize, &str) {
    let mut width = 0;
    for (i, b) in line.bytes().enumerate() {
        match b {
            b' ' => width += 1,
            b'\t' => width += 4,
            _ => return (width, &line[i..]),
        }
    }
    (width, "")
}

fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

enum Directive {
    Skip(Option<String>),
    Todo(Option<String>),
}

struct TestPoint<'a> {
    ok: bool,
    number: Option<&'a str>,
    description: String,
    directive: Option<Directive>,
}

/// `ok`/`not ok`, an optional number, an optional `-`, a description and an optional
/// `# SKIP`/`# TODO` directive (`\#` is a literal `#`).
fn parse_test_point(line: &str) -> Option<TestPoint<'_>> {
    let (ok, after) = if let Some(a) = line.strip_prefix("not ok") {
        (false, a)
    } else if let Some(a) = line.strip_prefix("ok") {
        (true, a)
    } else {
        return None;
    };
    if !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return None;
    }
    let after = after.trim_start();
    let digits = after.bytes().take_while(u8::is_ascii_digit).count();
    let (number, after) = match after[digits..].chars().next() {
        _ if digits == 0 => (None, after),
        None | Some(' ' | '\t' | '#') => (Some(&after[..digits]), &after[digits..]),
        // `ok 3rd try`: not a number.
        Some(_) => (None, after),
    };
    let (description, directive) = split_directive(after);
    let description = description.trim();
    let description = description
        .strip_prefix('-')
        .map_or(description, str::trim_start);
    Some(TestPoint {
        ok,
        number,
        description: description.replace("\\#", "#"),
        directive: directive.and_then(parse_directive),
    })
}

fn split_directive(s: &str) -> (&str, Option<&str>) {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1] != b'\\') {
            return (&s[..i], Some(&s[i + 1..]));
        }
    }
    (s, None)
}

fn parse_directive(d: &str) -> Option<Directive> {
    let d = d.trim();
    let word_end = d.find(char::is_whitespace).unwrap_or(d.len());
    let word = d[..word_end].to_ascii_lowercase();
    let reason = d[word_end..].trim();
    let reason = (!reason.is_empty()).then(|| reason.to_string());
    if word.starts_with("skip") {
        Some(Directive::Skip(reason))
    } else if word.starts_with("todo") {
        Some(Directive::Todo(reason))
    } else {
        None
    }
}

/// Every `<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=… RESULT=… [MEASUREMENT=… UNITS=…]>` in a line.
fn lava_cases(line: &str) -> Vec<TestCase> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find(LAVA_TESTCASE) {
        let after = &rest[start + LAVA_TESTCASE.len()..];
        let (body, next) = match after.find('>') {
            Some(end) => (&after[..end], &after[end + 1..]),
            None => (after, ""),
        };
        rest = next;
        if !body.starts_with(char::is_whitespace) {
            continue;
        }
        let (mut id, mut result, mut value, mut units) = (None, None, None, None);
        for field in body.split_whitespace() {
            let Some((key, v)) = field.split_once('=') else {
                continue;
            };
            let v = unquote(v);
            match key {
                "TEST_CASE_ID" => id = Some(v),
                "RESULT" => result = Some(v),
                "MEASUREMENT" => value = Some(v),
                "UNITS" => units = Some(v),
                _ => {}
            }
        }
        let Some(id) = id.filter(|id| !id.is_empty()) else {
            continue;
        };
        let status = match result.map(str::to_ascii_lowercase).as_deref() {
            Some("pass") => CaseStatus::Passed,
            Some("fail") => CaseStatus::Failed,
            Some("skip") => CaseStatus::Skipped,
            _ => CaseStatus::Unknown,
        };
        found.push(TestCase {
            name: id.to_string(),
            status,
            measurement: value.map(|v| Measurement {
                value: v.to_string(),
                units: units.map(str::to_string),
            }),
            message: None,
            output: String::new(),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scan(input: &[u8]) -> Scanned {
        let mut s = CaseScanner::new();
        s.feed(input);
        s.finish()
    }

    fn scan_bytewise(input: &[u8]) -> Scanned {
        let mut s = CaseScanner::new();
        for b in input {
            s.feed(std::slice::from_ref(b));
        }
        s.finish()
    }

    fn summary(s: &Scanned) -> Vec<(String, CaseStatus)> {
        s.cases.iter().map(|c| (c.name.clone(), c.status)).collect()
    }

    const TAP: &str = "TAP version 13\r\n1..5\r\nboot log line\r\nok 1 - boot\r\nnot ok 2 - uart loopback\r\n  ---\r\n  message: 'expected 0x55 got 0x00'\r\n  ...\r\nok 3 - gpu # SKIP no gpu on this SoC\r\nnot ok 4 flaky # TODO fix later\r\nok 5\r\n";

    #[test]
    fn tap_points_directives_and_yaml() {
        let s = scan(TAP.as_bytes());
        assert_eq!(
            summary(&s),
            vec![
                ("boot".into(), CaseStatus::Passed),
                ("uart loopback".into(), CaseStatus::Failed),
                ("gpu".into(), CaseStatus::Skipped),
                ("flaky".into(), CaseStatus::Skipped),
                ("test 5".into(), CaseStatus::Passed),
            ]
        );
        assert_eq!(
            s.cases[0].output,
            "TAP version 13\n1..5\nboot log line\nok 1 - boot\n"
        );
        assert_eq!(
            s.cases[1].message.as_deref(),
            Some("expected 0x55 got 0x00")
        );
        assert!(s.cases[1].output.ends_with("  ...\n"));
        assert_eq!(s.cases[2].message.as_deref(), Some("no gpu on this SoC"));
        assert_eq!(s.cases[3].message.as_deref(), Some("TODO fix later"));
        assert_eq!(scan_bytewise(TAP.as_bytes()), s);
    }

    #[test]
    fn not_test_points() {
        let s = scan(b"okay then\nok, done\nnot okay\nbooking ok 1\n");
        assert!(s.cases.is_empty());
        assert_eq!(
            s.output_tail,
            "okay then\nok, done\nnot okay\nbooking ok 1\n"
        );
    }

    #[test]
    fn escaped_hash_is_part_of_the_name() {
        let s = scan(b"ok 1 - issue \\#12 # skip later\n");
        assert_eq!(s.cases[0].name, "issue #12");
        assert_eq!(s.cases[0].status, CaseStatus::Skipped);
    }

    const KTAP: &str = "\
[    0.100000] KTAP version 1
[    0.100001] 1..2
[    0.100002]     KTAP version 1
[    0.100003]     # Subtest: example
[    0.100004]     1..3
[    0.100005]     ok 1 example_simple_test
[    0.100006]     not ok 2 example_fail_test
[    0.100007]     ok 3 example_skip_test # SKIP this test should be skipped
[    0.100008] not ok 1 example
[    0.100009]     KTAP version 1
[    0.100010]     1..1
[    0.100011]     ok 1 inner
[    0.100012] ok 2 other_suite
";

    #[test]
    fn ktap_nested_streams_are_flattened_with_a_prefix() {
        let s = scan(KTAP.as_bytes());
        assert_eq!(
            summary(&s),
            vec![
                ("example.example_simple_test".into(), CaseStatus::Passed),
                ("example.example_fail_test".into(), CaseStatus::Failed),
                ("example.example_skip_test".into(), CaseStatus::Skipped),
                ("other_suite.inner".into(), CaseStatus::Passed),
            ]
        );
        assert_eq!(scan_bytewise(KTAP.as_bytes()), s);
    }

    #[test]
    fn tap14_subtest_and_a_failing_parent_with_passing_children() {
        let input = "TAP version 14\n# Subtest: suite\n    ok 1 - a\n    ok 2 - b\nnot ok 1 - suite\n# Subtest: outer\n    ok 1 - first\n    # Subtest: deep\n    1..1\n        ok 1 - leaf\n    ok 2 - deep\nok 2 - outer\n";
        let s = scan(input.as_bytes());
        assert_eq!(
            summary(&s),
            vec![
                ("suite.a".into(), CaseStatus::Passed),
                ("suite.b".into(), CaseStatus::Passed),
                ("suite".into(), CaseStatus::Failed),
                ("outer.first".into(), CaseStatus::Passed),
                ("outer.deep.leaf".into(), CaseStatus::Passed),
            ]
        );
    }

    #[test]
    fn unclosed_nested_stream_is_flushed_at_the_end() {
        let s = scan(b"    # Subtest: half\n    ok 1 - x\n    not ok 2 - y");
        assert_eq!(
            summary(&s),
            vec![
                ("half.x".into(), CaseStatus::Passed),
                ("half.y".into(), CaseStatus::Failed),
            ]
        );
    }

    #[test]
    fn bail_out_is_a_failed_case() {
        let s = scan(
            b"ok 1 - a\n    # Subtest: s\n    ok 1 - b\nBail out! board on fire\nok 2 - after\n",
        );
        assert_eq!(
            summary(&s),
            vec![
                ("a".into(), CaseStatus::Passed),
                ("s.b".into(), CaseStatus::Passed),
                ("bail out".into(), CaseStatus::Failed),
                ("after".into(), CaseStatus::Passed),
            ]
        );
        assert_eq!(s.cases[2].message.as_deref(), Some("board on fire"));
    }

    #[test]
    fn lava_markers_anywhere_in_a_line() {
        let input = "+ lava-test-case x\n<LAVA_SIGNAL_STARTTC boot>\nnoise <LAVA_SIGNAL_TESTCASE TEST_CASE_ID=boot RESULT=pass> more\n<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=dhrystone RESULT=pass MEASUREMENT=12345.6 UNITS=DMIPS><LAVA_SIGNAL_TESTCASE TEST_CASE_ID=net RESULT=FAIL>\n<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=gpu RESULT=skip>\n<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=odd RESULT=weird>\n<LAVA_SIGNAL_TESTCASE RESULT=pass>\n";
        let s = scan(input.as_bytes());
        assert_eq!(
            summary(&s),
            vec![
                ("boot".into(), CaseStatus::Passed),
                ("dhrystone".into(), CaseStatus::Passed),
                ("net".into(), CaseStatus::Failed),
                ("gpu".into(), CaseStatus::Skipped),
                ("odd".into(), CaseStatus::Unknown),
            ]
        );
        assert_eq!(
            s.cases[1].measurement,
            Some(Measurement {
                value: "12345.6".into(),
                units: Some("DMIPS".into())
            })
        );
        assert!(s.cases[0].output.starts_with("+ lava-test-case x\n"));
    }

    #[test]
    fn duplicate_names_get_a_suffix() {
        let s = scan(b"ok 1 - t\nok 2 - t\nok 3 - t (2)\nok 4 - t\n");
        let names: Vec<_> = s.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["t", "t (2)", "t (2) (2)", "t (3)"]);
    }

    #[test]
    fn feed_reports_completed_cases() {
        let mut s = CaseScanner::new();
        assert!(s.feed(b"ok 1 - a\n").is_empty(), "held for a YAML block");
        assert_eq!(s.feed(b"ok 2 - b\n")[0].name, "a");
        assert_eq!(s.finish().cases.len(), 2);
    }

    #[test]
    fn a_huge_line_is_bounded_and_the_next_line_still_counts() {
        let mut s = CaseScanner::new();
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..10 {
            s.feed(&chunk);
            assert!(s.line.len() <= MAX_LINE);
        }
        s.feed(b"\nnot ok 1 - after\n");
        let out = s.finish();
        assert_eq!(summary(&out), vec![("after".into(), CaseStatus::Failed)]);
        assert!(out.output_tail.len() <= 2 * EXCERPT_BYTES + MAX_LINE);
        assert!(out.cases[0].output.len() <= EXCERPT_BYTES);
    }

    #[test]
    fn excerpts_are_capped_to_the_end() {
        let mut input = String::new();
        for i in 0..1000 {
            input.push_str(&format!("line {i}\n"));
        }
        input.push_str("not ok 1 - big\n");
        let s = scan(input.as_bytes());
        assert!(s.cases[0].output.len() <= EXCERPT_BYTES);
        assert!(s.cases[0].output.ends_with("line 999\nnot ok 1 - big\n"));
    }

    #[test]
    fn non_utf8_is_replaced_not_fatal() {
        let s = scan(b"\xff\xfe ok\nok 1 - caf\xc3\xa9 \xff\n");
        assert_eq!(s.cases[0].name, "caf\u{e9} \u{fffd}");
    }

    fn tapish_line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("ok 1 - a".to_string()),
            Just("not ok 2 - b # TODO x".to_string()),
            Just("ok 3 c # SKIP".to_string()),
            Just("    # Subtest: s".to_string()),
            Just("    KTAP version 1".to_string()),
            Just("    ok 1 - inner".to_string()),
            Just("        not ok 1 - deeper".to_string()),
            Just("  ---".to_string()),
            Just("  message: m".to_string()),
            Just("  ...".to_string()),
            Just("Bail out! x".to_string()),
            Just(
                "x <LAVA_SIGNAL_TESTCASE TEST_CASE_ID=l RESULT=pass MEASUREMENT=1 UNITS=s>"
                    .to_string()
            ),
            "[ -~]{0,20}",
        ]
    }

    proptest! {
        #[test]
        fn splits_do_not_change_the_cases(
            lines in proptest::collection::vec(tapish_line(), 0..40),
            crlf in any::<bool>(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let input = lines.join(eol).into_bytes();
            let whole = scan(&input);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            points.sort_unstable();
            let mut s = CaseScanner::new();
            let mut from = 0;
            for p in points {
                s.feed(&input[from..p]);
                from = p;
            }
            s.feed(&input[from..]);
            prop_assert_eq!(s.finish(), whole.clone());
            prop_assert_eq!(scan_bytewise(&input), whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            input in proptest::collection::vec(any::<u8>(), 0..2000),
            cut in any::<prop::sample::Index>(),
        ) {
            let whole = scan(&input);
            let at = cut.index(input.len() + 1);
            let mut s = CaseScanner::new();
            s.feed(&input[..at]);
            s.feed(&input[at..]);
            prop_assert_eq!(s.finish(), whole);
        }
    }
}
