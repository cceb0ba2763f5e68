//! What the lab needs in Prefect before a run can be scheduled there: the flow `socv-run`, a work
//! pool (type `socv`, so no Python worker ever picks its runs up) with one queue per priority
//! (`p1`, `p2`, `p3`, ranked 1, 2, 3), and the pool's deployment ([`deployment_name`]:
//! `socv-run` for the default pool) whose enforced parameter schema is what `socv run
//! --remote`, webhooks and workers agree on.
//!
//! [`ensure`] is idempotent: it reads what is there and changes only what differs, so running it
//! again changes nothing (its [`Report`] says so). The facts it relies on are in
//! `docs/reference/prefect-worker.md` §1–§4: pool names starting with "prefect" are refused
//! (403); queue priorities are unique ranks within a pool, so setting one shifts the others and
//! all three are re-applied in ascending order; `POST /deployments/` is an upsert that resets
//! what it omits, so it is sent whole, and only when something differs.

use crate::client::{PrefectClient, PrefectError};
use serde_json::{Value, json};

/// The work pool's type: no Python worker has it, so only socv's workers serve its runs.
pub const POOL_TYPE: &str = "socv";
/// The work pool of a lab that names none.
pub const DEFAULT_POOL: &str = "socv";

/// The deployment whose flow runs `pool`'s workers serve: `socv-run` for the default pool,
/// `socv-run-<pool>` for another (a deployment is named within its flow, and each pool needs
/// its own, since a flow run cannot move between pools).
pub fn deployment_name(pool: &str) -> String {
    if pool == DEFAULT_POOL {
        "socv-run".to_owned()
    } else {
        format!("socv-run-{pool}")
    }
}
/// The queues of a pool, in priority order: `(name, rank, what the priority is called)`.
pub const QUEUES: [(&str, u8, &str); 3] =
    [("p1", 1, "high"), ("p2", 2, "normal"), ("p3", 3, "low")];

/// The queue of a priority (1 high, 2 normal, 3 low).
pub fn queue_of(priority: u8) -> Option<&'static str> {
    QUEUES
        .iter()
        .find(|(_, rank, _)| *rank == priority)
        .map(|(name, _, _)| *name)
}

/// The parameters of a `socv-run` flow run: the seed's `{test_binary, board_family, priority}`
/// and what a run needs beyond them. Prefect refuses a flow run that does not fit (409).
pub fn parameter_schema() -> Value {
    json!({
        "title": "Parameters",
        "type": "object",
        "properties": {
            "test_binary": {
                "title": "test_binary",
                "description": "The binary to run: a sha256 of leased's artifact store, or an http(s):// URL (a Jenkins artifact)",
                "type": "string",
                "minLength": 1
            },
            "board_family": {
                "title": "board_family",
                "description": "The SoC family to run on, such as socA",
                "type": "string",
                "minLength": 1
            },
            "priority": {
                "title": "priority",
                "description": "1 high, 2 normal, 3 low",
                "type": "integer",
                "enum": [1, 2, 3],
                "default": 2
            },
            "args": {
                "title": "args",
                "description": "Arguments for the binary",
                "type": "array",
                "items": {"type": "string"},
                "default": []
            },
            "timeout": {
                "title": "timeout",
                "description": "Seconds before the test is interrupted",
                "type": "integer",
                "minimum": 1,
                "maximum": 86400,
                "default": 1800
            },
            "board": {
                "title": "board",
                "description": "One board of the family to run on, such as soc-a-001",
                "type": "string",
                "minLength": 1
            },
            "location": {
                "title": "location",
                "description": "Prefer a board at this lab location",
                "type": "string",
                "minLength": 1
            },
            "retries": {
                "title": "retries",
                "description": "How many other boards to try after a failure of the board itself",
                "type": "integer",
                "minimum": 0,
                "maximum": 10,
                "default": 2
            },
            "sha256": {
                "title": "sha256",
                "description": "The binary's sha256, checked after download (for a URL test_binary)",
                "type": "string",
                "pattern": "^[0-9a-f]{64}$"
            }
        },
        "required": ["test_binary", "board_family"],
        "additionalProperties": false
    })
}

