//! Typed HTTP client of leased: one method per endpoint, answers as `socv_api` types,
//! failures as [`Error`] variants that carry what was being done.

use crate::config::Config;
use crate::error::{Error, Result};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use socv_api::{
    self as api, BoardView, DaemonHealth, DrainRequest, ErrorBody, Lease, LeaseRequest,
    PoolWorkers, PowerAction, PowerResult, QueueTicket, RenewRequest, Run, RunLogs, RunQuery,
    RunStart, RunUpdate, TicketStatus, codes,
};
use std::time::Duration;

/// Major version of the API this socv speaks (from [`api::API_VERSION`]).
pub const OUR_API_MAJOR: u32 = {
    let bytes = api::API_VERSION.as_bytes();
    let mut i = 0;
    let mut major = 0u32;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        major = major * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    major
};

/// How long an ordinary request may take before the daemon counts as unreachable.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connecting is quick on a lab network; a daemon that does not accept within this is down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A power action answers when the PDU is done, after its retries (each up to the PDU's
/// `timeout_s`), so it may take much longer than an ordinary request.
pub const POWER_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Longest long poll the daemon honours.
pub const MAX_POLL_WAIT_S: u64 = 30;

/// Answer of `POST /api/v1/lease`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// 201: the board is yours.
    Granted(Lease),
    /// 202: you are in the queue; poll the ticket.
    Queued(QueueTicket),
}

/// A connection to one leased. Build it once per process; it keeps connections alive.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
}

