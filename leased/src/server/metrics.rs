//! Counters for `/metrics` (Prometheus text format), plus gauges read from the store.

use super::AppState;
use crate::api::BoardHealth;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    granted: AtomicU64,
    queued: AtomicU64,
    refused: AtomicU64,
    released: AtomicU64,
    renewed: AtomicU64,
    expired: AtomicU64,
    lapsed: AtomicU64,
}

impl Metrics {
    pub fn granted(&self) {
        self.granted.fetch_add(1, Ordering::Relaxed);
    }
    pub fn queued(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
    pub fn released(&self) {
        self.released.fetch_add(1, Ordering::Relaxed);
    }
    pub fn renewed(&self) {
        self.renewed.fetch_add(1, Ordering::Relaxed);
    }
    pub fn expired(&self, n: usize) {
        self.expired.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn lapsed(&self, n: usize) {
        self.lapsed.fetch_add(n as u64, Ordering::Relaxed);
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: &AtomicU64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
}

pub async fn get(State(state): State<AppState>) -> impl IntoResponse {
    let m = &state.metrics;
    let mut out = String::new();
    counter(
        &mut out,
        "socv_lease_grants_total",
        "Leases granted at once.",
        &m.granted,
    );
    counter(
        &mut out,
        "socv_lease_queued_total",
        "Lease requests that joined the queue.",
        &m.queued,
    );
    counter(
        &mut out,
        "socv_lease_refused_total",
        "Lease requests answered 503 (nothing free).",
        &m.refused,
    );
    counter(
        &mut out,
        "socv_lease_releases_total",
        "Leases released by their holder.",
        &m.released,
    );
    counter(
        &mut out,
        "socv_lease_renewals_total",
        "Lease renewals.",
        &m.renewed,
    );
    counter(
        &mut out,
        "socv_lease_expired_total",
        "Leases that reached their expiry (seen by this daemon).",
        &m.expired,
    );
    counter(
        &mut out,
        "socv_queue_lapsed_total",
        "Queue tickets that lapsed (seen by this daemon).",
        &m.lapsed,
    );
    let now = state.clock.now_ms();
    let up = state.store.ping().await.is_ok();
    let _ = writeln!(
        out,
        "# HELP socv_store_up Whether the lease store answers.\n# TYPE socv_store_up gauge\nsocv_store_up {}",
        u8::from(up)
    );
    if let (true, Ok(boards), Ok(counts)) = (
        up,
        state.store.boards(now).await,
        state.store.counts(now).await,
    ) {
        let _ = writeln!(
            out,
            "# HELP socv_boards Boards by family, availability and health.\n# TYPE socv_boards gauge"
        );
        let mut groups: std::collections::BTreeMap<(String, &str, String), u32> =
            Default::default();
        for b in &boards {
            let health = if b.drained {
                BoardHealth::Maintenance
            } else if b.unhealthy {
                BoardHealth::Unhealthy
            } else {
                BoardHealth::Healthy
            };
            let availability = if b.lease.is_some() { "leased" } else { "free" };
            *groups
                .entry((b.family.clone(), availability, health.to_string()))
                .or_default() += 1;
        }
        for ((family, availability, health), n) in groups {
            let _ = writeln!(
                out,
                "socv_boards{{family=\"{family}\",availability=\"{availability}\",health=\"{health}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP socv_leases_active Active leases.\n# TYPE socv_leases_active gauge\nsocv_leases_active {}\n\
             # HELP socv_queue_waiting Waiting queue tickets.\n# TYPE socv_queue_waiting gauge\nsocv_queue_waiting {}",
            counts.leases, counts.waiting
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
