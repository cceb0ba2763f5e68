//! Checking one field of boards.yaml, with errors that name the board or PDU and the field.
//!
//! Names, addresses, URLs, numbers, choices and credentials; the PDU drivers check theirs here.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::load::{Expansion, RawPdu, Text, expand};
use super::{LabError, LabItem};
use crate::power::OUTLET_PLACEHOLDER;
use socv_api::located::YamlError;

/// Makes the errors about one item of the file (a board, a PDU, or the file as a whole) and
/// checks its values.
pub(crate) struct Scope<'a> {
    pub(super) file: &'a Path,
    pub(super) item: Option<LabItem>,
}

impl<'a> Scope<'a> {
    pub(crate) fn file(file: &'a Path) -> Self {
        Scope { file, item: None }
    }

    pub(crate) fn err(
        &self,
        at: Location,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> LabError {
        let place = YamlError::at(self.file, at, message);
        LabError {
            file: place.file,
            line: place.line,
            column: place.column,
            item: self.item.clone(),
            field: field.map(str::to_owned),
            message: place.message,
        }
    }

    /// A field the item cannot do without; `owner` is where the item starts.
    pub(crate) fn required<'t>(
        &self,
        owner: Location,
        field: &str,
        value: &'t Option<Text>,
    ) -> Result<&'t Text, LabError> {
        value
            .as_ref()
            .ok_or_else(|| self.err(owner, Some(field), "required field is missing"))
    }

    /// Any non-blank text, kept as written.
    pub(crate) fn text(&self, field: &str, v: &Text) -> Result<String, LabError> {
        if v.value.trim().is_empty() {
            return Err(self.err(v.referenced, Some(field), "is empty"));
        }
        Ok(v.value.clone())
    }

    pub(crate) fn name(&self, field: &str, v: &Text) -> Result<String, LabError> {
        check_name(&v.value).map_err(|why| self.err(v.referenced, Some(field), why))?;
        Ok(v.value.clone())
    }

    pub(crate) fn address(&self, field: &str, v: &Text) -> Result<String, LabError> {
        check_host(&v.value).map_err(|why| self.err(v.referenced, Some(field), why))?;
        Ok(v.value.clone())
    }

    /// An http(s) URL; with `templated`, `{outlet}` may appear in it.
    pub(crate) fn url(&self, field: &str, v: &Text, templated: bool) -> Result<String, LabError> {
        let url = v.value.trim();
        check_url(url, templated).map_err(|why| self.err(v.referenced, Some(field), why))?;
        Ok(url.to_owned())
    }

    pub(crate) fn integer<T: TryFrom<u64>>(
        &self,
        field: &str,
        v: &Text,
        min: u64,
        max: u64,
    ) -> Result<T, LabError> {
        v.value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| {
                let what = format!(
                    "{} is not a whole number from {min} to {max}",
                    shown(&v.value)
                );
                self.err(v.referenced, Some(field), what)
            })
    }

    pub(crate) fn seconds(
        &self,
        field: &str,
        v: &Text,
        min: f64,
        max: f64,
    ) -> Result<Duration, LabError> {
        v.value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| (min..=max).contains(s))
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                let what = format!(
                    "{} is not a number of seconds from {min} to {max}",
                    shown(&v.value)
                );
                self.err(v.referenced, Some(field), what)
            })
    }

    /// One of `options`, matched without regard to case.
    pub(crate) fn choice<T: Copy>(
        &self,
        field: &str,
        v: &Text,
        options: &[(&str, T)],
    ) -> Result<T, LabError> {
        let given = v.value.trim();
        options
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(given))
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
                let what = format!("{} is not one of: {}", shown(given), names.join(", "));
                self.err(v.referenced, Some(field), what)
            })
    }

    /// A credential with `${VAR}` expanded. Its value is never put in an error.
    pub(crate) fn credential(
        &self,
        field: &str,
        v: &Text,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, LabError> {
        expand(&v.value, env).map_err(|e| {
            let what = match e {
                Expansion::Unset(name) => format!("environment variable {name} is not set"),
                Expansion::Malformed(at) => format!(
                    "malformed ${{...}} at character {at}; write ${{NAME}} with a NAME of \
                     letters, digits and _, or $${{ for a literal ${{"
                ),
            };
            self.err(v.referenced, Some(field), what)
        })
    }
}