impl Client {
    pub fn new(config: &Config) -> Result<Client> {
        let mut headers = HeaderMap::new();
        let holder = HeaderValue::from_str(&config.holder).map_err(|_| {
            Error::Usage(format!(
                "holder name '{}' cannot be sent in a header",
                config.holder
            ))
        })?;
        headers.insert(api::HOLDER_HEADER, holder);
        if let Some(token) = &config.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                Error::Usage("the API token cannot be sent in an HTTP header".to_owned())
            })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let ca = config
            .ca_cert
            .as_deref()
            .map(|path| {
                socv_http::tls::CaBundle::load(path, crate::config::CA_CERT_SETTING)
                    .map_err(|e| Error::Usage(e.to_string()))
            })
            .transpose()?;
        let mut builder = socv_http::tls::client_builder(ca.as_ref())
            .user_agent(concat!("socv/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT);
        // A proxy from the environment must never sit between socv and a daemon on this host.
        if is_loopback(&config.daemon) {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| Error::Usage(format!("cannot set up HTTP: {e}")))?;
        Ok(Client {
            http,
            base: config.daemon.clone(),
        })
    }

    /// The daemon's base URL as the user gave it, for messages.
    pub fn daemon_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `GET /api/v1/health`.
    pub async fn health(&self) -> Result<DaemonHealth> {
        let req = self.request(Method::GET, &["health"])?;
        self.json(req, "asking leased for its health").await
    }

    /// `GET /api/v1/boards[?family=F]`.
    pub async fn boards(&self, family: Option<&str>) -> Result<Vec<BoardView>> {
        let mut url = self.url(&["boards"])?;
        if let Some(family) = family {
            url.query_pairs_mut().append_pair("family", family);
        }
        let req = self.http.get(url);
        self.json(req, "listing boards").await
    }

    /// `GET /api/v1/workers`: the workers of leased's Prefect work pool, as Prefect sees them.
    pub async fn workers(&self) -> Result<PoolWorkers> {
        let req = self.request(Method::GET, &["workers"])?;
        self.json(req, "listing the work pool's workers").await
    }

    /// `POST /api/v1/lease`: a board now, or a place in the queue when `wait_s` > 0.
    pub async fn request_lease(&self, request: &LeaseRequest) -> Result<LeaseAnswer> {
        let doing = match (&request.board_id, &request.board_family) {
            (Some(board), _) => format!("asking for board {board}"),
            (None, Some(family)) => format!("asking for a {family} board"),
            (None, None) => "asking for a board".to_owned(),
        };
        let req = self.request(Method::POST, &["lease"])?.json(request);
        let (status, body) = self.execute(req, &doing).await?;
        if status == StatusCode::ACCEPTED {
            decode(&body, &doing).map(LeaseAnswer::Queued)
        } else {
            decode(&body, &doing).map(LeaseAnswer::Granted)
        }
    }

    /// `GET /api/v1/leases`: the active leases (console only on your own).
    pub async fn leases(&self) -> Result<Vec<Lease>> {
        let req = self.request(Method::GET, &["leases"])?;
        self.json(req, "listing leases").await
    }

    /// `GET /api/v1/lease/{id}`.
    pub async fn lease(&self, id: &str) -> Result<Lease> {
        let req = self.request(Method::GET, &["lease", id])?;
        self.json(req, &format!("reading lease {id}")).await
    }

    /// `POST /api/v1/lease/{id}/renew`; `ttl_s` `None` keeps the lease's own TTL.
    pub async fn renew(&self, id: &str, ttl_s: Option<u64>) -> Result<Lease> {
        let req = self
            .request(Method::POST, &["lease", id, "renew"])?
            .json(&RenewRequest { ttl_s });
        self.json(req, &format!("renewing lease {id}")).await
    }

    /// `DELETE /api/v1/lease/{id}`: the ended lease.
    pub async fn release(&self, id: &str) -> Result<Lease> {
        let req = self.request(Method::DELETE, &["lease", id])?;
        self.json(req, &format!("releasing lease {id}")).await
    }

    /// `GET /api/v1/queue/{ticket}?wait_s=N`: long poll, answers at the latest after `wait_s`.
    pub async fn poll_ticket(&self, ticket: &str, wait_s: u64) -> Result<TicketStatus> {
        let wait_s = wait_s.min(MAX_POLL_WAIT_S);
        let mut url = self.url(&["queue", ticket])?;
        url.query_pairs_mut()
            .append_pair("wait_s", &wait_s.to_string());
        let req = self
            .http
            .get(url)
            .timeout(Duration::from_secs(wait_s) + REQUEST_TIMEOUT);
        self.json(req, &format!("waiting in the queue (ticket {ticket})"))
            .await
    }

    /// `DELETE /api/v1/queue/{ticket}`: leave the queue (a grant not yet picked up is released).
    pub async fn leave_queue(&self, ticket: &str) -> Result<()> {
        let req = self.request(Method::DELETE, &["queue", ticket])?;
        self.execute(req, &format!("leaving the queue (ticket {ticket})"))
            .await
            .map(drop)
    }

    /// `POST /api/v1/boards/{id}/drain` (admin).
    pub async fn drain(&self, board: &str, reason: Option<String>) -> Result<BoardView> {
        let req = self
            .request(Method::POST, &["boards", board, "drain"])?
            .json(&DrainRequest { reason });
        self.json(req, &format!("draining board {board}")).await
    }

    /// `POST /api/v1/boards/{id}/undrain` (admin).
    pub async fn undrain(&self, board: &str) -> Result<BoardView> {
        let req = self.request(Method::POST, &["boards", board, "undrain"])?;
        self.json(req, &format!("undraining board {board}")).await
    }

    /// `POST /api/v1/boards/{id}/health`: a run's verdict on the board's infrastructure.
    pub async fn report_health(
        &self,
        board: &str,
        ok: bool,
        reason: Option<String>,
    ) -> Result<BoardView> {
        let req = self
            .request(Method::POST, &["boards", board, "health"])?
            .json(&socv_api::HealthReport { ok, reason });
        self.json(req, &format!("reporting the health of board {board}"))
            .await
    }

    /// `POST /api/v1/power/{board}/{action}`: answers once the PDU has done it.
    pub async fn power(&self, board: &str, action: PowerAction) -> Result<PowerResult> {
        let doing = match action {
            PowerAction::On => format!("switching {board} on"),
            PowerAction::Off => format!("switching {board} off"),
            PowerAction::Cycle => format!("power-cycling {board}"),
            PowerAction::Status => format!("reading the power state of {board}"),
        };
        let req = self
            .request(Method::POST, &["power", board, &action.to_string()])?
            .timeout(POWER_TIMEOUT);
        self.json(req, &doing).await
    }

    /// `POST /api/v1/runs`: records the start of a run (answers the recorded run when its `id`
    /// was posted before, so a retry records it once).
    pub async fn start_run(&self, start: &RunStart) -> Result<Run> {
        let doing = match &start.id {
            Some(id) => format!("recording the start of run {id}"),
            None => format!("recording the start of a run on {}", start.board_id),
        };
        let req = self.request(Method::POST, &["runs"])?.json(start);
        self.json(req, &doing).await
    }

    /// `PATCH /api/v1/runs/{id}`: the run moved on (Running, or its end with the result).
    pub async fn update_run(&self, id: &str, update: &RunUpdate) -> Result<Run> {
        let req = self.request(Method::PATCH, &["runs", id])?.json(update);
        self.json(req, &format!("recording run {id} as {}", update.state))
            .await
    }

    /// `POST /api/v1/runs/{id}/logs`: console lines of a run, in order.
    pub async fn run_logs(&self, id: &str, logs: &RunLogs) -> Result<()> {
        let req = self
            .request(Method::POST, &["runs", id, "logs"])?
            .json(logs);
        self.execute(req, &format!("recording the console of run {id}"))
            .await
            .map(drop)
    }

    /// `GET /api/v1/runs?…`: recorded runs matching every filter, newest first.
    pub async fn runs(&self, query: &RunQuery) -> Result<Vec<Run>> {
        let mut url = self.url(&["runs"])?;
        {
            let mut pairs = url.query_pairs_mut();
            let text = [
                ("board", query.board.as_deref()),
                ("family", query.family.as_deref()),
                ("holder", query.holder.as_deref()),
                ("state", query.state.map(|s| s.as_str())),
            ];
            for (key, value) in text {
                if let Some(value) = value {
                    pairs.append_pair(key, value);
                }
            }
            if let Some(since) = query.since_ms {
                pairs.append_pair("since_ms", &since.to_string());
            }
            if let Some(limit) = query.limit {
                pairs.append_pair("limit", &limit.to_string());
            }
        }
        // An empty query would leave a bare `?`.
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.json(self.http.get(url), "reading the run history")
            .await
    }

    /// `GET /api/v1/runs/{id}`.
    pub async fn run(&self, id: &str) -> Result<Run> {
        let req = self.request(Method::GET, &["runs", id])?;
        self.json(req, &format!("reading run {id}")).await
    }

    /// `GET /metrics`: Prometheus text.
    pub async fn metrics(&self) -> Result<String> {
        let url = self.url_from_root(&["metrics"])?;
        let doing = "reading leased's metrics";
        let (_, body) = self.execute(self.http.get(url), doing).await?;
        String::from_utf8(body).map_err(|e| Error::BadAnswer {
            doing: doing.to_owned(),
            message: e.to_string(),
        })
    }

    fn request(&self, method: Method, segments: &[&str]) -> Result<RequestBuilder> {
        Ok(self.http.request(method, self.url(segments)?))
    }

    /// `{base}/api/v1/{segments…}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut all = vec!["api", "v1"];
        all.extend_from_slice(segments);
        self.url_from_root(&all)
    }

    fn url_from_root(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.base.clone();
        match url.path_segments_mut() {
            Ok(mut path) => {
                path.pop_if_empty().extend(segments);
            }
            Err(()) => {
                return Err(Error::Usage(format!(
                    "'{}' cannot be a daemon URL",
                    self.base
                )));
            }
        }
        Ok(url)
    }

    async fn json<T: DeserializeOwned>(&self, req: RequestBuilder, doing: &str) -> Result<T> {
        let (_, body) = self.execute(req, doing).await?;
        decode(&body, doing)
    }

    /// Sends, checks that a socv daemon of our major version answered, and turns error answers
    /// into [`Error`]s; returns the status and body of a successful answer.
    async fn execute(&self, req: RequestBuilder, doing: &str) -> Result<(StatusCode, Vec<u8>)> {
        tracing::debug!(doing, "request to leased");
        let response = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        check_api_version(response.headers(), self.daemon_url(), doing)?;
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?
            .to_vec();
        if status.is_success() {
            Ok((status, body))
        } else {
            Err(api_error(doing, status, &body))
        }
    }

    fn transport_error(&self, err: &reqwest::Error) -> Error {
        let failure = socv_http::tls::Failure::of(err);
        if failure.is_tls() {
            return Error::Tls {
                url: self.daemon_url().to_owned(),
                fix: failure
                    .fix(crate::config::CA_CERT_SETTING)
                    .unwrap_or_else(|| "check the daemon's certificate".to_owned()),
                problem: failure.to_string(),
            };
        }
        let reason = match failure {
            socv_http::tls::Failure::Timeout => "no answer in time".to_owned(),
            _ => root_cause(err),
        };
        Error::Unreachable {
            url: self.daemon_url().to_owned(),
            reason,
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    url.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// The innermost cause, worded for people ("connection refused", not "os error 111").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    if let Some(words) = socv_http::cause::io_words(err) {
        return words.to_owned();
    }
    let text = socv_http::cause::innermost(err).to_string();
    if text.is_empty() {
        err.to_string()
    } else {
        text
    }
}

