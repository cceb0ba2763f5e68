//! The lease store conformance suite: every case runs against both backends, which must keep the
//! semantics documented in `leased::store` exactly alike.
//!
//! Time is a parameter of every store operation, so the cases move a clock of their own (`T0` plus
//! offsets) and never sleep.

use leased::api::Priority;
use leased::store::{
    Acquire, AcquireOutcome, BoardKey, BoardState, LeaseEnd, LeaseRecord, LeaseStore, Millis,
    QueueTerms, ReapReport, StoreCounts, StoreError, Target, TicketPoll, TicketRecord,
};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Where the suite's clock starts (Unix ms).
const T0: Millis = 1_700_000_000_000;
const SEC: Millis = 1_000;
const MIN: Millis = 60 * SEC;
/// The default lease TTL of the requests below.
const TTL: Millis = 30 * MIN;
/// How long a waiter of the requests below may go without polling.
const LAPSE: Millis = 30 * SEC;
/// Consecutive infrastructure failures that mark a board unhealthy.
const THRESHOLD: u32 = 3;

/// socA: three boards over two locations; socB: two boards. Sorted by id.
const LAB: &[(&str, &str, &str)] = &[
    ("soc-a-001", "socA", "lab-1"),
    ("soc-a-002", "socA", "lab-2"),
    ("soc-a-003", "socA", "lab-1"),
    ("soc-b-001", "socB", "lab-1"),
    ("soc-b-002", "socB", "lab-2"),
];

/// One board per family, so that who gets the next free board is never a matter of choice.
const ONE_EACH: &[(&str, &str, &str)] = &[
    ("soc-a-001", "socA", "lab-1"),
    ("soc-b-001", "socB", "lab-1"),
];

const TWO_A: &[(&str, &str, &str)] = &[
    ("soc-a-001", "socA", "lab-1"),
    ("soc-a-002", "socA", "lab-1"),
];

// ---------------------------------------------------------------------------------------------
// The two backends

use crate::common::backends::{Backend, Embedded, Redis, conformance_suite};

conformance_suite!(
    identifies_itself_and_answers_ping,
    sync_lists_every_board_free_and_healthy,
    sync_again_keeps_the_state,
    unlisted_boards_are_never_granted_again,
    acquire_by_family_grants_at_once,
    acquire_by_board_grants_that_board,
    unknown_targets_are_errors,
    preferred_location_wins_when_free,
    least_recently_used_wins_then_lowest_id,
    none_free_without_queue_terms,
    queue_serves_higher_priority_first,
    queue_is_fifo_within_a_priority,
    board_waiter_gets_only_its_board,
    family_waiter_never_gets_another_family,
    granted_ticket_hands_over_the_same_lease,
    cancelling_a_granted_unclaimed_ticket_passes_the_board_on,
    cancelling_a_waiting_ticket_leaves_the_queue,
    polling_keeps_a_waiter_alive,
    an_unpolled_waiter_lapses,
    a_lapsed_waiter_is_skipped_without_an_explicit_reap,
    a_waiter_gives_up_at_its_deadline,
    an_unclaimed_grant_that_lapses_is_abandoned,
    a_claimed_grant_outlives_its_ticket,
    a_lease_expires_at_its_ttl,
    acquire_reaps_first,
    board_and_lease_lists_reap_first,
    counts_reap_first,
    ticket_read_reaps_first,
    expiry_hands_the_board_to_a_waiter,
    renew_extends_from_now,
    release_frees_the_board_and_remembers,
    release_held_refuses_another_holder,
    unknown_leases_are_errors,
    leases_lists_active_leases_only,
    drained_boards_are_never_granted,
    undrain_hands_the_board_to_a_waiter,
    failures_mark_a_board_unhealthy,
    health_back_hands_the_board_to_a_waiter,
    counts_boards_leases_and_waiters,
    sequence_numbers_increase,
    grants_are_announced,
    data_survives_reopening,
    concurrent_acquires_never_share_a_board,
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

fn board_keys(spec: &[(&str, &str, &str)]) -> Vec<BoardKey> {
    spec.iter()
        .map(|(id, family, location)| BoardKey {
            id: id.to_string(),
            family: family.to_string(),
            location: location.to_string(),
        })
        .collect()
}

async fn sync<S: LeaseStore>(store: &S, spec: &[(&str, &str, &str)], now: Millis) {
    store
        .sync_boards(&board_keys(spec), now)
        .await
        .unwrap_or_else(|e| panic!("sync_boards: {e}"));
}

fn for_family(family: &str) -> Acquire {
    Acquire {
        target: Target::Family(family.to_string()),
        location: None,
        priority: Priority::Normal,
        holder: "alice@bench".to_string(),
        ttl_ms: TTL,
        queue: None,
    }
}

fn for_board(id: &str) -> Acquire {
    Acquire {
        target: Target::Board(id.to_string()),
        ..for_family("unused")
    }
}

/// The request, willing to wait (lapsing after [`LAPSE`] without a poll, never giving up).
fn waiting(req: Acquire) -> Acquire {
    Acquire {
        queue: Some(QueueTerms {
            lapse_ms: LAPSE,
            give_up_at: None,
        }),
        ..req
    }
}

async fn grant<S: LeaseStore>(store: &S, req: &Acquire, now: Millis) -> LeaseRecord {
    match store.acquire(req, now).await {
        Ok(AcquireOutcome::Granted(lease)) => lease,
        other => panic!("expected a grant for {req:?} at {now}, got {other:?}"),
    }
}

/// Queues the request; returns its ticket and position.
async fn enqueue<S: LeaseStore>(store: &S, req: &Acquire, now: Millis) -> (TicketRecord, u32) {
    match store.acquire(req, now).await {
        Ok(AcquireOutcome::Queued { ticket, position }) => (ticket, position),
        other => panic!("expected a ticket for {req:?} at {now}, got {other:?}"),
    }
}

async fn poll_granted<S: LeaseStore>(store: &S, ticket: &str, now: Millis) -> LeaseRecord {
    match store.poll_ticket(ticket, now).await {
        Ok(TicketPoll::Granted(lease)) => lease,
        other => panic!("expected ticket {ticket} granted at {now}, got {other:?}"),
    }
}

/// Polls a waiting ticket; returns its position.
async fn poll_waiting<S: LeaseStore>(store: &S, ticket: &str, now: Millis) -> u32 {
    match store.poll_ticket(ticket, now).await {
        Ok(TicketPoll::Waiting {
            ticket: t,
            position,
        }) => {
            assert_eq!(t.id, ticket);
            position
        }
        other => panic!("expected ticket {ticket} waiting at {now}, got {other:?}"),
    }
}

async fn release<S: LeaseStore>(store: &S, lease: &str, now: Millis) -> LeaseRecord {
    store
        .release(lease, now)
        .await
        .unwrap_or_else(|e| panic!("releasing {lease} at {now}: {e}"))
}

async fn reap<S: LeaseStore>(store: &S, now: Millis) -> ReapReport {
    store
        .reap(now)
        .await
        .unwrap_or_else(|e| panic!("reap at {now}: {e}"))
}

async fn report<S: LeaseStore>(store: &S, board: &str, ok: bool, now: Millis) -> BoardState {
    store
        .report_health(board, ok, THRESHOLD, now)
        .await
        .unwrap_or_else(|e| panic!("report_health({board}, {ok}) at {now}: {e}"))
}

async fn drain<S: LeaseStore>(
    store: &S,
    board: &str,
    reason: Option<&str>,
    drained: bool,
    now: Millis,
) -> BoardState {
    store
        .set_drain(board, reason.map(str::to_string), drained, now)
        .await
        .unwrap_or_else(|e| panic!("set_drain({board}, {drained}) at {now}: {e}"))
}

/// Every board, by id.
async fn all_boards<S: LeaseStore>(store: &S, now: Millis) -> Vec<BoardState> {
    let mut boards = store
        .boards(now)
        .await
        .unwrap_or_else(|e| panic!("boards at {now}: {e}"));
    boards.sort_by(|a, b| a.id.cmp(&b.id));
    boards
}

async fn board<S: LeaseStore>(store: &S, id: &str, now: Millis) -> BoardState {
    all_boards(store, now)
        .await
        .into_iter()
        .find(|b| b.id == id)
        .unwrap_or_else(|| panic!("board {id} is not listed at {now}"))
}

/// The active leases, by board.
async fn active<S: LeaseStore>(store: &S, now: Millis) -> Vec<LeaseRecord> {
    let mut leases = store
        .leases(now)
        .await
        .unwrap_or_else(|e| panic!("leases at {now}: {e}"));
    leases.sort_by(|a, b| a.board_id.cmp(&b.board_id));
    leases
}

async fn lease<S: LeaseStore>(store: &S, id: &str, now: Millis) -> LeaseRecord {
    store
        .lease(id, now)
        .await
        .unwrap_or_else(|e| panic!("lease {id} at {now}: {e}"))
        .unwrap_or_else(|| panic!("lease {id} is unknown at {now}"))
}

async fn ticket<S: LeaseStore>(store: &S, id: &str, now: Millis) -> Option<TicketRecord> {
    store
        .ticket(id, now)
        .await
        .unwrap_or_else(|e| panic!("ticket {id} at {now}: {e}"))
}

async fn counts<S: LeaseStore>(store: &S, now: Millis) -> StoreCounts {
    store
        .counts(now)
        .await
        .unwrap_or_else(|e| panic!("counts at {now}: {e}"))
}

fn ids(boards: &[LeaseRecord]) -> Vec<&str> {
    boards.iter().map(|l| l.board_id.as_str()).collect()
}

/// Whether `ticket` is announced on `rx` within `within` (other announcements are skipped).
async fn announced(rx: &mut broadcast::Receiver<String>, ticket: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(id)) if id == ticket => return true,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return false,
        }
    }
}