/// What [`ensure`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The flow's id.
    pub flow_id: String,
    /// The deployment's id.
    pub deployment_id: String,
    /// What was created or corrected, in words (`created work pool lab-sh`); empty when
    /// everything was already as it should be.
    pub changed: Vec<String>,
}

/// Checks a work pool's name before Prefect is asked (it would refuse one starting with
/// "prefect" with a 403 that reads like a permissions problem).
pub fn check_pool_name(pool: &str) -> Result<(), String> {
    if pool.is_empty() {
        return Err("the work pool's name is empty".into());
    }
    if pool.to_ascii_lowercase().starts_with("prefect") {
        return Err(format!(
            "work pool {pool:?}: Prefect reserves names starting with \"prefect\"; choose \
             another, such as socv or lab-sh"
        ));
    }
    if pool.contains('/') || pool.chars().any(char::is_control) {
        return Err(format!(
            "work pool {pool:?}: a name may not hold '/' or control characters"
        ));
    }
    Ok(())
}

/// Makes Prefect hold the flow, the work pool `pool` with its three priority queues, and the
/// deployment, as described above; changes only what differs.
pub async fn ensure(client: &PrefectClient, pool: &str) -> Result<Report, PrefectError> {
    check_pool_name(pool).map_err(|message| PrefectError::Invalid {
        what: "the work pool's name".into(),
        message,
    })?;
    let mut report = Report {
        flow_id: client.ensure_flow().await?,
        ..Report::default()
    };
    ensure_pool(client, pool, &mut report).await?;
    ensure_queues(client, pool, &mut report).await?;
    ensure_deployment(client, pool, &mut report).await?;
    Ok(report)
}

