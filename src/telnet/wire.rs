//! The telnet byte stream as both ends see it: its state machine, IAC escaping, NVT line ends.
//!
//! [`Parser`] turns bytes into [`Token`]s, keeping its place across reads because TCP splits any
//! sequence anywhere (`IAC` at the end of one read, its verb at the start of the next). What a
//! token means (which options to accept, what a NUL is worth) is the user's business: the
//! client codec and the simulated board's telnetd read the same tokens with different rules.

use super::{DO, DONT, IAC, SB, SE, WILL, WONT};
use bytes::BufMut;

/// One thing the peer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    /// Data bytes with `IAC IAC` already unescaped; NVT rules are the reader's (see
    /// [`put_client_data`] and [`ServerLineEnds`]).
    Data(&'a [u8]),
    /// `IAC <command>` for a command without an argument (NOP, GA, DM, IP, AYT, a stray SE…).
    Command(u8),
    /// `IAC WILL|WONT|DO|DONT <option>`.
    Negotiation { verb: u8, option: u8 },
    /// A whole `IAC SB <option> <payload> IAC SE`, payload unescaped. `unterminated`: a command
    /// ended it instead of `IAC SE` (a server that forgot the SE); each side decides whether
    /// such a payload counts.
    Subnegotiation {
        option: u8,
        payload: &'a [u8],
        unterminated: bool,
    },
    /// The subnegotiation outgrew the parser's limit: its payload is dropped and the rest of
    /// it skipped up to its end, so a peer whose SB never ends costs no memory.
    SubnegotiationTooLong { option: u8, limit: usize },
}

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

/// Where one direction of a telnet connection stands, byte by byte.
#[derive(Debug)]
pub(crate) struct Parser {
    state: State,
    /// Payload of the subnegotiation being read; cleared when the next one starts, because the
    /// last one is still lent out as a [`Token::Subnegotiation`].
    sb: Vec<u8>,
    /// The current subnegotiation is too long and is being skipped up to its end.
    sb_discarding: bool,
    max_subnegotiation: usize,
}

impl Parser {
    /// A parser that keeps at most `max_subnegotiation` bytes of a subnegotiation's payload.
    pub(crate) fn new(max_subnegotiation: usize) -> Self {
        Parser {
            state: State::Data,
            sb: Vec::new(),
            sb_discarding: false,
            max_subnegotiation,
        }
    }

    /// The next token in `src[*pos..]`, advancing `*pos` past every byte it consumed, so that
    /// no byte is looked at twice whatever the split of the reads. `None` once `src` is used
    /// up; an incomplete sequence at its end waits in the parser for the next read.
    pub(crate) fn next<'a>(&'a mut self, src: &'a [u8], pos: &mut usize) -> Option<Token<'a>> {
        while let Some(&byte) = src.get(*pos) {
            match self.state {
                State::Data => {
                    let rest = &src[*pos..];
                    let run = rest.iter().position(|&b| b == IAC).unwrap_or(rest.len());
                    if run > 0 {
                        *pos += run;
                        return Some(Token::Data(&rest[..run]));
                    }
                    *pos += 1;
                    self.state = State::Iac;
                }
                State::Iac => {
                    *pos += 1;
                    match byte {
                        IAC => {
                            self.state = State::Data;
                            return Some(Token::Data(&[IAC]));
                        }
                        WILL | WONT | DO | DONT => self.state = State::Verb(byte),
                        SB => self.state = State::SbOption,
                        _ => {
                            self.state = State::Data;
                            return Some(Token::Command(byte));
                        }
                    }
                }
                State::Verb(verb) => {
                    *pos += 1;
                    self.state = State::Data;
                    return Some(Token::Negotiation { verb, option: byte });
                }
                State::SbOption => {
                    *pos += 1;
                    self.sb.clear();
                    self.sb_discarding = false;
                    self.state = State::Sb(byte);
                }
                State::Sb(option) => {
                    *pos += 1;
                    if byte == IAC {
                        self.state = State::SbIac(option);
                    } else if self.push_sb_byte(byte) {
                        return Some(self.too_long(option));
                    }
                }
                State::SbIac(option) if byte == IAC => {
                    *pos += 1;
                    self.state = State::Sb(option);
                    if self.push_sb_byte(IAC) {
                        return Some(self.too_long(option));
                    }
                }
                State::SbIac(option) => {
                    // A command other than SE means the peer forgot the SE: end the SB there
                    // and read this byte (not consumed) as the command it is.
                    let unterminated = byte != SE;
                    if unterminated {
                        self.state = State::Iac;
                    } else {
                        *pos += 1;
                        self.state = State::Data;
                    }
                    if !std::mem::take(&mut self.sb_discarding) {
                        return Some(Token::Subnegotiation {
                            option,
                            payload: &self.sb,
                            unterminated,
                        });
                    }
                }
            }
        }
        None
    }

