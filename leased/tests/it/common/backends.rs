//! The two store backends for the conformance suites (`store_conformance.rs`,
//! `run_store_conformance.rs`): each case gets an empty store location of its own, and every
//! case is instantiated once per backend.

use leased::store::{EmbeddedStore, RedisStore, Store};
use socv_testkit::RedisServer;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a case gets its stores: each case has an empty store location of its own.
pub trait Backend {
    type Store: Store;
    const NAME: &'static str;
    /// Opens the store; opened again after the previous one was dropped, it holds the same data.
    async fn open(&self) -> Self::Store;
    /// A second handle on the same data, used at the same time as `first`.
    async fn peer(&self, first: &Self::Store) -> Self::Store;
}

pub struct Embedded {
    dir: tempfile::TempDir,
}

impl Embedded {
    pub fn new() -> Embedded {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("creating a temp dir: {e}"));
        Embedded { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("leases.redb")
    }
}

impl Backend for Embedded {
    type Store = EmbeddedStore;
    const NAME: &'static str = "embedded";

    async fn open(&self) -> EmbeddedStore {
        let path = self.path();
        EmbeddedStore::open(&path)
            .unwrap_or_else(|e| panic!("opening the embedded store {}: {e}", path.display()))
    }

    /// One process owns the file, so the second handle is a clone of the first.
    async fn peer(&self, first: &EmbeddedStore) -> EmbeddedStore {
        first.clone()
    }
}

/// One server for the whole suite; each case works under a key prefix of its own.
fn shared_redis() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

pub struct Redis {
    pub url: String,
    pub prefix: String,
}

impl Redis {
    pub fn new() -> Redis {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Redis {
            url: shared_redis().url(),
            prefix: format!("conformance-{}:", NEXT.fetch_add(1, Ordering::Relaxed)),
        }
    }
}

impl Backend for Redis {
    type Store = RedisStore;
    const NAME: &'static str = "redis";

    async fn open(&self) -> RedisStore {
        RedisStore::connect(&self.url, &self.prefix)
            .await
            .unwrap_or_else(|e| panic!("connecting to {} ({}): {e}", self.url, self.prefix))
    }

    /// Another daemon on the same Redis.
    async fn peer(&self, _first: &RedisStore) -> RedisStore {
        self.open().await
    }
}

/// Instantiates every case once per backend: `embedded::<case>` and `redis::<case>`.
macro_rules! conformance_suite {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&super::Embedded::new()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&super::Redis::new()).await;
                }
            )*
        }
    };
}
pub(crate) use conformance_suite;
