//! The run store conformance suite: every case runs against both backends, which must keep the
//! semantics documented in `leased::store::runs` exactly alike.
//!
//! Time is a parameter of the store operations, so the cases move a clock of their own (`T0` plus
//! offsets) and never sleep.

use leased::api::{
    CaseOutcome, LogLevel, LogLine, Priority, Run, RunCase, RunPrefect, RunQuery, RunState,
    RunUpdate,
};
use leased::store::{Millis, OutboxEntry, OutboxEvent, RunStore, StoreError};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Where the suite's clock starts (Unix ms).
const T0: Millis = 1_700_000_000_000;
const SEC: Millis = 1_000;
/// Runs kept by the cases that are not about retention.
const KEEP: usize = 10_000;
/// More outbox entries than any case makes.
const ALL: usize = 100_000;

const TERMINAL: [RunState; 5] = [
    RunState::Completed,
    RunState::Failed,
    RunState::TimedOut,
    RunState::Crashed,
    RunState::Cancelled,
];

// ---------------------------------------------------------------------------------------------
// The two backends

use crate::common::backends::{Backend, Embedded, Redis, conformance_suite};

conformance_suite!(
    start_records_a_pending_run,
    starting_a_known_id_changes_nothing,
    a_run_goes_from_pending_through_running_to_its_end,
    every_end_is_reachable_from_pending_and_from_running,
    repeating_the_current_state_changes_nothing,
    refused_transitions_change_nothing,
    unknown_runs_are_errors,
    transition_ids_are_fresh_uuids,
    logs_are_counted_and_queued,
    stored_runs_keep_every_field,
    queries_filter_and_list_newest_first,
    queries_default_to_fifty_runs,
    unfinished_runs_are_pending_or_running,
    retention_forgets_the_oldest_ended_runs,
    outbox_delivers_in_seq_order_across_runs,
    outbox_ack_ignores_unknown_seqs,
    claim_is_exclusive_until_it_lapses,
    flow_run_ids_are_remembered,
    runs_and_outbox_survive_reopening,
    concurrent_starts_record_a_run_once,
    concurrent_ends_end_a_run_once,
);

// ---------------------------------------------------------------------------------------------
// Helpers

/// Asserts that a result is an error matching a pattern.
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(if $guard:expr)?) => {
        match $result {
            Err($pattern) $(if $guard)? => {}
            other => panic!("expected Err({}), got {other:?}", stringify!($pattern)),
        }
    };
}

/// A run as a client posts it (the store sets its state and times).
fn new_run(id: &str, board: &str, family: &str, holder: &str) -> Run {
    Run {
        id: id.to_string(),
        lease_id: Some(format!("l-{id}")),
        board_id: board.to_string(),
        family: family.to_string(),
        location: "lab-1".to_string(),
        holder: holder.to_string(),
        binary: "./test.elf".to_string(),
        args: vec!["--quick".to_string()],
        priority: Priority::Normal,
        message: Some("nightly".to_string()),
        ..Run::default()
    }
}

fn run_on(id: &str) -> Run {
    new_run(id, "soc-a-001", "socA", "alice@bench")
}

/// `run` as `run_start` records it at `now`.
fn as_started(run: &Run, now: Millis) -> Run {
    Run {
        state: RunState::Pending,
        created_at_ms: now,
        started_at_ms: None,
        ended_at_ms: None,
        log_lines: 0,
        prefect: None,
        ..run.clone()
    }
}

async fn start<S: RunStore>(store: &S, run: Run, now: Millis) -> Run {
    start_keeping(store, run, KEEP, now).await
}

async fn start_keeping<S: RunStore>(store: &S, run: Run, keep: usize, now: Millis) -> Run {
    let id = run.id.clone();
    let (run, new) = store
        .run_start(run, keep, now)
        .await
        .unwrap_or_else(|e| panic!("run_start {id}: {e}"));
    assert!(new, "run {id} is new");
    run
}

fn to(state: RunState) -> RunUpdate {
    RunUpdate {
        state,
        ..RunUpdate::default()
    }
}

async fn update<S: RunStore>(store: &S, id: &str, update: RunUpdate, now: Millis) -> Run {
    let state = update.state;
    store
        .run_update(id, update, now)
        .await
        .unwrap_or_else(|e| panic!("run_update {id} to {state}: {e}"))
}

async fn logs<S: RunStore>(store: &S, id: &str, lines: Vec<LogLine>, now: Millis) -> Run {
    store
        .run_logs(id, lines, now)
        .await
        .unwrap_or_else(|e| panic!("run_logs {id}: {e}"))
}

async fn get<S: RunStore>(store: &S, id: &str) -> Option<Run> {
    store
        .run(id)
        .await
        .unwrap_or_else(|e| panic!("run {id}: {e}"))
}

async fn query<S: RunStore>(store: &S, q: RunQuery) -> Vec<String> {
    store
        .runs(&q)
        .await
        .unwrap_or_else(|e| panic!("runs {q:?}: {e}"))
        .into_iter()
        .map(|r| r.id)
        .collect()
}

async fn peek<S: RunStore>(store: &S, limit: usize) -> Vec<OutboxEntry> {
    store
        .outbox_peek(limit)
        .await
        .unwrap_or_else(|e| panic!("outbox_peek: {e}"))
}

async fn outbox_len<S: RunStore>(store: &S) -> u64 {
    store
        .outbox_len()
        .await
        .unwrap_or_else(|e| panic!("outbox_len: {e}"))
}