/// The Redis backend subscribes to grant announcements in the background after `connect`, so a
/// grant in the first moments may go unannounced. This grants tickets on a board of its own until
/// one is announced, so that the case tests the feed rather than that start-up race. Returns the
/// time after its last operation.
async fn wait_until_grants_flow<S: LeaseStore>(
    store: &S,
    rx: &mut broadcast::Receiver<String>,
    board: &str,
    mut now: Millis,
) -> Millis {
    let mut held = grant(store, &for_board(board), now).await;
    for _ in 0..50 {
        let (t, _) = enqueue(store, &waiting(for_board(board)), now + 1).await;
        release(store, &held.id, now + 2).await;
        held = poll_granted(store, &t.id, now + 3).await;
        now += 4;
        if announced(rx, &t.id, Duration::from_millis(100)).await {
            release(store, &held.id, now).await;
            return now + 1;
        }
    }
    panic!("no grant was announced in 50 attempts");
}

// ---------------------------------------------------------------------------------------------
// Boards

async fn identifies_itself_and_answers_ping<B: Backend>(b: &B) {
    let store = b.open().await;
    assert_eq!(store.backend(), B::NAME);
    assert!(!store.location().is_empty());
    store.ping().await.unwrap_or_else(|e| panic!("ping: {e}"));
}

async fn sync_lists_every_board_free_and_healthy<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, LAB, T0).await;
    let expected: Vec<BoardState> = LAB
        .iter()
        .map(|(id, family, location)| BoardState {
            id: id.to_string(),
            family: family.to_string(),
            location: location.to_string(),
            lease: None,
            unhealthy: false,
            failures: 0,
            drain_reason: None,
            drained: false,
            last_used: None,
        })
        .collect();
    assert_eq!(all_boards(&store, T0).await, expected);
}

async fn sync_again_keeps_the_state<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, LAB, T0).await;
    let l = grant(&store, &for_board("soc-a-002"), T0).await;
    report(&store, "soc-b-001", false, T0 + 1).await;
    drain(&store, "soc-b-002", Some("rework"), true, T0 + 2).await;
    let before = all_boards(&store, T0 + 3).await;
    assert_eq!(before[1].lease.as_ref(), Some(&l));
    assert_eq!(before[3].failures, 1);
    assert!(before[4].drained);

    sync(&store, LAB, T0 + 3).await;
    assert_eq!(all_boards(&store, T0 + 3).await, before);
    assert_eq!(active(&store, T0 + 3).await, vec![l.clone()]);
    let renewed = store
        .renew(&l.id, TTL, T0 + 4)
        .await
        .unwrap_or_else(|e| panic!("renew after a second sync: {e}"));
    assert_eq!(renewed.expires_at, T0 + 4 + TTL);
}

async fn unlisted_boards_are_never_granted_again<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(
        &store,
        &[
            ("soc-a-001", "socA", "lab-1"),
            ("soc-a-002", "socA", "lab-1"),
            ("soc-b-001", "socB", "lab-1"),
        ],
        T0,
    )
    .await;
    let l1 = grant(&store, &for_board("soc-a-001"), T0 + 1).await;
    let l2 = grant(&store, &for_board("soc-a-002"), T0 + 1).await;
    // soc-a-002 and the whole socB family leave the lab.
    sync(&store, &[("soc-a-001", "socA", "lab-1")], T0 + 2).await;
    let (w, _) = enqueue(&store, &waiting(for_family("socA")), T0 + 3).await;
    let listed: Vec<String> = all_boards(&store, T0 + 3)
        .await
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(listed, ["soc-a-001"]);
    assert_eq!(active(&store, T0 + 3).await, vec![l1.clone(), l2.clone()]);
    assert_eq!(
        counts(&store, T0 + 3).await,
        StoreCounts {
            boards: 1,
            leases: 2,
            waiting: 1
        }
    );

    // The running lease on the removed board stays until it ends ...
    let renewed = store
        .renew(&l2.id, TTL, T0 + 4)
        .await
        .unwrap_or_else(|e| panic!("renewing a lease on an unlisted board: {e}"));
    assert_eq!(renewed.ended, None);
    release(&store, &l2.id, T0 + 5).await;
    // ... but its end frees nothing for the waiter.
    assert_eq!(poll_waiting(&store, &w.id, T0 + 6).await, 1);
    assert_err!(
        store.acquire(&for_board("soc-a-002"), T0 + 7).await,
        StoreError::UnknownBoard(id) if id == "soc-a-002"
    );
    assert_err!(
        store.acquire(&waiting(for_family("socB")), T0 + 7).await,
        StoreError::UnknownFamily(f) if f == "socB"
    );

    release(&store, &l1.id, T0 + 8).await;
    assert_eq!(
        poll_granted(&store, &w.id, T0 + 9).await.board_id,
        "soc-a-001"
    );
}