/// One entry of `pdus:`, with what its driver needs to check it.
pub(crate) struct PduFields<'a> {
    /// Names the PDU in errors.
    pub(crate) scope: Scope<'a>,
    /// The PDU's name in boards.yaml.
    pub(crate) name: &'a str,
    /// Where the entry starts.
    pub(crate) at: Location,
    /// Every key as written, in file order.
    keys: Vec<&'a Text>,
    /// The fields with a value (null values dropped).
    values: HashMap<&'a str, &'a Text>,
    pub(crate) env: &'a dyn Fn(&str) -> Option<String>,
    /// How many different outlets of this PDU the boards use.
    outlets_in_use: usize,
}

impl<'a> PduFields<'a> {
    pub(super) fn new(
        scope: Scope<'a>,
        name: &'a str,
        entry: &'a Spanned<RawPdu>,
        env: &'a dyn Fn(&str) -> Option<String>,
        outlets_in_use: usize,
    ) -> PduFields<'a> {
        let mut keys: Vec<&Text> = entry.value.keys().collect();
        keys.sort_by_key(|key| position(key.referenced));
        let values = entry
            .value
            .iter()
            .filter_map(|(key, value)| Some((key.value.as_str(), value.as_ref()?)))
            .collect();
        PduFields {
            scope,
            name,
            at: entry.referenced,
            keys,
            values,
            env,
            outlets_in_use,
        }
    }

    /// Every key of the entry as written, in file order, null values too.
    pub(crate) fn keys(&self) -> &[&'a Text] {
        &self.keys
    }

    pub(crate) fn get(&self, field: &str) -> Option<&Text> {
        self.values.get(field).copied()
    }

    /// The field checked by `check`, or `default` when absent.
    pub(crate) fn or<T>(
        &self,
        field: &str,
        default: T,
        check: impl FnOnce(&Text) -> Result<T, LabError>,
    ) -> Result<T, LabError> {
        self.get(field).map_or(Ok(default), check)
    }

    /// An action's template (checked by `check`), else `default`. A template for switching
    /// must name the outlet when boards use several: without `{outlet}` every board's power
    /// action would switch the same outlet.
    pub(crate) fn template(
        &self,
        action: &str,
        check: impl FnOnce(&Text) -> Result<String, LabError>,
        default: Option<String>,
    ) -> Result<Option<String>, LabError> {
        let Some(value) = self.get(action) else {
            return Ok(default);
        };
        let template = check(value)?;
        if action != "status" && self.outlets_in_use > 1 && !template.contains(OUTLET_PLACEHOLDER) {
            return Err(self.scope.err(
                value.referenced,
                Some(action),
                format!(
                    "has no {OUTLET_PLACEHOLDER} placeholder, but boards use {} outlets of this \
                     PDU; every board would switch the same outlet",
                    self.outlets_in_use
                ),
            ));
        }
        Ok(Some(template))
    }

    /// For the actions every driver must be able to do.
    pub(crate) fn missing(&self, field: &str, hint: &str) -> LabError {
        let at = self
            .get("driver")
            .map_or(Location::UNKNOWN, |driver| driver.referenced);
        self.scope.err(
            at,
            Some(field),
            format!("required field is missing; {hint}"),
        )
    }
}

pub(super) fn located(value: &Option<Text>) -> Location {
    value.as_ref().map_or(Location::UNKNOWN, |v| v.referenced)
}

pub(super) fn line_of(at: Location) -> u32 {
    u32::try_from(at.line()).unwrap_or(u32::MAX)
}

pub(super) fn position(at: Location) -> (u64, u64) {
    (at.line(), at.column())
}

/// Board ids and family names end up in URLs, shell arguments and file names, so they are
/// plain: ASCII letters, digits, `-`, `_`, `.`, starting with a letter or digit (so never `..`).
pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_owned());
    }
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !starts_well || !plain || name.len() > 64 {
        return Err(format!(
            "{} is not a simple name (up to 64 letters, digits, `-`, `_` and `.`, starting with \
             a letter or digit)",
            shown(name)
        ));
    }
    Ok(())
}

/// An IPv4 or IPv6 address, or a DNS hostname (RFC 1123). A name whose last label is all
/// digits is taken for a mistyped IPv4 address (no top-level domain is numeric).
pub(crate) fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host.contains(':') {
        return Err(format!("{} is not a valid IPv6 address", shown(host)));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = name.split('.').collect();
    if labels
        .last()
        .is_some_and(|last| !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("{} is not a valid IPv4 address", shown(host)));
    }
    let good_label = |label: &&str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.len() > 253 || !labels.iter().all(good_label) {
        return Err(format!(
            "{} is neither an IP address nor a valid DNS hostname",
            shown(host)
        ));
    }
    Ok(())
}