async fn ack<S: RunStore>(store: &S, seqs: &[u64]) {
    store
        .outbox_ack(seqs)
        .await
        .unwrap_or_else(|e| panic!("outbox_ack {seqs:?}: {e}"));
}

async fn set_flow<S: RunStore>(store: &S, id: &str, flow_run_id: &str) {
    store
        .set_flow_run_id(id, flow_run_id)
        .await
        .unwrap_or_else(|e| panic!("set_flow_run_id {id}: {e}"));
}

async fn claim<S: RunStore>(store: &S, owner: &str, ttl: Millis, now: Millis) -> bool {
    store
        .outbox_claim(owner, ttl, now)
        .await
        .unwrap_or_else(|e| panic!("outbox_claim {owner}: {e}"))
}

/// The queued events of one run, in order.
async fn events_of<S: RunStore>(store: &S, id: &str) -> Vec<OutboxEvent> {
    peek(store, ALL)
        .await
        .into_iter()
        .filter(|e| e.run_id == id)
        .map(|e| e.event)
        .collect()
}

/// A short name for an event, to compare orders.
fn kind(e: &OutboxEvent) -> String {
    match e {
        OutboxEvent::Create { .. } => "create".to_string(),
        OutboxEvent::State { state, .. } => format!("state:{state}"),
        OutboxEvent::Logs { lines } => format!("logs:{}", lines.len()),
        OutboxEvent::Artifacts { .. } => "artifacts".to_string(),
    }
}

fn kinds(events: &[OutboxEvent]) -> Vec<String> {
    events.iter().map(kind).collect()
}

fn transition_id(e: &OutboxEvent) -> String {
    match e {
        OutboxEvent::State { transition_id, .. } => transition_id.clone(),
        other => panic!("expected a State event, got {other:?}"),
    }
}

fn line(n: u32) -> LogLine {
    LogLine {
        ts_ms: T0 + u64::from(n),
        level: LogLevel::Info,
        source: Some("console".to_string()),
        message: format!("line {n}"),
    }
}

fn lines(from: u32, count: u32) -> Vec<LogLine> {
    (from..from + count).map(line).collect()
}

fn ended(state: RunState, exit_code: Option<i32>) -> RunUpdate {
    RunUpdate {
        state,
        message: Some(format!("ended {state}")),
        exit_code,
        socv_exit_code: Some(exit_code.unwrap_or(125)),
        board_id: None,
        cases: vec![
            RunCase {
                name: "boot".to_string(),
                outcome: CaseOutcome::Pass,
                duration_ms: Some(1200),
                message: None,
            },
            RunCase {
                name: "dma".to_string(),
                outcome: CaseOutcome::Fail,
                duration_ms: None,
                message: Some("timeout".to_string()),
            },
        ],
    }
}

// ---------------------------------------------------------------------------------------------
// Starting runs

async fn start_records_a_pending_run<B: Backend>(b: &B) {
    let store = b.open().await;
    // Whatever the client sent about state and times, the store sets its own.
    let posted = Run {
        state: RunState::Running,
        created_at_ms: 5,
        started_at_ms: Some(6),
        ended_at_ms: Some(7),
        log_lines: 8,
        prefect: Some(RunPrefect {
            flow_run_id: "forged".to_string(),
            url: None,
        }),
        ..run_on("r-1")
    };
    let expected = as_started(&posted, T0);
    let (run, new) = store
        .run_start(posted, KEEP, T0)
        .await
        .unwrap_or_else(|e| panic!("run_start: {e}"));
    assert!(new);
    assert_eq!(run, expected);
    assert_eq!(run.state, RunState::Pending);
    assert_eq!(run.created_at_ms, T0);
    assert_eq!(get(&store, "r-1").await, Some(expected.clone()));

    let entries = peek(&store, ALL).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].run_id, "r-1");
    assert_eq!(entries[0].event, OutboxEvent::Create { run: expected });
    assert!(entries[0].seq > 0);
    assert_eq!(outbox_len(&store).await, 1);
}

async fn starting_a_known_id_changes_nothing<B: Backend>(b: &B) {
    let store = b.open().await;
    start(&store, run_on("r-1"), T0).await;
    let running = update(&store, "r-1", to(RunState::Running), T0 + SEC).await;

    // A retried POST, even with other details, answers the run as recorded.
    let retry = new_run("r-1", "soc-b-001", "socB", "bob@desk");
    let (run, new) = store
        .run_start(retry, KEEP, T0 + 2 * SEC)
        .await
        .unwrap_or_else(|e| panic!("run_start again: {e}"));
    assert!(!new);
    assert_eq!(run, running);
    assert_eq!(run.board_id, "soc-a-001");
    assert_eq!(run.created_at_ms, T0);
    assert_eq!(get(&store, "r-1").await, Some(running));
    assert_eq!(
        kinds(&events_of(&store, "r-1").await),
        ["create", "state:running"]
    );
    assert_eq!(query(&store, RunQuery::default()).await, ["r-1"]);
}

// ---------------------------------------------------------------------------------------------
// Moving runs on

