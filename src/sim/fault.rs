//! The faults a simulated board can be told to have, and how they are named on the command
//! line (`--fault BOARD:KIND[=ARG]`) and in the PDU's HTTP API (`{"kind": …, "value": …}`).

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// What goes wrong with one board's console link until it is cleared (with [`Fault::None`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// The board behaves.
    None,
    /// The link drops after this many more bytes went to the client (counted from the
    /// connection, or from when the fault was set during one).
    DropAfterBytes(u64),
    /// The link drops this long after the connection (or after the fault was set during one).
    DropAfterSecs(Duration),
    /// The board freezes: no output, input ignored, until it is power-cycled (a power-off
    /// clears this fault) or the fault is set to `none`.
    Hang,
    /// Both directions of the link are throttled to this many bytes per second, like a slow
    /// serial line.
    SlowLink(u64),
    /// `login` refuses every user name and password.
    RefuseLogin,
}

/// The names of the fault kinds, as the API and the command line spell them.
pub const FAULT_KINDS: &[&str] = &[
    "none",
    "drop_after_bytes",
    "drop_after_secs",
    "hang",
    "slow_link",
    "refuse_login",
];

/// The longest `drop_after_secs` the sim accepts (a day); longer is a typo.
const MAX_DROP_SECS: f64 = 86_400.0;

/// Why a fault description was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error("unknown fault kind `{kind}`; known kinds: {}", FAULT_KINDS.join(", "))]
    UnknownKind { kind: String },
    #[error("fault `{kind}` needs a value: {what}")]
    MissingValue {
        kind: &'static str,
        what: &'static str,
    },
    #[error("fault `{kind}` takes no value")]
    UnexpectedValue { kind: &'static str },
    #[error("fault `{kind}`: `{value}` is not {what}")]
    BadValue {
        kind: &'static str,
        value: String,
        what: &'static str,
    },
}

impl Fault {
    /// The kind's name, as in [`FAULT_KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::DropAfterBytes(_) => "drop_after_bytes",
            Fault::DropAfterSecs(_) => "drop_after_secs",
            Fault::Hang => "hang",
            Fault::SlowLink(_) => "slow_link",
            Fault::RefuseLogin => "refuse_login",
        }
    }

    /// The value as a number (bytes, seconds or bytes per second), for kinds that have one.
    pub fn value(&self) -> Option<f64> {
        match self {
            // Precision loss above 2^53 bytes does not matter for a value shown to people.
            Fault::DropAfterBytes(n) | Fault::SlowLink(n) => Some(*n as f64),
            Fault::DropAfterSecs(d) => Some(d.as_secs_f64()),
            Fault::None | Fault::Hang | Fault::RefuseLogin => None,
        }
    }

    /// Builds a fault from its kind (`-` and `_` alike, any case) and optional value.
    pub fn from_parts(kind: &str, value: Option<f64>) -> Result<Fault, FaultError> {
        let normalized = kind.trim().to_ascii_lowercase().replace('-', "_");
        let whole = |kind: &'static str, what: &'static str, min: u64| {
            let Some(value) = value else {
                return Err(FaultError::MissingValue { kind, what });
            };
            if value.fract() == 0.0 && value >= min as f64 && value <= u64::MAX as f64 {
                // Checked above: a whole number in range.
                Ok(value as u64)
            } else {
                Err(FaultError::BadValue {
                    kind,
                    value: value.to_string(),
                    what,
                })
            }
        };
        let none = |kind: &'static str, fault: Fault| match value {
            Some(_) => Err(FaultError::UnexpectedValue { kind }),
            None => Ok(fault),
        };
        match normalized.as_str() {
            "none" => none("none", Fault::None),
            "hang" => none("hang", Fault::Hang),
            "refuse_login" => none("refuse_login", Fault::RefuseLogin),
            "drop_after_bytes" => {
                whole("drop_after_bytes", "a whole number of bytes (0 or more)", 0)
                    .map(Fault::DropAfterBytes)
            }
            "slow_link" => whole(
                "slow_link",
                "a whole number of bytes per second (1 or more)",
                1,
            )
            .map(Fault::SlowLink),
            "drop_after_secs" => {
                let what = "a number of seconds above 0 and at most 86400";
                let Some(secs) = value else {
                    return Err(FaultError::MissingValue {
                        kind: "drop_after_secs",
                        what,
                    });
                };
                if secs > 0.0 && secs <= MAX_DROP_SECS {
                    Ok(Fault::DropAfterSecs(Duration::from_secs_f64(secs)))
                } else {
                    Err(FaultError::BadValue {
                        kind: "drop_after_secs",
                        value: secs.to_string(),
                        what,
                    })
                }
            }
            _ => Err(FaultError::UnknownKind {
                kind: kind.to_owned(),
            }),
        }
    }

    /// Parses `KIND[=VALUE]` as the command line writes it: `hang`, `slow_link=1200`.
    pub fn parse(text: &str) -> Result<Fault, FaultError> {
        match text.split_once('=') {
            None => Fault::from_parts(text, None),
            Some((kind, value)) => {
                let number = value.trim().parse::<f64>().ok().filter(|v| v.is_finite());
                match number {
                    Some(number) => Fault::from_parts(kind, Some(number)),
                    // Name the kind's own expectation when the kind is known.
                    None => match Fault::from_parts(kind, Some(1.0)) {
                        Ok(fault) => Err(FaultError::BadValue {
                            kind: fault.kind(),
                            value: value.to_owned(),
                            what: "a number",
                        }),
                        Err(e) => Err(e),
                    },
                }
            }
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value() {
            Some(value) => write!(f, "{}={value}", self.kind()),
            None => f.write_str(self.kind()),
        }
    }
}

