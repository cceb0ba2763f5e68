//! The lab's layout in a real Prefect 3.9.1 (the server shared with `prefect`): the flow, a work
//! pool with its three priority queues and the `socv-run` deployment, made once and left alone
//! after; bad pool names and flow runs that break the parameter schema refused with the reason.

use crate::common::{Daemon, write_lab};
use crate::prefect::{client, shared};
use leased::prefect::PrefectError;
use leased::prefect::setup::{self, POOL_TYPE, deployment_name};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A pool name no other test (or earlier run of this one) uses.
fn pool_name(tag: &str) -> String {
    format!("{tag}-{:08x}", rand::random::<u32>())
}

async fn ranks(c: &leased::prefect::PrefectClient, pool: &str) -> Vec<(String, u64)> {
    let queues = c
        .post_json(&format!("/work_pools/{pool}/queues/filter"), &json!({}))
        .await
        .expect("the pool's queues");
    let mut ranks: Vec<(String, u64)> = queues
        .as_array()
        .expect("a list")
        .iter()
        .map(|q| {
            (
                q["name"].as_str().unwrap_or_default().to_owned(),
                q["priority"].as_u64().unwrap_or_default(),
            )
        })
        .filter(|(name, _)| name != "default")
        .collect();
    ranks.sort_by_key(|(_, rank)| *rank);
    ranks
}

