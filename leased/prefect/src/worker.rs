//! A worker's side of a socv work pool, as Prefect 3.9.1 answers it
//! (`docs/reference/prefect-worker.md` §5–§9): heartbeats, the scheduled runs in priority order,
//! claiming one so that two workers never both run it, handing one back without losing its
//! place, the cancellations asked for, and the pool's workers as Prefect sees them.
//!
//! Every state change is judged by the `status` Prefect answers, never by the HTTP code (a lost
//! claim race can come back as 201 with ABORT), and carries a transition id of its own, so that a
//! retried request that had got through reads as done ("already made this state transition")
//! rather than as lost.

use crate::client::{PrefectClient, PrefectError, format_ms};
use serde_json::{Value, json};
use socv_api::time::now_ms;
use std::time::Duration;

/// A run waiting in one of the pool's queues.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledRun {
    pub id: String,
    pub name: String,
    /// The queue it waits in (`p1`, `p2`, `p3`).
    pub queue: String,
    pub parameters: Value,
    /// How often it was started before (a re-queued run has been).
    pub run_count: u64,
}

/// What Prefect said to a proposed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The flow run is in that state now (or was put there by an earlier try of this request).
    Accepted,
    /// Not taken: Prefect's status (`ABORT`, `REJECT`, `WAIT`) and reason.
    Refused { status: String, reason: String },
}

impl Answer {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Answer::Accepted)
    }

    /// Whether the run is being cancelled (a REJECT that says so): it must end Cancelled.
    pub fn says_cancelling(&self) -> bool {
        matches!(self, Answer::Refused { reason, .. } if reason.to_ascii_lowercase().contains("cancel"))
    }
}

/// A worker as Prefect sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSeen {
    pub name: String,
    /// `ONLINE` or `OFFLINE`.
    pub status: String,
    /// ISO time of its last heartbeat.
    pub last_heartbeat: Option<String>,
}

/// A run a worker has claimed and not ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRun {
    pub id: String,
    pub name: String,
    /// Prefect's state name.
    pub state: String,
    /// The worker that claimed it (its `prefect.worker.name` label), once it said.
    pub worker: Option<String>,
    pub board: Option<String>,
    pub location: Option<String>,
}

/// A fresh transition id (a version-4 UUID).
pub fn transition_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    socv_api::uuid_text(&b)
}

impl PrefectClient {
    /// Registers or refreshes `worker` in `pool` (the first heartbeat creates it); Prefect shows
    /// it OFFLINE about three intervals after the last one.
    pub async fn heartbeat(
        &self,
        pool: &str,
        worker: &str,
        interval: Duration,
    ) -> Result<(), PrefectError> {
        self.post_json(
            &format!("/work_pools/{pool}/workers/heartbeat"),
            &json!({"name": worker, "heartbeat_interval_seconds": interval.as_secs().max(1)}),
        )
        .await
        .map(drop)
    }

