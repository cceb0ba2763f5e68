//! A `socv run` on the simulated lab becomes a Prefect flow run a person can open: flow
//! `socv-run`, the run's tags, its state history, its console lines as logs, and its summary and
//! test-case artifacts. Read back through Prefect's own REST API from a real Prefect server.

use crate::support::simlab::{SimLeased, expect_code, stderr, stdout};
use leased::api::Run;
use serde_json::{Value, json};
use socv_testkit::PrefectServer;
use std::time::{Duration, Instant};

/// Prefect's REST API, read directly (blocking, from a test thread).
struct PrefectApi {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    api: String,
}

impl PrefectApi {
    fn new(api: String) -> PrefectApi {
        PrefectApi {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: reqwest::Client::new(),
            api,
        }
    }

    fn call(&self, req: reqwest::RequestBuilder, path: &str) -> Value {
        self.rt.block_on(async {
            let r = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("Prefect {path}: {e}"));
            assert!(r.status().is_success(), "Prefect {path}: {}", r.status());
            r.json().await.unwrap()
        })
    }

    fn get(&self, path: &str) -> Value {
        self.call(self.client.get(format!("{}{path}", self.api)), path)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.call(
            self.client.post(format!("{}{path}", self.api)).json(&body),
            path,
        )
    }
}

/// What leased needs to deliver to `prefect` (a server without auth).
fn prefect_config(prefect: &PrefectServer) -> leased::config::PrefectConfig {
    leased::config::PrefectConfig {
        api_url: prefect.api_url(),
        auth: None,
        api_key: None,
        ui_url: None,
    }
}

