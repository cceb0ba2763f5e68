//! The simulated board's end of telnet: busybox telnetd's greeting and policy, NAWS, IP and AYT.
//!
//! The bytes, IAC escaping, NVT line ends and RFC 1143 negotiation are the shared core in
//! `crate::telnet`, the one socv's own codec uses; this is only what a server adds to it.

use crate::telnet::options::{OptionTable, Policy, Q};
use crate::telnet::wire::{Parser, ServerLineEnds, Token, put_negotiation};
use crate::telnet::{AYT, IP, option};

/// What an interrupt (IAC IP) becomes on the board: the tty's VINTR character.
const CTRL_C: u8 = 0x03;

/// Longest subnegotiation payload kept; NAWS needs 4, the rest is ignored anyway.
const MAX_SB: usize = 64;

/// Like busybox telnetd: we echo and suppress go-ahead, and let the client report its window
/// size. No BINARY, so the CR NUL / CR LF rules stay on.
const POLICY: Policy = Policy {
    local: &[option::ECHO, option::SGA],
    remote: &[option::NAWS, option::SGA, option::ECHO],
};

/// What one piece of client input meant.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Data for the board: IAC IAC undoubled, CR LF and CR NUL reduced to CR, IAC IP turned
    /// into Ctrl-C.
    pub data: Vec<u8>,
    /// Bytes to send back to the client (negotiation answers), already encoded.
    pub replies: Vec<u8>,
    /// The last window size the client reported (columns, rows), if it reported one.
    pub window: Option<(u16, u16)>,
}

/// The protocol state of one connection.
#[derive(Debug)]
pub struct TelnetServer {
    parser: Parser,
    line_ends: ServerLineEnds,
    options: OptionTable,
}

impl Default for TelnetServer {
    fn default() -> Self {
        TelnetServer {
            parser: Parser::new(MAX_SB),
            line_ends: ServerLineEnds::default(),
            options: OptionTable::new(POLICY),
        }
    }
}

impl TelnetServer {
    pub fn new() -> Self {
        Self::default()
    }

    /// What busybox telnetd sends on connect: `DO ECHO, DO NAWS, WILL ECHO, WILL SGA`.
    /// Marks the four requests pending, so the client's answers are not answered again.
    pub fn greeting(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let asked = [
            (self.options.request(option::ECHO), option::ECHO),
            (self.options.request(option::NAWS), option::NAWS),
            (self.options.offer(option::ECHO), option::ECHO),
            (self.options.offer(option::SGA), option::SGA),
        ];
        for (verb, option) in asked {
            if let Some(verb) = verb {
                put_negotiation(&mut out, verb, option);
            }
        }
        out
    }

    /// Whether we echo the client's input (we offered it and the client did not refuse).
    pub fn we_echo(&self) -> bool {
        self.options.local(option::ECHO) != Q::No
    }

