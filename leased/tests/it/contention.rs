//! Contention: 200 clients, 12 boards, two leased processes on one Redis, for 10 seconds.
//!
//! An independent checker (this file, not the daemon) records every grant and release and
//! asserts that no board was ever held twice at once, and that waiters were served strictly in
//! priority order, first come first served within a priority.

use crate::common::{Daemon, call, write_lab};
use rand::Rng;
use reqwest::Method;
use serde_json::json;
use socv_testkit::RedisServer;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 200;
const BOARDS: usize = 12;
const RUN_FOR: Duration = Duration::from_secs(10);

/// One grant as a client saw it.
#[derive(Debug, Clone)]
struct Grant {
    board: String,
    grant_seq: u64,
    /// `Some((priority, seq))` when the grant came through the queue.
    ticket: Option<(u8, u64)>,
    /// When the client had the lease in hand, and when it let go (a subset of the daemon's
    /// interval, so overlapping observations prove overlapping grants).
    held_from: Instant,
    held_until: Instant,
}

#[derive(Default)]
struct Log {
    grants: Vec<Grant>,
    /// Every ticket ever queued: (seq, priority).
    queued: Vec<(u64, u8)>,
    errors: Vec<String>,
}

async fn client_loop(urls: Arc<Vec<String>>, who: String, log: Arc<Mutex<Log>>, stop_at: Instant) {
    let http = reqwest::Client::new();
    while Instant::now() < stop_at {
        let (priority, url, hold_ms) = {
            let mut rng = rand::rng();
            let p: u8 = rng.random_range(1..=3);
            let u = urls[rng.random_range(0..urls.len())].clone();
            (p, u, rng.random_range(1..8))
        };
        let a = match call(
            &http,
            Method::POST,
            &format!("{url}/api/v1/lease"),
            &who,
            Some(json!({"board_family": "socA", "priority": priority, "ttl_s": 60, "wait_s": 120})),
        )
        .await
        {
            Ok(a) => a,
            Err(e) => {
                log.lock().unwrap().errors.push(format!("acquire: {e}"));
                return;
            }
        };
        let (lease, ticket) = match a.status {
            201 => (a.body, None),
            202 => {
                let seq = a.body["seq"].as_u64().unwrap();
                let tid = a.body["ticket"].as_str().unwrap().to_string();
                log.lock().unwrap().queued.push((seq, priority));
                // Any daemon may answer the poll: they share the store.
                let lease = loop {
                    let url = urls[rand::rng().random_range(0..urls.len())].clone();
                    let p = call(
                        &http,
                        Method::GET,
                        &format!("{url}/api/v1/queue/{tid}?wait_s=20"),
                        &who,
                        None,
                    )
                    .await;
                    match p {
                        Ok(p) if p.body["state"] == "granted" => break p.body["lease"].clone(),
                        Ok(p) if p.status == 200 => continue,
                        Ok(p) => {
                            log.lock()
                                .unwrap()
                                .errors
                                .push(format!("poll {tid}: {} {}", p.status, p.body));
                            return;
                        }
                        Err(e) => {
                            log.lock().unwrap().errors.push(format!("poll {tid}: {e}"));
                            return;
                        }
                    }
                };
                (lease, Some((priority, seq)))
            }
            other => {
                log.lock()
                    .unwrap()
                    .errors
                    .push(format!("acquire answered {other}: {}", a.body));
                return;
            }
        };
        let held_from = Instant::now();
        tokio::time::sleep(Duration::from_millis(hold_ms)).await;
        let held_until = Instant::now();
        let id = lease["id"].as_str().unwrap().to_string();
        let url = urls[rand::rng().random_range(0..urls.len())].clone();
        let r = call(
            &http,
            Method::DELETE,
            &format!("{url}/api/v1/lease/{id}"),
            &who,
            None,
        )
        .await;
        let mut log = log.lock().unwrap();
        match r {
            Ok(r) if r.status == 200 => {}
            Ok(r) => log
                .errors
                .push(format!("release {id}: {} {}", r.status, r.body)),
            Err(e) => log.errors.push(format!("release {id}: {e}")),
        }
        log.grants.push(Grant {
            board: lease["board_id"].as_str().unwrap().to_string(),
            grant_seq: lease["grant_seq"].as_u64().unwrap(),
            ticket,
            held_from,
            held_until,
        });
    }
}

