//! The `pdudaemon` driver: `GET {url}/power/control/{on|off|reboot}?hostname=H&port=N`.
//! pdudaemon answers only once the action is done (200), and 500 when it failed; it has no
//! way to read an outlet's state, so `status` is unknown.

use super::http::{for_people, transport_error};
use super::{Step, excerpt};
use crate::api::PowerState;
use crate::lab::PdudaemonPdu;

pub(super) async fn act(
    http: &reqwest::Client,
    pdu: &PdudaemonPdu,
    outlet: u32,
    step: Step,
) -> Result<PowerState, String> {
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