// ---------------------------------------------------------------------------------------------
// Immediate grants

async fn acquire_by_family_grants_at_once<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, LAB, T0).await;
    let l = grant(&store, &for_family("socA"), T0 + 10).await;
    assert!(!l.id.is_empty());
    assert_eq!(l.board_id, "soc-a-001");
    assert_eq!(l.family, "socA");
    assert_eq!(l.location, "lab-1");
    assert_eq!(l.holder, "alice@bench");
    assert_eq!(l.priority, Priority::Normal);
    assert_eq!(l.granted_at, T0 + 10);
    assert_eq!(l.expires_at, T0 + 10 + TTL);
    assert_eq!(l.ttl_ms, TTL);
    assert_eq!(l.ended, None);

    assert_eq!(
        board(&store, "soc-a-001", T0 + 11).await.lease,
        Some(l.clone())
    );
    assert_eq!(active(&store, T0 + 11).await, vec![l.clone()]);
    assert_eq!(lease(&store, &l.id, T0 + 11).await, l);
}

async fn acquire_by_board_grants_that_board<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, LAB, T0).await;
    let req = Acquire {
        priority: Priority::High,
        holder: "bob@bench".to_string(),
        ttl_ms: 5 * MIN,
        ..for_board("soc-a-003")
    };
    let l = grant(&store, &req, T0).await;
    assert_eq!(l.board_id, "soc-a-003");
    assert_eq!(l.family, "socA");
    assert_eq!(l.location, "lab-1");
    assert_eq!(l.holder, "bob@bench");
    assert_eq!(l.priority, Priority::High);
    assert_eq!(l.expires_at, T0 + 5 * MIN);
    assert_eq!(active(&store, T0).await, vec![l]);
}

async fn unknown_targets_are_errors<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, LAB, T0).await;
    for req in [for_family("socZ"), waiting(for_family("socZ"))] {
        assert_err!(
            store.acquire(&req, T0).await,
            StoreError::UnknownFamily(f) if f == "socZ"
        );
    }
    for req in [for_board("soc-z-009"), waiting(for_board("soc-z-009"))] {
        assert_err!(
            store.acquire(&req, T0).await,
            StoreError::UnknownBoard(id) if id == "soc-z-009"
        );
    }
    assert_eq!(
        counts(&store, T0).await,
        StoreCounts {
            boards: 5,
            leases: 0,
            waiting: 0
        }
    );
}

async fn preferred_location_wins_when_free<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, LAB, T0).await;
    // soc-a-002 (lab-2) becomes the most recently used board: only the location can make it win.
    let l = grant(&store, &for_board("soc-a-002"), T0).await;
    release(&store, &l.id, T0 + 10).await;

    let in_lab_2 = Acquire {
        location: Some("lab-2".to_string()),
        ..for_family("socA")
    };
    assert_eq!(
        grant(&store, &in_lab_2, T0 + 20).await.board_id,
        "soc-a-002"
    );
    // Nothing free in lab-2: the least recently used elsewhere, lowest id on a tie.
    assert_eq!(
        grant(&store, &in_lab_2, T0 + 21).await.board_id,
        "soc-a-001"
    );
    let in_lab_1 = Acquire {
        location: Some("lab-1".to_string()),
        ..for_family("socA")
    };
    assert_eq!(
        grant(&store, &in_lab_1, T0 + 22).await.board_id,
        "soc-a-003"
    );
}

async fn least_recently_used_wins_then_lowest_id<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, LAB, T0).await;
    let any_a = for_family("socA");
    // Never used: lowest id first.
    let mut leases = Vec::new();
    for want in ["soc-a-001", "soc-a-002", "soc-a-003"] {
        let l = grant(&store, &any_a, T0).await;
        assert_eq!(l.board_id, want);
        leases.push(l);
    }
    // Released 002, then 003, then 001: granted again in that order.
    release(&store, &leases[1].id, T0 + 10).await;
    release(&store, &leases[2].id, T0 + 20).await;
    release(&store, &leases[0].id, T0 + 30).await;
    leases.clear();
    for want in ["soc-a-002", "soc-a-003", "soc-a-001"] {
        let l = grant(&store, &any_a, T0 + 40).await;
        assert_eq!(l.board_id, want);
        leases.push(l);
    }
    // Released at the same moment: lowest id first.
    for l in [&leases[1], &leases[2], &leases[0]] {
        release(&store, &l.id, T0 + 50).await;
    }
    for want in ["soc-a-001", "soc-a-002", "soc-a-003"] {
        assert_eq!(grant(&store, &any_a, T0 + 60).await.board_id, want);
    }
}

async fn none_free_without_queue_terms<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, TWO_A, T0).await;
    grant(&store, &for_family("socA"), T0).await;
    grant(&store, &for_family("socA"), T0).await;
    assert_err!(
        store.acquire(&for_family("socA"), T0 + 1).await,
        StoreError::NoneFree(target) if target == "socA"
    );
    assert_err!(
        store.acquire(&for_board("soc-a-001"), T0 + 1).await,
        StoreError::NoneFree(target) if target == "soc-a-001"
    );
    assert_eq!(
        counts(&store, T0 + 2).await,
        StoreCounts {
            boards: 2,
            leases: 2,
            waiting: 0
        }
    );
}

// ---------------------------------------------------------------------------------------------
// The queue

async fn queue_serves_higher_priority_first<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let l0 = grant(&store, &for_family("socA"), T0).await;
    let low_req = Acquire {
        priority: Priority::Low,
        holder: "low".to_string(),
        ..waiting(for_family("socA"))
    };
    let (low, p) = enqueue(&store, &low_req, T0 + 1).await;
    assert_eq!(p, 1);
    assert_eq!(low.priority, Priority::Low);
    let high_req = Acquire {
        priority: Priority::High,
        holder: "high".to_string(),
        ..waiting(for_family("socA"))
    };
    let (high, p) = enqueue(&store, &high_req, T0 + 2).await;
    assert_eq!(p, 1, "the high waiter goes ahead of the low one");
    assert_eq!(poll_waiting(&store, &low.id, T0 + 3).await, 2);

    release(&store, &l0.id, T0 + 4).await;
    let lh = poll_granted(&store, &high.id, T0 + 5).await;
    assert_eq!(lh.board_id, "soc-a-001");
    assert_eq!(lh.holder, "high");
    assert_eq!(lh.priority, Priority::High);
    assert_eq!(lh.granted_at, T0 + 4);
    assert_eq!(poll_waiting(&store, &low.id, T0 + 5).await, 1);

    release(&store, &lh.id, T0 + 6).await;
    let ll = poll_granted(&store, &low.id, T0 + 7).await;
    assert_eq!(
        (ll.board_id.as_str(), ll.holder.as_str()),
        ("soc-a-001", "low")
    );
}

