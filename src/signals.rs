//! The signals that end a socv command early (Ctrl-C, SIGTERM, SIGHUP), as one awaitable.
//!
//! Installing them replaces the default "die at once", so a command that holds something (a
//! queue ticket, a lease) gets the chance to give it back first.

use crate::error::{Error, Result};

/// The stop signals of this process, registered from [`Signals::install`] on.
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    streams: [(tokio::signal::unix::Signal, &'static str); 3],
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
                streams: [
                    register(SignalKind::interrupt(), "Ctrl-C")?,
                    register(SignalKind::terminate(), "SIGTERM")?,
                    register(SignalKind::hangup(), "SIGHUP")?,
                ],
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// Waits for the next stop signal and names it.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            let [(int, int_name), (term, term_name), (hup, hup_name)] = &mut self.streams;
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