/// No two observed holding intervals of one board overlap.
fn check_no_overlap(grants: &[Grant]) {
    let mut by_board: BTreeMap<&str, Vec<&Grant>> = BTreeMap::new();
    for g in grants {
        by_board.entry(&g.board).or_default().push(g);
    }
    for (board, mut gs) in by_board {
        gs.sort_by_key(|g| g.held_from);
        for pair in gs.windows(2) {
            assert!(
                pair[0].held_until <= pair[1].held_from,
                "board {board} held twice at once: grants {} and {}",
                pair[0].grant_seq,
                pair[1].grant_seq
            );
        }
        // The daemon's own order agrees with what the clients saw.
        for pair in gs.windows(2) {
            assert!(
                pair[0].grant_seq < pair[1].grant_seq,
                "board {board}: grant order"
            );
        }
    }
}

/// Replays queue and grant events in the store's global order: every queued grant must go to the
/// best waiting ticket (lowest priority number, then earliest), and an immediate grant may only
/// happen while nobody waits.
fn check_fair_order(grants: &[Grant], queued: &[(u64, u8)]) {
    enum Event {
        Queued(u8, u64),
        Granted(Option<(u8, u64)>),
    }
    let mut events: BTreeMap<u64, Event> = BTreeMap::new();
    for &(seq, p) in queued {
        assert!(
            events.insert(seq, Event::Queued(p, seq)).is_none(),
            "seq {seq} twice"
        );
    }
    for g in grants {
        assert!(
            events
                .insert(g.grant_seq, Event::Granted(g.ticket))
                .is_none(),
            "grant_seq {} twice",
            g.grant_seq
        );
    }
    let mut waiting: BTreeSet<(u8, u64)> = BTreeSet::new();
    let mut queued_grants = 0;
    for (seq, e) in events {
        match e {
            Event::Queued(p, s) => {
                waiting.insert((p, s));
            }
            Event::Granted(Some(t)) => {
                let best = waiting.first().copied();
                assert_eq!(
                    best,
                    Some(t),
                    "grant {seq} went to ticket {t:?} while {best:?} waited ahead of it"
                );
                waiting.remove(&t);
                queued_grants += 1;
            }
            Event::Granted(None) => {
                assert!(
                    waiting.is_empty(),
                    "grant {seq} was immediate while {} tickets waited (first {:?})",
                    waiting.len(),
                    waiting.first()
                );
            }
        }
    }
    assert!(
        queued_grants > 100,
        "too little contention to judge: {queued_grants} queued grants"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_one_redis_never_double_grant_and_serve_fairly() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lab = write_lab(dir.path(), "socA", BOARDS);
    let a = Daemon::start(&lab, &redis.url(), dir.path()).await;
    let b = Daemon::start(&lab, &redis.url(), dir.path()).await;
    let urls = Arc::new(vec![a.url.clone(), b.url.clone()]);
    let log = Arc::new(Mutex::new(Log::default()));
    let stop_at = Instant::now() + RUN_FOR;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(client_loop(
                urls.clone(),
                format!("client-{i}@test"),
                log.clone(),
                stop_at,
            ))
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let log = std::mem::take(&mut *log.lock().unwrap());
    assert!(
        log.errors.is_empty(),
        "client errors: {:#?}",
        &log.errors[..log.errors.len().min(10)]
    );
    // Every ticket that queued was granted (clients only stop after releasing).
    assert_eq!(
        log.queued.len(),
        log.grants.iter().filter(|g| g.ticket.is_some()).count()
    );
    check_no_overlap(&log.grants);
    check_fair_order(&log.grants, &log.queued);
    eprintln!(
        "contention: {} grants ({} through the queue) on {BOARDS} boards by {CLIENTS} clients",
        log.grants.len(),
        log.queued.len()
    );
    // Nothing is left held.
    let http = reqwest::Client::new();
    let h = call(
        &http,
        Method::GET,
        &format!("{}/api/v1/health", a.url),
        "x@h",
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (h.body["leases"].clone(), h.body["waiting"].clone()),
        (json!(0), json!(0))
    );
}