async fn queue_is_fifo_within_a_priority<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let la = grant(&store, &for_family("socA"), T0).await;
    grant(&store, &for_family("socB"), T0).await;
    let req = |holder: &str, family: &str| Acquire {
        holder: holder.to_string(),
        ..waiting(for_family(family))
    };
    let (w1, p1) = enqueue(&store, &req("w1", "socA"), T0 + 1).await;
    // A waiter for another family does not count toward the positions.
    let (wb, pb) = enqueue(&store, &req("wb", "socB"), T0 + 2).await;
    let (w2, p2) = enqueue(&store, &req("w2", "socA"), T0 + 3).await;
    let (w3, p3) = enqueue(&store, &req("w3", "socA"), T0 + 4).await;
    assert_eq!((p1, pb, p2, p3), (1, 1, 2, 3));
    assert_eq!(poll_waiting(&store, &w1.id, T0 + 5).await, 1);
    assert_eq!(poll_waiting(&store, &w2.id, T0 + 5).await, 2);
    assert_eq!(poll_waiting(&store, &w3.id, T0 + 5).await, 3);
    assert_eq!(poll_waiting(&store, &wb.id, T0 + 5).await, 1);

    release(&store, &la.id, T0 + 6).await;
    let l1 = poll_granted(&store, &w1.id, T0 + 7).await;
    assert_eq!(l1.holder, "w1");
    assert_eq!(poll_waiting(&store, &w2.id, T0 + 7).await, 1);
    assert_eq!(poll_waiting(&store, &w3.id, T0 + 7).await, 2);
    assert_eq!(poll_waiting(&store, &wb.id, T0 + 7).await, 1);

    release(&store, &l1.id, T0 + 8).await;
    assert_eq!(poll_granted(&store, &w2.id, T0 + 9).await.holder, "w2");
    assert_eq!(poll_waiting(&store, &w3.id, T0 + 9).await, 1);
}

async fn board_waiter_gets_only_its_board<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, TWO_A, T0).await;
    let l1 = grant(&store, &for_board("soc-a-001"), T0).await;
    let l2 = grant(&store, &for_board("soc-a-002"), T0).await;
    let wants_002 = Acquire {
        holder: "wants-002".to_string(),
        ..waiting(for_board("soc-a-002"))
    };
    let (wb, _) = enqueue(&store, &wants_002, T0 + 1).await;
    assert_eq!(wb.board_id.as_deref(), Some("soc-a-002"));
    assert_eq!(wb.family, "socA");
    let any = Acquire {
        holder: "any".to_string(),
        ..waiting(for_family("socA"))
    };
    let (wf, _) = enqueue(&store, &any, T0 + 2).await;

    // soc-a-001 frees: the board waiter is first in line but wants soc-a-002.
    release(&store, &l1.id, T0 + 3).await;
    poll_waiting(&store, &wb.id, T0 + 4).await;
    let lf = poll_granted(&store, &wf.id, T0 + 4).await;
    assert_eq!(
        (lf.board_id.as_str(), lf.holder.as_str()),
        ("soc-a-001", "any")
    );

    release(&store, &l2.id, T0 + 5).await;
    let lb = poll_granted(&store, &wb.id, T0 + 6).await;
    assert_eq!(
        (lb.board_id.as_str(), lb.holder.as_str()),
        ("soc-a-002", "wants-002")
    );
}

async fn family_waiter_never_gets_another_family<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let la = grant(&store, &for_family("socA"), T0).await;
    let lb = grant(&store, &for_family("socB"), T0).await;
    let (w, _) = enqueue(&store, &waiting(for_family("socA")), T0 + 1).await;
    release(&store, &lb.id, T0 + 2).await;
    assert_eq!(poll_waiting(&store, &w.id, T0 + 3).await, 1);
    assert_eq!(board(&store, "soc-b-001", T0 + 3).await.lease, None);
    release(&store, &la.id, T0 + 4).await;
    assert_eq!(
        poll_granted(&store, &w.id, T0 + 5).await.board_id,
        "soc-a-001"
    );
}

async fn granted_ticket_hands_over_the_same_lease<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let l0 = grant(&store, &for_family("socA"), T0).await;
    let req = Acquire {
        holder: "waiter".to_string(),
        ttl_ms: 10 * MIN,
        ..waiting(for_family("socA"))
    };
    let (w, _) = enqueue(&store, &req, T0 + 1).await;
    assert_eq!(w.lease_id, None);
    release(&store, &l0.id, T0 + 2).await;

    let before = ticket(&store, &w.id, T0 + 3)
        .await
        .unwrap_or_else(|| panic!("granted ticket {} is gone before its poll", w.id));
    assert!(before.lease_id.is_some());
    assert!(!before.claimed);

    let l = poll_granted(&store, &w.id, T0 + 4).await;
    assert_eq!(Some(&l.id), before.lease_id.as_ref());
    assert_eq!(l.board_id, "soc-a-001");
    assert_eq!(l.holder, "waiter");
    assert_eq!(l.granted_at, T0 + 2);
    assert_eq!(l.expires_at, T0 + 2 + 10 * MIN);
    assert_eq!(l.ttl_ms, 10 * MIN);
    assert_eq!(l.ended, None);
    assert_eq!(poll_granted(&store, &w.id, T0 + 5).await, l);
    assert!(
        ticket(&store, &w.id, T0 + 6)
            .await
            .is_some_and(|t| t.claimed)
    );
    assert_eq!(active(&store, T0 + 6).await, vec![l]);
}

async fn cancelling_a_granted_unclaimed_ticket_passes_the_board_on<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let l0 = grant(&store, &for_family("socA"), T0).await;
    let (w1, _) = enqueue(&store, &waiting(for_family("socA")), T0 + 1).await;
    let (w2, _) = enqueue(&store, &waiting(for_family("socA")), T0 + 2).await;
    release(&store, &l0.id, T0 + 3).await;
    let granted = ticket(&store, &w1.id, T0 + 4)
        .await
        .and_then(|t| t.lease_id)
        .unwrap_or_else(|| panic!("ticket {} was not granted", w1.id));

    store
        .cancel_ticket(&w1.id, T0 + 5)
        .await
        .unwrap_or_else(|e| panic!("cancel_ticket: {e}"));
    assert_eq!(
        lease(&store, &granted, T0 + 6).await.ended,
        Some(LeaseEnd::Released)
    );
    let l2 = poll_granted(&store, &w2.id, T0 + 6).await;
    assert_eq!((l2.board_id.as_str(), l2.granted_at), ("soc-a-001", T0 + 5));
    assert_err!(
        store.poll_ticket(&w1.id, T0 + 7).await,
        StoreError::UnknownTicket(id) if id == w1.id
    );
}