async fn a_run_goes_from_pending_through_running_to_its_end<B: Backend>(b: &B) {
    let store = b.open().await;
    let started = start(&store, run_on("r-1"), T0).await;

    let running = update(
        &store,
        "r-1",
        RunUpdate {
            message: Some("booted".to_string()),
            ..to(RunState::Running)
        },
        T0 + SEC,
    )
    .await;
    assert_eq!(
        running,
        Run {
            state: RunState::Running,
            started_at_ms: Some(T0 + SEC),
            ..started.clone()
        },
        "Running sets the start time only (the run keeps its own message)"
    );

    let end = RunUpdate {
        board_id: Some("soc-a-002".to_string()),
        ..ended(RunState::Completed, Some(0))
    };
    let done = update(&store, "r-1", end.clone(), T0 + 9 * SEC).await;
    let expected = Run {
        state: RunState::Completed,
        started_at_ms: Some(T0 + SEC),
        ended_at_ms: Some(T0 + 9 * SEC),
        exit_code: Some(0),
        socv_exit_code: Some(0),
        message: Some("ended completed".to_string()),
        board_id: "soc-a-002".to_string(),
        cases: end.cases.clone(),
        ..started.clone()
    };
    assert_eq!(done, expected);
    assert_eq!(get(&store, "r-1").await, Some(expected.clone()));

    let events = events_of(&store, "r-1").await;
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0], OutboxEvent::Create { run: started });
    assert_eq!(
        events[1],
        OutboxEvent::State {
            state: RunState::Running,
            message: Some("booted".to_string()),
            at_ms: T0 + SEC,
            transition_id: transition_id(&events[1]),
        }
    );
    assert_eq!(
        events[2],
        OutboxEvent::State {
            state: RunState::Completed,
            message: Some("ended completed".to_string()),
            at_ms: T0 + 9 * SEC,
            transition_id: transition_id(&events[2]),
        }
    );
    assert_eq!(events[3], OutboxEvent::Artifacts { run: expected });
}

async fn every_end_is_reachable_from_pending_and_from_running<B: Backend>(b: &B) {
    let store = b.open().await;
    for (i, state) in TERMINAL.into_iter().enumerate() {
        let now = T0 + i as u64 * 10 * SEC;
        let direct = format!("direct-{}", state.as_str().replace('_', "-"));
        let started = start(&store, run_on(&direct), now).await;
        let done = update(&store, &direct, to(state), now + SEC).await;
        assert_eq!(
            done,
            Run {
                state,
                ended_at_ms: Some(now + SEC),
                ..started
            },
            "Pending -> {state}: no start time; message and board kept when not given"
        );
        assert_eq!(
            kinds(&events_of(&store, &direct).await),
            [
                "create".to_string(),
                format!("state:{state}"),
                "artifacts".to_string()
            ]
        );

        let via = format!("via-{}", state.as_str().replace('_', "-"));
        start(&store, run_on(&via), now).await;
        update(&store, &via, to(RunState::Running), now + SEC).await;
        let done = update(&store, &via, ended(state, Some(3)), now + 2 * SEC).await;
        assert_eq!(done.state, state);
        assert_eq!(done.started_at_ms, Some(now + SEC));
        assert_eq!(done.ended_at_ms, Some(now + 2 * SEC));
        assert_eq!(done.exit_code, Some(3));
        assert_eq!(done.socv_exit_code, Some(3));
        assert_eq!(done.cases.len(), 2);
        assert_eq!(
            kinds(&events_of(&store, &via).await),
            [
                "create".to_string(),
                "state:running".to_string(),
                format!("state:{state}"),
                "artifacts".to_string()
            ]
        );
    }
}

async fn repeating_the_current_state_changes_nothing<B: Backend>(b: &B) {
    let store = b.open().await;
    let started = start(&store, run_on("r-1"), T0).await;
    assert_eq!(
        update(&store, "r-1", to(RunState::Pending), T0 + SEC).await,
        started
    );
    let running = update(&store, "r-1", to(RunState::Running), T0 + 2 * SEC).await;
    let again = RunUpdate {
        message: Some("again".to_string()),
        ..to(RunState::Running)
    };
    assert_eq!(update(&store, "r-1", again, T0 + 3 * SEC).await, running);
    let done = update(
        &store,
        "r-1",
        ended(RunState::Failed, Some(1)),
        T0 + 4 * SEC,
    )
    .await;
    // A retried PATCH with another result still answers the run as it ended.
    let retry = ended(RunState::Failed, Some(2));
    assert_eq!(update(&store, "r-1", retry, T0 + 5 * SEC).await, done);
    assert_eq!(get(&store, "r-1").await, Some(done));
    assert_eq!(
        kinds(&events_of(&store, "r-1").await),
        ["create", "state:running", "state:failed", "artifacts"]
    );
}

async fn refused_transitions_change_nothing<B: Backend>(b: &B) {
    let store = b.open().await;
    start(&store, run_on("r-run"), T0).await;
    let running = update(&store, "r-run", to(RunState::Running), T0 + SEC).await;
    assert_err!(
        store.run_update("r-run", to(RunState::Pending), T0 + 2 * SEC).await,
        StoreError::RunTransition { id, from: RunState::Running, to: RunState::Pending }
            if id == "r-run"
    );
    assert_eq!(get(&store, "r-run").await, Some(running));

    for (i, end) in TERMINAL.into_iter().enumerate() {
        let id = format!("r-{i}");
        start(&store, run_on(&id), T0).await;
        let done = update(&store, &id, to(end), T0 + SEC).await;
        let len = outbox_len(&store).await;
        for next in RunState::ALL.into_iter().filter(|s| *s != end) {
            match store
                .run_update(&id, ended(next, Some(9)), T0 + 2 * SEC)
                .await
            {
                Err(StoreError::RunTransition {
                    id: got,
                    from,
                    to: wanted,
                }) => {
                    assert_eq!((got.as_str(), from, wanted), (id.as_str(), end, next));
                }
                other => panic!("{end} -> {next}: expected RunTransition, got {other:?}"),
            }
        }
        assert_eq!(get(&store, &id).await, Some(done));
        assert_eq!(outbox_len(&store).await, len, "refusals queue nothing");
    }
}

