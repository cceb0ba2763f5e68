//! The `command` driver: `sh -c` on a template with `{outlet}` filled in. Exit status 0 means
//! done; anything else is a failure quoted with its stderr. The `status` command prints the
//! state: `on` or `off` (also `1`/`0`, `true`/`false`, or JSON with a `state`); any other
//! output means unknown.

use super::{Step, excerpt, fill, parse_state};
use crate::api::PowerState;
use crate::lab::CommandPdu;
use std::process::Stdio;

pub(super) async fn act(pdu: &CommandPdu, outlet: u32, step: Step) -> Result<PowerState, String> {
    let template = match step {
        Step::On => Some(&pdu.on),
        Step::Off => Some(&pdu.off),
        Step::Cycle => pdu.cycle.as_ref(),
        Step::Status => pdu.status.as_ref(),
    };
    let Some(template) = template else {
        return Ok(PowerState::Unknown);
    };
    let command = fill(template, outlet);
    // Killed when the attempt's timeout drops this future.
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run `sh -c {command}`: {e}"))?;
    if !output.status.success() {
        let stderr = excerpt(&String::from_utf8_lossy(&output.stderr));
        let stderr = if stderr.is_empty() {
            "no stderr".to_owned()
        } else {
            format!("stderr: {stderr}")
        };
        return Err(format!(
            "`{command}` {} ({stderr})",
            exit_words(&output.status)
        ));
    }
    Ok(match step {
        Step::Status => parse_state(&String::from_utf8_lossy(&output.stdout)),
        _ => PowerState::Unknown,
    })
}

fn exit_words(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "failed".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::PduPolicy;

    fn pdu(on: &str, status: Option<&str>) -> CommandPdu {
        CommandPdu {
            on: on.into(),
            off: "true".into(),
            cycle: None,
            status: status.map(str::to_owned),
            policy: PduPolicy::default(),
        }
    }

    #[tokio::test]
    async fn exit_status_and_stderr_are_the_answer() {
        let p = pdu("echo relay {outlet} stuck >&2; exit 3", Some("echo off"));
        let err = act(&p, 4, Step::On).await.unwrap_err();
        assert_eq!(
            err,
            "`echo relay 4 stuck >&2; exit 3` exited with status 3 (stderr: relay 4 stuck)"
        );
        assert_eq!(act(&p, 4, Step::Status).await, Ok(PowerState::Off));
        assert_eq!(act(&p, 4, Step::Off).await, Ok(PowerState::Unknown));
        let p = pdu("true", Some("echo maybe"));
        assert_eq!(act(&p, 1, Step::Status).await, Ok(PowerState::Unknown));
        let p = pdu("true", None);
        assert_eq!(act(&p, 1, Step::Status).await, Ok(PowerState::Unknown));
    }
}
