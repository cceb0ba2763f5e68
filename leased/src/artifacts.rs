//! The binaries of remote runs: uploaded once by `socv run --remote`, kept content-addressed by
//! their sha256 under leased's data dir (`artifacts/<sha256>`), downloaded and checked by the
//! worker that runs them.
//!
//! An upload is streamed to a temporary file while its sha256 is computed, and lands under its
//! name only when the digest is the one the upload claimed and it fits the size limit: a file
//! under `artifacts/` is always whole and always what its name says. Artifacts not uploaded or
//! fetched for the retention period are removed.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;

/// Where artifacts live and how much they may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactConfig {
    pub dir: PathBuf,
    /// Largest artifact accepted (413 beyond it).
    pub max_bytes: u64,
    /// An artifact neither uploaded nor fetched for this long is removed.
    pub retention: Duration,
}

impl ArtifactConfig {
    /// 256 MiB at the most, kept 7 days, under `data_dir/artifacts`.
    pub fn under(data_dir: &Path) -> ArtifactConfig {
        ArtifactConfig {
            dir: data_dir.join("artifacts"),
            max_bytes: 256 * 1024 * 1024,
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What went wrong with an artifact, for the API's answer.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{0:?} is not a sha256 (64 lowercase hex digits)")]
    BadName(String),
    #[error("the artifact is larger than the limit of {limit} bytes (leased's artifact_max_bytes)")]
    TooLarge { limit: u64 },
    #[error(
        "the uploaded bytes have sha256 {actual}, not {claimed}: the upload was cut or changed on the way"
    )]
    Mismatch { claimed: String, actual: String },
    #[error("no artifact {0} (never uploaded, or removed after the retention period)")]
    Missing(String),
    #[error("the upload broke off: {0}")]
    Cut(String),
    #[error("{doing} {path}: {source}")]
    Io {
        doing: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(doing: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError {
    let path = path.to_path_buf();
    move |source| ArtifactError::Io {
        doing,
        path,
        source,
    }
}

/// Whether `name` is a sha256 as artifacts are named.
pub fn check_name(name: &str) -> Result<(), ArtifactError> {
    if name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(ArtifactError::BadName(name.to_owned()))
    }
}

/// The artifact store.
#[derive(Debug, Clone)]
pub struct Artifacts {
    config: ArtifactConfig,
}

/// How an upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// It is new here.
    Created { size: u64 },
    /// It was here already (its retention starts again).
    Existing { size: u64 },
}

impl Artifacts {
    pub fn new(config: ArtifactConfig) -> Artifacts {
        Artifacts { config }
    }

    pub fn config(&self) -> &ArtifactConfig {
        &self.config
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.config.dir.join(sha256)
    }

