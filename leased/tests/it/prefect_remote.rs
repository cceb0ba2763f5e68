//! Remote runs submitted through a real leased into a real Prefect 3.9.1 (the server shared with
//! `prefect`): a flow run of the pool's deployment in the queue of its priority, made once per
//! submission; what leased can check is refused before Prefect is asked, naming the field.

use crate::common::{Daemon, call, write_lab};
use crate::prefect::{client, shared};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

fn sha(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_run_is_one_flow_run_in_its_priority_queue_and_bad_ones_are_named() {
    let server = shared();
    let prefect = client(server);
    let pool = format!("remote-{:08x}", rand::random::<u32>());
    let dir = tempfile::tempdir().expect("a temp dir");
    let boards = write_lab(dir.path(), "socA", 2);
    let store = dir.path().join("leases.redb").display().to_string();
    let mut flags = vec![
        "--prefect-url".to_string(),
        server.api_url(),
        "--work-pool".to_string(),
        pool.clone(),
        "--artifact-dir".to_string(),
        dir.path().join("artifacts").display().to_string(),
    ];
    if let Some(auth) = server.auth() {
        flags.extend(["--prefect-auth".to_string(), auth.to_string()]);
    }
    let d = Daemon::start_env(&boards, &store, dir.path(), &flags, &[]).await;
    let deployment = format!("/deployments/name/socv-run/socv-run-{pool}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while prefect.get_json(&deployment).await.is_err() {
        assert!(Instant::now() < deadline, "no layout:\n{}", d.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let http = reqwest::Client::new();
    let binary = b"#!/bin/sh\necho remote\n".to_vec();
    let digest = sha(&binary);
    let up = http
        .put(format!("{}/api/v1/artifacts/{digest}", d.url))
        .header(leased::api::HOLDER_HEADER, "ann@ci")
        .body(binary)
        .send()
        .await
        .expect("upload");
    assert_eq!(up.status().as_u16(), 201);

    let url = format!("{}/api/v1/remote-runs", d.url);
    let submit = |body: Value| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            call(&http, Method::POST, &url, "ann@ci", Some(body))
                .await
                .expect("leased answers")
        }
    };
    let request = json!({"submission": "s-0001", "test_binary": digest, "board_family": "socA",
                         "priority": 1, "args": ["--quick"], "timeout_s": 60});
    let first = submit(request.clone()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["pool"], pool.as_str());
    assert_eq!(first.body["queue"], "p1");
    assert_eq!(first.body["created"], true);
    let id = first.body["flow_run_id"]
        .as_str()
        .expect("an id")
        .to_owned();
    assert!(
        first.body["url"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&format!("/runs/flow-run/{id}"))
    );

    let again = submit(request).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        again.body["flow_run_id"],
        id.as_str(),
        "one flow run per submission"
    );
    assert_eq!(again.body["created"], false);

    let run = prefect
        .get_json(&format!("/flow_runs/{id}"))
        .await
        .expect("the flow run");
    assert_eq!(run["state_type"], "SCHEDULED");
    assert_eq!(run["work_queue_name"], "p1");
    assert_eq!(run["parameters"]["test_binary"], digest.as_str());
    assert_eq!(run["parameters"]["args"], json!(["--quick"]));
    assert_eq!(run["parameters"]["timeout"], 60);
    assert_eq!(run["parameters"]["retries"], 2);
    let tags: Vec<&str> = run["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tags.contains(&"holder:ann@ci") && tags.contains(&"family:socA"),
        "{tags:?}"
    );

    let missing = sha(b"never uploaded");
    for (body, status, says) in [
        (
            json!({"submission": "s-2", "test_binary": digest, "board_family": "socZ"}),
            404,
            "no socZ boards",
        ),
        (
            json!({"submission": "s-3", "test_binary": missing, "board_family": "socA"}),
            404,
            "upload it first",
        ),
        (
            json!({"submission": "s-4", "test_binary": "./t.elf", "board_family": "socA"}),
            400,
            "test_binary",
        ),
        (
            json!({"submission": "s-5", "test_binary": digest, "board_family": "socA", "timeout_s": 0}),
            400,
            "timeout_s",
        ),
        (
            json!({"submission": "s-6", "test_binary": digest, "board_family": "socA", "retries": 50}),
            400,
            "retries",
        ),
        (
            json!({"submission": "s-7", "test_binary": digest, "board_family": "socA", "board": "soc-z-9"}),
            404,
            "board: no board soc-z-9",
        ),
        (
            json!({"submission": "S 8", "test_binary": digest, "board_family": "socA"}),
            400,
            "submission",
        ),
        (
            json!({"submission": "s-9", "test_binary": digest, "board_family": "socA", "colour": 1}),
            400,
            "colour",
        ),
    ] {
        let answer = submit(body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        let message = answer.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {message}");
    }

    // A URL binary needs no upload.
    let from_ci = submit(
        json!({"submission": "s-10", "board_family": "socA", "priority": 3,
        "test_binary": "https://ci.lab/job/7/artifact/t.elf", "sha256": digest}),
    )
    .await;
    assert_eq!(from_ci.status, 201, "{}", from_ci.body);
    assert_eq!(from_ci.body["queue"], "p3");
    assert_eq!(from_ci.body["name"], "socA t.elf");

    // Without Prefect, leased says so.
    let plain_dir = tempfile::tempdir().expect("a temp dir");
    let plain_store = plain_dir.path().join("leases.redb").display().to_string();
    let plain = Daemon::start_env(&boards, &plain_store, plain_dir.path(), &[], &[]).await;
    let answer = call(
        &http,
        Method::POST,
        &format!("{}/api/v1/remote-runs", plain.url),
        "ann@ci",
        Some(json!({"submission": "s-1", "test_binary": digest, "board_family": "socA"})),
    )
    .await
    .expect("leased answers");
    assert_eq!(answer.status, 404);
    assert_eq!(answer.body["error"]["code"], "no_prefect");
}
