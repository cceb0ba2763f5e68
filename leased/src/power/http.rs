//! The `http` driver: its fields in boards.yaml and its HTTP requests.
//!
//! One URL template and method per action, optional basic auth, the expected status code;
//! `status` is a GET whose answer says on or off.

use super::{Answer, Driver, OUTLET_PLACEHOLDER, PduPolicy, Step, excerpt, fill, parse_state};
use crate::api::PowerState;
use crate::lab::fields::PduFields;
use crate::lab::{LabError, Secret};
use reqwest::Method;

/// An HTTP PDU. Templates are full URLs with an optional `{outlet}` placeholder; `base_url`
/// in the file gives the defaults `{base_url}/outlets/{outlet}/on|off|cycle|status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPdu {
    pub on: String,
    pub off: String,
    /// Without it, a cycle is off, `cycle_delay`, on.
    pub cycle: Option<String>,
    /// Without it, the outlet state cannot be read.
    pub status: Option<String>,
    /// For on/off/cycle (default POST); status is always a GET.
    pub method: HttpMethod,
    /// HTTP basic auth.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The status code that means success (default 200).
    pub expect_status: u16,
    pub policy: PduPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
        }
    }
}

impl Driver for HttpPdu {
    const NAME: &'static str = "http";
    const FIELDS: &'static [&'static str] = &[
        "base_url",
        "on",
        "off",
        "cycle",
        "status",
        "method",
        "username",
        "password",
        "expect_status",
    ];

    fn from_lab(f: &PduFields<'_>, policy: PduPolicy) -> Result<HttpPdu, LabError> {
        let s = &f.scope;
        let base_url = f
            .get("base_url")
            .map(|v| s.url("base_url", v, false))
            .transpose()?
            .map(|url| url.trim_end_matches('/').to_owned());
        let template = |action: &str| {
            let default = base_url
                .as_ref()
                .map(|base| format!("{base}/outlets/{OUTLET_PLACEHOLDER}/{action}"));
            f.template(action, |v| s.url(action, v, true), default)
        };
        let hint = "give `on` and `off` URL templates, or a `base_url`";
        let on = template("on")?.ok_or_else(|| f.missing("on", hint))?;
        let off = template("off")?.ok_or_else(|| f.missing("off", hint))?;
        let cycle = template("cycle")?;
        let status = template("status")?;
        let method = f.or("method", HttpMethod::Post, |v| {
            s.choice(
                "method",
                v,
                &[
                    ("GET", HttpMethod::Get),
                    ("POST", HttpMethod::Post),
                    ("PUT", HttpMethod::Put),
                ],
            )
        })?;
        let username = f
            .get("username")
            .map(|v| s.credential("username", v, f.env))
            .transpose()?;
        let password = match f.get("password") {
            Some(v) if username.is_none() => {
                return Err(s.err(
                    v.referenced,
                    Some("password"),
                    "needs a `username` (HTTP basic auth)",
                ));
            }
            Some(v) => Some(Secret::new(s.credential("password", v, f.env)?)),
            None => None,
        };
        let expect_status = f.or("expect_status", 200, |v| {
            s.integer("expect_status", v, 100, 599)
        })?;
        Ok(HttpPdu {
            on,
            off,
            cycle,
            status,
            method,
            username,
            password,
            expect_status,
            policy,
        })
    }

    fn has_native_cycle(&self) -> bool {
        self.cycle.is_some()
    }

    async fn act(&self, http: &reqwest::Client, outlet: u32, step: Step) -> Answer {
        request(http, self, outlet, step).await
    }
}

async fn request(http: &reqwest::Client, pdu: &HttpPdu, outlet: u32, step: Step) -> Answer {
    let (template, method) = match step {
        Step::On => (Some(&pdu.on), pdu.method),
        Step::Off => (Some(&pdu.off), pdu.method),
        Step::Cycle => (pdu.cycle.as_ref(), pdu.method),
        Step::Status => (pdu.status.as_ref(), HttpMethod::Get),
    };
    let Some(template) = template else {
        // Only status lacks a URL here: a cycle without one is done as off and on.
        return Ok(PowerState::Unknown);
    };
    let url = fill(template, outlet);
    let method = match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
    };
    let shown = format!("{method} {}", for_people(&url));
    let mut request = http.request(method, &url);
    if let Some(user) = &pdu.username {
        request = request.basic_auth(user, pdu.password.as_ref().map(|p| p.expose()));
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("{shown}: {}", transport_error(&e)))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| format!("{shown}: reading the answer: {}", transport_error(&e)))?;
    let expected =
        status.as_u16() == pdu.expect_status || (step == Step::Status && status.is_success());
    if !expected {
        let body = excerpt(&body);
        let body = if body.is_empty() {
            String::new()
        } else {
            format!(": {body}")
        };
        return Err(format!(
            "{shown} answered {status} (expected {}){body}",
            pdu.expect_status
        ));
    }
    Ok(parse_state(&body))
}

