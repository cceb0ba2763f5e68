//! `socv workers`: the workers of the lab's Prefect work pool, as Prefect sees them, with the
//! runs each holds (asked through leased, which knows the pool and speaks to Prefect).

use crate::client::Client;
use crate::error::Result;
use crate::output;
use clap::Args;
use socv_api::PoolWorkers;

#[derive(Debug, Args)]
#[command(after_help = "\
Columns:
  STATUS     ONLINE, or OFFLINE once Prefect has had no heartbeat for three intervals
  HEARTBEAT  the worker's last heartbeat, as Prefect keeps it
  LOCATION   the lab location of the runs it holds, when they say
  RUNS       the flow runs it has claimed and not ended: name (state) on board

Examples:
  socv workers
  socv workers --json | jq -r '.workers[] | select(.status == \"ONLINE\") | .name'

A leased without Prefect (PREFECT_API_URL), or a Prefect that does not answer it, is exit 1
with leased's reason.

Exit codes:
  0  success
  1  other failure
  6  leased unreachable, not a socv daemon, or its store unavailable")]
pub struct WorkersArgs {
    /// Print one JSON object (the pool and its workers) instead of a table
    #[arg(long)]
    pub json: bool,
}

pub async fn run(client: &Client, args: WorkersArgs) -> Result<()> {
    let pool = client.workers().await?;
    if args.json {
        return output::print_json(&pool);
    }
    if pool.workers.is_empty() {
        eprintln!(
            "socv: work pool {} has no workers yet (a worker appears with its first heartbeat)",
            pool.pool
        );
        return Ok(());
    }
    output::print(&table(&pool))
}

fn table(pool: &PoolWorkers) -> String {
    output::table(
        &["WORKER", "STATUS", "HEARTBEAT", "LOCATION", "RUNS"],
        pool.workers.iter().map(|w| {
            let runs = if w.runs.is_empty() {
                "-".to_owned()
            } else {
                w.runs
                    .iter()
                    .map(|r| match &r.board {
                        Some(board) => format!("{} ({}) on {board}", r.name, r.state),
                        None => format!("{} ({})", r.name, r.state),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![
                w.name.clone(),
                w.status.clone(),
                w.last_heartbeat.clone().unwrap_or_else(|| "-".into()),
                w.location.clone().unwrap_or_else(|| "-".into()),
                runs,
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use socv_api::{WorkerRun, WorkerView};

    #[test]
    fn one_row_per_worker_with_the_runs_it_holds() {
        let pool = PoolWorkers {
            pool: "lab-sh".into(),
            workers: vec![
                WorkerView {
                    name: "sh-w1".into(),
                    status: "ONLINE".into(),
                    last_heartbeat: Some("2026-12-08T02:59:39Z".into()),
                    location: Some("Lab Site A".into()),
                    runs: vec![WorkerRun {
                        flow_run_id: "5c22".into(),
                        name: "t-elf".into(),
                        state: "Running".into(),
                        board: Some("soc-a-003".into()),
                    }],
                },
                WorkerView {
                    name: "sh-w2".into(),
                    status: "OFFLINE".into(),
                    ..WorkerView::default()
                },
            ],
        };
        let text = table(&pool);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("WORKER"), "{text}");
        assert!(lines[1].contains("sh-w1") && lines[1].contains("t-elf (Running) on soc-a-003"));
        assert!(lines[1].contains("Lab Site A"), "{text}");
        assert!(
            lines[2].contains("sh-w2") && lines[2].contains("OFFLINE"),
            "{text}"
        );
    }
}
