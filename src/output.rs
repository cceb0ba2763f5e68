//! What socv prints: tables for people, one JSON document for scripts, durations and times in
//! lab words ("in 29m"). Data goes to stdout; everything else to stderr.

use crate::error::{Error, Result};
use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Table, presets};
use serde::Serialize;
use socv_api::{Availability, BoardView, Lease};
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Writes `text` (plus a newline when missing) to stdout. A closed pipe (`socv boards | head`)
/// is not an error.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let result = out
        .write_all(text.as_bytes())
        .and_then(|()| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
        .and_then(|()| out.flush());
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("writing to stdout", e))
        }
        _ => Ok(()),
    }
}

/// Prints `value` as the one JSON document of a `--json` run.
pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    print(&crate::client::to_json(value)?)
}

/// Whether to draw spinners: only for a person watching stderr, never under `--json`.
pub fn interactive(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

/// A byte-count progress bar on stderr, drawn only when `show` and stderr is a terminal.
pub fn progress_bar(len: u64, show: bool) -> indicatif::ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Now as Unix milliseconds: the clock model socv and leased share.
pub use socv_api::time::now_ms;

/// A duration the way people read it in a table: `45s`, `29m`, `1h05m`, `2d03h` (truncated).
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A moment relative to `now_ms`: `in 29m`, `5m ago`, `now`.
pub fn relative(at_ms: u64, now_ms: u64) -> String {
    if at_ms / 1000 == now_ms / 1000 {
        "now".to_owned()
    } else if at_ms > now_ms {
        format!(
            "in {}",
            short_duration(Duration::from_millis(at_ms - now_ms))
        )
    } else {
        format!(
            "{} ago",
            short_duration(Duration::from_millis(now_ms - at_ms))
        )
    }
}

/// A moment as RFC 3339 UTC, to the second: `2025-05-01T09:30:00Z`.
pub fn timestamp(at_ms: u64) -> String {
    humantime::format_rfc3339_seconds(socv_api::time::system_time(at_ms)).to_string()
}

/// A borderless table in the style of `docker ps`: upper-case headers, two spaces between
/// columns, no trailing spaces; an empty cell is shown as `-`.
pub fn table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().copied());
    for row in rows {
        table.add_row(row.into_iter().map(|cell| {
            if cell.is_empty() {
                "-".to_owned()
            } else {
                cell
            }
        }));
    }
    let last = headers.len().saturating_sub(1);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i == last { 0 } else { 2 }));
        column.set_cell_alignment(CellAlignment::Left);
        column.set_constraint(ColumnConstraint::ContentWidth);
    }
    let mut text = String::new();
    for line in table.lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// The lease as it may be printed: the console password never appears in output.
pub fn without_secrets(lease: &Lease) -> Lease {
    let mut lease = lease.clone();
    if let Some(console) = &mut lease.console {
        console.password = None;
    }
    lease
}

/// `host:port` of the lease's console, when the daemon gave it (only to the holder).
pub fn endpoint(lease: &Lease) -> Option<String> {
    lease.console.as_ref().map(|c| {
        if c.host.contains(':') {
            format!("[{}]:{}", c.host, c.port)
        } else {
            format!("{}:{}", c.host, c.port)
        }
    })
}

/// The details of one lease, one `key  value` line each, for people.
pub fn lease_details(lease: &Lease, now_ms: u64) -> String {
    let mut lines: Vec<(&str, String)> = vec![
        ("lease", lease.id.clone()),
        (
            "board",
            format!("{} ({}, {})", lease.board_id, lease.family, lease.location),
        ),
    ];
    if let Some(endpoint) = endpoint(lease) {
        lines.push(("endpoint", format!("telnet {endpoint}")));
    }
    if let Some(console) = &lease.console {
        if let Some(user) = &console.username {
            lines.push(("login", user.clone()));
        }
        if console.password.is_some() {
            lines.push(("password", "(set, not shown)".to_owned()));
        }
    }
    lines.push(("holder", lease.holder.clone()));
    lines.push((
        "expires",
        format!(
            "{} ({})",
            relative(lease.expires_at_ms, now_ms),
            timestamp(lease.expires_at_ms)
        ),
    ));
    let mut text = String::new();
    for (key, value) in lines {
        text.push_str(&format!("{key:<9} {value}\n"));
    }
    text
}

/// The boards table for people.
pub fn boards_table(boards: &[BoardView], now_ms: u64) -> String {
    table(
        &[
            "BOARD", "FAMILY", "LOCATION", "STATE", "HEALTH", "HOLDER", "EXPIRES", "FAILURES",
        ],
        boards.iter().map(|b| {
            let leased = b.availability == Availability::Leased;
            vec![
                b.id.clone(),
                b.family.clone(),
                b.location.clone(),
                b.availability.to_string(),
                b.health.to_string(),
                b.holder.clone().filter(|_| leased).unwrap_or_default(),
                b.lease_expires_at_ms
                    .filter(|_| leased)
                    .map(|at| relative(at, now_ms))
                    .unwrap_or_default(),
                b.failures.to_string(),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use socv_api::Console;

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        let d = Duration::from_secs;
        assert_eq!(short_duration(d(0)), "0s");
        assert_eq!(short_duration(d(59)), "59s");
        assert_eq!(short_duration(d(29 * 60 + 59)), "29m");
        assert_eq!(short_duration(d(3600 + 5 * 60)), "1h05m");
        assert_eq!(short_duration(d(2 * 86_400 + 3 * 3600)), "2d03h");
    }

    #[test]
    fn relative_times() {
        let now = 1_000_000_000;
        assert_eq!(relative(now + 30 * 60_000 - 1000, now), "in 29m");
        assert_eq!(relative(now - 5 * 60_000, now), "5m ago");
        assert_eq!(relative(now + 200, now), "now");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn tables_have_no_borders_and_no_trailing_space() {
        let text = table(
            &["BOARD", "HOLDER"],
            [
                vec!["soc-a-001".into(), "".into()],
                vec!["b".into(), "ann@h".into()],
            ],
        );
        assert_eq!(text, "BOARD      HOLDER\nsoc-a-001  -\nb          ann@h\n");
    }

    #[test]
    fn passwords_never_leave() {
        let lease = Lease {
            console: Some(Console {
                host: "10.0.0.5".into(),
                port: 23,
                username: Some("root".into()),
                password: Some("hunter2".into()),
                ..Console::default()
            }),
            ..Lease::default()
        };
        let shown = without_secrets(&lease);
        assert!(!serde_json::to_string(&shown).unwrap().contains("hunter2"));
        assert!(!lease_details(&lease, 0).contains("hunter2"));
        assert_eq!(endpoint(&lease).as_deref(), Some("10.0.0.5:23"));
    }
}
