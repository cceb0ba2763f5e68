//! The `command` driver: its fields in boards.yaml and its runs of `sh -c`.
//!
//! A template runs with `{outlet}` filled in. Exit status 0 means done; anything else is a
//! failure quoted with its stderr. The `status` command prints the state: `on` or `off` (also
//! `1`/`0`, `true`/`false`, or JSON with a `state`); any other output means unknown.

use super::{Answer, Driver, PduPolicy, Step, excerpt, fill, parse_state};
use crate::api::PowerState;
use crate::lab::LabError;
use crate::lab::fields::PduFields;
use std::process::Stdio;

/// A PDU driven by shell commands; templates may use `{outlet}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPdu {
    pub on: String,
    pub off: String,
    /// Without it, a cycle is off, `cycle_delay`, on.
    pub cycle: Option<String>,
    /// Prints the outlet state; without it, the state cannot be read.
    pub status: Option<String>,
    pub policy: PduPolicy,
}

impl Driver for CommandPdu {
    const NAME: &'static str = "command";
    const FIELDS: &'static [&'static str] = &["on", "off", "cycle", "status"];

    fn from_lab(f: &PduFields<'_>, policy: PduPolicy) -> Result<CommandPdu, LabError> {
        let s = &f.scope;
        let template = |action: &str| f.template(action, |v| s.text(action, v), None);
        let hint = "give `on` and `off` shell commands";
        Ok(CommandPdu {
            on: template("on")?.ok_or_else(|| f.missing("on", hint))?,
            off: template("off")?.ok_or_else(|| f.missing("off", hint))?,
            cycle: template("cycle")?,
            status: template("status")?,
            policy,
        })
    }

    fn has_native_cycle(&self) -> bool {
        self.cycle.is_some()
    }

    async fn act(&self, _http: &reqwest::Client, outlet: u32, step: Step) -> Answer {
        run(self, outlet, step).await
    }
}

async fn run(pdu: &CommandPdu, outlet: u32, step: Step) -> Answer {
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
    use crate::lab::samples::{pdu as lab_pdu, pdu_refused};
    use crate::power::PduConfig;

    #[test]
    fn reads_its_fields() {
        let command = lab_pdu(&[
            "driver: command",
            "on: 'x on'",
            "off: 'x off'",
            "cycle: x cycle",
            "status: x status",
        ]);
        let Ok(PduConfig::Command(command)) = command else {
            panic!("{command:?}");
        };
        assert_eq!(command.cycle.as_deref(), Some("x cycle"));
        assert_eq!(command.status.as_deref(), Some("x status"));
    }

    #[test]
    fn rejects_bad_fields() {
        pdu_refused(&[(
            &["driver: command", "on: ''", "off: b"],
            "PDU p.lab: on: is empty",
        )]);
    }

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
        let err = run(&p, 4, Step::On).await.unwrap_err();
        assert_eq!(
            err,
            "`echo relay 4 stuck >&2; exit 3` exited with status 3 (stderr: relay 4 stuck)"
        );
        assert_eq!(run(&p, 4, Step::Status).await, Ok(PowerState::Off));
        assert_eq!(run(&p, 4, Step::Off).await, Ok(PowerState::Unknown));
        let p = pdu("true", Some("echo maybe"));
        assert_eq!(run(&p, 1, Step::Status).await, Ok(PowerState::Unknown));
        let p = pdu("true", None);
        assert_eq!(run(&p, 1, Step::Status).await, Ok(PowerState::Unknown));
    }
}
