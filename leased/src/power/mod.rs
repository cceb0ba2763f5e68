//! Power control of the boards' PDU outlets: the one list of drivers, outlet locks, retries.
//!
//! Actions on one outlet are serialised and failed actions retried a bounded number of times.
//!
//! Each driver is one file here that owns its fields in boards.yaml, how they are checked, and
//! its actions; `drivers!` lists them. What every driver shares (`retries`, `cycle_delay_s`,
//! `timeout_s`, the outlet locks) stays in this file.
//!
//! A cycle is the driver's own (an http `cycle` URL, pdudaemon's `reboot`, APC `reboot(3)`, a
//! command `cycle`) when it has one, else off, the PDU's `cycle_delay_s`, on. Either way the
//! outlet's lock is held throughout, so no other request on that outlet runs in between.

pub mod apc_snmp;
pub mod command;
pub mod http;
pub mod pdudaemon;

use crate::api::time::Backoff;
use crate::api::{PowerAction, PowerResult, PowerState};
use crate::lab::fields::{PduFields, shown};
use crate::lab::{Board, Lab, LabError};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The drivers, one entry each: the [`PduConfig`] variant and the driver file's config, which
/// implements [`Driver`]. Errors list the drivers in this order.
macro_rules! drivers {
    ($($(#[$doc:meta])* $variant:ident($config:ty),)+) => {
        /// How leased drives one PDU (an entry of `pdus:`, keyed by the boards' `pdu_host`).
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum PduConfig {
            $($(#[$doc])* $variant($config),)+
        }

        impl PduConfig {
            /// The `driver:` name as written in boards.yaml.
            pub fn driver(&self) -> &'static str {
                match self {
                    $(PduConfig::$variant(_) => <$config as Driver>::NAME,)+
                }
            }

            pub fn policy(&self) -> &PduPolicy {
                match self {
                    $(PduConfig::$variant(pdu) => &pdu.policy,)+
                }
            }

            fn has_native_cycle(&self) -> bool {
                match self {
                    $(PduConfig::$variant(pdu) => pdu.has_native_cycle(),)+
                }
            }

            async fn act(&self, http: &reqwest::Client, outlet: u32, step: Step) -> Answer {
                // Boxed: the drivers' futures are large, and the handler's would carry all.
                match self {
                    $(PduConfig::$variant(pdu) => Box::pin(pdu.act(http, outlet, step)).await,)+
                }
            }
        }

        const DRIVERS: &[DriverEntry] = &[$(DriverEntry {
            name: <$config as Driver>::NAME,
            fields: <$config as Driver>::FIELDS,
            read: |fields, policy| {
                <$config as Driver>::from_lab(fields, policy).map(PduConfig::$variant)
            },
        },)+];
    };
}

drivers! {
    /// `driver: http`: a PDU or smart plug with an HTTP API, one URL per action.
    Http(http::HttpPdu),
    /// `driver: pdudaemon`: a pdudaemon server drives the PDU.
    Pdudaemon(pdudaemon::PdudaemonPdu),
    /// `driver: apc-snmp`: an APC switched PDU, SNMP SET on its PowerNet-MIB outlet control.
    ApcSnmp(apc_snmp::ApcSnmpPdu),
    /// `driver: command`: local shell commands (a vendor CLI, a relay script).
    Command(command::CommandPdu),
}

/// What a driver file provides: its entry of `pdus:` read and checked, and its actions. Its
/// config also has the `policy: PduPolicy` that every driver reads.
trait Driver: Sized {
    /// The `driver:` name in boards.yaml.
    const NAME: &'static str;
    /// Its own fields, besides [`COMMON_FIELDS`].
    const FIELDS: &'static [&'static str];

    /// Reads the driver's own fields; only fields of [`Driver::FIELDS`] are there.
    fn from_lab(fields: &PduFields<'_>, policy: PduPolicy) -> Result<Self, LabError>;

    /// Whether the PDU power-cycles an outlet by itself; if not, a cycle is off, wait, on.
    fn has_native_cycle(&self) -> bool;

    /// One try of `step` on `outlet`.
    async fn act(&self, http: &reqwest::Client, outlet: u32, step: Step) -> Answer;
}

/// What one try of a step came to: the outlet's state, or what the PDU answered, for people.
type Answer = Result<PowerState, String>;

/// One driver of [`DRIVERS`], for reading `pdus:`.
struct DriverEntry {
    name: &'static str,
    fields: &'static [&'static str],
    read: fn(&PduFields<'_>, PduPolicy) -> Result<PduConfig, LabError>,
}

/// Fields every driver accepts.
const COMMON_FIELDS: &[&str] = &["driver", "retries", "cycle_delay_s", "timeout_s"];

/// The placeholder that URL and command templates use for a board's outlet number.
pub const OUTLET_PLACEHOLDER: &str = "{outlet}";

impl PduConfig {
    /// One entry of `pdus:`: its driver, then only the fields that driver knows.
    pub(crate) fn from_lab(fields: &PduFields<'_>) -> Result<PduConfig, LabError> {
        let known = || {
            DRIVERS
                .iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let s = &fields.scope;
        let Some(driver_name) = fields.get("driver") else {
            return Err(s.err(
                fields.at,
                Some("driver"),
                format!("missing; one of: {}", known()),
            ));
        };
        let Some(driver) = DRIVERS.iter().find(|d| d.name == driver_name.value.trim()) else {
            return Err(s.err(
                driver_name.referenced,
                Some("driver"),
                format!(
                    "unknown driver {}; known drivers: {}",
                    shown(&driver_name.value),
                    known()
                ),
            ));
        };
        for key in fields.keys() {
            let key_name = key.value.as_str();
            if !COMMON_FIELDS.contains(&key_name) && !driver.fields.contains(&key_name) {
                let mut accepted = driver.fields.to_vec();
                accepted.extend(COMMON_FIELDS.iter().filter(|f| **f != "driver"));
                return Err(s.err(
                    key.referenced,
                    Some(key_name),
                    format!(
                        "not a field of the {} driver; its fields are: {}",
                        driver.name,
                        accepted.join(", ")
                    ),
                ));
            }
        }
        (driver.read)(fields, PduPolicy::from_lab(fields)?)
    }
}

/// Fields every driver accepts: `retries`, `cycle_delay_s`, `timeout_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PduPolicy {
    /// Further attempts after a failed action (default 3).
    pub retries: u32,
    /// Off time of a power cycle that leased does as off, wait, on (default 2 s).
    pub cycle_delay: Duration,
    /// Limit for one attempt of one action (default 30 s; pdudaemon answers only when done).
    pub timeout: Duration,
}

impl Default for PduPolicy {
    fn default() -> Self {
        PduPolicy {
            retries: 3,
            cycle_delay: Duration::from_secs(2),
            timeout: Duration::from_secs(30),
        }
    }
}

impl PduPolicy {
    fn from_lab(f: &PduFields<'_>) -> Result<PduPolicy, LabError> {
        let s = &f.scope;
        let defaults = PduPolicy::default();
        Ok(PduPolicy {
            retries: f.or("retries", defaults.retries, |v| {
                s.integer("retries", v, 0, 10)
            })?,
            cycle_delay: f.or("cycle_delay_s", defaults.cycle_delay, |v| {
                s.seconds("cycle_delay_s", v, 0.0, 600.0)
            })?,
            timeout: f.or("timeout_s", defaults.timeout, |v| {
                s.seconds("timeout_s", v, 1.0, 600.0)
            })?,
        })
    }
}

/// The pause before a retry: 250 ms, doubling up to 2 s.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(2));
/// How much of a PDU's answer an error quotes.
const ANSWER_EXCERPT: usize = 200;

/// Why a power action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    #[error("board {board} has no PDU in the lab file (no pdu_host and pdu_outlet)")]
    NoPdu { board: String },

    /// The PDU was unreachable or answered an error on every attempt.
    #[error(
        "PDU {pdu} ({driver} driver), outlet {outlet}: {action} failed after {attempts} \
         attempt{s}: {answer}",
        s = if *attempts == 1 { "" } else { "s" }
    )]
    Failed {
        pdu: String,
        driver: &'static str,
        outlet: u32,
        /// What was asked of the PDU: `on`, `off`, `cycle`, `status`.
        action: &'static str,
        attempts: u32,
        /// What the PDU answered on the last attempt (status and body, connect error, exit
        /// status and stderr).
        answer: String,
    },
}

