//! [`TelnetCodec`]: a `tokio_util::codec` decoder and encoder for the telnet byte stream, with
//! RFC 1143 option negotiation whose answers are queued for the caller to send.

use super::{DO, DONT, IAC, SB, SE, WILL, WONT, option};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// What socv tells the server about its terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelnetConfig {
    /// Answer to `SB TTYPE SEND`; `DUMB` keeps the board from sending escape sequences.
    pub terminal_type: String,
    /// NAWS width and height. Neither may contain a 0xFF byte or be 0: busybox telnetd
    /// injects garbage into the login input for 65535 and inetutils breaks `stty size` for 0
    /// (telnet.md §2.4). A wide line keeps busybox from wrapping long command lines.
    pub window: (u16, u16),
    /// Longest subnegotiation payload kept; a longer one is discarded with an error rather
    /// than buffered without bound (a server whose `SB` never ends).
    pub max_subnegotiation: usize,
}

impl Default for TelnetConfig {
    fn default() -> Self {
        TelnetConfig {
            terminal_type: "DUMB".to_owned(),
            window: (4000, 1000),
            max_subnegotiation: 4096,
        }
    }
}

/// What can go wrong while decoding the server's bytes.
#[derive(Debug, thiserror::Error)]
pub enum TelnetError {
    /// The rest of that subnegotiation is skipped; decoding can go on.
    #[error(
        "the server sent a telnet subnegotiation for option {option} longer than {limit} bytes \
         (discarded)"
    )]
    SubnegotiationTooLong { option: u8, limit: usize },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// One side of an option, as RFC 1143 ("the Q method") keeps it. socv never asks for a change,
/// it only answers, so the method's WANTNO/WANTYES states and queue bit never arise; what is
/// left of it is the rule that prevents loops: answer only a request that changes the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Q {
    #[default]
    No,
    Yes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct OptionState {
    /// Whether we do it (changed by DO/DONT, answered with WILL/WONT).
    us: Q,
    /// Whether the server does it (changed by WILL/WONT, answered with DO/DONT).
    him: Q,
}

/// Where the decoder stands in the byte stream; kept across `decode` calls because any
/// sequence can be split across reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    /// After an IAC in data.
    Iac,
    /// After `IAC WILL|WONT|DO|DONT`, waiting for the option byte.
    Verb(u8),
    /// After `IAC SB`, waiting for the option byte.
    SbOption,
    /// Inside `IAC SB opt …`.
    Sb(u8),
    /// After an IAC inside a subnegotiation.
    SbIac(u8),
}

/// The telnet codec of a board session.
///
/// Decoding yields the server's data in chunks as they arrive (prompts have no newline, so
/// nothing waits for one), with `IAC IAC` unescaped and, until the server agrees to BINARY,
/// NUL bytes dropped (NVT rule: `CR NUL` is a bare CR; inetutils also sends stray NULs). `CR LF`
/// is left as it is. Commands (`NOP`, `GA`, `DM`, …) are swallowed and subnegotiations are
/// skipped, except `TTYPE SEND`, which is answered.
///
/// Every `DO`/`WILL` is answered: the server's ECHO, SGA and BINARY are accepted, and our SGA,
/// BINARY, NAWS and TTYPE; everything else (COM-PORT-OPTION 44 included) is refused. The
/// answers collect in a queue that the owner of the connection writes after each decode
/// ([`TelnetCodec::take_replies`]). No state is ever acknowledged twice, so a server that
/// repeats itself (ser2net sends `DO SGA` twice) gets no loop.
///
/// Encoding doubles 0xFF and, until we agree to BINARY, sends a CR that is not followed by LF
/// as `CR NUL`. socv ends its lines with a bare `\n`, the one terminator that works on every
/// server (telnet.md §2.3).
#[derive(Debug)]
pub struct TelnetCodec {
    config: TelnetConfig,
    state: State,
    options: Box<[OptionState; 256]>,
    /// Data decoded but not yet returned (kept when an error interrupts a decode).
    data: BytesMut,
    /// Payload of the subnegotiation being read.
    sb: BytesMut,
    /// The current subnegotiation is too long and is being skipped up to its `IAC SE`.
    sb_discarding: bool,
    replies: BytesMut,
    /// The last data byte encoded was a CR whose NUL is owed unless an LF comes next.
    encoded_cr: bool,
}

