//! The `apc-snmp` driver: its fields in boards.yaml, its PowerNet-MIB OIDs, its SNMP requests.
//!
//! An SNMP v1/v2c SET of an outlet command (1 on, 2 off, 3 reboot, the same in sPDUOutletCtl,
//! rPDUOutletControlOutletCommand and rPDU2OutletSwitchedControlCommand); `status` is a GET of
//! the same object (1 on, 2 off).

use super::{Answer, Driver, PduPolicy, Step};
use crate::api::PowerState;
use crate::lab::fields::{PduFields, check_host};
use crate::lab::{LabError, Secret};
use snmp2::{AsyncSession, Oid, Value};

/// An APC switched PDU driven over SNMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApcSnmpPdu {
    /// Address of the PDU (default: the PDU's name in boards.yaml).
    pub host: String,
    /// UDP port (default 161).
    pub port: u16,
    /// Write community (default `private`).
    pub community: Secret,
    pub version: SnmpVersion,
    pub mib: ApcMib,
    pub policy: PduPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnmpVersion {
    V1,
    V2c,
}

/// Which PowerNet-MIB table controls the outlets; the APC models differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApcMib {
    /// `sPDUOutletCtl`: MasterSwitch and older AP79xx.
    SPdu,
    /// `rPDUOutletControlOutletCommand`: Switched Rack PDU.
    RPdu,
    /// `rPDU2OutletSwitchedControlCommand`: AP84xx/86xx/89xx (the default).
    RPdu2,
}

impl ApcMib {
    /// The OID to SET for `outlet`; the values 1, 2 and 3 mean on, off and reboot in all three.
    pub fn outlet_control_oid(self, outlet: u32) -> String {
        let table = match self {
            ApcMib::SPdu => "1.3.6.1.4.1.318.1.1.4.4.2.1.3",
            ApcMib::RPdu => "1.3.6.1.4.1.318.1.1.12.3.3.1.1.4",
            ApcMib::RPdu2 => "1.3.6.1.4.1.318.1.1.26.9.2.4.1.5",
        };
        format!("{table}.{outlet}")
    }
}

impl Driver for ApcSnmpPdu {
    const NAME: &'static str = "apc-snmp";
    const FIELDS: &'static [&'static str] = &["host", "port", "community", "version", "mib"];

    fn from_lab(f: &PduFields<'_>, policy: PduPolicy) -> Result<ApcSnmpPdu, LabError> {
        let s = &f.scope;
        let host = match f.get("host") {
            Some(v) => s.address("host", v)?,
            None => match check_host(f.name) {
                Ok(()) => f.name.to_owned(),
                Err(why) => return Err(f.missing("host", &format!("the PDU name {why}"))),
            },
        };
        let port = f.or("port", 161, |v| s.integer("port", v, 1, 65535))?;
        let community = f.or("community", "private".to_owned(), |v| {
            s.credential("community", v, f.env)
        })?;
        let version = f.or("version", SnmpVersion::V2c, |v| {
            s.choice(
                "version",
                v,
                &[("1", SnmpVersion::V1), ("2c", SnmpVersion::V2c)],
            )
        })?;
        let mib = f.or("mib", ApcMib::RPdu2, |v| {
            s.choice(
                "mib",
                v,
                &[
                    ("sPDU", ApcMib::SPdu),
                    ("rPDU", ApcMib::RPdu),
                    ("rPDU2", ApcMib::RPdu2),
                ],
            )
        })?;
        Ok(ApcSnmpPdu {
            host,
            port,
            community: Secret::new(community),
            version,
            mib,
            policy,
        })
    }

    /// The outlet command `reboot(3)`.
    fn has_native_cycle(&self) -> bool {
        true
    }

    async fn act(&self, _http: &reqwest::Client, outlet: u32, step: Step) -> Answer {
        request(self, outlet, step).await
    }
}

const ON: i64 = 1;
const OFF: i64 = 2;
const REBOOT: i64 = 3;