async fn unknown_runs_are_errors<B: Backend>(b: &B) {
    let store = b.open().await;
    start(&store, run_on("known"), T0).await;
    assert_err!(
        store.run_update("nope", to(RunState::Running), T0).await,
        StoreError::UnknownRun(id) if id == "nope"
    );
    assert_err!(
        store.run_logs("nope", lines(0, 2), T0).await,
        StoreError::UnknownRun(id) if id == "nope"
    );
    assert_err!(
        store.run_logs("nope", Vec::new(), T0).await,
        StoreError::UnknownRun(id) if id == "nope"
    );
    assert_eq!(get(&store, "nope").await, None);
    assert_eq!(outbox_len(&store).await, 1, "only the known run's creation");
}

async fn transition_ids_are_fresh_uuids<B: Backend>(b: &B) {
    let store = b.open().await;
    for id in ["r-1", "r-2"] {
        start(&store, run_on(id), T0).await;
        update(&store, id, to(RunState::Running), T0 + SEC).await;
        update(&store, id, to(RunState::Cancelled), T0 + 2 * SEC).await;
    }
    let entries = peek(&store, ALL).await;
    let ids: Vec<String> = entries
        .iter()
        .filter(|e| matches!(e.event, OutboxEvent::State { .. }))
        .map(|e| transition_id(&e.event))
        .collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 4, "{ids:?}");
    for id in &ids {
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
        assert!(
            id.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{id}"
        );
        assert_eq!(&id[14..15], "4", "version 4: {id}");
    }
    // Kept: every read answers the same ids (a retried delivery repeats them).
    assert_eq!(peek(&store, ALL).await, entries);
}

async fn logs_are_counted_and_queued<B: Backend>(b: &B) {
    let store = b.open().await;
    start(&store, run_on("r-1"), T0).await;
    update(&store, "r-1", to(RunState::Running), T0 + SEC).await;
    let first = vec![
        LogLine {
            ts_ms: T0 + 1500,
            level: LogLevel::Warning,
            source: Some("socv".to_string()),
            message: "retrying \"telnet\" / ✓".to_string(),
        },
        line(1),
    ];
    assert_eq!(
        logs(&store, "r-1", first.clone(), T0 + 2 * SEC)
            .await
            .log_lines,
        2
    );
    assert_eq!(
        logs(&store, "r-1", lines(2, 3), T0 + 3 * SEC)
            .await
            .log_lines,
        5
    );
    let len = outbox_len(&store).await;
    let unchanged = logs(&store, "r-1", Vec::new(), T0 + 4 * SEC).await;
    assert_eq!(unchanged.log_lines, 5);
    assert_eq!(outbox_len(&store).await, len, "no lines, no event");

    let done = update(&store, "r-1", to(RunState::Completed), T0 + 5 * SEC).await;
    assert_eq!(done.log_lines, 5);
    // A late flush after the end is still recorded.
    let late = logs(&store, "r-1", lines(5, 1), T0 + 6 * SEC).await;
    assert_eq!(late.log_lines, 6);
    assert_eq!(late.state, RunState::Completed);
    assert_eq!(get(&store, "r-1").await.map(|r| r.log_lines), Some(6));

    let events = events_of(&store, "r-1").await;
    assert_eq!(
        kinds(&events),
        [
            "create",
            "state:running",
            "logs:2",
            "logs:3",
            "state:completed",
            "artifacts",
            "logs:1"
        ]
    );
    assert_eq!(events[2], OutboxEvent::Logs { lines: first });
    assert_eq!(events[3], OutboxEvent::Logs { lines: lines(2, 3) });
    assert_eq!(events[5], OutboxEvent::Artifacts { run: done });
    assert_eq!(events[6], OutboxEvent::Logs { lines: lines(5, 1) });
}

/// Every operation that rewrites a stored run keeps the fields it does not change, also empty
/// lists and text that needs escaping.
async fn stored_runs_keep_every_field<B: Backend>(b: &B) {
    let store = b.open().await;
    let bare = Run {
        lease_id: None,
        args: Vec::new(),
        message: None,
        priority: Priority::Low,
        ..run_on("bare")
    };
    let mut expected = start(&store, bare, T0).await;
    assert!(expected.args.is_empty());
    expected.log_lines = 1;
    assert_eq!(logs(&store, "bare", lines(0, 1), T0).await, expected);
    set_flow(&store, "bare", "fr-1").await;
    expected.prefect = Some(RunPrefect {
        flow_run_id: "fr-1".to_string(),
        url: None,
    });
    assert_eq!(get(&store, "bare").await, Some(expected.clone()));
    let done = update(&store, "bare", to(RunState::Crashed), T0 + SEC).await;
    assert_eq!(
        done,
        Run {
            state: RunState::Crashed,
            ended_at_ms: Some(T0 + SEC),
            ..expected
        }
    );
    assert!(done.cases.is_empty());

    let tricky = Run {
        args: vec![
            "\"args\":{}".to_string(),
            "ünïcødé ✓".to_string(),
            "a/b\\c\n\t".to_string(),
            String::new(),
        ],
        binary: "/opt/tests/ä b.elf".to_string(),
        message: Some("say \"hi\" </script>".to_string()),
        priority: Priority::High,
        ..run_on("tricky")
    };
    let started = start(&store, tricky, T0).await;
    let running = update(&store, "tricky", to(RunState::Running), T0 + SEC).await;
    assert_eq!(
        running,
        Run {
            state: RunState::Running,
            started_at_ms: Some(T0 + SEC),
            ..started.clone()
        }
    );
    let end = RunUpdate {
        exit_code: Some(-11),
        socv_exit_code: Some(139),
        ..ended(RunState::Failed, None)
    };
    let done = update(&store, "tricky", end.clone(), T0 + 2 * SEC).await;
    assert_eq!(done.args, started.args);
    assert_eq!(done.binary, started.binary);
    assert_eq!(done.exit_code, Some(-11));
    assert_eq!(done.socv_exit_code, Some(139));
    assert_eq!(done.cases, end.cases);
    assert_eq!(done.priority, Priority::High);
    assert_eq!(get(&store, "tricky").await, Some(done));
}