async fn cancelling_a_waiting_ticket_leaves_the_queue<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let l0 = grant(&store, &for_family("socA"), T0).await;
    let (w1, _) = enqueue(&store, &waiting(for_family("socA")), T0 + 1).await;
    let (w2, _) = enqueue(&store, &waiting(for_family("socA")), T0 + 2).await;
    assert_eq!(counts(&store, T0 + 3).await.waiting, 2);

    store
        .cancel_ticket(&w1.id, T0 + 3)
        .await
        .unwrap_or_else(|e| panic!("cancel_ticket: {e}"));
    assert_eq!(counts(&store, T0 + 4).await.waiting, 1);
    assert_eq!(poll_waiting(&store, &w2.id, T0 + 4).await, 1);
    assert_err!(
        store.poll_ticket(&w1.id, T0 + 4).await,
        StoreError::UnknownTicket(id) if id == w1.id
    );
    assert_err!(
        store.cancel_ticket(&w1.id, T0 + 4).await,
        StoreError::UnknownTicket(id) if id == w1.id
    );
    release(&store, &l0.id, T0 + 5).await;
    poll_granted(&store, &w2.id, T0 + 6).await;
}

// ---------------------------------------------------------------------------------------------
// Lapses

async fn polling_keeps_a_waiter_alive<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    grant(&store, &for_family("socA"), T0).await;
    let (w, _) = enqueue(&store, &waiting(for_family("socA")), T0).await;
    assert_eq!(w.poll_by, T0 + LAPSE);
    let mut now = T0;
    for _ in 0..4 {
        now += 20 * SEC;
        match store.poll_ticket(&w.id, now).await {
            Ok(TicketPoll::Waiting { ticket, .. }) => assert_eq!(ticket.poll_by, now + LAPSE),
            other => panic!("expected ticket {} waiting at {now}, got {other:?}", w.id),
        }
    }
    // Long past the first poll_by, one moment before the last one.
    assert_eq!(reap(&store, now + LAPSE - 1).await, ReapReport::default());
    assert_eq!(poll_waiting(&store, &w.id, now + LAPSE - 1).await, 1);
}

async fn an_unpolled_waiter_lapses<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let l0 = grant(&store, &for_family("socA"), T0).await;
    let (w1, _) = enqueue(&store, &waiting(for_family("socA")), T0).await;
    let (w2, _) = enqueue(&store, &waiting(for_family("socA")), T0 + 1).await;
    assert_eq!(poll_waiting(&store, &w2.id, T0 + 20 * SEC).await, 2);

    assert_eq!(reap(&store, T0 + LAPSE - 1).await, ReapReport::default());
    assert_eq!(
        reap(&store, T0 + LAPSE).await,
        ReapReport {
            expired: vec![],
            lapsed: vec![w1.id.clone()],
        }
    );
    assert_err!(
        store.poll_ticket(&w1.id, T0 + LAPSE + 1).await,
        StoreError::UnknownTicket(id) if id == w1.id
    );
    assert_eq!(poll_waiting(&store, &w2.id, T0 + LAPSE + 1).await, 1);
    release(&store, &l0.id, T0 + LAPSE + 2).await;
    assert_eq!(
        poll_granted(&store, &w2.id, T0 + LAPSE + 3).await.board_id,
        "soc-a-001"
    );
}

async fn a_lapsed_waiter_is_skipped_without_an_explicit_reap<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let l0 = grant(&store, &for_family("socA"), T0).await;
    let (w1, _) = enqueue(&store, &waiting(for_family("socA")), T0).await;
    let (w2, _) = enqueue(&store, &waiting(for_family("socA")), T0 + 1).await;
    poll_waiting(&store, &w2.id, T0 + 20 * SEC).await;
    // w1 was due to poll by now; the release must not hand it the board.
    release(&store, &l0.id, T0 + LAPSE).await;
    assert_eq!(
        poll_granted(&store, &w2.id, T0 + LAPSE + 1).await.board_id,
        "soc-a-001"
    );
    assert_err!(
        store.poll_ticket(&w1.id, T0 + LAPSE + 1).await,
        StoreError::UnknownTicket(_)
    );
}

async fn a_waiter_gives_up_at_its_deadline<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    grant(&store, &for_family("socA"), T0).await;
    let req = Acquire {
        queue: Some(QueueTerms {
            lapse_ms: LAPSE,
            give_up_at: Some(T0 + 10 * SEC),
        }),
        ..for_family("socA")
    };
    let (w, _) = enqueue(&store, &req, T0).await;
    assert_eq!(w.give_up_at, Some(T0 + 10 * SEC));
    poll_waiting(&store, &w.id, T0 + 5 * SEC).await;
    assert_eq!(reap(&store, T0 + 10 * SEC - 1).await, ReapReport::default());
    assert_eq!(
        reap(&store, T0 + 10 * SEC).await,
        ReapReport {
            expired: vec![],
            lapsed: vec![w.id.clone()],
        }
    );
    assert_err!(
        store.poll_ticket(&w.id, T0 + 10 * SEC + 1).await,
        StoreError::UnknownTicket(_)
    );
    assert_eq!(counts(&store, T0 + 10 * SEC + 1).await.waiting, 0);
}

async fn an_unclaimed_grant_that_lapses_is_abandoned<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let l0 = grant(&store, &for_family("socA"), T0).await;
    let (w1, _) = enqueue(&store, &waiting(for_family("socA")), T0).await;
    let (w2, _) = enqueue(&store, &waiting(for_family("socA")), T0 + 1).await;
    poll_waiting(&store, &w2.id, T0 + 20 * SEC).await;
    release(&store, &l0.id, T0 + 10 * SEC).await;
    let granted = ticket(&store, &w1.id, T0 + 11 * SEC)
        .await
        .and_then(|t| t.lease_id)
        .unwrap_or_else(|| panic!("ticket {} was not granted", w1.id));

    // w1 never comes back for its board.
    assert_eq!(
        reap(&store, T0 + LAPSE).await,
        ReapReport {
            expired: vec![],
            lapsed: vec![w1.id.clone()],
        }
    );
    assert_eq!(
        lease(&store, &granted, T0 + LAPSE).await.ended,
        Some(LeaseEnd::Abandoned)
    );
    assert_err!(
        store.renew(&granted, TTL, T0 + LAPSE).await,
        StoreError::LeaseEnded {
            how: LeaseEnd::Abandoned,
            ..
        }
    );
    let l2 = poll_granted(&store, &w2.id, T0 + LAPSE + 1).await;
    assert_eq!(
        (l2.board_id.as_str(), l2.granted_at),
        ("soc-a-001", T0 + LAPSE)
    );
}

async fn a_claimed_grant_outlives_its_ticket<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let l0 = grant(&store, &for_family("socA"), T0).await;
    let (w, _) = enqueue(&store, &waiting(for_family("socA")), T0).await;
    release(&store, &l0.id, T0 + 1).await;
    let l = poll_granted(&store, &w.id, T0 + 2).await;
    // The holder has its lease and stops polling the ticket.
    reap(&store, T0 + 2 + LAPSE + 1).await;
    assert_eq!(lease(&store, &l.id, T0 + 2 + LAPSE + 1).await, l);
    assert_eq!(
        board(&store, "soc-a-001", T0 + 2 + LAPSE + 1).await.lease,
        Some(l.clone())
    );
    let renewed = store
        .renew(&l.id, TTL, T0 + 2 + LAPSE + 2)
        .await
        .unwrap_or_else(|e| panic!("renewing a lease whose ticket lapsed: {e}"));
    assert_eq!(renewed.expires_at, T0 + 2 + LAPSE + 2 + TTL);
}

