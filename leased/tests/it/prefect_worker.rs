//! A worker's side of a socv work pool against a real Prefect 3.9.1 (the server shared with
//! `prefect`): runs served by priority, exactly one winner when workers race for a run, a run
//! handed back keeps its place, cancellations seen, workers listed as Prefect sees them.

use crate::prefect::{client, shared};
use leased::prefect::PrefectClient;
use leased::prefect::setup;
use serde_json::json;
use socv_prefect::worker::{Answer, ScheduledRun};
use std::time::Duration;

/// A laid-out pool of its own: its name and its deployment's id.
async fn pool(c: &PrefectClient, tag: &str) -> (String, String) {
    let name = format!("{tag}-{:08x}", rand::random::<u32>());
    let report = setup::ensure(c, &name).await.expect("setup");
    (name, report.deployment_id)
}

async fn submit(c: &PrefectClient, deployment: &str, name: &str, priority: u8) -> String {
    let queue = setup::queue_of(priority).expect("a queue");
    let run = c
        .post_json(
            &format!("/deployments/{deployment}/create_flow_run"),
            &json!({"name": name, "work_queue_name": queue,
                    "parameters": {"test_binary": "t.elf", "board_family": "socA", "priority": priority}}),
        )
        .await
        .expect("a flow run");
    run["id"].as_str().expect("its id").to_owned()
}