// ---------------------------------------------------------------------------------------------
// Queries

async fn queries_filter_and_list_newest_first<B: Backend>(b: &B) {
    let store = b.open().await;
    let spec = [
        (
            "r1",
            "soc-a-001",
            "socA",
            "alice",
            10,
            Some(RunState::Completed),
        ),
        (
            "r2",
            "soc-b-001",
            "socB",
            "bob",
            20,
            Some(RunState::Running),
        ),
        ("r3", "soc-a-002", "socA", "bob", 30, Some(RunState::Failed)),
        // Created in the same ms as r3: the higher id comes first, in every backend.
        ("r4", "soc-a-001", "socA", "alice", 30, None),
        (
            "r5",
            "soc-b-001",
            "socB",
            "alice",
            40,
            Some(RunState::Completed),
        ),
    ];
    for (id, board, family, holder, at, state) in spec {
        start(&store, new_run(id, board, family, holder), T0 + at).await;
        if let Some(state) = state {
            update(&store, id, to(state), T0 + at + 1).await;
        }
    }
    // r3 ended on another board (socv retried it there).
    assert_err!(
        store
            .run_update(
                "r3",
                RunUpdate {
                    board_id: Some("x".to_string()),
                    ..to(RunState::Completed)
                },
                T0 + 50
            )
            .await,
        StoreError::RunTransition { .. }
    );
    start(&store, new_run("r6", "soc-a-002", "socA", "carol"), T0 + 50).await;
    update(
        &store,
        "r6",
        RunUpdate {
            board_id: Some("soc-a-003".to_string()),
            ..to(RunState::Cancelled)
        },
        T0 + 51,
    )
    .await;

    let q = RunQuery::default;
    assert_eq!(
        query(&store, q()).await,
        ["r6", "r5", "r4", "r3", "r2", "r1"]
    );
    let board = |b: &str| RunQuery {
        board: Some(b.to_string()),
        ..q()
    };
    assert_eq!(query(&store, board("soc-a-001")).await, ["r4", "r1"]);
    assert_eq!(query(&store, board("soc-a-003")).await, ["r6"]);
    assert_eq!(query(&store, board("soc-a-002")).await, ["r3"]);
    assert!(query(&store, board("soc-z-001")).await.is_empty());
    let family = RunQuery {
        family: Some("socB".to_string()),
        ..q()
    };
    assert_eq!(query(&store, family).await, ["r5", "r2"]);
    let holder = RunQuery {
        holder: Some("alice".to_string()),
        ..q()
    };
    assert_eq!(query(&store, holder).await, ["r5", "r4", "r1"]);
    let completed = RunQuery {
        state: Some(RunState::Completed),
        ..q()
    };
    assert_eq!(query(&store, completed).await, ["r5", "r1"]);
    let pending = RunQuery {
        state: Some(RunState::Pending),
        ..q()
    };
    assert_eq!(query(&store, pending).await, ["r4"]);
    let since = |ms: Millis| RunQuery {
        since_ms: Some(T0 + ms),
        ..q()
    };
    assert_eq!(query(&store, since(30)).await, ["r6", "r5", "r4", "r3"]);
    assert_eq!(query(&store, since(31)).await, ["r6", "r5"]);
    assert!(query(&store, since(52)).await.is_empty());
    let all_of = RunQuery {
        family: Some("socA".to_string()),
        holder: Some("alice".to_string()),
        state: Some(RunState::Completed),
        since_ms: Some(T0 + 10),
        ..q()
    };
    assert_eq!(query(&store, all_of).await, ["r1"]);
    let limit = |n: usize| RunQuery {
        limit: Some(n),
        ..q()
    };
    assert_eq!(query(&store, limit(2)).await, ["r6", "r5"]);
    assert_eq!(query(&store, limit(1)).await, ["r6"]);
    assert!(query(&store, limit(0)).await.is_empty());
    let limited = RunQuery {
        family: Some("socA".to_string()),
        limit: Some(2),
        ..q()
    };
    assert_eq!(query(&store, limited).await, ["r6", "r4"]);

    // The answers are the whole runs.
    let runs = store
        .runs(&board("soc-a-003"))
        .await
        .unwrap_or_else(|e| panic!("runs: {e}"));
    assert_eq!(runs, vec![get(&store, "r6").await.unwrap_or_default()]);
    assert_eq!(runs[0].state, RunState::Cancelled);
}