impl Default for TelnetCodec {
    fn default() -> Self {
        TelnetCodec::new(TelnetConfig::default())
    }
}

impl TelnetCodec {
    pub fn new(config: TelnetConfig) -> Self {
        TelnetCodec {
            config,
            state: State::Data,
            options: Box::new([OptionState::default(); 256]),
            data: BytesMut::new(),
            sb: BytesMut::new(),
            sb_discarding: false,
            replies: BytesMut::new(),
            encoded_cr: false,
        }
    }

    /// The negotiation answers owed to the server (already encoded), emptying the queue.
    pub fn take_replies(&mut self) -> Bytes {
        self.replies.split().freeze()
    }

    /// Whether the server has agreed to do `option` (e.g. [`option::ECHO`]).
    pub fn remote_enabled(&self, option: u8) -> bool {
        self.options[usize::from(option)].him == Q::Yes
    }

    /// Whether we have agreed to do `option` (e.g. [`option::NAWS`]).
    pub fn local_enabled(&self, option: u8) -> bool {
        self.options[usize::from(option)].us == Q::Yes
    }

    fn accept_remote(option: u8) -> bool {
        matches!(option, option::ECHO | option::SGA | option::BINARY)
    }

    fn accept_local(option: u8) -> bool {
        matches!(
            option,
            option::SGA | option::BINARY | option::NAWS | option::TTYPE
        )
    }

    fn reply(&mut self, verb: u8, option: u8) {
        self.replies.put_slice(&[IAC, verb, option]);
    }

    fn reply_subnegotiation(&mut self, option: u8, payload: &[u8]) {
        self.replies.put_slice(&[IAC, SB, option]);
        put_escaped(&mut self.replies, payload);
        self.replies.put_slice(&[IAC, SE]);
    }

    fn send_naws(&mut self) {
        let (w, h) = self.config.window;
        let mut payload = [0u8; 4];
        payload[..2].copy_from_slice(&w.to_be_bytes());
        payload[2..].copy_from_slice(&h.to_be_bytes());
        self.reply_subnegotiation(option::NAWS, &payload);
    }

    /// RFC 1143 for one received `WILL`/`WONT`/`DO`/`DONT`.
    fn negotiate(&mut self, verb: u8, opt: u8) {
        let state = self.options[usize::from(opt)];
        match verb {
            WILL => {
                let him = match state.him {
                    Q::No if Self::accept_remote(opt) => {
                        self.reply(DO, opt);
                        Q::Yes
                    }
                    Q::No => {
                        self.reply(DONT, opt);
                        Q::No
                    }
                    Q::Yes => Q::Yes,
                };
                self.options[usize::from(opt)].him = him;
            }
            WONT => {
                let him = match state.him {
                    Q::No => Q::No,
                    Q::Yes => {
                        self.reply(DONT, opt);
                        Q::No
                    }
                };
                self.options[usize::from(opt)].him = him;
            }
            DO => {
                let us = match state.us {
                    Q::No if Self::accept_local(opt) => {
                        self.reply(WILL, opt);
                        if opt == option::NAWS {
                            self.send_naws();
                        }
                        Q::Yes
                    }
                    Q::No => {
                        self.reply(WONT, opt);
                        Q::No
                    }
                    Q::Yes => Q::Yes,
                };
                self.options[usize::from(opt)].us = us;
            }
            DONT => {
                let us = match state.us {
                    Q::No => Q::No,
                    Q::Yes => {
                        self.reply(WONT, opt);
                        Q::No
                    }
                };
                self.options[usize::from(opt)].us = us;
            }
            _ => {}
        }
    }

