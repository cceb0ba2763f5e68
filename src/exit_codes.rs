//! The exit codes of `socv`, as named constants that code and tests import.
//!
//! They are a contract with scripts and CI jobs: a number never changes meaning.

/// Success.
pub const OK: i32 = 0;
/// Any failure without a more specific code below.
pub const FAILURE: i32 = 1;
/// Bad command line (clap's own code), bad environment variable or bad config file.
pub const USAGE: i32 = 2;
/// No board was available: none free without `--wait`, none healthy, or none became free in
/// time (also when waiting was interrupted).
pub const NO_BOARD: i32 = 3;
/// The named lease, board, family or queue ticket does not exist (or has ended).
pub const NOT_FOUND: i32 = 4;
/// The daemon refused: not your lease, not an admin, or a missing or bad token.
pub const PERMISSION_DENIED: i32 = 5;
/// leased cannot be reached, is not a socv daemon, or its lease store is unavailable.
pub const DAEMON_UNAVAILABLE: i32 = 6;
/// A command run on a board (`socv exec --timeout`) ran past its time limit (as `timeout(1)`).
pub const TIMED_OUT: i32 = 124;

/// `socv run`: socv or the lab failed (daemon unreachable, no board in time, every retry
/// failed), as `docker run` says 125 for its own failures.
pub const LAB_FAILURE: i32 = 125;
/// `socv run`: the binary could not be executed on the board.
pub const CANNOT_EXECUTE: i32 = 126;
/// `socv run`: the binary (or its interpreter) was not found on the board.
pub const NOT_FOUND_ON_BOARD: i32 = 127;
/// Stopped by Ctrl-C (128 + SIGINT), after giving back the lease.
pub const INTERRUPTED: i32 = 130;

/// Every code with its one-line meaning, in order; the help texts are checked against it.
pub const ALL: &[(i32, &str)] = &[
    (OK, "success"),
    (FAILURE, "other failure"),
    (
        USAGE,
        "usage error (bad flag, environment variable or config file)",
    ),
    (NO_BOARD, "no board available in time"),
    (NOT_FOUND, "lease, board or family not found"),
    (PERMISSION_DENIED, "permission denied"),
    (
        DAEMON_UNAVAILABLE,
        "leased unreachable, not a socv daemon, or its store unavailable",
    ),
    (
        TIMED_OUT,
        "the command ran past its time limit and was interrupted",
    ),
    (
        LAB_FAILURE,
        "socv run: socv or the lab failed (after the retries)",
    ),
    (
        CANNOT_EXECUTE,
        "socv run: the binary could not be executed on the board",
    ),
    (
        NOT_FOUND_ON_BOARD,
        "socv run: the binary was not found on the board",
    ),
    (
        INTERRUPTED,
        "interrupted (Ctrl-C, SIGTERM, SIGHUP); every lease was released",
    ),
];

/// The line of the help texts that documents `code`: `  3  no board available in time`.
pub fn help_line(code: i32) -> Option<String> {
    ALL.iter()
        .find(|(c, _)| *c == code)
        .map(|(c, meaning)| format!("  {c}  {meaning}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_in_order() {
        for pair in ALL.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{pair:?}");
        }
    }
}