async fn queries_default_to_fifty_runs<B: Backend>(b: &B) {
    let store = b.open().await;
    for i in 0..55u64 {
        start(&store, run_on(&format!("r-{i:02}")), T0 + i).await;
    }
    let ids = query(&store, RunQuery::default()).await;
    assert_eq!(ids.len(), 50);
    assert_eq!(ids.first().map(String::as_str), Some("r-54"));
    assert_eq!(ids.last().map(String::as_str), Some("r-05"));
    let more = RunQuery {
        limit: Some(100),
        ..RunQuery::default()
    };
    assert_eq!(query(&store, more).await.len(), 55);
}

async fn unfinished_runs_are_pending_or_running<B: Backend>(b: &B) {
    let store = b.open().await;
    for (i, id) in ["p-1", "r-1", "done", "p-2", "r-2"].into_iter().enumerate() {
        start(&store, run_on(id), T0 + i as u64).await;
    }
    update(&store, "r-1", to(RunState::Running), T0 + 10).await;
    update(&store, "r-2", to(RunState::Running), T0 + 10).await;
    update(&store, "done", to(RunState::Running), T0 + 10).await;
    update(&store, "done", to(RunState::TimedOut), T0 + 11).await;
    let unfinished = store
        .unfinished_runs()
        .await
        .unwrap_or_else(|e| panic!("unfinished_runs: {e}"));
    let ids: Vec<&str> = unfinished.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r-2", "p-2", "r-1", "p-1"], "newest first");
    assert_eq!(unfinished[0].state, RunState::Running);
    assert_eq!(unfinished[1].state, RunState::Pending);
}

async fn retention_forgets_the_oldest_ended_runs<B: Backend>(b: &B) {
    let store = b.open().await;
    for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
        start_keeping(&store, run_on(id), 3, T0 + i as u64).await;
    }
    update(&store, "a", to(RunState::Completed), T0 + 10).await;
    update(&store, "b", to(RunState::Running), T0 + 10).await;
    update(&store, "c", to(RunState::Failed), T0 + 10).await;
    let every = RunQuery {
        limit: Some(100),
        ..RunQuery::default()
    };
    assert_eq!(query(&store, every.clone()).await, ["c", "b", "a"]);

    // One more than kept: the oldest ended run goes.
    start_keeping(&store, run_on("d"), 3, T0 + 20).await;
    assert_eq!(query(&store, every.clone()).await, ["d", "c", "b"]);
    assert_eq!(get(&store, "a").await, None);
    // The oldest run (b) is unfinished: the oldest *ended* one goes.
    start_keeping(&store, run_on("e"), 3, T0 + 30).await;
    assert_eq!(query(&store, every.clone()).await, ["e", "d", "b"]);
    // Nothing has ended: every run stays, beyond the limit.
    start_keeping(&store, run_on("f"), 3, T0 + 40).await;
    start_keeping(&store, run_on("g"), 0, T0 + 50).await;
    assert_eq!(
        query(&store, every.clone()).await,
        ["g", "f", "e", "d", "b"]
    );
    // Ending runs forgets nothing by itself; the next start does, down to the limit.
    for id in ["b", "d", "e", "f"] {
        update(&store, id, to(RunState::Cancelled), T0 + 60).await;
    }
    assert_eq!(query(&store, every.clone()).await.len(), 5);
    start_keeping(&store, run_on("h"), 3, T0 + 70).await;
    assert_eq!(query(&store, every.clone()).await, ["h", "g", "f"]);
    let unfinished: Vec<String> = store
        .unfinished_runs()
        .await
        .unwrap_or_else(|e| panic!("unfinished_runs: {e}"))
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(unfinished, ["h", "g"]);

    // A forgotten run's events stay until delivered.
    assert_eq!(
        kinds(&events_of(&store, "a").await),
        ["create", "state:completed", "artifacts"]
    );
    // Its id is free again.
    let (again, new) = store
        .run_start(run_on("a"), 3, T0 + 80)
        .await
        .unwrap_or_else(|e| panic!("run_start a again: {e}"));
    assert!(new);
    assert_eq!(again.created_at_ms, T0 + 80);
}

// ---------------------------------------------------------------------------------------------
// The outbox

