//! Keeping a board: the one renewal loop behind `socv lease --hold` and every run, renewing at
//! a third of the lease's TTL and riding out a daemon that does not answer for a moment.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::output;
use socv_api::Lease;
use std::time::Duration;
use tokio::time::sleep;

/// Renewal attempts before the loop gives up on a daemon that does not answer.
const RENEW_ATTEMPTS: u32 = 3;
const RENEW_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// How long to sleep before the next renewal: a third of the lease's TTL.
pub fn renew_interval(lease: &Lease, now_ms: u64) -> Duration {
    let ttl = if lease.ttl_s > 0 {
        Duration::from_secs(lease.ttl_s)
    } else {
        Duration::from_millis(lease.expires_at_ms.saturating_sub(now_ms))
    };
    (ttl / 3).max(Duration::from_secs(1))
}

/// Renews `lease` for as long as the caller polls it (drop the future to stop); ends only when
/// a renewal fails for good, with [`Error::RenewalFailed`], which says what that means in time.
pub async fn keep_renewed(client: &Client, mut lease: Lease) -> Error {
    loop {
        sleep(renew_interval(&lease, output::now_ms())).await;
        match renew(client, &lease).await {
            Ok(renewed) => {
                tracing::debug!(lease = %renewed.id, expires_at_ms = renewed.expires_at_ms, "renewed");
                lease = Lease {
                    // The daemon may leave the console out of a renewal answer.
                    console: renewed.console.clone().or(lease.console),
                    ..renewed
                };
            }
            Err(err) => {
                return Error::RenewalFailed {
                    lease: lease.id.clone(),
                    board: lease.board_id.clone(),
                    expiry: expiry(&lease, output::now_ms()),
                    source: Box::new(err),
                };
            }
        }
    }
}

/// What a failed renewal means in time, for the loud message.
fn expiry(lease: &Lease, now_ms: u64) -> String {
    if lease.expires_at_ms > now_ms {
        format!(
            "the lease ends {}, then the board may go to someone else",
            output::relative(lease.expires_at_ms, now_ms)
        )
    } else {
        "the lease has expired and the board may already be someone else's".to_owned()
    }
}

/// Renews, retrying a daemon that does not answer a few times; a definite "no" is final.
async fn renew(client: &Client, lease: &Lease) -> Result<Lease> {
    let mut attempt = 1;
    loop {
        match client.renew(&lease.id, None).await {
            Ok(renewed) => return Ok(renewed),
            // Retry a daemon that does not answer, while the lease still outlives the pause.
            Err(e)
                if e.is_transient()
                    && attempt < RENEW_ATTEMPTS
                    && output::now_ms() + (RENEW_RETRY_PAUSE.as_millis() as u64)
                        < lease.expires_at_ms =>
            {
                eprintln!("socv: warning: {e}; trying again");
                attempt += 1;
                sleep(RENEW_RETRY_PAUSE).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_runs_at_a_third_of_the_ttl() {
        let lease = Lease {
            ttl_s: 1800,
            ..Lease::default()
        };
        assert_eq!(renew_interval(&lease, 0), Duration::from_secs(600));
        let lease = Lease {
            ttl_s: 0,
            expires_at_ms: 90_000,
            ..Lease::default()
        };
        assert_eq!(renew_interval(&lease, 0), Duration::from_secs(30));
        let lease = Lease {
            ttl_s: 1,
            ..Lease::default()
        };
        assert_eq!(renew_interval(&lease, 0), Duration::from_secs(1));
    }
}