    /// A complete subnegotiation: only `TTYPE SEND` needs an answer.
    fn subnegotiation(&mut self, opt: u8) {
        const TTYPE_SEND: u8 = 1;
        const TTYPE_IS: u8 = 0;
        if opt == option::TTYPE && self.local_enabled(option::TTYPE) && self.sb[..] == [TTYPE_SEND]
        {
            let mut payload = vec![TTYPE_IS];
            payload.extend_from_slice(self.config.terminal_type.as_bytes());
            self.reply_subnegotiation(option::TTYPE, &payload);
        }
        self.sb.clear();
    }

    fn push_sb_byte(&mut self, opt: u8, byte: u8) -> Result<(), TelnetError> {
        if self.sb_discarding {
            return Ok(());
        }
        if self.sb.len() >= self.config.max_subnegotiation {
            self.sb.clear();
            self.sb_discarding = true;
            return Err(TelnetError::SubnegotiationTooLong {
                option: opt,
                limit: self.config.max_subnegotiation,
            });
        }
        self.sb.put_u8(byte);
        Ok(())
    }

    fn end_subnegotiation(&mut self, opt: u8) {
        if self.sb_discarding {
            self.sb_discarding = false;
            self.sb.clear();
        } else {
            self.subnegotiation(opt);
        }
    }