async fn request(pdu: &ApcSnmpPdu, outlet: u32, step: Step) -> Answer {
    let oid_text = pdu.mib.outlet_control_oid(outlet);
    let oid = parse_oid(&oid_text)?;
    let target = format!("{}:{}", pdu.host, pdu.port);
    let community = pdu.community.expose().as_bytes();
    let start_id = rand::random::<u16>() as i32;
    let mut session = match pdu.version {
        SnmpVersion::V1 => AsyncSession::new_v1(target.as_str(), community, start_id).await,
        SnmpVersion::V2c => AsyncSession::new_v2c(target.as_str(), community, start_id).await,
    }
    .map_err(|e| format!("SNMP to {target}: {e}"))?;
    let (doing, response) = match step {
        Step::Status => (format!("GET {oid_text}"), session.get(&oid).await),
        _ => {
            let value = match step {
                Step::On => ON,
                Step::Off => OFF,
                _ => REBOOT,
            };
            let doing = format!("SET {oid_text} = {value}");
            (doing, session.set(&[(&oid, Value::Integer(value))]).await)
        }
    };
    let response = response.map_err(|e| format!("SNMP {doing} at {target}: {e:?}"))?;
    if response.error_status != 0 {
        return Err(format!(
            "SNMP {doing} at {target} answered error-status {} (index {})",
            error_status_name(response.error_status),
            response.error_index
        ));
    }
    let mut state = PowerState::Unknown;
    for (_, value) in response.varbinds {
        match value {
            Value::Integer(ON) => state = PowerState::On,
            Value::Integer(OFF) => state = PowerState::Off,
            Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView => {
                return Err(format!(
                    "SNMP {doing} at {target}: the PDU has no such object (is `mib` right \
                     for this model, and outlet {outlet} present?)"
                ));
            }
            _ => {}
        }
    }
    // A SET echoes the command written (3 for a reboot); only a GET reads the outlet.
    Ok(match step {
        Step::Status => state,
        _ => PowerState::Unknown,
    })
}

fn parse_oid(text: &str) -> Result<Oid<'static>, String> {
    let arcs = text
        .split('.')
        .map(str::parse::<u64>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("bad OID {text}"))?;
    Oid::from(&arcs).map_err(|e| format!("bad OID {text}: {e:?}"))
}

/// RFC 3416's names of the error-status values.
fn error_status_name(status: u32) -> String {
    const NAMES: [&str; 19] = [
        "noError",
        "tooBig",
        "noSuchName",
        "badValue",
        "readOnly",
        "genErr",
        "noAccess",
        "wrongType",
        "wrongLength",
        "wrongEncoding",
        "wrongValue",
        "noCreation",
        "inconsistentValue",
        "resourceUnavailable",
        "commitFailed",
        "undoFailed",
        "authorizationError",
        "notWritable",
        "inconsistentName",
    ];
    match NAMES.get(status as usize) {
        Some(name) => format!("{name}({status})"),
        None => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::samples::{pdu, pdu_refused};
    use crate::power::PduConfig;

    #[test]
    fn reads_its_fields() {
        let apc = pdu(&[
            "driver: apc-snmp",
            "host: 10.0.9.9",
            "port: 1161",
            "community: ${PDU_PW}",
            "version: 1",
            "mib: spdu",
        ]);
        let Ok(PduConfig::ApcSnmp(apc)) = apc else {
            panic!("{apc:?}");
        };
        assert_eq!((apc.host.as_str(), apc.port), ("10.0.9.9", 1161));
        assert_eq!((apc.version, apc.mib), (SnmpVersion::V1, ApcMib::SPdu));
        assert_eq!(apc.community.expose(), "pdu-secret");
    }

    #[test]
    fn rejects_bad_fields() {
        pdu_refused(&[
            (
                &["driver: apc-snmp", "mib: xPDU"],
                "mib: `xPDU` is not one of: sPDU, rPDU, rPDU2",
            ),
            (
                &["driver: apc-snmp", "version: 3"],
                "version: `3` is not one of: 1, 2c",
            ),
            (
                &["driver: apc-snmp", "community: ${NOPE}"],
                "environment variable NOPE is not set",
            ),
        ]);
    }

    #[test]
    fn oids_and_error_names() {
        let oid = parse_oid("1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.7").unwrap();
        assert_eq!(oid.to_id_string(), "1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.7");
        assert!(parse_oid("1.3.x").is_err());
        assert_eq!(error_status_name(17), "notWritable(17)");
        assert_eq!(error_status_name(99), "99");
    }
}