fn ours(ranks: &[(String, u64)]) -> Vec<(&str, u64)> {
    ranks.iter().map(|(n, r)| (n.as_str(), *r)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_makes_the_pool_queues_and_deployment_once_and_then_changes_nothing() {
    let c = client(shared());
    let pool = pool_name("lab-sh");

    let first = setup::ensure(&c, &pool).await.expect("the first setup");
    assert_eq!(
        first.changed,
        [
            format!("created work pool {pool}"),
            format!("created queue {pool}/p1"),
            format!("created queue {pool}/p2"),
            format!("created queue {pool}/p3"),
            format!(
                "created deployment socv-run/{} on work pool {pool}",
                deployment_name(&pool)
            ),
        ]
    );
    let found = c
        .get_json(&format!("/work_pools/{pool}"))
        .await
        .expect("the pool");
    assert_eq!(found["type"], POOL_TYPE);
    assert_eq!(
        ours(&ranks(&c, &pool).await),
        [("p1", 1), ("p2", 2), ("p3", 3)],
        "p1 is served before p2 before p3"
    );
    let deployment = c
        .get_json(&format!("/deployments/{}", first.deployment_id))
        .await
        .expect("the deployment");
    assert_eq!(deployment["name"], deployment_name(&pool));
    assert_eq!(deployment["work_pool_name"], pool.as_str());
    assert_eq!(deployment["work_queue_name"], "p2");
    assert_eq!(deployment["enforce_parameter_schema"], true);
    assert_eq!(
        deployment["parameter_openapi_schema"],
        setup::parameter_schema()
    );
    let updated = deployment["updated"].clone();

    let second = setup::ensure(&c, &pool).await.expect("the second setup");
    assert!(
        second.changed.is_empty(),
        "changed again: {:?}",
        second.changed
    );
    assert_eq!(second.deployment_id, first.deployment_id);
    assert_eq!(second.flow_id, first.flow_id);
    let again = c
        .get_json(&format!("/deployments/{}", first.deployment_id))
        .await
        .expect("the deployment");
    assert_eq!(
        again["updated"], updated,
        "the deployment was written again"
    );
    assert_eq!(
        ours(&ranks(&c, &pool).await),
        [("p1", 1), ("p2", 2), ("p3", 3)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_puts_back_queue_ranks_and_a_deployment_someone_changed() {
    let c = client(shared());
    let pool = pool_name("lab-bj");
    let first = setup::ensure(&c, &pool).await.expect("the first setup");
    // Someone moves p3 to the top in the UI (which shifts the others down), and loosens the
    // deployment's schema.
    c.patch_json(
        &format!("/work_pools/{pool}/queues/p3"),
        &json!({"priority": 1}),
    )
    .await
    .expect("re-ranking p3");
    assert_eq!(ours(&ranks(&c, &pool).await)[0], ("p3", 1));
    c.patch_json(
        &format!("/deployments/{}", first.deployment_id),
        &json!({"enforce_parameter_schema": false}),
    )
    .await
    .expect("loosening the deployment");

    let fixed = setup::ensure(&c, &pool).await.expect("setup again");
    assert_eq!(
        fixed.changed,
        [
            format!("ranked queues {pool}/p1, p2, p3 as priorities 1, 2, 3"),
            format!(
                "updated deployment socv-run/{} to socv's parameters and pool {pool}",
                deployment_name(&pool)
            ),
        ]
    );
    assert_eq!(
        ours(&ranks(&c, &pool).await),
        [("p1", 1), ("p2", 2), ("p3", 3)]
    );
    let deployment = c
        .get_json(&format!("/deployments/{}", fixed.deployment_id))
        .await
        .expect("the deployment");
    assert_eq!(deployment["enforce_parameter_schema"], true);
}

/// What Prefect answers a flow run of the deployment with `parameters`.
async fn create(
    c: &leased::prefect::PrefectClient,
    deployment: &str,
    parameters: Value,
) -> Result<Value, PrefectError> {
    c.post_json(
        &format!("/deployments/{deployment}/create_flow_run"),
        &json!({"parameters": parameters, "work_queue_name": "p2"}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_runs_that_break_the_parameter_schema_are_refused_with_the_field() {
    let c = client(shared());
    let pool = pool_name("lab-schema");
    let report = setup::ensure(&c, &pool).await.expect("setup");
    let d = report.deployment_id.as_str();

    let good = create(
        &c,
        d,
        json!({"test_binary": "https://ci.lab/job/7/artifact/t.elf", "board_family": "socA",
               "priority": 1, "args": ["--quick"], "timeout": 60, "retries": 0}),
    )
    .await
    .expect("a flow run that fits the schema");
    assert_eq!(good["state_type"], "SCHEDULED");
    assert_eq!(good["parameters"]["board_family"], "socA");

    for (parameters, says) in [
        (
            json!({"board_family": "socA"}),
            "'test_binary' is a required property",
        ),
        (
            json!({"test_binary": "t", "board_family": "socA", "priority": 7}),
            "7 is not one of [1, 2, 3]",
        ),
        (
            json!({"test_binary": "t", "board_family": "socA", "colour": "red"}),
            "colour",
        ),
        (
            json!({"test_binary": "t", "board_family": "socA", "sha256": "abc"}),
            "sha256",
        ),
    ] {
        match create(&c, d, parameters.clone()).await {
            Err(PrefectError::Status {
                status: 409,
                message,
                ..
            }) => {
                assert!(message.contains(says), "{parameters}: {message}")
            }
            other => panic!("{parameters}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_prefect_would_refuse_or_that_belongs_to_other_workers_is_named_with_the_reason() {
    let c = client(shared());
    match setup::ensure(&c, "prefect-lab").await {
        Err(e @ PrefectError::Invalid { .. }) => {
            let text = e.to_string();
            assert!(text.contains("\"prefect-lab\""), "{text}");
            assert!(
                text.contains("reserves names starting with \"prefect\""),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    let theirs = pool_name("python-pool");
    c.post_json("/work_pools/", &json!({"name": theirs, "type": "process"}))
        .await
        .expect("a pool of Python process workers");
    match setup::ensure(&c, &theirs).await {
        Err(e @ PrefectError::Invalid { .. }) => {
            let text = e.to_string();
            assert!(text.contains("type \"process\""), "{text}");
            assert!(text.contains("choose another pool name"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_with_prefect_lays_out_its_work_pool_at_start_and_a_restart_changes_nothing() {
    let server = shared();
    let c = client(server);
    let pool = pool_name("lab-daemon");
    let dir = tempfile::tempdir().expect("a temp dir");
    let boards = write_lab(dir.path(), "socA", 1);
    let store = dir.path().join("leases.redb").display().to_string();
    let mut flags = vec![
        "--prefect-url".to_string(),
        server.api_url(),
        "--work-pool".to_string(),
        pool.clone(),
    ];
    if let Some(auth) = server.auth() {
        flags.extend(["--prefect-auth".to_string(), auth.to_string()]);
    }
    // At info level: the layout is logged.
    let env = [("RUST_LOG", "info")];
    let mut daemon = Daemon::start_env(&boards, &store, dir.path(), &flags, &env).await;

    // Bounded wait for the condition: leased lays the pool out in the background at start.
    let deadline = Instant::now() + Duration::from_secs(60);
    let deployment = loop {
        if let Ok(d) = c
            .get_json(&format!(
                "/deployments/name/socv-run/{}",
                deployment_name(&pool)
            ))
            .await
            && d["work_pool_name"] == pool.as_str()
        {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "leased did not lay out work pool {pool} within 60 s; its log:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        ours(&ranks(&c, &pool).await),
        [("p1", 1), ("p2", 2), ("p3", 3)]
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !daemon.log().contains("Prefect laid out for socv workers") {
        assert!(
            Instant::now() < deadline,
            "no layout logged:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    daemon.kill9();
    let daemon = Daemon::start_env(&boards, &store, dir.path(), &flags, &env).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !daemon
        .log()
        .contains("Prefect's work pool and deployment are as they should be")
    {
        assert!(
            Instant::now() < deadline,
            "the restart did not check the layout:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = c
        .get_json(&format!(
            "/deployments/{}",
            deployment["id"].as_str().unwrap_or_default()
        ))
        .await
        .expect("the deployment");
    assert_eq!(
        again["updated"], deployment["updated"],
        "the restart wrote the deployment again"
    );
}
