//! [`TelnetCodec`]: socv's end of a board's telnet connection, as a `tokio_util::codec` pair.
//!
//! The bytes go through the shared `wire` core and the negotiation through the shared
//! `options` table; what is socv's own here is the policy (telnet.md §1.2), the answers to
//! `TTYPE SEND` and NAWS, and the error for a subnegotiation that never ends.

use super::options::{OptionTable, Policy, Q};
use super::wire::{
    ClientLineEnds, Parser, Token, put_client_data, put_negotiation, put_subnegotiation,
};
use super::{WILL, option};
use bytes::{Buf, Bytes, BytesMut};
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

/// What socv accepts: the server's ECHO, SGA and BINARY, and our SGA, BINARY, NAWS and TTYPE.
/// COM-PORT-OPTION (44) is refused: the port stays at ser2net's configured speed, which is
/// harmless (telnet.md §1.2).
const POLICY: Policy = Policy {
    local: &[option::SGA, option::BINARY, option::NAWS, option::TTYPE],
    remote: &[option::ECHO, option::SGA, option::BINARY],
};

/// The telnet codec of a board session.
///
/// Decoding yields the server's data in chunks as they arrive (prompts have no newline, so
/// nothing waits for one), with `IAC IAC` unescaped and, until the server agrees to BINARY,
/// NUL bytes dropped (NVT rule: `CR NUL` is a bare CR; inetutils also sends stray NULs). `CR LF`
/// is left as it is. Commands (`NOP`, `GA`, `DM`, …) are swallowed and subnegotiations are
/// skipped, except `TTYPE SEND`, which is answered.
///
/// Every `DO`/`WILL` is answered after `POLICY`. The answers collect in a queue that the
/// owner of the connection writes after each decode ([`TelnetCodec::take_replies`]). No state
/// is ever acknowledged twice, so a server that repeats itself (ser2net sends `DO SGA` twice)
/// gets no loop.
///
/// Encoding doubles 0xFF and, until we agree to BINARY, sends a CR that is not followed by LF
/// as `CR NUL`. socv ends its lines with a bare `\n`, the one terminator that works on every
/// server (telnet.md §2.3).
#[derive(Debug)]
pub struct TelnetCodec {
    config: TelnetConfig,
    parser: Parser,
    options: OptionTable,
    /// Data decoded but not yet returned (kept when an error interrupts a decode).
    data: BytesMut,
    replies: BytesMut,
    line_ends: ClientLineEnds,
}

impl Default for TelnetCodec {
    fn default() -> Self {
        TelnetCodec::new(TelnetConfig::default())
    }
}

impl TelnetCodec {
    pub fn new(config: TelnetConfig) -> Self {
        TelnetCodec {
            parser: Parser::new(config.max_subnegotiation),
            config,
            options: OptionTable::new(POLICY),
            data: BytesMut::new(),
            replies: BytesMut::new(),
            line_ends: ClientLineEnds::default(),
        }
    }

    /// The negotiation answers owed to the server (already encoded), emptying the queue.
    pub fn take_replies(&mut self) -> Bytes {
        self.replies.split().freeze()
    }

    /// Whether the server has agreed to do `option` (e.g. [`option::ECHO`]).
    pub fn remote_enabled(&self, option: u8) -> bool {
        self.options.remote(option) == Q::Yes
    }

    /// Whether we have agreed to do `option` (e.g. [`option::NAWS`]).
    pub fn local_enabled(&self, option: u8) -> bool {
        self.options.local(option) == Q::Yes
    }

    /// Runs the shared parser over `src[*pos..]`, advancing `*pos` past every byte consumed.
    fn parse(&mut self, src: &[u8], pos: &mut usize) -> Result<(), TelnetError> {
        while let Some(token) = self.parser.next(src, pos) {
            match token {
                Token::Data(data) => {
                    let binary = self.options.remote(option::BINARY) == Q::Yes;
                    put_client_data(&mut self.data, data, binary);
                }
                // NOP, GA, DM, BRK, IP, AO, AYT, EC, EL, EOR, a stray SE: nothing to do.
                Token::Command(_) => {}
                Token::Negotiation { verb, option } => {
                    let Some(answer) = self.options.receive(verb, option) else {
                        continue;
                    };
                    put_negotiation(&mut self.replies, answer, option);
                    if answer == WILL && option == option::NAWS {
                        let (w, h) = self.config.window;
                        let mut size = [0u8; 4];
                        size[..2].copy_from_slice(&w.to_be_bytes());
                        size[2..].copy_from_slice(&h.to_be_bytes());
                        put_subnegotiation(&mut self.replies, option::NAWS, &size);
                    }
                }
                // Even one that a command cut short: the server said what it had to say.
                Token::Subnegotiation {
                    option, payload, ..
                } => {
                    const TTYPE_SEND: u8 = 1;
                    const TTYPE_IS: u8 = 0;
                    let asked = option == option::TTYPE && payload == [TTYPE_SEND];
                    if asked && self.options.local(option::TTYPE) == Q::Yes {
                        let mut answer = vec![TTYPE_IS];
                        answer.extend_from_slice(self.config.terminal_type.as_bytes());
                        put_subnegotiation(&mut self.replies, option::TTYPE, &answer);
                    }
                }
                Token::SubnegotiationTooLong { option, limit } => {
                    return Err(TelnetError::SubnegotiationTooLong { option, limit });
                }
            }
        }
        Ok(())
    }
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
        dst.reserve(data.len() + 2);
        let binary = self.local_enabled(option::BINARY);
        self.line_ends.put(dst, data, binary);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telnet::{DO, DONT, IAC, SB, SE, WONT};
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
            let answer = if POLICY.accepts_local(opt) {
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
            let answer = if POLICY.accepts_remote(opt) { DO } else { DONT };
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
            codec.parser.held() <= 64,
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