// ---------------------------------------------------------------------------------------------
// Expiry, renew, release

async fn a_lease_expires_at_its_ttl<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let req = Acquire {
        ttl_ms: MIN,
        ..for_family("socA")
    };
    let l = grant(&store, &req, T0).await;
    assert_eq!(reap(&store, T0 + MIN - 1).await, ReapReport::default());
    assert_eq!(lease(&store, &l.id, T0 + MIN - 1).await.ended, None);

    assert_eq!(
        reap(&store, T0 + MIN).await,
        ReapReport {
            expired: vec![l.id.clone()],
            lapsed: vec![],
        }
    );
    assert_eq!(board(&store, "soc-a-001", T0 + MIN).await.lease, None);
    assert_eq!(
        lease(&store, &l.id, T0 + MIN).await.ended,
        Some(LeaseEnd::Expired)
    );
    assert_eq!(active(&store, T0 + MIN).await, vec![]);
    assert_err!(
        store.renew(&l.id, TTL, T0 + MIN + 1).await,
        StoreError::LeaseEnded { id, how: LeaseEnd::Expired } if id == l.id
    );
    assert_err!(
        store.release(&l.id, T0 + MIN + 1).await,
        StoreError::LeaseEnded {
            how: LeaseEnd::Expired,
            ..
        }
    );
}

async fn acquire_reaps_first<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let req = Acquire {
        ttl_ms: MIN,
        ..for_family("socA")
    };
    let l = grant(&store, &req, T0).await;
    // No reap in between: the acquire ends the expired lease itself.
    let next = grant(&store, &for_family("socA"), T0 + MIN).await;
    assert_eq!(next.board_id, "soc-a-001");
    assert_ne!(next.id, l.id);
    assert_eq!(
        lease(&store, &l.id, T0 + MIN).await.ended,
        Some(LeaseEnd::Expired)
    );
}

async fn board_and_lease_lists_reap_first<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let la = grant(
        &store,
        &Acquire {
            ttl_ms: MIN,
            ..for_family("socA")
        },
        T0,
    )
    .await;
    let lb = grant(
        &store,
        &Acquire {
            ttl_ms: 2 * MIN,
            ..for_family("socB")
        },
        T0,
    )
    .await;
    let boards = all_boards(&store, T0 + MIN).await;
    assert_eq!(
        boards[0].lease, None,
        "{} expired at {}",
        la.id, la.expires_at
    );
    assert_eq!(boards[1].lease.as_ref(), Some(&lb));
    assert_eq!(active(&store, T0 + 2 * MIN).await, vec![]);
}

async fn counts_reap_first<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let short = Acquire {
        ttl_ms: MIN,
        ..for_family("socA")
    };
    grant(&store, &short, T0).await;
    grant(&store, &for_family("socB"), T0).await;
    enqueue(&store, &waiting(for_family("socB")), T0).await;
    assert_eq!(
        counts(&store, T0 + MIN).await,
        StoreCounts {
            boards: 2,
            leases: 1,
            waiting: 0
        },
        "the socA lease expired and the socB waiter lapsed"
    );
}

async fn ticket_read_reaps_first<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    grant(&store, &for_family("socA"), T0).await;
    let (w, _) = enqueue(&store, &waiting(for_family("socA")), T0).await;
    assert_eq!(ticket(&store, &w.id, T0 + LAPSE - 1).await, Some(w.clone()));
    assert_eq!(ticket(&store, &w.id, T0 + LAPSE).await, None);
}

async fn expiry_hands_the_board_to_a_waiter<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let l = grant(
        &store,
        &Acquire {
            ttl_ms: MIN,
            ..for_family("socA")
        },
        T0,
    )
    .await;
    let patient = Acquire {
        queue: Some(QueueTerms {
            lapse_ms: 2 * MIN,
            give_up_at: None,
        }),
        ..for_family("socA")
    };
    let (w, _) = enqueue(&store, &patient, T0 + 1).await;
    assert_eq!(reap(&store, T0 + MIN).await.expired, vec![l.id.clone()]);
    let lw = poll_granted(&store, &w.id, T0 + MIN + 1).await;
    assert_eq!(
        (lw.board_id.as_str(), lw.granted_at),
        ("soc-a-001", T0 + MIN)
    );
}

async fn renew_extends_from_now<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let l = grant(
        &store,
        &Acquire {
            ttl_ms: MIN,
            ..for_family("socA")
        },
        T0,
    )
    .await;
    let r = store
        .renew(&l.id, 10 * MIN, T0 + 30 * SEC)
        .await
        .unwrap_or_else(|e| panic!("renew: {e}"));
    assert_eq!(
        r,
        LeaseRecord {
            expires_at: T0 + 30 * SEC + 10 * MIN,
            ttl_ms: 10 * MIN,
            ..l.clone()
        }
    );
    assert_eq!(lease(&store, &l.id, T0 + 30 * SEC).await, r);
    assert_eq!(reap(&store, T0 + MIN).await, ReapReport::default());
    assert_eq!(
        reap(&store, T0 + 30 * SEC + 10 * MIN).await.expired,
        vec![l.id.clone()]
    );
}

async fn release_frees_the_board_and_remembers<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let l = grant(&store, &for_family("socA"), T0).await;
    let r = release(&store, &l.id, T0 + 5).await;
    assert_eq!(r.id, l.id);
    assert_eq!(r.board_id, "soc-a-001");
    assert_eq!(r.ended, Some(LeaseEnd::Released));
    assert_eq!(board(&store, "soc-a-001", T0 + 6).await.lease, None);
    assert_eq!(
        lease(&store, &l.id, T0 + 6).await.ended,
        Some(LeaseEnd::Released)
    );
    assert_eq!(active(&store, T0 + 6).await, vec![]);
    assert_err!(
        store.release(&l.id, T0 + 7).await,
        StoreError::LeaseEnded { id, how: LeaseEnd::Released } if id == l.id
    );
    assert_err!(
        store.renew(&l.id, TTL, T0 + 7).await,
        StoreError::LeaseEnded {
            how: LeaseEnd::Released,
            ..
        }
    );
    assert_eq!(
        grant(&store, &for_family("socA"), T0 + 8).await.board_id,
        "soc-a-001"
    );
}

async fn release_held_refuses_another_holder<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let l = grant(&store, &for_family("socA"), T0).await;
    assert_err!(
        store.release_held(&l.id, Some("mallory@h"), T0 + 1).await,
        StoreError::NotHolder { id, holder } if id == l.id && holder == l.holder
    );
    assert_eq!(lease(&store, &l.id, T0 + 2).await.ended, None, "still held");
    let r = store
        .release_held(&l.id, Some(&l.holder), T0 + 3)
        .await
        .expect("the holder releases");
    assert_eq!(r.ended, Some(LeaseEnd::Released));
    let again = grant(&store, &for_family("socA"), T0 + 4).await;
    let r = store
        .release_held(&again.id, None, T0 + 5)
        .await
        .expect("an admin releases anyone's lease");
    assert_eq!(r.ended, Some(LeaseEnd::Released));
}