/// Refuses answers without the version header (not leased) or of another major version.
pub fn check_api_version(headers: &HeaderMap, url: &str, doing: &str) -> Result<()> {
    let not_a_daemon = || Error::NotADaemon {
        url: url.to_owned(),
        doing: doing.to_owned(),
    };
    let version = headers
        .get(api::API_VERSION_HEADER)
        .ok_or_else(not_a_daemon)?
        .to_str()
        .map_err(|_| not_a_daemon())?;
    let major = api::api_major(version).ok_or_else(not_a_daemon)?;
    if major != OUR_API_MAJOR {
        return Err(Error::ApiVersion {
            url: url.to_owned(),
            daemon_major: major,
        });
    }
    Ok(())
}

/// Turns an error answer into the [`Error`] that says what it means for the user.
pub fn api_error(doing: &str, status: StatusCode, body: &[u8]) -> Error {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_default();
    let message = if detail.message.is_empty() {
        let text = String::from_utf8_lossy(body).trim().to_owned();
        if text.is_empty() || text.len() > 200 {
            status.canonical_reason().unwrap_or("error").to_lowercase()
        } else {
            text
        }
    } else {
        detail.message
    };
    let code = detail.code.as_str();
    let doing = doing.to_owned();
    match (status, code) {
        (_, codes::NO_BOARD_AVAILABLE) => Error::NoBoard {
            message: format!("{doing}: {message}"),
            none_healthy: false,
        },
        (_, codes::NO_HEALTHY_BOARD) => Error::NoBoard {
            message: format!("{doing}: {message}"),
            none_healthy: true,
        },
        (_, codes::STORE_UNAVAILABLE) => Error::StoreUnavailable { doing, message },
        (_, codes::PDU_FAILED | codes::NO_PDU) => Error::Power { doing, message },
        (_, codes::LEASE_ENDED) | (StatusCode::GONE, _) => Error::LeaseEnded { doing, message },
        (_, codes::UNAUTHORIZED) | (StatusCode::UNAUTHORIZED, _) => Error::PermissionDenied {
            doing,
            message: format!("{message} (set SOCV_TOKEN or `token` in the config file)"),
        },
        (_, codes::FORBIDDEN) | (StatusCode::FORBIDDEN, _) => {
            Error::PermissionDenied { doing, message }
        }
        // Not a missing thing but a daemon without Prefect: said as leased says it.
        (_, codes::NO_PREFECT) => Error::Daemon {
            doing,
            status: status.as_u16(),
            code: detail.code,
            message,
        },
        (_, codes::NOT_FOUND) | (StatusCode::NOT_FOUND, _) => {
            Error::NotFound(format!("{doing}: {message}"))
        }
        _ => Error::Daemon {
            doing,
            status: status.as_u16(),
            code: detail.code,
            message,
        },
    }
}

