//! Where Prefect is and how to sign in to it.

/// The Prefect server that receives run history.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PrefectConfig {
    /// Its REST API, such as `https://prefect.lab/api` (`PREFECT_API_URL`).
    pub api_url: String,
    /// `user:password` for a server started with `PREFECT_SERVER_API_AUTH_STRING`
    /// (`PREFECT_API_AUTH_STRING`), sent as basic auth.
    pub auth: Option<String>,
    /// An API key (`PREFECT_API_KEY`), sent as `Authorization: Bearer …` as Prefect Cloud and
    /// Prefect's own clients do.
    pub api_key: Option<String>,
    /// Where people open its UI, when not the API URL without `/api`.
    pub ui_url: Option<String>,
}

impl std::fmt::Debug for PrefectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials, nor a URL's userinfo.
        f.debug_struct("PrefectConfig")
            .field("api_url", &socv_http::tls::origin(&self.api_url))
            .field("auth", &self.auth.as_ref().map(|_| "…"))
            .field("api_key", &self.api_key.as_ref().map(|_| "…"))
            .field("ui_url", &self.ui_url)
            .finish()
    }
}

impl PrefectConfig {
    /// The base of the UI's links: `ui_url`, else the API URL without its `/api`; never with
    /// credentials (the links go to people, Slack and Feishu).
    pub fn ui_base(&self) -> String {
        let base = match &self.ui_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let api = self.api_url.trim_end_matches('/');
                api.strip_suffix("/api").unwrap_or(api).to_string()
            }
        };
        match reqwest::Url::parse(&base) {
            Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.as_str().trim_end_matches('/').to_string()
            }
            _ => base,
        }
    }

    /// The page of a flow run in the UI.
    pub fn flow_run_url(&self, flow_run_id: &str) -> String {
        format!("{}/runs/flow-run/{flow_run_id}", self.ui_base())
    }
}