async fn unknown_leases_are_errors<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let nobody = "l-000000000000";
    assert_err!(
        store.renew(nobody, TTL, T0).await,
        StoreError::UnknownLease(id) if id == nobody
    );
    assert_err!(
        store.release(nobody, T0).await,
        StoreError::UnknownLease(id) if id == nobody
    );
    assert_eq!(
        store
            .lease(nobody, T0)
            .await
            .unwrap_or_else(|e| panic!("lease: {e}")),
        None
    );
}

async fn leases_lists_active_leases_only<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, LAB, T0).await;
    let l1 = grant(&store, &for_board("soc-a-001"), T0).await;
    let l2 = grant(
        &store,
        &Acquire {
            ttl_ms: MIN,
            ..for_board("soc-a-002")
        },
        T0,
    )
    .await;
    let l3 = grant(&store, &for_board("soc-b-001"), T0).await;
    assert_eq!(
        active(&store, T0).await,
        vec![l1.clone(), l2.clone(), l3.clone()]
    );
    release(&store, &l1.id, T0 + 1).await;
    assert_eq!(reap(&store, T0 + MIN).await.expired, vec![l2.id.clone()]);
    assert_eq!(active(&store, T0 + MIN).await, vec![l3]);
}

// ---------------------------------------------------------------------------------------------
// Drain and health

async fn drained_boards_are_never_granted<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, TWO_A, T0).await;
    let d = drain(&store, "soc-a-001", Some("rework"), true, T0).await;
    assert!(d.drained);
    assert_eq!(d.drain_reason.as_deref(), Some("rework"));
    assert_eq!(d.lease, None);

    let l2 = grant(&store, &for_family("socA"), T0 + 1).await;
    assert_eq!(l2.board_id, "soc-a-002");
    assert_err!(
        store.acquire(&for_family("socA"), T0 + 2).await,
        StoreError::NoneFree(target) if target == "socA"
    );
    assert_err!(
        store.acquire(&waiting(for_board("soc-a-001")), T0 + 2).await,
        StoreError::NoHealthyBoard { target } if target == "soc-a-001"
    );

    // Draining a leased board lets its lease run on.
    let d2 = drain(&store, "soc-a-002", Some("rework"), true, T0 + 3).await;
    assert!(d2.drained);
    assert_eq!(d2.lease.as_ref(), Some(&l2));
    let renewed = store
        .renew(&l2.id, TTL, T0 + 4)
        .await
        .unwrap_or_else(|e| panic!("renewing a lease on a drained board: {e}"));
    assert_eq!(active(&store, T0 + 4).await, vec![renewed]);
    // Every socA board is drained: waiting would be in vain.
    assert_err!(
        store.acquire(&waiting(for_family("socA")), T0 + 5).await,
        StoreError::NoHealthyBoard { target } if target == "socA"
    );
    release(&store, &l2.id, T0 + 6).await;
    assert_err!(
        store.acquire(&waiting(for_family("socA")), T0 + 7).await,
        StoreError::NoHealthyBoard { target } if target == "socA"
    );
    assert_eq!(counts(&store, T0 + 8).await.waiting, 0);
}

async fn undrain_hands_the_board_to_a_waiter<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, TWO_A, T0).await;
    drain(&store, "soc-a-002", Some("bench"), true, T0).await;
    assert_eq!(
        grant(&store, &for_family("socA"), T0 + 1).await.board_id,
        "soc-a-001"
    );
    let (w, _) = enqueue(&store, &waiting(for_family("socA")), T0 + 2).await;
    let u = drain(&store, "soc-a-002", None, false, T0 + 3).await;
    assert!(!u.drained);
    assert_eq!(u.drain_reason, None);
    let lw = poll_granted(&store, &w.id, T0 + 4).await;
    assert_eq!((lw.board_id.as_str(), lw.granted_at), ("soc-a-002", T0 + 3));
    assert_eq!(board(&store, "soc-a-002", T0 + 4).await.lease, Some(lw));
}

async fn failures_mark_a_board_unhealthy<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, TWO_A, T0).await;
    let s = report(&store, "soc-a-001", false, T0).await;
    assert_eq!((s.failures, s.unhealthy), (1, false));
    let s = report(&store, "soc-a-001", false, T0 + 1).await;
    assert_eq!((s.failures, s.unhealthy), (2, false));
    // Still granted below the threshold.
    let l = grant(&store, &for_board("soc-a-001"), T0 + 2).await;
    release(&store, &l.id, T0 + 3).await;

    let s = report(&store, "soc-a-001", false, T0 + 4).await;
    assert_eq!((s.failures, s.unhealthy), (3, true));
    let l2 = grant(&store, &for_board("soc-a-002"), T0 + 5).await;
    assert_err!(
        store.acquire(&for_family("socA"), T0 + 6).await,
        StoreError::NoneFree(target) if target == "socA"
    );
    assert_err!(
        store.acquire(&waiting(for_board("soc-a-001")), T0 + 6).await,
        StoreError::NoHealthyBoard { target } if target == "soc-a-001"
    );
    release(&store, &l2.id, T0 + 7).await;
    for i in 0..3 {
        report(&store, "soc-a-002", false, T0 + 8 + i).await;
    }
    assert_err!(
        store.acquire(&waiting(for_family("socA")), T0 + 11).await,
        StoreError::NoHealthyBoard { target } if target == "socA"
    );

    // A success makes the board healthy again and resets its count.
    let s = report(&store, "soc-a-001", true, T0 + 12).await;
    assert_eq!((s.failures, s.unhealthy), (0, false));
    assert_eq!(
        grant(&store, &for_family("socA"), T0 + 13).await.board_id,
        "soc-a-001"
    );
    report(&store, "soc-a-002", true, T0 + 14).await;
    let s = report(&store, "soc-a-002", false, T0 + 15).await;
    assert_eq!((s.failures, s.unhealthy), (1, false));
}

async fn health_back_hands_the_board_to_a_waiter<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, TWO_A, T0).await;
    for i in 0..3 {
        report(&store, "soc-a-001", false, T0 + i).await;
    }
    assert_eq!(
        grant(&store, &for_family("socA"), T0 + 3).await.board_id,
        "soc-a-002"
    );
    let (w, _) = enqueue(&store, &waiting(for_family("socA")), T0 + 4).await;
    let s = report(&store, "soc-a-001", true, T0 + 10).await;
    assert_eq!((s.failures, s.unhealthy), (0, false));
    let lw = poll_granted(&store, &w.id, T0 + 11).await;
    assert_eq!(
        (lw.board_id.as_str(), lw.granted_at),
        ("soc-a-001", T0 + 10)
    );
}

// ---------------------------------------------------------------------------------------------
// Counts, sequence numbers, announcements

