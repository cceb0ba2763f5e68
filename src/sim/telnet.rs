//! The server side of telnet (RFC 854) as a simulated board's telnetd speaks it: the greeting
//! busybox telnetd sends, option negotiation without loops (RFC 1143), subnegotiation, IAC
//! escaping, and NVT end-of-line handling, fed with whatever pieces TCP delivers.

/// Interpret As Command.
pub const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const AYT: u8 = 246;
const IP: u8 = 244;
const SE: u8 = 240;

pub const OPT_ECHO: u8 = 1;
pub const OPT_SGA: u8 = 3;
pub const OPT_NAWS: u8 = 31;

const CR: u8 = b'\r';
const LF: u8 = b'\n';
const NUL: u8 = 0;
/// What an interrupt (IAC IP) becomes on the board: the tty's VINTR character.
const CTRL_C: u8 = 0x03;

/// Longest subnegotiation payload kept; NAWS needs 4, the rest is ignored anyway.
const MAX_SB: usize = 64;

/// One side of one option, after RFC 1143 (without the queue bit: this server never changes
/// its mind while a request is pending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    No,
    Yes,
    /// We asked and wait for the answer.
    WantYes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    Iac,
    /// After IAC WILL/WONT/DO/DONT: the option byte comes next.
    Verb(u8),
    /// After IAC SB: the option byte comes next.
    SbOption,
    Sb,
    SbIac,
}

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
    state: State,
    /// The previous data byte was CR: a following LF or NUL belongs to it.
    after_cr: bool,
    sb_option: u8,
    sb: Vec<u8>,
    /// Options on our (the server's) side.
    ours: [Side; 256],
    /// Options on the client's side.
    theirs: [Side; 256],
}

impl Default for TelnetServer {
    fn default() -> Self {
        TelnetServer {
            state: State::Data,
            after_cr: false,
            sb_option: 0,
            sb: Vec::new(),
            ours: [Side::No; 256],
            theirs: [Side::No; 256],
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
        self.theirs[usize::from(OPT_ECHO)] = Side::WantYes;
        self.theirs[usize::from(OPT_NAWS)] = Side::WantYes;
        self.ours[usize::from(OPT_ECHO)] = Side::WantYes;
        self.ours[usize::from(OPT_SGA)] = Side::WantYes;
        vec![
            IAC, DO, OPT_ECHO, IAC, DO, OPT_NAWS, IAC, WILL, OPT_ECHO, IAC, WILL, OPT_SGA,
        ]
    }

    /// Whether we echo the client's input (we offered it and the client did not refuse).
    pub fn we_echo(&self) -> bool {
        self.ours[usize::from(OPT_ECHO)] != Side::No
    }

    /// Feeds one piece of client input; any split of the stream gives the same result.
    pub fn decode(&mut self, input: &[u8]) -> Decoded {
        let mut out = Decoded::default();
        for &byte in input {
            self.step(byte, &mut out);
        }
        out
    }

    fn step(&mut self, byte: u8, out: &mut Decoded) {
        match self.state {
            State::Data => match byte {
                IAC => self.state = State::Iac,
                // RFC 1123: a server treats CR LF and CR NUL as CR (as busybox telnetd does).
                LF | NUL if self.after_cr => self.after_cr = false,
                _ => {
                    self.after_cr = byte == CR;
                    out.data.push(byte);
                }
            },
            State::Iac => {
                self.state = State::Data;
                match byte {
                    IAC => {
                        self.after_cr = false;
                        out.data.push(IAC);
                    }
                    WILL | WONT | DO | DONT => self.state = State::Verb(byte),
                    SB => self.state = State::SbOption,
                    IP => {
                        self.after_cr = false;
                        out.data.push(CTRL_C);
                    }
                    AYT => out.replies.extend_from_slice(b"\r\n[Yes]\r\n"),
                    // NOP, GA, DM, BRK, AO, EC, EL, EOR, a stray SE: nothing to do.
                    _ => {}
                }
            }
            State::Verb(verb) => {
                self.state = State::Data;
                self.negotiate(verb, byte, &mut out.replies);
            }
            State::SbOption => {
                self.sb_option = byte;
                self.sb.clear();
                self.state = State::Sb;
            }
            State::Sb => match byte {
                IAC => self.state = State::SbIac,
                _ => self.sb_byte(byte),
            },
            State::SbIac => match byte {
                IAC => {
                    self.sb_byte(IAC);
                    self.state = State::Sb;
                }
                SE => {
                    self.state = State::Data;
                    self.subnegotiation(out);
                }
                // A malformed SB (IAC and something else): end it there and take the byte as
                // the command it says it is, as telnetds do, instead of swallowing the stream.
                _ => {
                    self.sb.clear();
                    self.state = State::Iac;
                    self.step(byte, out);
                }
            },
        }
    }

    fn sb_byte(&mut self, byte: u8) {
        if self.sb.len() < MAX_SB {
            self.sb.push(byte);
        }
    }

    fn subnegotiation(&mut self, out: &mut Decoded) {
        if self.sb_option == OPT_NAWS && self.sb.len() == 4 {
            let cols = u16::from_be_bytes([self.sb[0], self.sb[1]]);
            let rows = u16::from_be_bytes([self.sb[2], self.sb[3]]);
            // 0 means "unknown" (RFC 1073): keep the size we have.
            if cols > 0 && rows > 0 {
                out.window = Some((cols, rows));
            }
        }
        self.sb.clear();
    }

    /// Answers one WILL/WONT/DO/DONT so that a state is never acknowledged twice (no loops)
    /// and a refusal is always accepted.
    fn negotiate(&mut self, verb: u8, option: u8, replies: &mut Vec<u8>) {
        let index = usize::from(option);
        match verb {
            WILL => match self.theirs[index] {
                Side::No if matches!(option, OPT_NAWS | OPT_SGA | OPT_ECHO) => {
                    self.theirs[index] = Side::Yes;
                    replies.extend_from_slice(&[IAC, DO, option]);
                }
                Side::No => replies.extend_from_slice(&[IAC, DONT, option]),
                Side::WantYes => self.theirs[index] = Side::Yes,
                Side::Yes => {}
            },
            WONT => match self.theirs[index] {
                Side::Yes => {
                    self.theirs[index] = Side::No;
                    replies.extend_from_slice(&[IAC, DONT, option]);
                }
                Side::WantYes => self.theirs[index] = Side::No,
                Side::No => {}
            },
            DO => match self.ours[index] {
                // Like busybox: no BINARY, so CR NUL / CR LF rules stay on.
                Side::No if matches!(option, OPT_ECHO | OPT_SGA) => {
                    self.ours[index] = Side::Yes;
                    replies.extend_from_slice(&[IAC, WILL, option]);
                }
                Side::No => replies.extend_from_slice(&[IAC, WONT, option]),
                Side::WantYes => self.ours[index] = Side::Yes,
                Side::Yes => {}
            },
            DONT => match self.ours[index] {
                Side::Yes => {
                    self.ours[index] = Side::No;
                    replies.extend_from_slice(&[IAC, WONT, option]);
                }
                Side::WantYes => self.ours[index] = Side::No,
                Side::No => {}
            },
            _ => {}
        }
    }
}

/// Board output as it goes on the wire: every 0xFF doubled.
pub fn escape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64);
    for &byte in data {
        out.push(byte);
        if byte == IAC {
            out.push(IAC);
        }
    }
    out
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

    #[test]
    fn escapes_iac_in_output() {
        assert_eq!(escape(&[1, 255, 2]), [1, 255, 255, 2]);
        assert_eq!(escape(b"plain"), b"plain");
    }
}