    /// Feeds one piece of client input; any split of the stream gives the same result.
    pub fn decode(&mut self, input: &[u8]) -> Decoded {
        let mut out = Decoded::default();
        let mut pos = 0;
        while let Some(token) = self.parser.next(input, &mut pos) {
            match token {
                Token::Data(data) => self.line_ends.put(&mut out.data, data),
                Token::Command(IP) => self.line_ends.put(&mut out.data, &[CTRL_C]),
                Token::Command(AYT) => out.replies.extend_from_slice(b"\r\n[Yes]\r\n"),
                // NOP, GA, DM, BRK, AO, EC, EL, EOR, a stray SE: nothing to do.
                Token::Command(_) => {}
                Token::Negotiation { verb, option } => {
                    if let Some(answer) = self.options.receive(verb, option) {
                        put_negotiation(&mut out.replies, answer, option);
                    }
                }
                // A malformed SB (cut short by a command) is dropped, as telnetds do; the
                // command itself comes next and is honoured.
                Token::Subnegotiation {
                    option: option::NAWS,
                    payload: &[w_hi, w_lo, h_hi, h_lo],
                    unterminated: false,
                } => {
                    let cols = u16::from_be_bytes([w_hi, w_lo]);
                    let rows = u16::from_be_bytes([h_hi, h_lo]);
                    // 0 means "unknown" (RFC 1073): keep the size we have.
                    if cols > 0 && rows > 0 {
                        out.window = Some((cols, rows));
                    }
                }
                Token::Subnegotiation { .. } | Token::SubnegotiationTooLong { .. } => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` in one piece, then byte by byte, and checks both agree.
    fn decode_any_split(input: &[u8]) -> Decoded {
        let mut whole = TelnetServer::new();
        whole.greeting();
        let all = whole.decode(input);
        for cut in 0..=input.len() {
            let mut split = TelnetServer::new();
            split.greeting();
            let mut first = split.decode(&input[..cut]);
            let second = split.decode(&input[cut..]);
            first.data.extend(second.data);
            first.replies.extend(second.replies);
            first.window = second.window.or(first.window);
            assert_eq!(first, all, "split at {cut}");
        }
        all
    }

    #[test]
    fn greets_like_busybox() {
        assert_eq!(
            TelnetServer::new().greeting(),
            [255, 253, 1, 255, 253, 31, 255, 251, 1, 255, 251, 3]
        );
    }

    #[test]
    fn answers_of_the_stock_client_need_no_reply() {
        // inetutils telnet against busybox: WONT ECHO, WILL NAWS, SB NAWS 120x40, DO ECHO, DO SGA.
        let input = [
            255, 252, 1, 255, 251, 31, 255, 250, 31, 0, 120, 0, 40, 255, 240, 255, 253, 1, 255,
            253, 3, b'r', b'o', b'o', b't', b'\r', 0,
        ];
        let out = decode_any_split(&input);
        assert_eq!(out.replies, b"");
        assert_eq!(out.window, Some((120, 40)));
        assert_eq!(out.data, b"root\r");
    }

    #[test]
    fn refuses_what_it_does_not_do_and_never_loops() {
        let mut server = TelnetServer::new();
        server.greeting();
        // DO BINARY, WILL TTYPE, DO TIMING-MARK.
        let out = server.decode(&[255, 253, 0, 255, 251, 24, 255, 253, 6]);
        assert_eq!(out.replies, [255, 252, 0, 255, 254, 24, 255, 252, 6]);
        // DONT ECHO while our WILL ECHO is pending: a refusal, accepted silently.
        let out = server.decode(&[255, 254, 1]);
        assert_eq!(out.replies, b"");
        assert!(!server.we_echo());
        // A later DO ECHO: agree once; the same DO again is not answered.
        assert_eq!(server.decode(&[255, 253, 1]).replies, [255, 251, 1]);
        assert_eq!(server.decode(&[255, 253, 1]).replies, b"");
        // DONT ECHO when on: WONT once.
        assert_eq!(server.decode(&[255, 254, 1]).replies, [255, 252, 1]);
        // WILL SGA unasked: DO; WONT SGA then: DONT.
        assert_eq!(server.decode(&[255, 251, 3]).replies, [255, 253, 3]);
        assert_eq!(server.decode(&[255, 252, 3]).replies, [255, 254, 3]);
    }

    #[test]
    fn line_ends_become_cr() {
        assert_eq!(decode_any_split(b"a\r\nb\r\0c\nd\r").data, b"a\rb\rc\nd\r");
        // The LF after a CR is dropped even when it comes in the next piece.
        let mut server = TelnetServer::new();
        assert_eq!(server.decode(b"ls\r").data, b"ls\r");
        assert_eq!(server.decode(b"\nx").data, b"x");
        // Two CRs in a row are two line ends.
        assert_eq!(decode_any_split(b"\r\r\n").data, b"\r\r");
    }

    #[test]
    fn undoubles_iac_and_maps_interrupt() {
        assert_eq!(
            decode_any_split(&[1, 255, 255, 2, 255, 244]).data,
            [1, 255, 2, 3]
        );
        // NOP, GA and a stray SE are swallowed.
        assert_eq!(
            decode_any_split(&[255, 241, b'x', 255, 249, 255, 240]).data,
            b"x"
        );
        assert_eq!(decode_any_split(&[255, 246]).replies, b"\r\n[Yes]\r\n");
    }

    #[test]
    fn subnegotiation_with_escaped_bytes_and_garbage() {
        // NAWS 255x24: the width's 0xFF byte is doubled.
        let out = decode_any_split(&[255, 250, 31, 0, 255, 255, 0, 24, 255, 240, b'k']);
        assert_eq!(out.window, Some((255, 24)));
        assert_eq!(out.data, b"k");
        // NAWS 0x0 keeps the old size; an unknown SB is skipped whole.
        let out = decode_any_split(&[
            255, 250, 31, 0, 0, 0, 0, 255, 240, 255, 250, 24, 1, 255, 240,
        ]);
        assert_eq!(out, Decoded::default());
        // An overlong SB is bounded and skipped.
        let mut long = vec![255, 250, 39];
        long.extend(std::iter::repeat_n(b'x', 10_000));
        long.extend([255, 240, b'z']);
        assert_eq!(TelnetServer::new().decode(&long).data, b"z");
        // A malformed SB (IAC WILL inside) ends the SB and the command is honoured.
        let out = decode_any_split(&[255, 250, 31, 1, 255, 251, 24, b'q']);
        assert_eq!(out.replies, [255, 254, 24]);
        assert_eq!(out.data, b"q");
    }
}