#[test]
fn a_run_on_the_simulated_lab_is_a_flow_run_in_prefect() {
    let prefect = PrefectServer::started();
    let config = prefect_config(&prefect);
    let lab = SimLeased::start_with(&["socA:1"], move |c| c.prefect = Some(config));
    let test = lab.dir.path().join("tap.sh");
    std::fs::write(
        &test,
        "#!/bin/sh\necho 'TAP version 13'\necho '1..3'\necho 'ok 1 - boots'\n\
         echo 'not ok 2 - dma # TODO flaky'\necho 'ok 3 - irq # SKIP no irq line'\n\
         echo 'the end of the test'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&test, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = lab.socv("ann", &["run", "socA", test.to_str().unwrap(), "--json"]);
    expect_code(&out, 0);

    // leased delivers in the background; wait until the run links to its flow run.
    let deadline = Instant::now() + Duration::from_secs(60);
    let run: Run = loop {
        let out = lab.socv("ann", &["history", "--json"]);
        expect_code(&out, 0);
        let runs: Vec<Run> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(runs.len(), 1, "{}", stdout(&out));
        let status = lab.socv("ann", &["status", "--json"]);
        let health: Value = serde_json::from_slice(&status.stdout).unwrap();
        if runs[0].prefect.is_some() && health["prefect"]["backlog"] == 0 {
            break runs[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "not delivered: {:?} {}",
            runs[0],
            health["prefect"]
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let link = run.prefect.as_ref().unwrap();
    assert_eq!(
        link.url.as_deref(),
        Some(
            format!(
                "http://127.0.0.1:{}/runs/flow-run/{}",
                prefect.port(),
                link.flow_run_id
            )
            .as_str()
        )
    );
    // The table shows the link too.
    let table = stdout(&lab.socv("ann", &["history"]));
    assert!(table.contains(&link.flow_run_id), "{table}");

    let api = PrefectApi::new(prefect.api_url());
    let fr = api.get(&format!("/flow_runs/{}", link.flow_run_id));
    assert_eq!(fr["idempotency_key"], run.id.as_str());
    let flow = api.get(&format!("/flows/{}", fr["flow_id"].as_str().unwrap()));
    assert_eq!(flow["name"], "socv-run");
    let tags: Vec<&str> = fr["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for want in [
        format!("board:{}", run.board_id),
        "family:socA".to_string(),
        format!("holder:{}", run.holder),
        format!("location:{}", run.location),
    ] {
        assert!(tags.contains(&want.as_str()), "tags {tags:?} lack {want}");
    }
    assert!(run.holder.starts_with("ann@"), "{}", run.holder);
    assert_eq!(fr["state_type"], "COMPLETED");
    assert_eq!(
        fr["parameters"]["binary"],
        test.to_str().unwrap(),
        "{}",
        fr["parameters"]
    );

    let mut states: Vec<Value> = serde_json::from_value(api.get(&format!(
        "/flow_run_states/?flow_run_id={}",
        link.flow_run_id
    )))
    .unwrap();
    states.sort_by_key(|s| s["timestamp"].as_str().unwrap().to_string());
    let names: Vec<&str> = states.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Pending", "Running", "Completed"]);

    let logs = api.post(
        "/logs/filter",
        json!({"logs": {"flow_run_id": {"any_": [link.flow_run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200}),
    );
    let messages: Vec<&str> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    for line in [
        "ok 1 - boots",
        "not ok 2 - dma # TODO flaky",
        "the end of the test",
    ] {
        assert_eq!(
            messages.iter().filter(|m| m.contains(line)).count(),
            1,
            "{line:?} once in the logs: {messages:?}"
        );
    }
    let pos = |needle: &str| messages.iter().position(|m| m.contains(needle)).unwrap();
    assert!(
        pos("ok 1 - boots") < pos("the end of the test"),
        "{messages:?}"
    );

    let artifacts = api.post(
        "/artifacts/filter",
        json!({"artifacts": {"flow_run_id": {"any_": [link.flow_run_id]}}}),
    );
    let artifacts = artifacts.as_array().unwrap();
    let summary = artifacts
        .iter()
        .find(|a| a["type"] == "markdown")
        .unwrap_or_else(|| panic!("no markdown artifact: {artifacts:?}"));
    let text = summary["data"].as_str().unwrap();
    assert!(
        text.contains(&run.board_id) && text.contains(&run.id),
        "{text}"
    );
    let table = artifacts
        .iter()
        .find(|a| a["type"] == "table")
        .unwrap_or_else(|| panic!("no table artifact: {artifacts:?}"));
    let rows: Vec<Value> = match &table["data"] {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        other => serde_json::from_value(other.clone()).unwrap(),
    };
    assert_eq!(rows.len(), 3, "{rows:?}");
    let row_text = serde_json::to_string(&rows).unwrap();
    for case in ["boots", "dma", "irq"] {
        assert!(row_text.contains(case), "{row_text}");
    }
}

#[test]
fn socv_workers_lists_the_pools_workers_and_the_runs_they_hold() {
    let prefect = PrefectServer::started();
    let config = prefect_config(&prefect);
    let client = leased::prefect::PrefectClient::new(&config).expect("a Prefect client");
    let lab = SimLeased::start_with(&["socA:1"], move |c| {
        c.prefect = Some(config);
        c.work_pool = "lab-test".into();
    });
    let api = PrefectApi::new(prefect.api_url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // leased lays the pool out at start, in the background: a bounded wait for it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let deployment = loop {
        if let Ok(d) = rt.block_on(client.get_json("/deployments/name/socv-run/socv-run-lab-test"))
        {
            break d["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "leased did not lay out the pool");
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = lab.socv("ann", &["workers"]);
    expect_code(&out, 0);
    assert!(
        stderr(&out).contains("work pool lab-test has no workers yet"),
        "{}",
        stderr(&out)
    );

    let run = api.post(
        &format!("/deployments/{deployment}/create_flow_run"),
        json!({"name": "t-elf-1", "work_queue_name": "p1",
               "parameters": {"test_binary": "t.elf", "board_family": "socA", "priority": 1}}),
    );
    let run = run["id"].as_str().unwrap().to_owned();
    rt.block_on(async {
        let beat = Duration::from_secs(10);
        client.heartbeat("lab-test", "sh-w1", beat).await.unwrap();
        client.heartbeat("lab-test", "sh-w2", beat).await.unwrap();
        assert!(client.claim(&run, "sh-w1").await.unwrap().is_accepted());
        client
            .mark_running_on(&run, "lab-test", "sh-w1", Some("Lab Site A"), "soc-a-001")
            .await
            .unwrap();
    });

    let out = lab.socv("ann", &["workers", "--json"]);
    expect_code(&out, 0);
    let seen: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(seen["pool"], "lab-test");
    assert_eq!(
        seen["workers"],
        json!([
            {"name": "sh-w1", "status": "ONLINE",
             "last_heartbeat": seen["workers"][0]["last_heartbeat"], "location": "Lab Site A",
             "runs": [{"flow_run_id": run, "name": "t-elf-1", "state": "Pending", "board": "soc-a-001"}]},
            {"name": "sh-w2", "status": "ONLINE",
             "last_heartbeat": seen["workers"][1]["last_heartbeat"], "runs": []}
        ])
    );
    assert!(seen["workers"][0]["last_heartbeat"].is_string());
    let out = lab.socv("ann", &["workers"]);
    expect_code(&out, 0);
    let table = stdout(&out);
    assert!(table.contains("t-elf-1 (Pending) on soc-a-001"), "{table}");

    // A leased without Prefect says so: exit 1, naming the setting.
    let plain = SimLeased::start_with(&["socA:1"], |_| {});
    let out = plain.socv("ann", &["workers"]);
    expect_code(&out, 1);
    assert!(stderr(&out).contains("PREFECT_API_URL"), "{}", stderr(&out));
}
