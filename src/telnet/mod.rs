//! Telnet (RFC 854) as board consoles speak it: the byte core, the option table and socv's codec.
//!
//! The crates that exist for telnet lose data after an escaped 0xFF or panic on input split
//! across reads (measured, `docs/reference/telnet.md` §6), so the protocol is ours. `wire` reads
//! and writes the byte stream and `options` keeps the RFC 1143 state of every option; both
//! ends use them. [`TelnetCodec`] is socv's end: it turns the server's bytes into plain data
//! and queues the answers to its option negotiation for the caller to write, with the policy
//! that works against busybox telnetd, ser2net and inetutils telnetd.

mod codec;
pub(crate) mod options;
pub(crate) mod wire;

pub use codec::{TelnetCodec, TelnetConfig, TelnetError};

/// Interpret As Command: starts every telnet command; doubled in data.
pub const IAC: u8 = 255;
/// `IAC DONT opt`: please stop doing `opt` (or: do not start).
pub const DONT: u8 = 254;
/// `IAC DO opt`: please do `opt`.
pub const DO: u8 = 253;
/// `IAC WONT opt`: I will not (or will no longer) do `opt`.
pub const WONT: u8 = 252;
/// `IAC WILL opt`: I will do `opt`.
pub const WILL: u8 = 251;
/// Starts a subnegotiation: `IAC SB opt payload IAC SE`.
pub const SB: u8 = 250;
/// Are You There: the peer wants a sign of life.
pub const AYT: u8 = 246;
/// Interrupt Process: a server passes it on as the tty's interrupt character.
pub const IP: u8 = 244;
/// Ends a subnegotiation.
pub const SE: u8 = 240;

/// The telnet options socv and the simulated board know by name; every other one is refused.
pub mod option {
    /// RFC 856: 8-bit data without the CR NUL / CR LF rules (per direction).
    pub const BINARY: u8 = 0;
    /// RFC 857: the side that WILLs it echoes what it receives.
    pub const ECHO: u8 = 1;
    /// RFC 858: suppress go-ahead.
    pub const SGA: u8 = 3;
    /// RFC 1091: terminal type, asked with `SB TTYPE SEND`.
    pub const TTYPE: u8 = 24;
    /// RFC 1073: negotiate about window size.
    pub const NAWS: u8 = 31;
    /// RFC 2217: serial port control (ser2net asks for it; socv refuses).
    pub const COM_PORT: u8 = 44;
}
