//! The signals that end a socv command early (Ctrl-C, SIGTERM, SIGHUP), as one awaitable.
//!
//! Installing them replaces the default "die at once", so a command that holds something (a
//! queue ticket, a lease) gets the chance to give it back first.

use crate::error::{Error, Result};
use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

/// The stop signals of this process, registered from [`Signals::install`] on; or, for one run
/// of many (`socv batch`), a [`Stop`] shared by all of them.
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    streams: Option<[(tokio::signal::unix::Signal, &'static str); 3]>,
    stop: Option<Stop>,
}

/// A stop shared by many runs: the command that owns the real signals calls [`Stop::stop`], and
/// every run holding a clone gives back what it holds.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    by: Arc<OnceLock<&'static str>>,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Stops every run; `by` names the signal, for their messages.
    pub fn stop(&self, by: &'static str) {
        let _ = self.by.set(by);
        self.token.cancel();
    }

    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Waits for the stop and names what caused it.
    pub async fn stopped(&self) -> &'static str {
        self.token.cancelled().await;
        self.by.get().copied().unwrap_or("a stop")
    }
}

impl Signals {
    /// Registers for SIGINT, SIGTERM and SIGHUP. Needs a tokio runtime with signals enabled.
    pub fn install() -> Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let register = |kind: SignalKind, name: &'static str| {
                signal(kind)
                    .map(|s| (s, name))
                    .map_err(|e| Error::io(format!("listening for {name}"), e))
            };
            Ok(Signals {
                streams: Some([
                    register(SignalKind::interrupt(), "Ctrl-C")?,
                    register(SignalKind::terminate(), "SIGTERM")?,
                    register(SignalKind::hangup(), "SIGHUP")?,
                ]),
                stop: None,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals { stop: None })
        }
    }

    /// Stops that come from `stop` instead of the process's signals.
    pub fn following(stop: Stop) -> Signals {
        Signals {
            #[cfg(unix)]
            streams: None,
            stop: Some(stop),
        }
    }

    /// Waits for the next stop signal and names it.
    pub async fn recv(&mut self) -> &'static str {
        if let Some(stop) = &self.stop {
            return stop.stopped().await;
        }
        #[cfg(unix)]
        {
            let Some([(int, int_name), (term, term_name), (hup, hup_name)]) = &mut self.streams
            else {
                return std::future::pending().await;
            };
            tokio::select! {
                Some(()) = int.recv() => int_name,
                Some(()) = term.recv() => term_name,
                Some(()) = hup.recv() => hup_name,
                else => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "Ctrl-C",
                Err(_) => std::future::pending().await,
            }
        }
    }
}