    /// The runs of `queues` due before `due_within` from now, in the order a worker serves
    /// them: by queue priority, then oldest first. Reading changes nothing; [`claim`] decides.
    ///
    /// [`claim`]: PrefectClient::claim
    pub async fn scheduled_runs(
        &self,
        pool: &str,
        queues: &[&str],
        due_within: Duration,
        limit: usize,
    ) -> Result<Vec<ScheduledRun>, PrefectError> {
        let path = format!("/work_pools/{pool}/get_scheduled_flow_runs");
        let before = now_ms() + u64::try_from(due_within.as_millis()).unwrap_or(u64::MAX / 2);
        let answer = self
            .post_json(
                &path,
                &json!({
                    "work_queue_names": queues,
                    "scheduled_before": format_ms(before),
                    "limit": limit.clamp(1, 200),
                }),
            )
            .await?;
        let Some(list) = answer.as_array() else {
            return Err(PrefectError::Unexpected {
                what: format!("POST {path}"),
                detail: "not a list of flow runs".into(),
            });
        };
        Ok(list
            .iter()
            .filter_map(|entry| {
                let run = entry.get("flow_run")?;
                Some(ScheduledRun {
                    id: run.get("id")?.as_str()?.to_owned(),
                    name: run["name"].as_str().unwrap_or_default().to_owned(),
                    queue: run["work_queue_name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    parameters: run.get("parameters").cloned().unwrap_or(Value::Null),
                    run_count: run["run_count"].as_u64().unwrap_or(0),
                })
            })
            .collect())
    }

    /// Proposes a state for a flow run (`kind` as Prefect types it: `PENDING`, `RUNNING`, …)
    /// with a transition id of its own; `scheduled_at` for a SCHEDULED state.
    pub async fn propose(
        &self,
        flow_run_id: &str,
        kind: &str,
        name: &str,
        message: &str,
        scheduled_at: Option<u64>,
    ) -> Result<Answer, PrefectError> {
        let mut details = json!({"transition_id": transition_id()});
        if let Some(at) = scheduled_at {
            details["scheduled_time"] = Value::String(format_ms(at));
        }
        let path = format!("/flow_runs/{flow_run_id}/set_state");
        let v = self
            .post_json(
                &path,
                &json!({"state": {"type": kind, "name": name, "message": message,
                                  "state_details": details}}),
            )
            .await?;
        let status = v["status"].as_str().unwrap_or_default().to_owned();
        let reason = v["details"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match status.as_str() {
            "ACCEPT" => Ok(Answer::Accepted),
            // An earlier try of this very request got through.
            "REJECT" if reason.contains("already made this state transition") => {
                Ok(Answer::Accepted)
            }
            "REJECT" | "ABORT" | "WAIT" => Ok(Answer::Refused { status, reason }),
            _ => Err(PrefectError::Unexpected {
                what: format!("POST {path}"),
                detail: format!("no ACCEPT/REJECT/ABORT/WAIT status in {v}"),
            }),
        }
    }

    /// Claims a scheduled run for `worker`: the exclusive `PENDING` named exactly "Pending"
    /// (another name would let two workers both win). `Accepted`: it is this worker's.
    pub async fn claim(&self, flow_run_id: &str, worker: &str) -> Result<Answer, PrefectError> {
        self.propose(
            flow_run_id,
            "PENDING",
            "Pending",
            &format!("claimed by {worker}"),
            None,
        )
        .await
    }

    /// Gives a claimed run back to its queue, due again `after` from now (it keeps its place:
    /// the queue serves by priority, then by due time).
    pub async fn hand_back(
        &self,
        flow_run_id: &str,
        worker: &str,
        why: &str,
        after: Duration,
    ) -> Result<Answer, PrefectError> {
        let at = now_ms() + u64::try_from(after.as_millis()).unwrap_or(0);
        self.propose(
            flow_run_id,
            "SCHEDULED",
            "AwaitingBoard",
            &format!("{worker}: {why}"),
            Some(at),
        )
        .await
    }

    /// Says where a claimed run runs: the labels Prefect's own workers set, and the
    /// infrastructure pid `worker:board`.
    pub async fn mark_running_on(
        &self,
        flow_run_id: &str,
        pool: &str,
        worker: &str,
        location: Option<&str>,
        board: &str,
    ) -> Result<(), PrefectError> {
        let mut labels = json!({
            "prefect.worker.name": worker,
            "prefect.worker.type": crate::setup::POOL_TYPE,
            "prefect.work-pool.name": pool,
            "socv.board": board,
        });
        if let Some(l) = location {
            labels["socv.location"] = Value::String(l.to_owned());
        }
        self.patch_json(&format!("/flow_runs/{flow_run_id}/labels"), &labels)
            .await?;
        self.patch_json(
            &format!("/flow_runs/{flow_run_id}"),
            &json!({"infrastructure_pid": format!("{worker}:{board}")}),
        )
        .await
        .map(drop)
    }

    /// Which of `flow_run_ids` someone asked to cancel (state CANCELLING).
    pub async fn cancelling(&self, flow_run_ids: &[String]) -> Result<Vec<String>, PrefectError> {
        if flow_run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .post_json(
                "/flow_runs/filter",
                &json!({"flow_runs": {"id": {"any_": flow_run_ids},
                                      "state": {"type": {"any_": ["CANCELLING"]}}}}),
            )
            .await?;
        Ok(found
            .as_array()
            .map(|runs| {
                runs.iter()
                    .filter_map(|r| r["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The runs of `pool` that workers hold (Pending or Running), with the worker and board
    /// their labels name.
    pub async fn held_runs(&self, pool: &str) -> Result<Vec<HeldRun>, PrefectError> {
        let found = self
            .post_json(
                "/flow_runs/filter",
                &json!({"flow_runs": {"state": {"type": {"any_": ["PENDING", "RUNNING"]}}},
                        "work_pools": {"name": {"any_": [pool]}},
                        "limit": 200}),
            )
            .await?;
        Ok(found
            .as_array()
            .map(|runs| {
                runs.iter()
                    .filter_map(|r| {
                        let labels = &r["labels"];
                        let text = |v: &Value| v.as_str().map(str::to_owned);
                        Some(HeldRun {
                            id: r["id"].as_str()?.to_owned(),
                            name: r["name"].as_str().unwrap_or_default().to_owned(),
                            state: r["state_name"].as_str().unwrap_or_default().to_owned(),
                            worker: text(&labels["prefect.worker.name"]),
                            board: text(&labels["socv.board"]),
                            location: text(&labels["socv.location"]),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The pool's workers as Prefect sees them (what its UI shows).
    pub async fn workers(&self, pool: &str) -> Result<Vec<WorkerSeen>, PrefectError> {
        let path = format!("/work_pools/{pool}/workers/filter");
        let found = self.post_json(&path, &json!({})).await?;
        let Some(list) = found.as_array() else {
            return Err(PrefectError::Unexpected {
                what: format!("POST {path}"),
                detail: "not a list of workers".into(),
            });
        };
        Ok(list
            .iter()
            .map(|w| WorkerSeen {
                name: w["name"].as_str().unwrap_or_default().to_owned(),
                status: w["status"].as_str().unwrap_or_default().to_owned(),
                last_heartbeat: w["last_heartbeat_time"].as_str().map(str::to_owned),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_ids_are_fresh_version_4_uuids() {
        let a = transition_id();
        let b = transition_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4", "{a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn a_refusal_that_says_cancelling_is_told_apart() {
        let cancelling = Answer::Refused {
            status: "REJECT".into(),
            reason: "Cannot transition flows that are cancelling to a state other than Cancelled."
                .into(),
        };
        assert!(cancelling.says_cancelling());
        let lost = Answer::Refused {
            status: "ABORT".into(),
            reason: "This run is in a PENDING state and cannot transition to a PENDING state."
                .into(),
        };
        assert!(!lost.says_cancelling());
        assert!(Answer::Accepted.is_accepted());
    }
}