    /// Runs the state machine over `src[*pos..]`, advancing `*pos` past every byte consumed,
    /// so that bytes are looked at once, whatever the split of the reads.
    fn parse(&mut self, src: &[u8], pos: &mut usize) -> Result<(), TelnetError> {
        while *pos < src.len() {
            match self.state {
                State::Data => {
                    let rest = &src[*pos..];
                    let binary = self.remote_enabled(option::BINARY);
                    let run = rest
                        .iter()
                        .position(|&b| b == IAC || (b == 0 && !binary))
                        .unwrap_or(rest.len());
                    self.data.extend_from_slice(&rest[..run]);
                    *pos += run;
                    if let Some(&b) = rest.get(run) {
                        *pos += 1;
                        if b == IAC {
                            self.state = State::Iac;
                        }
                        // else: a NUL outside BINARY, dropped.
                    }
                }
                State::Iac => {
                    let b = src[*pos];
                    *pos += 1;
                    self.state = match b {
                        IAC => {
                            self.data.put_u8(IAC);
                            State::Data
                        }
                        WILL | WONT | DO | DONT => State::Verb(b),
                        SB => State::SbOption,
                        // NOP, GA, DM, BRK, IP, AO, AYT, EC, EL, EOR, a stray SE: nothing to do.
                        _ => State::Data,
                    };
                }
                State::Verb(verb) => {
                    let opt = src[*pos];
                    *pos += 1;
                    self.state = State::Data;
                    self.negotiate(verb, opt);
                }
                State::SbOption => {
                    let opt = src[*pos];
                    *pos += 1;
                    self.sb.clear();
                    self.sb_discarding = false;
                    self.state = State::Sb(opt);
                }
                State::Sb(opt) => {
                    let b = src[*pos];
                    *pos += 1;
                    if b == IAC {
                        self.state = State::SbIac(opt);
                    } else {
                        self.push_sb_byte(opt, b)?;
                    }
                }
                State::SbIac(opt) => {
                    let b = src[*pos];
                    match b {
                        IAC => {
                            *pos += 1;
                            self.state = State::Sb(opt);
                            self.push_sb_byte(opt, IAC)?;
                        }
                        SE => {
                            *pos += 1;
                            self.state = State::Data;
                            self.end_subnegotiation(opt);
                        }
                        // A command inside SB means the server forgot the SE: end the SB
                        // there and read this byte as the command it is.
                        _ => {
                            self.end_subnegotiation(opt);
                            self.state = State::Iac;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Appends `data` with every 0xFF doubled.
fn put_escaped(dst: &mut BytesMut, data: &[u8]) {
    let mut rest = data;
    while let Some(i) = rest.iter().position(|&b| b == IAC) {
        dst.put_slice(&rest[..=i]);
        dst.put_u8(IAC);
        rest = &rest[i + 1..];
    }
    dst.put_slice(rest);
}

impl Decoder for TelnetCodec {
    type Item = Bytes;
    type Error = TelnetError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, TelnetError> {
        let mut pos = 0;
        let parsed = self.parse(src, &mut pos);
        src.advance(pos);
        parsed?;
        if self.data.is_empty() {
            Ok(None)
        } else {
            Ok(Some(self.data.split().freeze()))
        }
    }
}

impl Encoder<&[u8]> for TelnetCodec {
    type Error = TelnetError;

    fn encode(&mut self, data: &[u8], dst: &mut BytesMut) -> Result<(), TelnetError> {
        if data.is_empty() {
            return Ok(());
        }
        dst.reserve(data.len() + 2);
        if self.local_enabled(option::BINARY) {
            self.encoded_cr = false;
            put_escaped(dst, data);
            return Ok(());
        }
        let mut rest = data;
        if std::mem::take(&mut self.encoded_cr) && rest[0] != b'\n' {
            dst.put_u8(0);
        }
        // NVT: a CR must be followed by LF or NUL.
        while let Some(i) = rest.iter().position(|&b| b == b'\r') {
            put_escaped(dst, &rest[..=i]);
            match rest.get(i + 1) {
                Some(b'\n') => {}
                Some(_) => dst.put_u8(0),
                None => self.encoded_cr = true,
            }
            rest = &rest[i + 1..];
        }
        put_escaped(dst, rest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// busybox telnetd 1.35.0 on connect (telnet.md §2.1).
    fn busybox_hello() -> Vec<u8> {
        let mut v = vec![
            0xff, 0xfd, 0x01, 0xff, 0xfd, 0x1f, 0xff, 0xfb, 0x01, 0xff, 0xfb, 0x03,
        ];
        v.extend_from_slice(b"\r\r\nWelcome to SoCV fake board (busybox v1.35.0)\r\n\r\r\n\r");
        v.extend_from_slice(b"socv-board login: ");
        v
    }

    /// ser2net 4.3.11 on connect, then its second `DO SGA` and an unasked NOTIFY-MODEMSTATE.
    fn ser2net_hello() -> Vec<u8> {
        let mut v = vec![
            0xff, 0xfb, 0x03, 0xff, 0xfd, 0x03, 0xff, 0xfb, 0x01, 0xff, 0xfe, 0x01, 0xff, 0xfd,
            0x00, 0xff, 0xfb, 0x00, 0xff, 0xfd, 0x2c,
        ];
        v.extend_from_slice(&[0xff, 0xfd, 0x03]);
        v.extend_from_slice(&[0xff, 0xfa, 0x2c, 0x6b, 0x00, 0xff, 0xf0]);
        v.extend_from_slice(b"\r\n# \x1b[6n");
        v
    }

    /// GNU inetutils telnetd 2.4 on connect, then its `SB TTYPE SEND` and a stray NUL.
    fn inetutils_hello() -> Vec<u8> {
        let mut v = vec![
            0xff, 0xfb, 0x25, 0xff, 0xfb, 0x26, 0xff, 0xfd, 0x18, 0xff, 0xfd, 0x20, 0xff, 0xfd,
            0x23, 0xff, 0xfd, 0x27, 0xff, 0xfd, 0x24,
        ];
        v.extend_from_slice(&[0xff, 0xfa, 0x18, 0x01, 0xff, 0xf0, 0x00]);
        v.extend_from_slice(b"\r\nlogin: ");
        v
    }

    /// Feeds `chunks` one after the other; returns (data, replies).
    fn feed(codec: &mut TelnetCodec, chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
        let mut data = Vec::new();
        let mut replies = Vec::new();
        let mut buf = BytesMut::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(d) = codec.decode(&mut buf).expect("decode") {
                data.extend_from_slice(&d);
            }
            assert!(
                buf.is_empty(),
                "the decoder consumes everything it is given"
            );
            replies.extend_from_slice(&codec.take_replies());
        }
        (data, replies)
    }

    fn whole(input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        feed(&mut TelnetCodec::default(), &[input])
    }

    /// Every split into two reads, and one byte per read, give what one read gives.
    fn assert_split_invariant(input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let expected = whole(input);
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(
                feed(&mut TelnetCodec::default(), &[a, b]),
                expected,
                "split at {at}"
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(feed(&mut TelnetCodec::default(), &bytes), expected);
        expected
    }

    const NAWS_4000X1000: [u8; 9] = [0xff, 0xfa, 0x1f, 0x0f, 0xa0, 0x03, 0xe8, 0xff, 0xf0];

    #[test]
    fn busybox_transcript_at_every_split() {
        let (data, replies) = assert_split_invariant(&busybox_hello());
        // No BINARY from busybox, so CRs come through as they are (there are no NULs here).
        assert_eq!(
            data,
            b"\r\r\nWelcome to SoCV fake board (busybox v1.35.0)\r\n\r\r\n\rsocv-board login: "
        );
        let mut want = vec![0xff, 0xfc, 0x01, 0xff, 0xfb, 0x1f];
        want.extend_from_slice(&NAWS_4000X1000);
        want.extend_from_slice(&[0xff, 0xfd, 0x01, 0xff, 0xfd, 0x03]);
        assert_eq!(
            replies, want,
            "WONT ECHO, WILL NAWS + size, DO ECHO, DO SGA"
        );
    }

    #[test]
    fn ser2net_transcript_at_every_split() {
        let (data, replies) = assert_split_invariant(&ser2net_hello());
        assert_eq!(data, b"\r\n# \x1b[6n");
        assert_eq!(
            replies,
            vec![
                0xff, 0xfd, 0x03, // DO SGA
                0xff, 0xfb, 0x03, // WILL SGA
                0xff, 0xfd, 0x01, // DO ECHO; the DONT ECHO that follows changes nothing
                0xff, 0xfb, 0x00, // WILL BINARY
                0xff, 0xfd, 0x00, // DO BINARY
                0xff, 0xfc, 0x2c, // WONT COM-PORT-OPTION; the repeated DO SGA gets nothing
            ]
        );
    }

    #[test]
    fn inetutils_transcript_at_every_split() {
        let (data, replies) = assert_split_invariant(&inetutils_hello());
        assert_eq!(data, b"\r\nlogin: ", "the stray NUL is dropped");
        let mut want = vec![
            0xff, 0xfe, 0x25, 0xff, 0xfe, 0x26, 0xff, 0xfb, 0x18, 0xff, 0xfc, 0x20, 0xff, 0xfc,
            0x23, 0xff, 0xfc, 0x27, 0xff, 0xfc, 0x24,
        ];
        want.extend_from_slice(&[0xff, 0xfa, 0x18, 0x00, b'D', b'U', b'M', b'B', 0xff, 0xf0]);
        assert_eq!(replies, want);
    }

    #[test]
    fn every_do_and_will_is_answered_once() {
        for opt in 0..=255u8 {
            let mut codec = TelnetCodec::default();
            let (_, replies) = feed(&mut codec, &[&[IAC, DO, opt, IAC, DO, opt]]);
            let answer = if TelnetCodec::accept_local(opt) {
                WILL
            } else {
                WONT
            };
            assert_eq!(replies[..3], [IAC, answer, opt], "DO {opt}");
            // An accepted DO is acknowledged once; a refused one is refused each time (the
            // state stays No, as RFC 1143 says), which cannot loop: a refusal needs no answer.
            let want = match (answer, opt) {
                (WILL, option::NAWS) => 3 + NAWS_4000X1000.len(),
                (WILL, _) => 3,
                _ => 6,
            };
            assert_eq!(replies.len(), want, "DO {opt} twice");

            let (_, replies) = feed(&mut codec, &[&[IAC, WILL, opt, IAC, WILL, opt]]);
            let answer = if TelnetCodec::accept_remote(opt) {
                DO
            } else {
                DONT
            };
            assert_eq!(replies[..3], [IAC, answer, opt], "WILL {opt}");
            assert_eq!(
                replies.len(),
                if answer == DO { 3 } else { 6 },
                "WILL {opt} twice"
            );
        }
    }

    #[test]
    fn disabling_is_acknowledged_only_when_enabled() {
        let mut codec = TelnetCodec::default();
        let (_, r) = feed(
            &mut codec,
            &[&[IAC, WONT, option::ECHO, IAC, DONT, option::SGA]],
        );
        assert!(
            r.is_empty(),
            "no answer to a refusal of what is already off"
        );
        feed(
            &mut codec,
            &[&[IAC, WILL, option::ECHO, IAC, DO, option::SGA]],
        );
        assert!(codec.remote_enabled(option::ECHO) && codec.local_enabled(option::SGA));
        let (_, r) = feed(
            &mut codec,
            &[&[IAC, WONT, option::ECHO, IAC, DONT, option::SGA]],
        );
        assert_eq!(r, [IAC, DONT, option::ECHO, IAC, WONT, option::SGA]);
        assert!(!codec.remote_enabled(option::ECHO) && !codec.local_enabled(option::SGA));
    }

    #[test]
    fn escaped_iac_in_data_and_in_subnegotiation() {
        let input = [
            b'a', IAC, IAC, b'b', IAC, SB, 99, IAC, IAC, 1, IAC, SE, IAC, IAC,
        ];
        let (data, replies) = assert_split_invariant(&input);
        assert_eq!(data, [b'a', 0xff, b'b', 0xff]);
        assert!(replies.is_empty());
    }

    #[test]
    fn cr_nul_is_a_bare_cr_until_binary() {
        let (data, _) = assert_split_invariant(b"a\r\0b\r\nc\0");
        assert_eq!(data, b"a\rb\r\nc");
        let mut codec = TelnetCodec::default();
        let (data, _) = feed(&mut codec, &[&[IAC, WILL, option::BINARY], b"a\r\0b\0"]);
        assert_eq!(data, b"a\r\0b\0", "BINARY data is 8-bit clean");
    }

    #[test]
    fn commands_are_swallowed() {
        // NOP, GA, DM, AYT, a stray SE.
        let (data, replies) = assert_split_invariant(&[
            b'x', IAC, 241, IAC, 249, b'y', IAC, 242, IAC, 246, IAC, SE, b'z',
        ]);
        assert_eq!(data, b"xyz");
        assert!(replies.is_empty());
    }

    #[test]
    fn unterminated_subnegotiation_ends_at_the_next_command() {
        // `IAC SB TTYPE SEND` without SE, then `IAC WILL ECHO`.
        let mut codec = TelnetCodec::default();
        feed(&mut codec, &[&[IAC, DO, option::TTYPE]]);
        let (data, replies) = feed(&mut codec, &[&[IAC, SB, 24, 1, IAC, WILL, 1, b'k']]);
        assert_eq!(data, b"k");
        let mut want = vec![IAC, SB, 24, 0, b'D', b'U', b'M', b'B', IAC, SE];
        want.extend_from_slice(&[IAC, DO, 1]);
        assert_eq!(replies, want);
    }

    #[test]
    fn endless_subnegotiation_is_an_error_then_skipped() {
        let mut codec = TelnetCodec::new(TelnetConfig {
            max_subnegotiation: 16,
            ..TelnetConfig::default()
        });
        let mut buf = BytesMut::from(&b"ok"[..]);
        buf.extend_from_slice(&[IAC, SB, 77]);
        buf.extend_from_slice(&[b'x'; 40]);
        let err = codec.decode(&mut buf).expect_err("too long");
        assert!(matches!(
            err,
            TelnetError::SubnegotiationTooLong {
                option: 77,
                limit: 16
            }
        ));
        // Nothing is lost or kept: the data before the SB comes next, the rest is skipped
        // up to the SE, and what follows decodes normally.
        buf.extend_from_slice(&[b'y'; 1000]);
        buf.extend_from_slice(&[IAC, SE]);
        buf.extend_from_slice(b"after");
        let mut data = Vec::new();
        while let Some(d) = codec.decode(&mut buf).expect("decode") {
            data.extend_from_slice(&d);
        }
        assert_eq!(data, b"okafter");
        assert!(
            codec.sb.capacity() <= 64,
            "the discarded payload was not kept"
        );
    }

    #[test]
    fn encoder_escapes_iac_and_stuffs_cr() {
        let mut codec = TelnetCodec::default();
        let mut out = BytesMut::new();
        codec
            .encode(&b"a\xffb\rc\r\nd\r"[..], &mut out)
            .expect("encode");
        codec.encode(&b"\n\re"[..], &mut out).expect("encode");
        codec.encode(&b"\r"[..], &mut out).expect("encode");
        codec.encode(&b"f"[..], &mut out).expect("encode");
        assert_eq!(&out[..], b"a\xff\xffb\r\0c\r\nd\r\n\r\0e\r\0f");
    }

    /// A client codec (encoding) and a server codec (decoding) with BINARY either on or off.
    fn pair(binary: bool) -> (TelnetCodec, TelnetCodec) {
        let mut client = TelnetCodec::default();
        let mut server = TelnetCodec::default();
        if binary {
            feed(&mut client, &[&[IAC, DO, option::BINARY]]);
            feed(&mut server, &[&[IAC, WILL, option::BINARY]]);
        }
        (client, server)
    }

    fn round_trip(binary: bool, frames: &[Vec<u8>], split: usize) -> Vec<u8> {
        let (mut client, mut server) = pair(binary);
        let mut wire = BytesMut::new();
        for f in frames {
            client.encode(&f[..], &mut wire).expect("encode");
        }
        let wire = wire.freeze();
        let chunks: Vec<&[u8]> = wire.chunks(split.max(1)).collect();
        feed(&mut server, &chunks).0
    }

    proptest! {
        #[test]
        fn no_input_panics(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut codec = TelnetCodec::new(TelnetConfig {
                max_subnegotiation: 8,
                ..TelnetConfig::default()
            });
            let mut buf = BytesMut::new();
            for chunk in &chunks {
                buf.extend_from_slice(chunk);
                while let Ok(Some(_)) | Err(_) = codec.decode(&mut buf) {}
                let _ = codec.take_replies();
                prop_assert!(buf.is_empty());
            }
        }

        #[test]
        fn binary_data_round_trips(
            frames in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            split in 1usize..97,
        ) {
            let sent: Vec<u8> = frames.concat();
            prop_assert_eq!(round_trip(true, &frames, split), sent);
        }

        #[test]
        fn nvt_data_round_trips_without_nuls(
            frames in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            split in 1usize..97,
        ) {
            // Outside BINARY a NUL means nothing (NVT), so it is the one byte not carried.
            let sent: Vec<u8> = frames.concat().into_iter().filter(|&b| b != 0).collect();
            prop_assert_eq!(round_trip(false, &frames, split), sent);
        }
    }

    #[test]
    fn all_byte_values_round_trip_in_binary() {
        let all: Vec<u8> = (0..=255u8).collect();
        for split in 1..=all.len() + 2 {
            assert_eq!(
                round_trip(true, &[all.clone(), all.clone()], split),
                [&all[..], &all[..]].concat()
            );
        }
    }
}