async fn outbox_delivers_in_seq_order_across_runs<B: Backend>(b: &B) {
    let store = b.open().await;
    assert!(peek(&store, 10).await.is_empty());
    assert_eq!(outbox_len(&store).await, 0);
    start(&store, run_on("x"), T0).await;
    start(&store, run_on("y"), T0 + 1).await;
    update(&store, "x", to(RunState::Running), T0 + 2).await;
    logs(&store, "y", lines(0, 2), T0 + 3).await;
    logs(&store, "x", lines(0, 1), T0 + 4).await;
    update(&store, "y", to(RunState::Crashed), T0 + 5).await;
    update(&store, "x", to(RunState::Completed), T0 + 6).await;

    let entries = peek(&store, ALL).await;
    let order: Vec<(String, String)> = entries
        .iter()
        .map(|e| (e.run_id.clone(), kind(&e.event)))
        .collect();
    let expected: Vec<(String, String)> = [
        ("x", "create"),
        ("y", "create"),
        ("x", "state:running"),
        ("y", "logs:2"),
        ("x", "logs:1"),
        ("y", "state:crashed"),
        ("y", "artifacts"),
        ("x", "state:completed"),
        ("x", "artifacts"),
    ]
    .iter()
    .map(|(r, k)| (r.to_string(), k.to_string()))
    .collect();
    assert_eq!(order, expected);
    assert!(
        entries.windows(2).all(|w| w[0].seq < w[1].seq),
        "seqs increase: {:?}",
        entries.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    assert_eq!(outbox_len(&store).await, 9);
    assert_eq!(peek(&store, 3).await, entries[..3]);
    assert!(peek(&store, 0).await.is_empty());

    // Acked entries go; the next peek starts after them.
    ack(&store, &[entries[0].seq, entries[1].seq]).await;
    assert_eq!(outbox_len(&store).await, 7);
    assert_eq!(peek(&store, 2).await, entries[2..4]);
    // Out of order too.
    ack(&store, &[entries[5].seq]).await;
    let rest: Vec<OutboxEntry> = entries[2..]
        .iter()
        .filter(|e| e.seq != entries[5].seq)
        .cloned()
        .collect();
    assert_eq!(peek(&store, ALL).await, rest);

    let seqs: Vec<u64> = rest.iter().map(|e| e.seq).collect();
    ack(&store, &seqs).await;
    assert_eq!(outbox_len(&store).await, 0);
    assert!(peek(&store, ALL).await.is_empty());
    // Seqs are never handed out twice, even once everything was acked.
    logs(&store, "x", lines(1, 1), T0 + 7).await;
    let next = peek(&store, ALL).await;
    assert_eq!(next.len(), 1);
    assert!(next[0].seq > entries[8].seq);
}

async fn outbox_ack_ignores_unknown_seqs<B: Backend>(b: &B) {
    let store = b.open().await;
    ack(&store, &[]).await;
    ack(&store, &[1, 2, 99]).await;
    start(&store, run_on("x"), T0).await;
    logs(&store, "x", lines(0, 1), T0).await;
    let entries = peek(&store, ALL).await;
    assert_eq!(entries.len(), 2);
    let unknown = entries[1].seq + 1000;
    ack(&store, &[unknown, entries[0].seq, 0]).await;
    assert_eq!(peek(&store, ALL).await, entries[1..]);
    // Acking again is harmless.
    ack(&store, &[entries[0].seq]).await;
    assert_eq!(outbox_len(&store).await, 1);
}

async fn claim_is_exclusive_until_it_lapses<B: Backend>(b: &B) {
    let first = b.open().await;
    let second = b.peer(&first).await;
    let ttl = 60 * SEC;
    assert!(claim(&first, "daemon-a", ttl, T0).await);
    assert!(!claim(&second, "daemon-b", ttl, T0 + SEC).await);
    // Renewing moves the lapse on.
    assert!(claim(&first, "daemon-a", ttl, T0 + 30 * SEC).await);
    assert!(!claim(&second, "daemon-b", ttl, T0 + 60 * SEC).await);
    assert!(!claim(&second, "daemon-b", ttl, T0 + 90 * SEC - 1).await);
    // Lapsed: another owner takes it, and holds it against the first.
    assert!(claim(&second, "daemon-b", ttl, T0 + 90 * SEC).await);
    assert!(!claim(&first, "daemon-a", ttl, T0 + 90 * SEC + 1).await);
    assert!(claim(&second, "daemon-b", ttl, T0 + 100 * SEC).await);
    assert!(claim(&first, "daemon-a", ttl, T0 + 160 * SEC).await);
}

async fn flow_run_ids_are_remembered<B: Backend>(b: &B) {
    let store = b.open().await;
    start_keeping(&store, run_on("r-1"), 1, T0).await;
    let len = outbox_len(&store).await;
    set_flow(&store, "r-1", "fr-1").await;
    let prefect = |flow: &str| {
        Some(RunPrefect {
            flow_run_id: flow.to_string(),
            url: None,
        })
    };
    assert_eq!(
        get(&store, "r-1").await.and_then(|r| r.prefect),
        prefect("fr-1")
    );
    set_flow(&store, "r-1", "fr-2").await;
    let run = get(&store, "r-1").await.unwrap_or_default();
    assert_eq!(run.prefect, prefect("fr-2"));
    assert_eq!(run.state, RunState::Pending, "nothing else changes");
    assert_eq!(outbox_len(&store).await, len, "nothing is queued");
    // Later changes keep it.
    let done = update(&store, "r-1", to(RunState::Completed), T0 + 1).await;
    assert_eq!(done.prefect, prefect("fr-2"));

    // Unknown and forgotten runs are no error.
    set_flow(&store, "never", "fr-3").await;
    assert_eq!(get(&store, "never").await, None);
    start_keeping(&store, run_on("r-2"), 1, T0 + 2).await;
    assert_eq!(get(&store, "r-1").await, None, "forgotten");
    set_flow(&store, "r-1", "fr-4").await;
    assert_eq!(get(&store, "r-1").await, None, "still forgotten");
}

// ---------------------------------------------------------------------------------------------
// Durability and concurrency

async fn runs_and_outbox_survive_reopening<B: Backend>(b: &B) {
    let store = b.open().await;
    for (i, id) in ["old", "a", "b", "c"].into_iter().enumerate() {
        start_keeping(&store, run_on(id), 4, T0 + i as u64).await;
    }
    update(&store, "old", to(RunState::Failed), T0 + 5).await;
    update(&store, "a", to(RunState::Running), T0 + 10).await;
    logs(&store, "a", lines(0, 4), T0 + 11).await;
    update(&store, "b", ended(RunState::Completed, Some(0)), T0 + 12).await;
    set_flow(&store, "b", "fr-b").await;
    let entries = peek(&store, ALL).await;
    ack(&store, &[entries[0].seq, entries[3].seq]).await;

    let every = RunQuery {
        limit: Some(100),
        ..RunQuery::default()
    };
    let runs = store
        .runs(&every)
        .await
        .unwrap_or_else(|e| panic!("runs: {e}"));
    let unfinished = store
        .unfinished_runs()
        .await
        .unwrap_or_else(|e| panic!("unfinished_runs: {e}"));
    let outbox = peek(&store, ALL).await;
    assert_eq!(runs.len(), 4);
    assert_eq!(unfinished.len(), 2);
    assert_eq!(outbox.len(), entries.len() - 2);
    drop(store);

    let store = b.open().await;
    assert_eq!(
        store
            .runs(&every)
            .await
            .unwrap_or_else(|e| panic!("runs after reopening: {e}")),
        runs
    );
    assert_eq!(
        store
            .unfinished_runs()
            .await
            .unwrap_or_else(|e| panic!("unfinished_runs after reopening: {e}")),
        unfinished
    );
    assert_eq!(peek(&store, ALL).await, outbox, "transition ids and all");
    assert_eq!(outbox_len(&store).await, outbox.len() as u64);
    assert_eq!(
        get(&store, "b")
            .await
            .and_then(|r| r.prefect.map(|p| p.flow_run_id)),
        Some("fr-b".to_string())
    );

    // The runs go on where they were.
    let (known, new) = store
        .run_start(run_on("a"), 4, T0 + 20)
        .await
        .unwrap_or_else(|e| panic!("run_start: {e}"));
    assert!(!new);
    assert_eq!(known.log_lines, 4);
    assert_err!(
        store.run_update("b", to(RunState::Running), T0 + 21).await,
        StoreError::RunTransition {
            from: RunState::Completed,
            ..
        }
    );
    let done = update(&store, "a", to(RunState::Completed), T0 + 22).await;
    assert_eq!(done.started_at_ms, Some(T0 + 10));
    // Retention still knows the order: "old" is the oldest ended run.
    start_keeping(&store, run_on("d"), 4, T0 + 23).await;
    assert_eq!(get(&store, "old").await, None);
    assert_eq!(query(&store, every).await, ["d", "c", "b", "a"]);
    // Seqs go on after the last one handed out.
    let last = entries.iter().map(|e| e.seq).max().unwrap_or(0);
    let after = peek(&store, ALL).await;
    let fresh: Vec<&OutboxEntry> = after.iter().filter(|e| e.seq > last).collect();
    assert_eq!(
        fresh.iter().map(|e| kind(&e.event)).collect::<Vec<_>>(),
        ["state:completed", "artifacts", "create"]
    );
    assert_eq!(after.len(), outbox.len() + 3);
}

async fn concurrent_starts_record_a_run_once<B: Backend>(b: &B) {
    let first = Arc::new(b.open().await);
    let second = Arc::new(b.peer(&first).await);
    let tasks: Vec<_> = (0..20u64)
        .map(|i| {
            let store = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let run = new_run("same", &format!("soc-a-{i:03}"), "socA", "alice");
            tokio::spawn(async move { store.run_start(run, KEEP, T0 + i).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        let (run, new) = task
            .await
            .unwrap_or_else(|e| panic!("run_start task: {e}"))
            .unwrap_or_else(|e| panic!("run_start: {e}"));
        answers.push((run, new));
    }
    let recorded = get(first.as_ref(), "same").await.unwrap_or_default();
    assert_eq!(answers.iter().filter(|(_, new)| *new).count(), 1);
    assert!(answers.iter().all(|(run, _)| *run == recorded));
    assert_eq!(
        peek(second.as_ref(), ALL).await,
        vec![OutboxEntry {
            seq: peek(first.as_ref(), 1).await[0].seq,
            run_id: "same".to_string(),
            event: OutboxEvent::Create { run: recorded },
        }]
    );
}

async fn concurrent_ends_end_a_run_once<B: Backend>(b: &B) {
    let first = Arc::new(b.open().await);
    let second = Arc::new(b.peer(&first).await);
    start(first.as_ref(), run_on("r-1"), T0).await;
    update(first.as_ref(), "r-1", to(RunState::Running), T0 + 1).await;
    let tasks: Vec<_> = (0..20u64)
        .map(|i| {
            let store = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let end = if i % 4 < 2 {
                RunState::Completed
            } else {
                RunState::Cancelled
            };
            tokio::spawn(async move { store.run_update("r-1", to(end), T0 + 2).await })
        })
        .collect();
    let mut ok = Vec::new();
    let mut refused = 0;
    for task in tasks {
        match task
            .await
            .unwrap_or_else(|e| panic!("run_update task: {e}"))
        {
            Ok(run) => ok.push(run),
            Err(StoreError::RunTransition { from, .. }) => {
                assert!(from.is_terminal());
                refused += 1;
            }
            Err(e) => panic!("run_update: {e}"),
        }
    }
    let end = get(first.as_ref(), "r-1").await.unwrap_or_default();
    assert!(end.state.is_terminal());
    // Every answer agrees on one end; the other end is refused (10 asked for each).
    assert_eq!(ok.len(), 10);
    assert_eq!(refused, 10);
    assert!(ok.iter().all(|r| *r == end));
    assert_eq!(
        kinds(&events_of(second.as_ref(), "r-1").await),
        [
            "create".to_string(),
            "state:running".to_string(),
            format!("state:{}", end.state),
            "artifacts".to_string()
        ]
    );
}