    /// Keeps one payload byte; `true` when that would pass the limit, which starts the discard.
    fn push_sb_byte(&mut self, byte: u8) -> bool {
        if self.sb_discarding {
            return false;
        }
        if self.sb.len() >= self.max_subnegotiation {
            self.sb.clear();
            self.sb_discarding = true;
            return true;
        }
        self.sb.push(byte);
        false
    }

    fn too_long(&self, option: u8) -> Token<'static> {
        Token::SubnegotiationTooLong {
            option,
            limit: self.max_subnegotiation,
        }
    }

    /// Bytes held for subnegotiations, whatever the peer sent.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.sb.capacity()
    }
}

/// Appends `data` with every 0xFF doubled (in data and inside SB alike).
pub(crate) fn put_escaped<B: BufMut>(dst: &mut B, data: &[u8]) {
    let mut rest = data;
    while let Some(i) = rest.iter().position(|&b| b == IAC) {
        dst.put_slice(&rest[..=i]);
        dst.put_u8(IAC);
        rest = &rest[i + 1..];
    }
    dst.put_slice(rest);
}

/// Appends `IAC verb option`.
pub(crate) fn put_negotiation<B: BufMut>(dst: &mut B, verb: u8, option: u8) {
    dst.put_slice(&[IAC, verb, option]);
}

/// Appends `IAC SB option payload IAC SE`, the payload escaped.
pub(crate) fn put_subnegotiation<B: BufMut>(dst: &mut B, option: u8, payload: &[u8]) {
    dst.put_slice(&[IAC, SB, option]);
    put_escaped(dst, payload);
    dst.put_slice(&[IAC, SE]);
}

/// Data as a user telnet reads it: outside BINARY a NUL is NVT padding (`CR NUL` is a bare CR,
/// and inetutils sends stray NULs), so it is dropped; `CR LF` is left for the session.
pub(crate) fn put_client_data<B: BufMut>(dst: &mut B, data: &[u8], binary: bool) {
    if binary {
        dst.put_slice(data);
        return;
    }
    for run in data.split(|&b| b == 0) {
        dst.put_slice(run);
    }
}

/// Data as a server reads it (RFC 1123 §3.3.1, and what busybox telnetd does): `CR LF` and
/// `CR NUL` are both one CR. The LF or NUL may come in the next read, hence the state.
#[derive(Debug, Default)]
pub(crate) struct ServerLineEnds {
    /// The previous data byte was CR: a following LF or NUL belongs to it.
    after_cr: bool,
}

impl ServerLineEnds {
    pub(crate) fn put(&mut self, dst: &mut Vec<u8>, data: &[u8]) {
        for &byte in data {
            match byte {
                b'\n' | 0 if self.after_cr => self.after_cr = false,
                _ => {
                    self.after_cr = byte == b'\r';
                    dst.push(byte);
                }
            }
        }
    }
}

/// Data as a user telnet sends it: escaped, and outside BINARY a CR not followed by LF goes
/// out as `CR NUL` (NVT: a CR must be followed by LF or NUL). The LF may open the next frame,
/// hence the state.
#[derive(Debug, Default)]
pub(crate) struct ClientLineEnds {
    /// The last data byte sent was a CR whose NUL is owed unless an LF comes next.
    cr_owed: bool,
}

