//! The `http` driver: one URL template and method per action, optional basic auth, the
//! expected status code; `status` is a GET whose answer says on or off.

use super::{Step, excerpt, fill, parse_state};
use crate::api::PowerState;
use crate::lab::{HttpMethod, HttpPdu};
use reqwest::Method;

pub(super) async fn act(
    http: &reqwest::Client,
    pdu: &HttpPdu,
    outlet: u32,
    step: Step,
) -> Result<PowerState, String> {
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
