//! Who is calling: API tokens (user and admin roles) or, without tokens, the loopback caller's
//! claimed name.

use crate::api::HOLDER_HEADER;
use anyhow::{Context, bail};
use axum::http::HeaderMap;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// May take, renew and release its own leases.
    User,
    /// May also act on anyone's lease, drain and undrain.
    Admin,
    /// No tokens configured (loopback only): leases belong to the claimed name, and board
    /// administration is open, since whoever reaches the loopback port can restart the daemon.
    Local,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Local => "local",
        }
    }
}

/// An identified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// May act on a lease or ticket held by `holder`.
    pub fn may_act_for(&self, holder: &str) -> bool {
        self.role == Role::Admin || self.name == holder
    }

    /// May drain and undrain boards.
    pub fn may_administer(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Local)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    token: String,
    #[serde(default = "default_role")]
    role: String,
}

fn default_role() -> String {
    "user".into()
}

/// Why a request could not be authenticated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("this daemon needs an API token: set SOCV_TOKEN (Authorization: Bearer …)")]
    Missing,
    #[error("the API token is not valid")]
    Invalid,
}

/// The daemon's authentication policy.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// token → caller; empty: no tokens (loopback only).
    tokens: HashMap<String, Caller>,
}

impl Auth {
    /// No tokens: every caller is `Local` under its claimed name.
    pub fn open() -> Auth {
        Auth::default()
    }

    pub fn load(path: &Path) -> anyhow::Result<Auth> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading tokens file {}", path.display()))?;
        Auth::parse(&text).with_context(|| format!("tokens file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Auth> {
        let file: TokensFile = toml::from_str(text)?;
        if file.tokens.is_empty() {
            bail!("no [[tokens]] entries");
        }
        let mut tokens = HashMap::new();
        for (i, t) in file.tokens.into_iter().enumerate() {
            let role = match t.role.as_str() {
                "user" => Role::User,
                "admin" => Role::Admin,
                other => bail!(
                    "tokens[{i}] ({}): role '{other}' is neither 'user' nor 'admin'",
                    t.name
                ),
            };
            if t.name.trim().is_empty() {
                bail!("tokens[{i}]: empty name");
            }
            if t.token.len() < 16 {
                bail!(
                    "tokens[{i}] ({}): token is shorter than 16 characters",
                    t.name
                );
            }
            let caller = Caller { name: t.name, role };
            if tokens.insert(t.token, caller.clone()).is_some() {
                bail!(
                    "tokens[{i}] ({}): the same token is listed twice",
                    caller.name
                );
            }
        }
        Ok(Auth { tokens })
    }

    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Identifies the caller of a request.
    pub fn identify(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        if !self.enabled() {
            let name = headers
                .get(HOLDER_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 128)
                .unwrap_or("anonymous");
            return Ok(Caller {
                name: name.to_string(),
                role: Role::Local,
            });
        }
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(AuthError::Invalid)?;
        // Compare every token in constant time so timing does not reveal a prefix.
        self.tokens
            .iter()
            .find(|(t, _)| constant_time_eq(t.as_bytes(), token.as_bytes()))
            .map(|(_, c)| c.clone())
            .ok_or(AuthError::Invalid)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const FILE: &str = r#"
[[tokens]]
name = "alice"
token = "alice-token-0123456789"

[[tokens]]
name = "root"
token = "admin-token-0123456789"
role = "admin"
"#;

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
        h
    }

    #[test]
    fn tokens_identify_callers_and_roles() {
        let auth = Auth::parse(FILE).unwrap();
        let alice = auth.identify(&bearer("alice-token-0123456789")).unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.role, Role::User);
        assert!(alice.may_act_for("alice") && !alice.may_act_for("bob"));
        assert!(!alice.may_administer());
        let root = auth.identify(&bearer("admin-token-0123456789")).unwrap();
        assert!(root.may_act_for("bob") && root.may_administer());
        assert_eq!(auth.identify(&bearer("nope")), Err(AuthError::Invalid));
        assert_eq!(auth.identify(&HeaderMap::new()), Err(AuthError::Missing));
    }

    #[test]
    fn without_tokens_the_claimed_name_holds() {
        let auth = Auth::open();
        let mut h = HeaderMap::new();
        h.insert(HOLDER_HEADER, HeaderValue::from_static("bob@host"));
        let c = auth.identify(&h).unwrap();
        assert_eq!(c.name, "bob@host");
        assert!(!c.may_act_for("alice@host"));
        assert!(c.may_administer());
    }

    #[test]
    fn bad_token_files_are_rejected() {
        for (text, needle) in [
            ("[[tokens]]\nname='a'\ntoken='short'\n", "shorter than 16"),
            (
                "[[tokens]]\nname='a'\ntoken='0123456789abcdef'\nrole='root'\n",
                "role 'root'",
            ),
            ("[[tokens]]\nname='a'\ntokn='x'\n", "tokn"),
            ("", "no [[tokens]]"),
        ] {
            let err = format!("{:#}", Auth::parse(text).unwrap_err());
            assert!(err.contains(needle), "{err}");
        }
    }
}