async fn counts_boards_leases_and_waiters<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, LAB, T0).await;
    let c = |boards, leases, waiting| StoreCounts {
        boards,
        leases,
        waiting,
    };
    assert_eq!(counts(&store, T0).await, c(5, 0, 0));
    let first = grant(&store, &for_family("socA"), T0 + 1).await;
    grant(&store, &for_family("socA"), T0 + 1).await;
    grant(&store, &for_family("socA"), T0 + 1).await;
    assert_eq!(counts(&store, T0 + 2).await, c(5, 3, 0));
    enqueue(&store, &waiting(for_family("socA")), T0 + 3).await;
    enqueue(&store, &waiting(for_family("socA")), T0 + 3).await;
    assert_eq!(counts(&store, T0 + 4).await, c(5, 3, 2));
    release(&store, &first.id, T0 + 5).await;
    assert_eq!(counts(&store, T0 + 6).await, c(5, 3, 1));
}

async fn sequence_numbers_increase<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(&store, ONE_EACH, T0).await;
    let l1 = grant(&store, &for_family("socA"), T0).await;
    let (w1, _) = enqueue(&store, &waiting(for_family("socA")), T0 + 1).await;
    let (w2, _) = enqueue(&store, &waiting(for_family("socA")), T0 + 2).await;
    release(&store, &l1.id, T0 + 3).await;
    let lw1 = poll_granted(&store, &w1.id, T0 + 4).await;
    let lb = grant(&store, &for_family("socB"), T0 + 5).await;
    let seqs = [l1.grant_seq, w1.seq, w2.seq, lw1.grant_seq, lb.grant_seq];
    assert!(
        seqs.windows(2).all(|p| p[0] < p[1]),
        "grant and ticket sequence numbers in event order: {seqs:?}"
    );
}

async fn grants_are_announced<B: Backend>(b: &B) {
    let store = b.open().await;
    sync(
        &store,
        &[
            ("feed-001", "feed", "lab-1"),
            ("soc-a-001", "socA", "lab-1"),
        ],
        T0,
    )
    .await;
    let mut rx = store.subscribe_grants();
    let now = wait_until_grants_flow(&store, &mut rx, "feed-001", T0).await;

    let l0 = grant(&store, &for_family("socA"), now).await;
    let (w, _) = enqueue(&store, &waiting(for_family("socA")), now + 1).await;
    release(&store, &l0.id, now + 2).await;
    assert!(
        announced(&mut rx, &w.id, Duration::from_secs(5)).await,
        "the grant of ticket {} was not announced",
        w.id
    );
}

// ---------------------------------------------------------------------------------------------
// Persistence and concurrency

async fn data_survives_reopening<B: Backend>(b: &B) {
    let lab = &[
        ("soc-a-001", "socA", "lab-1"),
        ("soc-a-002", "socA", "lab-2"),
        ("soc-b-001", "socB", "lab-1"),
        ("soc-b-002", "socB", "lab-2"),
    ];
    let store = b.open().await;
    sync(&store, lab, T0).await;
    let l1 = grant(&store, &for_board("soc-a-001"), T0).await;
    grant(
        &store,
        &Acquire {
            ttl_ms: 10 * MIN,
            ..for_board("soc-a-002")
        },
        T0,
    )
    .await;
    store
        .renew(&l1.id, 20 * MIN, T0 + 1)
        .await
        .unwrap_or_else(|e| panic!("renew: {e}"));
    let (w1, _) = enqueue(&store, &waiting(for_family("socA")), T0 + 2).await;
    let low = Acquire {
        priority: Priority::Low,
        ..waiting(for_family("socA"))
    };
    let (w2, _) = enqueue(&store, &low, T0 + 3).await;
    let gone = grant(&store, &for_board("soc-b-001"), T0 + 4).await;
    release(&store, &gone.id, T0 + 5).await;
    report(&store, "soc-b-001", false, T0 + 6).await;
    drain(&store, "soc-b-002", Some("bench"), true, T0 + 7).await;

    let now = T0 + 8;
    let boards = all_boards(&store, now).await;
    let leases = active(&store, now).await;
    let w2_before = ticket(&store, &w2.id, now).await;
    let counted = counts(&store, now).await;
    assert_eq!(leases.len(), 2);
    assert_eq!(counted.waiting, 2);
    drop(store);

    let store = b.open().await;
    assert_eq!(all_boards(&store, now).await, boards);
    assert_eq!(active(&store, now).await, leases);
    assert_eq!(ticket(&store, &w2.id, now).await, w2_before);
    assert_eq!(counts(&store, now).await, counted);
    assert_eq!(
        lease(&store, &gone.id, now).await.ended,
        Some(LeaseEnd::Released)
    );
    assert_eq!(poll_waiting(&store, &w1.id, now + 1).await, 1);
    assert_eq!(poll_waiting(&store, &w2.id, now + 1).await, 2);

    release(&store, &l1.id, now + 2).await;
    let lw1 = poll_granted(&store, &w1.id, now + 3).await;
    assert_eq!(lw1.board_id, "soc-a-001");
    let lb = grant(&store, &for_family("socB"), now + 4).await;
    assert_eq!(lb.board_id, "soc-b-001", "soc-b-002 stays drained");
    let before = leases.iter().map(|l| l.grant_seq).chain([w2.seq]);
    let last = before.max().unwrap_or(0);
    assert!(
        lw1.grant_seq > last && lb.grant_seq > lw1.grant_seq,
        "sequence numbers go on after reopening"
    );
}

async fn concurrent_acquires_never_share_a_board<B: Backend>(b: &B) {
    let first = Arc::new(b.open().await);
    let second = Arc::new(b.peer(&first).await);
    let lab: Vec<(String, &str, &str)> = (1..=5)
        .map(|i| (format!("soc-c-{i:03}"), "socC", "lab-1"))
        .collect();
    let lab: Vec<(&str, &str, &str)> = lab.iter().map(|(id, f, l)| (id.as_str(), *f, *l)).collect();
    sync(first.as_ref(), &lab, T0).await;

    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let req = Acquire {
                holder: format!("client-{i}"),
                ..for_family("socC")
            };
            tokio::spawn(async move { store.acquire(&req, T0 + 1).await })
        })
        .collect();
    let mut granted = BTreeSet::new();
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap_or_else(|e| panic!("acquire task: {e}")) {
            Ok(AcquireOutcome::Granted(l)) => {
                assert!(
                    granted.insert(l.board_id.clone()),
                    "{} granted twice",
                    l.board_id
                )
            }
            Err(StoreError::NoneFree(target)) if target == "socC" => refused += 1,
            other => panic!("unexpected outcome: {other:?}"),
        }
    }
    assert_eq!(granted.len(), 5);
    assert_eq!(refused, 45);

    // Each handle sees the leases granted through the other.
    let seen_first = active(first.as_ref(), T0 + 2).await;
    let seen_second = active(second.as_ref(), T0 + 2).await;
    assert_eq!(seen_first, seen_second);
    assert_eq!(
        ids(&seen_first),
        granted.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for l in &seen_first {
        release(second.as_ref(), &l.id, T0 + 3).await;
    }
    assert_eq!(active(first.as_ref(), T0 + 4).await, vec![]);
}