/// `{"kind": "slow_link", "value": 1200}`; `value` is left out for kinds without one.
impl Serialize for Fault {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("kind", self.kind())?;
        match self {
            Fault::DropAfterBytes(n) | Fault::SlowLink(n) => map.serialize_entry("value", n)?,
            Fault::DropAfterSecs(d) => map.serialize_entry("value", &d.as_secs_f64())?,
            Fault::None | Fault::Hang | Fault::RefuseLogin => {}
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(Fault::parse("none"), Ok(Fault::None));
        assert_eq!(Fault::parse("hang"), Ok(Fault::Hang));
        assert_eq!(Fault::parse("refuse-login"), Ok(Fault::RefuseLogin));
        assert_eq!(
            Fault::parse("drop_after_bytes=100"),
            Ok(Fault::DropAfterBytes(100))
        );
        assert_eq!(
            Fault::parse("Drop-After-Secs=0.5"),
            Ok(Fault::DropAfterSecs(Duration::from_millis(500)))
        );
        assert_eq!(Fault::parse("slow_link=1200"), Ok(Fault::SlowLink(1200)));
    }

    #[test]
    fn refuses_bad_kinds_and_values() {
        let err = |text| Fault::parse(text).unwrap_err().to_string();
        assert!(err("melt").contains("unknown fault kind `melt`; known kinds: none,"));
        assert!(err("slow_link").contains("needs a value"));
        assert!(err("slow_link=0").contains("`0` is not a whole number of bytes per second"));
        assert!(err("drop_after_bytes=1.5").contains("`1.5` is not a whole number"));
        assert!(err("drop_after_bytes=-1").contains("`-1` is not"));
        assert!(err("drop_after_secs=0").contains("above 0"));
        assert!(err("drop_after_secs=soon").contains("`soon` is not a number"));
        assert!(err("hang=3").contains("takes no value"));
        assert!(err("melt=3").contains("unknown fault kind"));
    }

    #[test]
    fn serializes_kind_and_value() {
        let json = |fault: Fault| serde_json::to_string(&fault).unwrap();
        assert_eq!(json(Fault::Hang), r#"{"kind":"hang"}"#);
        assert_eq!(
            json(Fault::SlowLink(1200)),
            r#"{"kind":"slow_link","value":1200}"#
        );
        assert_eq!(
            json(Fault::DropAfterSecs(Duration::from_millis(1500))),
            r#"{"kind":"drop_after_secs","value":1.5}"#
        );
        assert_eq!(Fault::SlowLink(9).to_string(), "slow_link=9");
    }
}