/// The URL without its query, which may carry credentials (`?user=…&password=…`).
pub(super) fn for_people(url: &str) -> String {
    match url.split_once('?') {
        Some((path, _)) => format!("{path}?…"),
        None => url.to_owned(),
    }
}

/// What went wrong on the way, in words and without the URL (reqwest's text repeats it, with
/// its query).
pub(super) fn transport_error(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "no answer in time".to_owned();
    }
    if let Some(words) = crate::cause::io_words(err) {
        return format!("cannot connect: {words}");
    }
    let text = crate::cause::innermost(err).to_string();
    if err.is_connect() {
        format!("cannot connect: {text}")
    } else if err.is_builder() {
        format!("not a usable URL: {text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::samples::{pdu, pdu_refused};
    use crate::power::PduConfig;
    use std::time::Duration;

    #[test]
    fn reads_its_fields() {
        let http = pdu(&[
            "driver: http",
            "on: https://p/api?o={outlet}&a=on",
            "off: https://p/api?o={outlet}&a=off",
            "method: get",
            "username: u",
            "password: ${PDU_PW}",
            "expect_status: 204",
            "retries: 0",
            "cycle_delay_s: 0.5",
            "timeout_s: 5",
        ]);
        let Ok(PduConfig::Http(http)) = http else {
            panic!("{http:?}");
        };
        assert_eq!(http.off, "https://p/api?o={outlet}&a=off");
        assert_eq!((http.cycle, http.status), (None, None));
        assert_eq!((http.method, http.expect_status), (HttpMethod::Get, 204));
        assert_eq!(
            http.password.as_ref().map(Secret::expose),
            Some("pdu-secret")
        );
        let policy = PduPolicy {
            retries: 0,
            cycle_delay: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
        };
        assert_eq!(http.policy, policy);

        let http = pdu(&[
            "driver: http",
            "base_url: http://[fd00::1]:8080/",
            "status: http://p/all",
        ]);
        let Ok(PduConfig::Http(http)) = http else {
            panic!("{http:?}");
        };
        let cycle = "http://[fd00::1]:8080/outlets/{outlet}/cycle";
        assert_eq!(http.cycle.as_deref(), Some(cycle));
        assert_eq!(http.status.as_deref(), Some("http://p/all"));
    }

    #[test]
    fn rejects_bad_fields() {
        pdu_refused(&[
            (
                &["driver: http", "off: http://p/off"],
                "PDU p.lab: on: required field is missing",
            ),
            (
                &["driver: http", "base_url: ftp://p"],
                "base_url: must start with http://",
            ),
            (
                &["driver: http", "base_url: http://u:pw@p"],
                "base_url: must not carry credentials",
            ),
            (
                &["driver: http", "base_url: http://p:0"],
                "base_url: port `0` is not a number",
            ),
            (
                &["driver: http", "base_url: http://p", "on: http://p/{x}"],
                "on: unknown placeholder",
            ),
            (
                &["driver: http", "base_url: http://p", "password: x"],
                "password: needs a `username`",
            ),
            (
                &["driver: http", "base_url: http://p", "method: FETCH"],
                "`FETCH` is not one of: GET",
            ),
            (
                &["driver: http", "base_url: http://p", "hostname: x"],
                "not a field of the http driver",
            ),
        ]);
    }

    #[test]
    fn queries_are_hidden() {
        assert_eq!(
            for_people("http://plug/cm?cmnd=Power1%20On&user=u&password=p"),
            "http://plug/cm?…"
        );
        assert_eq!(
            for_people("http://pdu/outlets/1/on"),
            "http://pdu/outlets/1/on"
        );
    }
}