/// One request to a driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    On,
    Off,
    /// The driver's own power cycle.
    Cycle,
    Status,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Step::On => "on",
            Step::Off => "off",
            Step::Cycle => "cycle",
            Step::Status => "status",
        }
    }
}

/// Held by one action on one outlet from its first request to its last.
type OutletLock = Arc<tokio::sync::Mutex<()>>;

/// Drives the lab's PDUs; one per daemon.
pub struct PowerController {
    pdus: BTreeMap<String, PduConfig>,
    http: reqwest::Client,
    /// One lock per (PDU, outlet): an action holds it from its first request to its last.
    outlets: Mutex<HashMap<(String, u32), OutletLock>>,
}

impl PowerController {
    pub fn new(lab: &Lab) -> PowerController {
        PowerController::with_ca(lab, None)
    }

    /// Like [`PowerController::new`], trusting `ca` besides the system's roots (a PDU's web
    /// interface with a certificate of the lab's CA).
    pub fn with_ca(lab: &Lab, ca: Option<&crate::tls::CaBundle>) -> PowerController {
        // PDUs sit on the lab network; a proxy from the environment is never the way to them.
        let http = crate::tls::client_builder(ca)
            .no_proxy()
            .user_agent(concat!("leased/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        PowerController {
            pdus: lab.pdus.clone(),
            http,
            outlets: Mutex::new(HashMap::new()),
        }
    }

    /// Does `action` on the outlet that powers `board`, and answers when it is done.
    pub async fn act(&self, board: &Board, action: PowerAction) -> Result<PowerResult, PowerError> {
        let no_pdu = || PowerError::NoPdu {
            board: board.board_id.clone(),
        };
        let name = board.pdu_host.as_deref().ok_or_else(no_pdu)?;
        let outlet = board.pdu_outlet.ok_or_else(no_pdu)?;
        let pdu = self.pdus.get(name).ok_or_else(no_pdu)?;
        let started = Instant::now();
        let lock = self.outlet_lock(name, outlet);
        let _held = lock.lock().await;
        let target = Target {
            name,
            pdu,
            outlet,
            http: &self.http,
        };
        let mut attempts = 0;
        let state = match action {
            PowerAction::On => target.retried(Step::On, &mut attempts).await?,
            PowerAction::Off => target.retried(Step::Off, &mut attempts).await?,
            PowerAction::Status => target.retried(Step::Status, &mut attempts).await?,
            PowerAction::Cycle if pdu.has_native_cycle() => {
                target.retried(Step::Cycle, &mut attempts).await?
            }
            PowerAction::Cycle => {
                target.retried(Step::Off, &mut attempts).await?;
                tokio::time::sleep(pdu.policy().cycle_delay).await;
                target.retried(Step::On, &mut attempts).await?
            }
        };
        Ok(PowerResult {
            board_id: board.board_id.clone(),
            action: action.to_string(),
            pdu: name.to_owned(),
            outlet,
            state,
            attempts,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    fn outlet_lock(&self, pdu: &str, outlet: u32) -> OutletLock {
        let mut outlets = self.outlets.lock().unwrap_or_else(|e| e.into_inner());
        outlets.entry((pdu.to_owned(), outlet)).or_default().clone()
    }
}

/// One outlet of one PDU, with what it takes to talk to it.
struct Target<'a> {
    name: &'a str,
    pdu: &'a PduConfig,
    outlet: u32,
    http: &'a reqwest::Client,
}

impl Target<'_> {
    /// `step`, tried again after a failure up to the PDU's `retries`, each try within its
    /// `timeout`; the state after the step, or the last answer as the error.
    async fn retried(&self, step: Step, attempts: &mut u32) -> Result<PowerState, PowerError> {
        let policy = *self.pdu.policy();
        let mut waits = BACKOFF.waits();
        let mut tries = 0;
        loop {
            tries += 1;
            *attempts += 1;
            let answer = match tokio::time::timeout(policy.timeout, self.once(step)).await {
                Ok(Ok(state)) => return Ok(state),
                Ok(Err(answer)) => answer,
                Err(_) => format!(
                    "no answer within {}",
                    humantime::format_duration(policy.timeout)
                ),
            };
            tracing::warn!(
                pdu = %self.name,
                driver = self.pdu.driver(),
                outlet = self.outlet,
                step = step.as_str(),
                attempt = tries,
                %answer,
                "power action failed"
            );
            if tries > policy.retries {
                return Err(PowerError::Failed {
                    pdu: self.name.to_owned(),
                    driver: self.pdu.driver(),
                    outlet: self.outlet,
                    action: step.as_str(),
                    attempts: tries,
                    answer,
                });
            }
            tokio::time::sleep(waits.next_wait()).await;
        }
    }

    /// One try of `step`; the error is what the PDU answered, for people.
    async fn once(&self, step: Step) -> Result<PowerState, String> {
        let state = self.pdu.act(self.http, self.outlet, step).await?;
        // A switch that succeeded without saying the state left the outlet as asked.
        Ok(match (state, step) {
            (PowerState::Unknown, Step::On | Step::Cycle) => PowerState::On,
            (PowerState::Unknown, Step::Off) => PowerState::Off,
            (state, _) => state,
        })
    }
}

/// `template` with the outlet number in place of `{outlet}`.
fn fill(template: &str, outlet: u32) -> String {
    template.replace(OUTLET_PLACEHOLDER, &outlet.to_string())
}

/// The start of a PDU's answer on one line, for an error message.
fn excerpt(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > ANSWER_EXCERPT {
        let cut: String = line.chars().take(ANSWER_EXCERPT).collect();
        format!("{cut}…")
    } else {
        line
    }
}

/// Reads an outlet state from what a PDU printed or answered: a JSON object with a `state`
/// (or Tasmota's `POWER`) of on/off/true/false/1/0, or such a word as the whole text.
fn parse_state(text: &str) -> PowerState {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text.trim()) {
        let field = ["state", "power", "POWER", "status", "output"]
            .iter()
            .find_map(|key| value.get(*key));
        return match field.or(Some(&value)) {
            Some(serde_json::Value::Bool(on)) => on_off(*on),
            Some(serde_json::Value::Number(n)) => match n.as_u64() {
                Some(1) => PowerState::On,
                Some(0) => PowerState::Off,
                _ => PowerState::Unknown,
            },
            Some(serde_json::Value::String(s)) => word_state(s),
            _ => PowerState::Unknown,
        };
    }
    word_state(text)
}

fn word_state(word: &str) -> PowerState {
    match word.trim().to_ascii_lowercase().as_str() {
        "on" | "1" | "true" => PowerState::On,
        "off" | "0" | "false" => PowerState::Off,
        _ => PowerState::Unknown,
    }
}

fn on_off(on: bool) -> PowerState {
    if on { PowerState::On } else { PowerState::Off }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::samples::{edit, pdu_refused, refused};

    #[test]
    fn rejects_an_unknown_driver_listing_the_known_ones() {
        refused(
            &edit(3, "    driver: snmp"),
            3,
            &[
                "PDU pdu-1: driver: unknown driver `snmp`; known drivers: http, pdudaemon, \
                 apc-snmp, command",
            ],
        );
        refused(
            &edit(3, ""),
            3,
            &["PDU pdu-1: driver: missing; one of: http"],
        );
    }

    #[test]
    fn rejects_fields_of_another_driver() {
        refused(
            &edit(5, "    off: relay {outlet} off\n    community: x"),
            6,
            &[
                "PDU pdu-1: community: not a field of the command driver",
                "cycle",
            ],
        );
    }

    #[test]
    fn rejects_bad_common_fields() {
        pdu_refused(&[
            (
                &["driver: apc-snmp", "retries: 11"],
                "retries: `11` is not a whole number from 0 to",
            ),
            (
                &["driver: command", "on: a", "off: b", "cycle_delay_s: -1"],
                "`-1` is not a number of",
            ),
            (
                &["driver: command", "on: a", "off: b", "timeout_s: .nan"],
                "timeout_s: `.nan` is not",
            ),
        ]);
    }

    #[test]
    fn states_are_read_from_json_and_words() {
        assert_eq!(parse_state(r#"{"outlet":3,"state":"on"}"#), PowerState::On);
        assert_eq!(parse_state(r#"{"state":"OFF"}"#), PowerState::Off);
        assert_eq!(parse_state(r#"{"POWER":"ON"}"#), PowerState::On);
        assert_eq!(parse_state(r#"{"state":false}"#), PowerState::Off);
        assert_eq!(parse_state("on\n"), PowerState::On);
        assert_eq!(parse_state(" Off "), PowerState::Off);
        assert_eq!(parse_state("0"), PowerState::Off);
        assert_eq!(parse_state("OK - accepted request"), PowerState::Unknown);
        assert_eq!(parse_state(r#"{"outlet":3}"#), PowerState::Unknown);
        assert_eq!(parse_state(""), PowerState::Unknown);
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("Invalid request\n"), "Invalid request");
        assert_eq!(excerpt("a\n  b\tc"), "a b c");
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long).chars().count(), ANSWER_EXCERPT + 1);
    }

    #[test]
    fn templates_get_the_outlet() {
        assert_eq!(fill("relay {outlet} on", 7), "relay 7 on");
        assert_eq!(fill("http://p/o/{outlet}/{outlet}", 2), "http://p/o/2/2");
    }

    #[test]
    fn the_error_names_pdu_outlet_driver_and_answer() {
        let e = PowerError::Failed {
            pdu: "pdu-a".into(),
            driver: "http",
            outlet: 3,
            action: "off",
            attempts: 4,
            answer: "POST http://pdu-a/outlets/3/off answered 500: boom".into(),
        };
        assert_eq!(
            e.to_string(),
            "PDU pdu-a (http driver), outlet 3: off failed after 4 attempts: \
             POST http://pdu-a/outlets/3/off answered 500: boom"
        );
    }
}