async fn ensure_pool(
    client: &PrefectClient,
    pool: &str,
    report: &mut Report,
) -> Result<(), PrefectError> {
    match client.get_json(&format!("/work_pools/{pool}")).await {
        Ok(found) => {
            let kind = found.get("type").and_then(Value::as_str).unwrap_or("");
            if kind != POOL_TYPE {
                return Err(PrefectError::Invalid {
                    what: format!("work pool {pool}"),
                    message: format!(
                        "it exists with type {kind:?}, not {POOL_TYPE:?}: its runs would go to \
                         other workers; choose another pool name for socv"
                    ),
                });
            }
            Ok(())
        }
        Err(PrefectError::Missing { .. }) => {
            let body = json!({
                "name": pool,
                "type": POOL_TYPE,
                "description": "socv boards: runs of the socv-run deployment, served by socv worker",
            });
            match client.post_json("/work_pools/", &body).await {
                // 409: another setup made it meanwhile.
                Ok(_) | Err(PrefectError::Status { status: 409, .. }) => {
                    report.changed.push(format!("created work pool {pool}"));
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

async fn ensure_queues(
    client: &PrefectClient,
    pool: &str,
    report: &mut Report,
) -> Result<(), PrefectError> {
    let mut ranks = queue_ranks(client, pool).await?;
    let mut created = false;
    for (name, rank, what) in QUEUES {
        if !ranks.iter().any(|(n, _)| n == name) {
            let body = json!({
                "name": name,
                "priority": rank,
                "description": format!("priority {rank} ({what})"),
            });
            match client
                .post_json(&format!("/work_pools/{pool}/queues/"), &body)
                .await
            {
                Ok(_) | Err(PrefectError::Status { status: 409, .. }) => {
                    report.changed.push(format!("created queue {pool}/{name}"));
                    created = true;
                }
                Err(e) => return Err(e),
            }
        }
    }
    // Creating a queue shifts the ranks of the others: read them again, and when any of ours is
    // off, apply all three in ascending order (each PATCH shifts the queues below it).
    if created {
        ranks = queue_ranks(client, pool).await?;
    }
    let right = QUEUES.iter().all(|(name, rank, _)| {
        ranks
            .iter()
            .any(|(n, r)| n == name && r == &u64::from(*rank))
    });
    if !right {
        for (name, rank, _) in QUEUES {
            client
                .patch_json(
                    &format!("/work_pools/{pool}/queues/{name}"),
                    &json!({ "priority": rank }),
                )
                .await?;
        }
        report.changed.push(format!(
            "ranked queues {pool}/p1, p2, p3 as priorities 1, 2, 3"
        ));
    }
    Ok(())
}

/// The pool's queues as (name, priority rank).
async fn queue_ranks(
    client: &PrefectClient,
    pool: &str,
) -> Result<Vec<(String, u64)>, PrefectError> {
    let queues = client
        .post_json(&format!("/work_pools/{pool}/queues/filter"), &json!({}))
        .await?;
    let Some(list) = queues.as_array() else {
        return Err(PrefectError::Unexpected {
            what: format!("POST /work_pools/{pool}/queues/filter"),
            detail: "not a list of queues".into(),
        });
    };
    Ok(list
        .iter()
        .filter_map(|q| {
            Some((
                q.get("name")?.as_str()?.to_owned(),
                q.get("priority")?.as_u64()?,
            ))
        })
        .collect())
}

async fn ensure_deployment(
    client: &PrefectClient,
    pool: &str,
    report: &mut Report,
) -> Result<(), PrefectError> {
    let flow = crate::FLOW_NAME;
    let name = deployment_name(pool);
    let wanted = json!({
        "name": name,
        "flow_id": report.flow_id,
        "work_pool_name": pool,
        "work_queue_name": queue_of(2).unwrap_or("p2"),
        "description": "One test on a board of the lab, run by socv worker: socv run --remote, webhooks and CI create its flow runs",
        "tags": ["socv"],
        "parameters": {},
        "parameter_openapi_schema": parameter_schema(),
        "enforce_parameter_schema": true,
        "paused": false,
    });
    let found = match client
        .get_json(&format!("/deployments/name/{flow}/{name}"))
        .await
    {
        Ok(d) => Some(d),
        Err(PrefectError::Missing { .. }) => None,
        Err(e) => return Err(e),
    };
    if let Some(found) = &found {
        let same = [
            "work_pool_name",
            "work_queue_name",
            "parameters",
            "parameter_openapi_schema",
            "enforce_parameter_schema",
            "paused",
            "description",
            "tags",
        ]
        .iter()
        .all(|k| found.get(k) == wanted.get(k));
        if same && let Some(id) = found.get("id").and_then(Value::as_str) {
            report.deployment_id = id.to_owned();
            return Ok(());
        }
    }
    let made = client.post_json("/deployments/", &wanted).await?;
    report.deployment_id = made
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| PrefectError::Unexpected {
            what: "POST /deployments/".into(),
            detail: "no id in the answer".into(),
        })?
        .to_owned();
    report.changed.push(match found {
        None => format!("created deployment {flow}/{name} on work pool {pool}"),
        Some(_) => format!("updated deployment {flow}/{name} to socv's parameters and pool {pool}"),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_prefect_refuses_are_refused_first_with_the_reason() {
        assert!(check_pool_name("socv").is_ok());
        assert!(check_pool_name("lab-sh").is_ok());
        let e = check_pool_name("Prefect-lab").unwrap_err();
        assert!(
            e.contains("reserves names starting with \"prefect\""),
            "{e}"
        );
        assert!(check_pool_name("").is_err());
        assert!(check_pool_name("a/b").unwrap_err().contains("'/'"));
    }

    #[test]
    fn each_pool_has_its_own_deployment_and_the_default_pools_is_socv_run() {
        assert_eq!(deployment_name("socv"), "socv-run");
        assert_eq!(deployment_name("lab-sh"), "socv-run-lab-sh");
    }

    #[test]
    fn every_priority_has_its_queue_in_rank_order() {
        assert_eq!(queue_of(1), Some("p1"));
        assert_eq!(queue_of(2), Some("p2"));
        assert_eq!(queue_of(3), Some("p3"));
        assert_eq!(queue_of(0), None);
        assert_eq!(queue_of(4), None);
    }

    #[test]
    fn the_schema_requires_the_seeds_parameters_and_refuses_others() {
        let s = parameter_schema();
        assert_eq!(s["required"], json!(["test_binary", "board_family"]));
        assert_eq!(s["additionalProperties"], json!(false));
        for p in [
            "test_binary",
            "board_family",
            "priority",
            "args",
            "timeout",
            "board",
            "location",
            "retries",
            "sha256",
        ] {
            assert!(s["properties"].get(p).is_some(), "{p} missing");
        }
        assert_eq!(s["properties"]["priority"]["enum"], json!([1, 2, 3]));
    }
}
