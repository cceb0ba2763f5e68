//! The `pdudaemon` driver: its fields in boards.yaml and its requests to pdudaemon.
//!
//! `GET {url}/power/control/{on|off|reboot}?hostname=H&port=N`. pdudaemon answers only once
//! the action is done (200), and 500 when it failed; it has no way to read an outlet's state,
//! so `status` is unknown.

use super::http::{for_people, transport_error};
use super::{Answer, Driver, PduPolicy, Step, excerpt};
use crate::api::PowerState;
use crate::lab::LabError;
use crate::lab::fields::PduFields;

/// A PDU behind pdudaemon: `GET {url}/power/control/{on|off|reboot}?hostname=…&port=<outlet>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdudaemonPdu {
    /// The pdudaemon HTTP listener, e.g. `http://pdudaemon.lab.local:16421`, no trailing `/`.
    pub url: String,
    /// The PDU's key in pdudaemon's configuration (default: the PDU's name in boards.yaml).
    pub hostname: String,
    /// pdudaemon's `delay` for a reboot; pdudaemon's own default (5 s) when absent.
    pub delay_s: Option<u32>,
    pub policy: PduPolicy,
}

impl Driver for PdudaemonPdu {
    const NAME: &'static str = "pdudaemon";
    const FIELDS: &'static [&'static str] = &["url", "hostname", "delay_s"];

    fn from_lab(f: &PduFields<'_>, policy: PduPolicy) -> Result<PdudaemonPdu, LabError> {
        let s = &f.scope;
        let url = f.get("url").ok_or_else(|| {
            f.missing("url", "the pdudaemon listener, e.g. http://pdudaemon:16421")
        })?;
        let url = s.url("url", url, false)?.trim_end_matches('/').to_owned();
        let hostname = f.or("hostname", f.name.to_owned(), |v| s.text("hostname", v))?;
        let delay_s = f
            .get("delay_s")
            .map(|v| s.integer("delay_s", v, 0, 3600))
            .transpose()?;
        Ok(PdudaemonPdu {
            url,
            hostname,
            delay_s,
            policy,
        })
    }

    /// pdudaemon's `reboot`.
    fn has_native_cycle(&self) -> bool {
        true
    }

    async fn act(&self, http: &reqwest::Client, outlet: u32, step: Step) -> Answer {
        request(http, self, outlet, step).await
    }
}

async fn request(http: &reqwest::Client, pdu: &PdudaemonPdu, outlet: u32, step: Step) -> Answer {
    let verb = match step {
        Step::On => "on",
        Step::Off => "off",
        Step::Cycle => "reboot",
        Step::Status => return Ok(PowerState::Unknown),
    };
    let url = format!("{}/power/control/{verb}", pdu.url);
    let mut query = vec![
        ("hostname", pdu.hostname.clone()),
        ("port", outlet.to_string()),
    ];
    if let (Step::Cycle, Some(delay)) = (step, pdu.delay_s) {
        query.push(("delay", delay.to_string()));
    }
    let shown = format!("GET {}", for_people(&url));
    let response = http
        .get(&url)
        .query(&query)
        .send()
        .await
        .map_err(|e| format!("pdudaemon {shown}: {}", transport_error(&e)))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        Ok(PowerState::Unknown)
    } else {
        Err(format!(
            "pdudaemon {shown} (hostname {}, port {outlet}) answered {status}: {}",
            pdu.hostname,
            excerpt(&body)
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::lab::samples::{pdu, pdu_refused};
    use crate::power::PduConfig;

    #[test]
    fn reads_its_fields() {
        let daemon = pdu(&[
            "driver: pdudaemon",
            "url: http://localhost:16421",
            "delay_s: 5",
        ]);
        let Ok(PduConfig::Pdudaemon(daemon)) = daemon else {
            panic!("{daemon:?}");
        };
        assert_eq!(daemon.hostname, "p.lab");
        assert_eq!(daemon.delay_s, Some(5));
    }

    #[test]
    fn rejects_bad_fields() {
        pdu_refused(&[
            (
                &["driver: pdudaemon"],
                "PDU p.lab: url: required field is missing",
            ),
            (
                &["driver: pdudaemon", "url: http://::1:16421"],
                "url: an IPv6 address in a URL goes",
            ),
        ]);
    }
}