fn names(runs: &[ScheduledRun]) -> Vec<&str> {
    runs.iter().map(|r| r.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_served_by_priority_then_oldest_first() {
    let c = client(shared());
    let (pool, d) = pool(&c, "order").await;
    submit(&c, &d, "low-1", 3).await;
    submit(&c, &d, "normal-1", 2).await;
    submit(&c, &d, "high-1", 1).await;
    submit(&c, &d, "low-2", 3).await;
    submit(&c, &d, "high-2", 1).await;
    let due = c
        .scheduled_runs(&pool, &["p1", "p2", "p3"], Duration::from_secs(10), 10)
        .await
        .expect("the scheduled runs");
    assert_eq!(
        names(&due),
        ["high-1", "high-2", "normal-1", "low-1", "low-2"]
    );
    assert_eq!(due[0].queue, "p1");
    assert_eq!(due[0].parameters["board_family"], "socA");
    // Reading changes nothing: a second worker sees the same list.
    let again = c
        .scheduled_runs(&pool, &["p1", "p2", "p3"], Duration::from_secs(10), 10)
        .await
        .expect("the scheduled runs");
    assert_eq!(names(&again), names(&due));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_three_workers_racing_for_a_run_exactly_one_wins() {
    let c = client(shared());
    let (_pool, d) = pool(&c, "race").await;
    for i in 0..5 {
        let run = submit(&c, &d, &format!("race-{i}"), 2).await;
        let claims = futures_util::future::join_all(["w1", "w2", "w3"].map(|w| {
            let c = client(shared());
            let run = run.clone();
            async move { c.claim(&run, w).await.expect("a claim's answer") }
        }))
        .await;
        let winners = claims.iter().filter(|a| a.is_accepted()).count();
        assert_eq!(winners, 1, "run {i}: {claims:?}");
        for lost in claims.iter().filter(|a| !a.is_accepted()) {
            match lost {
                Answer::Refused { status, reason } => {
                    assert_eq!(status, "ABORT", "{reason}");
                    assert!(reason.contains("PENDING"), "{reason}");
                }
                Answer::Accepted => unreachable!(),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_handed_back_is_due_again_later_and_can_be_claimed_again() {
    let c = client(shared());
    let (pool, d) = pool(&c, "handback").await;
    let run = submit(&c, &d, "no-board-yet", 1).await;
    assert!(c.claim(&run, "w1").await.expect("claim").is_accepted());
    let handed = c
        .hand_back(&run, "w1", "no free socA board", Duration::from_secs(2))
        .await
        .expect("hand back");
    assert!(handed.is_accepted(), "{handed:?}");
    let now = c
        .scheduled_runs(&pool, &["p1", "p2", "p3"], Duration::ZERO, 10)
        .await
        .expect("poll");
    assert!(
        names(&now).is_empty(),
        "due again only after 2 s: {:?}",
        names(&now)
    );
    let later = c
        .scheduled_runs(&pool, &["p1", "p2", "p3"], Duration::from_secs(5), 10)
        .await
        .expect("poll");
    assert_eq!(names(&later), ["no-board-yet"]);
    let state = c
        .get_json(&format!("/flow_runs/{run}"))
        .await
        .expect("the run");
    assert_eq!(state["state"]["name"], "AwaitingBoard");
    assert_eq!(state["state"]["message"], "w1: no free socA board");
    assert!(c.claim(&run, "w2").await.expect("claim").is_accepted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_is_seen_and_the_run_ends_cancelled() {
    let c = client(shared());
    let (pool, d) = pool(&c, "cancel").await;
    let run = submit(&c, &d, "cancel-me", 2).await;
    let other = submit(&c, &d, "keep-me", 2).await;
    for r in [&run, &other] {
        assert!(c.claim(r, "w1").await.expect("claim").is_accepted());
        c.mark_running_on(r, &pool, "w1", Some("sh"), "soc-a-001")
            .await
            .expect("labels");
        let running = c
            .propose(r, "RUNNING", "Running", "soc-a-001: running t.elf", None)
            .await
            .expect("running");
        assert!(running.is_accepted(), "{running:?}");
    }
    let labels = c
        .get_json(&format!("/flow_runs/{run}"))
        .await
        .expect("the run");
    assert_eq!(labels["labels"]["prefect.worker.name"], "w1");
    assert_eq!(labels["labels"]["socv.location"], "sh");
    assert_eq!(labels["infrastructure_pid"], "w1:soc-a-001");

    let asked = c
        .propose(&run, "CANCELLING", "Cancelling", "cancelled by alice", None)
        .await
        .expect("cancelling");
    assert!(asked.is_accepted(), "{asked:?}");
    let ids = [run.clone(), other.clone()];
    assert_eq!(
        c.cancelling(&ids).await.expect("the check"),
        std::slice::from_ref(&run)
    );
    // The test had just finished: Prefect takes nothing but Cancelled now.
    let done = c
        .propose(&run, "COMPLETED", "Completed", "exit 0", None)
        .await
        .expect("completed");
    assert!(done.says_cancelling(), "{done:?}");
    let cancelled = c
        .propose(&run, "CANCELLED", "Cancelled", "stopped by w1", None)
        .await
        .expect("cancelled");
    assert!(cancelled.is_accepted(), "{cancelled:?}");
    assert!(c.cancelling(&ids).await.expect("the check").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_register_workers_and_a_wrong_pool_is_named() {
    let c = client(shared());
    let (pool, _) = pool(&c, "beat").await;
    c.heartbeat(&pool, "sh-w1", Duration::from_secs(10))
        .await
        .expect("heartbeat");
    c.heartbeat(&pool, "sh-w2", Duration::from_secs(10))
        .await
        .expect("heartbeat");
    let mut seen = c.workers(&pool).await.expect("the workers");
    seen.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<(&str, &str)> = seen
        .iter()
        .map(|w| (w.name.as_str(), w.status.as_str()))
        .collect();
    assert_eq!(names, [("sh-w1", "ONLINE"), ("sh-w2", "ONLINE")]);
    assert!(seen.iter().all(|w| w.last_heartbeat.is_some()));

    let wrong = c
        .heartbeat("no-such-pool", "sh-w1", Duration::from_secs(10))
        .await
        .expect_err("an unknown pool");
    let text = wrong.to_string();
    assert!(text.contains("no-such-pool"), "{text}");
}
