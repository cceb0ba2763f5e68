//! The binaries of remote runs through a real leased over HTTP: a 20 MiB upload lands once under
//! its sha256 and downloads whole; a cut, changed or oversized upload is refused naming why and
//! leaves nothing; an unknown one is 404; the store outlives a restart.

use crate::common::{Daemon, write_lab};
use sha2::{Digest, Sha256};

fn sha(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Lab {
    dir: tempfile::TempDir,
    boards: std::path::PathBuf,
    store: String,
    flags: Vec<String>,
}

impl Lab {
    fn new(max_bytes: u64) -> Lab {
        let dir = tempfile::tempdir().expect("a temp dir");
        let boards = write_lab(dir.path(), "socA", 1);
        let store = dir.path().join("leases.redb").display().to_string();
        let flags = vec![
            "--artifact-dir".to_string(),
            dir.path().join("artifacts").display().to_string(),
            "--artifact-max-bytes".to_string(),
            max_bytes.to_string(),
        ];
        Lab {
            dir,
            boards,
            store,
            flags,
        }
    }

    async fn start(&self) -> Daemon {
        Daemon::start_env(&self.boards, &self.store, self.dir.path(), &self.flags, &[]).await
    }
}

async fn put(d: &Daemon, name: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .put(format!("{}/api/v1/artifacts/{name}", d.url))
        .header(leased::api::HOLDER_HEADER, "ann@ci")
        .body(body)
        .send()
        .await
        .expect("leased answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

async fn get(d: &Daemon, name: &str) -> (u16, Vec<u8>) {
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/artifacts/{name}", d.url))
        .header(leased::api::HOLDER_HEADER, "w1@lab")
        .send()
        .await
        .expect("leased answers");
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_mib_binary_is_stored_once_by_sha256_and_downloads_whole() {
    let lab = Lab::new(64 * 1024 * 1024);
    let d = lab.start().await;
    let data: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let name = sha(&data);
    let (status, info) = put(&d, &name, data.clone()).await;
    assert_eq!(status, 201, "{info}");
    assert_eq!(info["sha256"], name.as_str());
    assert_eq!(info["size"], 20 * 1024 * 1024);
    let (status, _) = put(&d, &name, data.clone()).await;
    assert_eq!(status, 200, "the same binary again is already there");

    drop(d);
    let d = lab.start().await;
    let (status, back) = get(&d, &name).await;
    assert_eq!(status, 200);
    assert_eq!(back.len(), data.len());
    assert_eq!(
        sha(&back),
        name,
        "the download is the upload, byte for byte"
    );
    let stored: Vec<_> = std::fs::read_dir(lab.dir.path().join("artifacts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(stored, [name]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_naming_why_and_leave_nothing() {
    let lab = Lab::new(1024 * 1024);
    let d = lab.start().await;
    let data = b"#!/bin/sh\necho hello\n".to_vec();

    let (status, body) = put(&d, &sha(b"another binary"), data.clone()).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&sha(&data)) && message.contains("cut or changed"),
        "{message}"
    );

    let big = vec![0u8; 2 * 1024 * 1024];
    let (status, body) = put(&d, &sha(&big), big).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1048576 bytes"),
        "{body}"
    );

    let (status, body) = put(&d, "not-a-sha", data.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not a sha256")
    );

    let (status, _) = get(&d, &sha(&data)).await;
    assert_eq!(status, 404, "nothing was stored");
    let left = std::fs::read_dir(lab.dir.path().join("artifacts"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "no partial upload is left behind");
}