impl ClientLineEnds {
    pub(crate) fn put<B: BufMut>(&mut self, dst: &mut B, data: &[u8], binary: bool) {
        if data.is_empty() {
            return;
        }
        if binary {
            self.cr_owed = false;
            put_escaped(dst, data);
            return;
        }
        let mut rest = data;
        if std::mem::take(&mut self.cr_owed) && rest[0] != b'\n' {
            dst.put_u8(0);
        }
        while let Some(i) = rest.iter().position(|&b| b == b'\r') {
            put_escaped(dst, &rest[..=i]);
            match rest.get(i + 1) {
                Some(b'\n') => {}
                Some(_) => dst.put_u8(0),
                None => self.cr_owed = true,
            }
            rest = &rest[i + 1..];
        }
        put_escaped(dst, rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token with its borrowed bytes copied out, to compare token streams.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Owned {
        Data(Vec<u8>),
        Command(u8),
        Negotiation(u8, u8),
        Subnegotiation(u8, Vec<u8>, bool),
        TooLong(u8, usize),
    }

    /// Feeds `chunks` one after the other; data tokens are merged, since where a run of data
    /// is cut depends on the reads.
    fn tokens(parser: &mut Parser, chunks: &[&[u8]]) -> Vec<Owned> {
        let mut out: Vec<Owned> = Vec::new();
        for chunk in chunks {
            let mut pos = 0;
            while let Some(token) = parser.next(chunk, &mut pos) {
                let token = match token {
                    Token::Data(d) => {
                        if let Some(Owned::Data(last)) = out.last_mut() {
                            last.extend_from_slice(d);
                            continue;
                        }
                        Owned::Data(d.to_vec())
                    }
                    Token::Command(c) => Owned::Command(c),
                    Token::Negotiation { verb, option } => Owned::Negotiation(verb, option),
                    Token::Subnegotiation {
                        option,
                        payload,
                        unterminated,
                    } => Owned::Subnegotiation(option, payload.to_vec(), unterminated),
                    Token::SubnegotiationTooLong { option, limit } => Owned::TooLong(option, limit),
                };
                out.push(token);
            }
            assert_eq!(
                pos,
                chunk.len(),
                "the parser consumes everything it is given"
            );
        }
        out
    }

    /// Every split into two reads, and one byte per read, give what one read gives.
    fn tokens_at_every_split(input: &[u8], limit: usize) -> Vec<Owned> {
        let expected = tokens(&mut Parser::new(limit), &[input]);
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(
                tokens(&mut Parser::new(limit), &[a, b]),
                expected,
                "split at {at}"
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(tokens(&mut Parser::new(limit), &bytes), expected);
        expected
    }

    #[test]
    fn escaped_iac_in_data_and_in_subnegotiation() {
        let input = [
            b'a', IAC, IAC, b'b', IAC, SB, 99, IAC, IAC, 1, IAC, SE, IAC, IAC,
        ];
        assert_eq!(
            tokens_at_every_split(&input, 64),
            [
                Owned::Data(vec![b'a', 0xff, b'b']),
                Owned::Subnegotiation(99, vec![0xff, 1], false),
                Owned::Data(vec![0xff]),
            ]
        );
    }

    #[test]
    fn commands_and_negotiations_split_anywhere() {
        // NOP, WILL ECHO, GA, DM, DO NAWS, a stray SE.
        let input = [
            b'x', IAC, 241, IAC, WILL, 1, IAC, 249, b'y', IAC, 242, IAC, DO, 31, IAC, SE, b'z',
        ];
        assert_eq!(
            tokens_at_every_split(&input, 64),
            [
                Owned::Data(b"x".to_vec()),
                Owned::Command(241),
                Owned::Negotiation(WILL, 1),
                Owned::Command(249),
                Owned::Data(b"y".to_vec()),
                Owned::Command(242),
                Owned::Negotiation(DO, 31),
                Owned::Command(SE),
                Owned::Data(b"z".to_vec()),
            ]
        );
    }

    #[test]
    fn unterminated_subnegotiation_ends_at_the_next_command() {
        let input = [IAC, SB, 24, 1, IAC, WILL, 1, b'k'];
        assert_eq!(
            tokens_at_every_split(&input, 64),
            [
                Owned::Subnegotiation(24, vec![1], true),
                Owned::Negotiation(WILL, 1),
                Owned::Data(b"k".to_vec()),
            ]
        );
    }

    #[test]
    fn overlong_subnegotiation_is_reported_once_and_skipped() {
        let mut input = b"ok".to_vec();
        input.extend_from_slice(&[IAC, SB, 77]);
        input.extend_from_slice(&[b'x'; 40]);
        input.extend_from_slice(&[IAC, IAC, IAC, SE]);
        input.extend_from_slice(b"after");
        assert_eq!(
            tokens_at_every_split(&input, 16),
            [
                Owned::Data(b"ok".to_vec()),
                Owned::TooLong(77, 16),
                Owned::Data(b"after".to_vec()),
            ]
        );
        // The limit counts unescaped bytes, so 16 escaped 0xFF fit; one more does not.
        let mut full = vec![IAC, SB, 5];
        full.extend_from_slice(&[IAC; 32]);
        full.extend_from_slice(&[IAC, SE]);
        assert_eq!(
            tokens(&mut Parser::new(16), &[&full]),
            [Owned::Subnegotiation(5, vec![0xff; 16], false)]
        );
        full.splice(3..3, [IAC, IAC]);
        assert_eq!(
            tokens(&mut Parser::new(16), &[&full]),
            [Owned::TooLong(5, 16)]
        );
    }

    #[test]
    fn a_skipped_subnegotiation_keeps_nothing() {
        let mut parser = Parser::new(16);
        let mut input = vec![IAC, SB, 39];
        input.extend(std::iter::repeat_n(b'x', 10_000));
        input.extend([IAC, SE, b'z']);
        let got = tokens(&mut parser, &[&input]);
        assert_eq!(got, [Owned::TooLong(39, 16), Owned::Data(b"z".to_vec())]);
        assert!(parser.held() <= 64, "the discarded payload was not kept");
    }

    #[test]
    fn escapes_iac_in_output() {
        let mut out = Vec::new();
        put_escaped(&mut out, &[1, 255, 2]);
        assert_eq!(out, [1, 255, 255, 2]);
        let mut out = Vec::new();
        put_escaped(&mut out, b"plain");
        assert_eq!(out, b"plain");
        let mut out = Vec::new();
        put_subnegotiation(&mut out, 31, &[0, 255, 0, 24]);
        assert_eq!(out, [IAC, SB, 31, 0, 255, 255, 0, 24, IAC, SE]);
    }

    #[test]
    fn client_drops_nuls_until_binary() {
        let mut out = Vec::new();
        put_client_data(&mut out, b"a\r\0b\r\nc\0", false);
        assert_eq!(out, b"a\rb\r\nc");
        let mut out = Vec::new();
        put_client_data(&mut out, b"a\r\0b\0", true);
        assert_eq!(out, b"a\r\0b\0");
    }

    #[test]
    fn server_reads_cr_lf_and_cr_nul_as_cr_across_reads() {
        let mut ends = ServerLineEnds::default();
        let mut out = Vec::new();
        ends.put(&mut out, b"a\r\nb\r\0c\nd\r");
        assert_eq!(out, b"a\rb\rc\nd\r");
        // The LF belongs to the CR that ended the previous read.
        ends.put(&mut out, b"\n\r\r\n");
        assert_eq!(out, b"a\rb\rc\nd\r\r\r");
    }

    #[test]
    fn client_stuffs_cr_across_frames() {
        let mut ends = ClientLineEnds::default();
        let mut out = Vec::new();
        for frame in [&b"a\xffb\rc\r\nd\r"[..], b"\n\re", b"\r", b"f"] {
            ends.put(&mut out, frame, false);
        }
        assert_eq!(out, b"a\xff\xffb\r\0c\r\nd\r\n\r\0e\r\0f");
        let mut out = Vec::new();
        ends.put(&mut out, b"\r", false);
        ends.put(&mut out, b"\xffg", true);
        assert_eq!(out, b"\r\xff\xffg", "in BINARY no NUL is owed");
    }
}
