//! The `apc-snmp` driver: SNMP v1/v2c SET of an APC PowerNet-MIB outlet command (1 on, 2 off,
//! 3 reboot, the same in sPDUOutletCtl, rPDUOutletControlOutletCommand and
//! rPDU2OutletSwitchedControlCommand); `status` is a GET of the same object (1 on, 2 off).

use super::Step;
use crate::api::PowerState;
use crate::lab::{ApcSnmpPdu, SnmpVersion};
use snmp2::{AsyncSession, Oid, Value};

const ON: i64 = 1;
const OFF: i64 = 2;
const REBOOT: i64 = 3;

pub(super) async fn act(pdu: &ApcSnmpPdu, outlet: u32, step: Step) -> Result<PowerState, String> {
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

    #[test]
    fn oids_and_error_names() {
        let oid = parse_oid("1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.7").unwrap();
        assert_eq!(oid.to_id_string(), "1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.7");
        assert!(parse_oid("1.3.x").is_err());
        assert_eq!(error_status_name(17), "notWritable(17)");
        assert_eq!(error_status_name(99), "99");
    }
}