/// An `http://` or `https://` URL with a valid host. The URL itself is never echoed: it may
/// carry a token in its query.
fn check_url(url: &str, templated: bool) -> Result<(), String> {
    let filled = if templated {
        Cow::Owned(url.replace(OUTLET_PLACEHOLDER, "1"))
    } else {
        Cow::Borrowed(url)
    };
    if filled.contains(['{', '}']) {
        return Err(if templated {
            format!("unknown placeholder; the only one is {OUTLET_PLACEHOLDER}")
        } else {
            "must not contain `{` or `}`".to_owned()
        });
    }
    let rest = filled
        .split_once("://")
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
        })
        .map(|(_, rest)| rest)
        .ok_or("must start with http:// or https://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("must not carry credentials; use `username` and `password`".to_owned());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (ip, after) = bracketed.split_once(']').ok_or("has an unclosed `[`")?;
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{} is not a valid IPv6 address", shown(ip)));
        }
        match after {
            "" => (None, None),
            _ => (
                None,
                Some(after.strip_prefix(':').ok_or("has text after `]`")?),
            ),
        }
    } else if authority.matches(':').count() > 1 {
        return Err("an IPv6 address in a URL goes in brackets: http://[::1]:8080/".to_owned());
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(authority), None),
        }
    };
    if let Some(host) = host {
        check_host(host)?;
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(format!(
            "port {} is not a number from 1 to 65535",
            shown(port)
        ));
    }
    Ok(())
}

/// A user's text quoted for a message, control characters escaped.
pub(crate) fn shown(text: &str) -> String {
    format!("`{}`", printable(text))
}

pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(text.chars().flat_map(char::escape_default).collect())
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::super::samples::{edit, parse, refused};

    #[test]
    fn rejects_bad_addresses() {
        refused(
            &edit(16, "    board_ip: 10.1.1.999"),
            16,
            &["board b2: board_ip: `10.1.1.999` is not a valid IPv4 address"],
        );
        refused(
            &edit(16, "    board_ip: 10.1.1"),
            16,
            &["not a valid IPv4 address"],
        );
        refused(
            &edit(16, "    board_ip: bad_host.lab"),
            16,
            &["board_ip: `bad_host.lab` is neither an IP address nor a valid DNS hostname"],
        );
        refused(
            &edit(16, "    board_ip: -x.lab"),
            16,
            &["valid DNS hostname"],
        );
        refused(
            &edit(16, "    board_ip: fe80::1::2"),
            16,
            &["not a valid IPv6 address"],
        );
    }

    #[test]
    fn accepts_hostnames_and_ipv6() {
        let lab = parse(&edit(16, "    board_ip: fe80::2")).unwrap();
        assert_eq!(lab.boards[1].address(), "[fe80::2]:23");
        let lab = parse(&edit(16, "    board_ip: console-1.lab.local")).unwrap();
        assert_eq!(lab.boards[1].address(), "console-1.lab.local:23");
    }

    #[test]
    fn rejects_bad_telnet_ports() {
        for port in ["0", "65536", "-1", "telnet"] {
            refused(
                &edit(17, &format!("    telnet_port: {port}")),
                17,
                &["board b2: telnet_port:", port, "from 1 to 65535"],
            );
        }
    }

    #[test]
    fn rejects_outlet_zero() {
        refused(
            &edit(19, "    pdu_outlet: 0"),
            19,
            &["board b2: pdu_outlet: `0` is not a whole number from 1"],
        );
    }

    #[test]
    fn rejects_empty_names() {
        refused(
            &edit(14, "  - board_id: \"\""),
            14,
            &["board #2: board_id: is empty"],
        );
        refused(
            &edit(15, "    soc_family: ''"),
            15,
            &["board b2: soc_family: is empty"],
        );
        refused(
            &edit(20, "    lab_location: ' '"),
            20,
            &["board b2: lab_location: is empty"],
        );
    }

    #[test]
    fn rejects_board_ids_that_are_not_simple_names() {
        for id in ["b 2", "b/2", "..", "-b2", "b2!"] {
            refused(
                &edit(14, &format!("  - board_id: '{id}'")),
                14,
                &["board_id:", "is not a simple name"],
            );
        }
    }

    #[test]
    fn rejects_a_switching_template_without_the_outlet() {
        refused(
            &edit(4, "    on: relay on"),
            4,
            &["PDU pdu-1: on: has no {outlet} placeholder", "2 outlets"],
        );
        // One board on the PDU: nothing to tell apart.
        let one_board =
            edit(4, "    on: relay on").replace("    pdu_host: pdu-1\n    pdu_outlet: 2\n", "");
        assert!(parse(&one_board).is_ok());
    }
}