    /// Stores the bytes `chunks` yields as the artifact `sha256`, checking size and digest.
    pub async fn put<S, E>(&self, sha256: &str, mut chunks: S) -> Result<Stored, ArtifactError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        use futures_util::StreamExt;
        check_name(sha256)?;
        let dir = &self.config.dir;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(io("creating", dir))?;
        let target = self.path(sha256);
        let temp = dir.join(format!(".upload-{sha256}-{:08x}", rand::random::<u32>()));
        let mut file = tokio::fs::File::create(&temp)
            .await
            .map_err(io("creating", &temp))?;
        let mut digest = Sha256::new();
        let mut size = 0u64;
        let written: Result<(), ArtifactError> = async {
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| ArtifactError::Cut(e.to_string()))?;
                size += chunk.len() as u64;
                if size > self.config.max_bytes {
                    return Err(ArtifactError::TooLarge {
                        limit: self.config.max_bytes,
                    });
                }
                digest.update(&chunk);
                file.write_all(&chunk).await.map_err(io("writing", &temp))?;
            }
            file.sync_all().await.map_err(io("writing", &temp))?;
            let actual = hex(&digest.finalize_reset());
            if actual != sha256 {
                return Err(ArtifactError::Mismatch {
                    claimed: sha256.to_owned(),
                    actual,
                });
            }
            Ok(())
        }
        .await;
        drop(file);
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
        let existed = tokio::fs::try_exists(&target).await.unwrap_or(false);
        tokio::fs::rename(&temp, &target)
            .await
            .map_err(io("storing", &target))?;
        Ok(if existed {
            Stored::Existing { size }
        } else {
            Stored::Created { size }
        })
    }

    /// The artifact's file and size, its retention started again.
    pub async fn get(&self, sha256: &str) -> Result<(tokio::fs::File, u64), ArtifactError> {
        check_name(sha256)?;
        let path = self.path(sha256);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ArtifactError::Missing(sha256.to_owned()));
            }
            Err(e) => return Err(io("opening", &path)(e)),
        };
        let meta = file.metadata().await.map_err(io("reading", &path))?;
        let std_file = file.into_std().await;
        let _ = std_file.set_modified(SystemTime::now());
        Ok((tokio::fs::File::from_std(std_file), meta.len()))
    }

    /// Removes artifacts (and broken-off uploads) untouched for longer than the retention;
    /// answers how many went.
    pub async fn prune(&self, now: SystemTime) -> usize {
        let Ok(mut entries) = tokio::fs::read_dir(&self.config.dir).await else {
            return 0;
        };
        let mut removed = 0;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > self.config.retention);
            if meta.is_file() && old && tokio::fs::remove_file(entry.path()).await.is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        hex(&Sha256::digest(data))
    }

    fn chunks(
        data: &[u8],
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Unpin {
        let parts: Vec<Result<bytes::Bytes, std::io::Error>> = data
            .chunks(1000)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        futures_util::stream::iter(parts)
    }

    fn store(dir: &Path, max_bytes: u64) -> Artifacts {
        Artifacts::new(ArtifactConfig {
            dir: dir.join("artifacts"),
            max_bytes,
            retention: Duration::from_secs(3600),
        })
    }

    #[tokio::test]
    async fn an_upload_lands_under_its_sha256_once_and_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), 1 << 20);
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let name = sha(&data);
        assert_eq!(
            a.put(&name, chunks(&data)).await.unwrap(),
            Stored::Created { size: 50_000 }
        );
        assert_eq!(
            a.put(&name, chunks(&data)).await.unwrap(),
            Stored::Existing { size: 50_000 }
        );
        let (mut file, size) = a.get(&name).await.unwrap();
        assert_eq!(size, 50_000);
        let mut back = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut file, &mut back)
            .await
            .unwrap();
        assert_eq!(back, data);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("artifacts"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [name], "no temporary file is left behind");
    }

    #[tokio::test]
    async fn a_changed_or_oversized_upload_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), 10_000);
        let data = vec![7u8; 5_000];
        let wrong = sha(b"something else");
        match a.put(&wrong, chunks(&data)).await {
            Err(ArtifactError::Mismatch { claimed, actual }) => {
                assert_eq!(claimed, wrong);
                assert_eq!(actual, sha(&data));
            }
            other => panic!("{other:?}"),
        }
        let big = vec![1u8; 20_000];
        match a.put(&sha(&big), chunks(&big)).await {
            Err(e @ ArtifactError::TooLarge { limit: 10_000 }) => {
                assert!(e.to_string().contains("artifact_max_bytes"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join("artifacts"))
                .unwrap()
                .count(),
            0
        );
        assert!(matches!(
            a.get(&sha(&big)).await,
            Err(ArtifactError::Missing(_))
        ));
        assert!(matches!(
            a.get("../etc/passwd").await,
            Err(ArtifactError::BadName(_))
        ));
        assert!(
            check_name(&"A".repeat(64)).is_err(),
            "upper case is not a name"
        );
    }

    #[tokio::test]
    async fn artifacts_untouched_past_the_retention_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), 1 << 20);
        let data = b"#!/bin/sh\necho hi\n";
        a.put(&sha(data), chunks(data)).await.unwrap();
        assert_eq!(a.prune(SystemTime::now()).await, 0, "fresh");
        let later = SystemTime::now() + Duration::from_secs(3601);
        assert_eq!(a.prune(later).await, 1);
        assert!(matches!(
            a.get(&sha(data)).await,
            Err(ArtifactError::Missing(_))
        ));
    }
}