fn decode<T: DeserializeOwned>(body: &[u8], doing: &str) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::BadAnswer {
        doing: doing.to_owned(),
        message: e.to_string(),
    })
}

/// Serializes for `--json` output; kept here so every command prints wire types the same way.
pub fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::BadAnswer {
        doing: "printing JSON".to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_codes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn config(url: &str) -> Config {
        Config {
            daemon: crate::config::parse_daemon_url(url).unwrap(),
            token: Some("t0k".into()),
            holder: "ann@host".into(),
            ca_cert: None,
        }
    }

    #[test]
    fn our_major_matches_the_api() {
        assert_eq!(Some(OUR_API_MAJOR), api::api_major(api::API_VERSION));
    }

    #[test]
    fn error_answers_map_to_exit_codes() {
        let body = |code: &str| format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#);
        let cases = [
            (503, codes::NO_BOARD_AVAILABLE, exit_codes::NO_BOARD),
            (503, codes::NO_HEALTHY_BOARD, exit_codes::NO_BOARD),
            (
                503,
                codes::STORE_UNAVAILABLE,
                exit_codes::DAEMON_UNAVAILABLE,
            ),
            (404, codes::NOT_FOUND, exit_codes::NOT_FOUND),
            (410, codes::LEASE_ENDED, exit_codes::NOT_FOUND),
            (403, codes::FORBIDDEN, exit_codes::PERMISSION_DENIED),
            (401, codes::UNAUTHORIZED, exit_codes::PERMISSION_DENIED),
            (400, codes::BAD_REQUEST, exit_codes::FAILURE),
            (502, codes::PDU_FAILED, exit_codes::FAILURE),
            (400, codes::NO_PDU, exit_codes::FAILURE),
            (500, codes::INTERNAL, exit_codes::FAILURE),
        ];
        for (status, code, exit) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            let err = api_error("doing it", status, body(code).as_bytes());
            assert_eq!(err.exit_code(), exit, "{status} {code}: {err}");
            assert!(err.to_string().contains("doing it"), "{err}");
        }
        // Without a JSON body the status still decides, and the text is kept when short.
        let err = api_error("reading lease x", StatusCode::NOT_FOUND, b"no such thing");
        assert_eq!(err.exit_code(), exit_codes::NOT_FOUND);
        assert_eq!(err.to_string(), "reading lease x: no such thing");
        let err = api_error("x", StatusCode::BAD_GATEWAY, b"");
        assert_eq!(err.to_string(), "x: leased answered 502: bad gateway");
    }

    #[test]
    fn version_header_is_required_and_checked() {
        let mut headers = HeaderMap::new();
        let err = check_api_version(&headers, "http://h:1", "listing boards").unwrap_err();
        assert!(matches!(err, Error::NotADaemon { .. }));
        assert_eq!(err.exit_code(), exit_codes::DAEMON_UNAVAILABLE);
        headers.insert(api::API_VERSION_HEADER, HeaderValue::from_static("2.3"));
        let err = check_api_version(&headers, "http://h:1", "listing boards").unwrap_err();
        assert!(
            err.to_string()
                .contains("speaks API 2.x, this socv speaks 1.x"),
            "{err}"
        );
        assert_eq!(err.exit_code(), exit_codes::FAILURE);
        headers.insert(api::API_VERSION_HEADER, HeaderValue::from_static("1.7"));
        check_api_version(&headers, "http://h:1", "listing boards").unwrap();
    }

    #[test]
    fn urls_are_built_under_the_base_and_encoded() {
        let client = Client::new(&config("http://h:1/socv")).unwrap();
        assert_eq!(
            client.url(&["lease", "a b/c"]).unwrap().as_str(),
            "http://h:1/socv/api/v1/lease/a%20b%2Fc"
        );
        let client = Client::new(&config("http://h:1/")).unwrap();
        assert_eq!(
            client.url(&["boards"]).unwrap().as_str(),
            "http://h:1/api/v1/boards"
        );
        assert_eq!(client.daemon_url(), "http://h:1");
    }

    /// Serves one canned HTTP 200 answer and hands back the request it got.
    async fn serve_once(headers: &str, body: &str) -> (String, tokio::task::JoinHandle<String>) {
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{headers}\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            stream.write_all(response.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
            String::from_utf8_lossy(&request).into_owned()
        });
        (url, task)
    }

    #[tokio::test]
    async fn sends_holder_and_token_and_reads_boards() {
        let (url, server) = serve_once(
            "x-socv-api-version: 1.0\r\n",
            r#"[{"id":"soc-a-001","family":"socA"}]"#,
        )
        .await;
        let client = Client::new(&config(&url)).unwrap();
        let boards = client.boards(Some("socA")).await.unwrap();
        assert_eq!(boards[0].id, "soc-a-001");
        let request = server.await.unwrap().to_ascii_lowercase();
        assert!(
            request.starts_with("get /api/v1/boards?family=soca "),
            "{request}"
        );
        assert!(request.contains("x-socv-holder: ann@host"), "{request}");
        assert!(request.contains("authorization: bearer t0k"), "{request}");
    }

    #[tokio::test]
    async fn run_history_queries_carry_only_the_filters_given() {
        let (url, server) = serve_once("x-socv-api-version: 1.0\r\n", "[]").await;
        let client = Client::new(&config(&url)).unwrap();
        let query = RunQuery {
            board: Some("soc-a-001".into()),
            state: Some(api::RunState::TimedOut),
            since_ms: Some(1_700_000_000_000),
            limit: Some(5),
            ..RunQuery::default()
        };
        assert!(client.runs(&query).await.unwrap().is_empty());
        let request = server.await.unwrap();
        assert!(
            request.starts_with(
                "GET /api/v1/runs?board=soc-a-001&state=timed_out&since_ms=1700000000000&limit=5 "
            ),
            "{request}"
        );
        let (url, server) = serve_once("x-socv-api-version: 1.0\r\n", "[]").await;
        let client = Client::new(&config(&url)).unwrap();
        client.runs(&RunQuery::default()).await.unwrap();
        let request = server.await.unwrap();
        assert!(request.starts_with("GET /api/v1/runs HTTP"), "{request}");
    }

    #[tokio::test]
    async fn an_answer_without_the_version_header_is_not_a_daemon() {
        let (url, _server) = serve_once("", "[]").await;
        let client = Client::new(&config(&url)).unwrap();
        let err = client.boards(None).await.unwrap_err();
        assert_eq!(err.exit_code(), exit_codes::DAEMON_UNAVAILABLE, "{err}");
        assert!(err.to_string().contains("is not a socv daemon"), "{err}");
    }

    #[tokio::test]
    async fn a_refused_connection_says_how_to_fix_it() {
        // Bind then drop: nothing listens on that port any more.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let client = Client::new(&config(&url)).unwrap();
        let err = client.health().await.unwrap_err();
        assert_eq!(err.exit_code(), exit_codes::DAEMON_UNAVAILABLE);
        assert_eq!(
            err.to_string(),
            format!(
                "cannot reach leased at {url}: connection refused \
                 (is it running? set --daemon or SOCV_DAEMON)"
            )
        );
    }
}
