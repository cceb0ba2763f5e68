//! The RFC 1143 option table: both sides of every option, and the answer each negotiation gets.
//!
//! One table serves the client codec and the simulated board's telnetd; they differ only in
//! the [`Policy`] of what they accept. The answers follow telnet.md §1.2: a `DO` or `WILL` is
//! never left unanswered (inetutils telnetd waits forever for one), and a state that is
//! already in effect is never acknowledged again, so a peer that repeats itself (ser2net sends
//! `DO SGA` twice) gets no loop.

use super::{DO, DONT, WILL, WONT};

/// One side of one option, as RFC 1143 ("the Q method") keeps it. WANTNO and the queue bit
/// are left out: neither socv nor the simulated board ever asks to turn an option off, nor
/// changes its mind while a request is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Q {
    #[default]
    No,
    Yes,
    /// We asked for it and wait for the answer, which must not be answered again.
    WantYes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Sides {
    /// Whether we do it (changed by DO/DONT, answered with WILL/WONT).
    us: Q,
    /// Whether the peer does it (changed by WILL/WONT, answered with DO/DONT).
    him: Q,
}

/// Which options one end agrees to; everything else is refused.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Options we do when the peer sends `DO`.
    pub(crate) local: &'static [u8],
    /// Options we let the peer do when it sends `WILL`.
    pub(crate) remote: &'static [u8],
}

impl Policy {
    pub(crate) fn accepts_local(&self, option: u8) -> bool {
        self.local.contains(&option)
    }

    pub(crate) fn accepts_remote(&self, option: u8) -> bool {
        self.remote.contains(&option)
    }
}

/// The negotiation state of one connection.
#[derive(Debug)]
pub(crate) struct OptionTable {
    policy: Policy,
    sides: Box<[Sides; 256]>,
}

impl OptionTable {
    pub(crate) fn new(policy: Policy) -> Self {
        OptionTable {
            policy,
            sides: Box::new([Sides::default(); 256]),
        }
    }

    /// Takes one received `verb option`; returns the verb to answer with, if any.
    pub(crate) fn receive(&mut self, verb: u8, option: u8) -> Option<u8> {
        let sides = &mut self.sides[usize::from(option)];
        match verb {
            WILL => enable(&mut sides.him, self.policy.accepts_remote(option), DO, DONT),
            WONT => disable(&mut sides.him, DONT),
            DO => enable(&mut sides.us, self.policy.accepts_local(option), WILL, WONT),
            DONT => disable(&mut sides.us, WONT),
            _ => None,
        }
    }

    /// Asks the peer to let us do `option`: `Some(WILL)` to send, or `None` when the option
    /// is not off (asking again would be answered again).
    pub(crate) fn offer(&mut self, option: u8) -> Option<u8> {
        ask(&mut self.sides[usize::from(option)].us, WILL)
    }

    /// Asks the peer to do `option`: `Some(DO)` to send, or `None` when it is not off.
    pub(crate) fn request(&mut self, option: u8) -> Option<u8> {
        ask(&mut self.sides[usize::from(option)].him, DO)
    }

    /// Our side of `option`.
    pub(crate) fn local(&self, option: u8) -> Q {
        self.sides[usize::from(option)].us
    }

    /// The peer's side of `option`.
    pub(crate) fn remote(&self, option: u8) -> Q {
        self.sides[usize::from(option)].him
    }
}

/// The peer asks for a side (or agrees to our request).
fn enable(side: &mut Q, accept: bool, yes: u8, no: u8) -> Option<u8> {
    match *side {
        Q::No if accept => {
            *side = Q::Yes;
            Some(yes)
        }
        // Refused each time it is asked: the state stays No, and a refusal needs no answer,
        // so this cannot loop.
        Q::No => Some(no),
        Q::WantYes => {
            *side = Q::Yes;
            None
        }
        Q::Yes => None,
    }
}

/// The peer turns a side off (or refuses our request, which must always be accepted).
fn disable(side: &mut Q, no: u8) -> Option<u8> {
    match *side {
        Q::Yes => {
            *side = Q::No;
            Some(no)
        }
        Q::WantYes => {
            *side = Q::No;
            None
        }
        Q::No => None,
    }
}

fn ask(side: &mut Q, verb: u8) -> Option<u8> {
    if *side != Q::No {
        return None;
    }
    *side = Q::WantYes;
    Some(verb)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        local: &[3],
        remote: &[1],
    };

    #[test]
    fn every_do_and_will_is_answered() {
        for option in 0..=255u8 {
            let mut table = OptionTable::new(POLICY);
            // Accepted: acknowledged once. Refused: refused every time.
            let ours = option == 3;
            let answer = if ours { WILL } else { WONT };
            assert_eq!(table.receive(DO, option), Some(answer), "DO {option}");
            assert_eq!(table.receive(DO, option), (!ours).then_some(WONT));
            let theirs = option == 1;
            let answer = if theirs { DO } else { DONT };
            assert_eq!(table.receive(WILL, option), Some(answer), "WILL {option}");
            assert_eq!(table.receive(WILL, option), (!theirs).then_some(DONT));
        }
    }

    #[test]
    fn turning_off_is_acknowledged_only_when_on() {
        let mut table = OptionTable::new(POLICY);
        assert_eq!(table.receive(WONT, 1), None);
        assert_eq!(table.receive(DONT, 3), None);
        assert_eq!(table.receive(WILL, 1), Some(DO));
        assert_eq!(table.receive(DO, 3), Some(WILL));
        assert_eq!((table.remote(1), table.local(3)), (Q::Yes, Q::Yes));
        assert_eq!(table.receive(WONT, 1), Some(DONT));
        assert_eq!(table.receive(DONT, 3), Some(WONT));
        assert_eq!((table.remote(1), table.local(3)), (Q::No, Q::No));
        assert_eq!(table.receive(WONT, 1), None, "already off");
    }

    #[test]
    fn answers_to_our_requests_are_not_answered() {
        let mut table = OptionTable::new(POLICY);
        assert_eq!(
            table.offer(1),
            Some(WILL),
            "offered even if we would refuse a DO"
        );
        assert_eq!(table.request(31), Some(DO));
        assert_eq!(table.offer(1), None, "pending: not asked twice");
        assert_eq!(table.local(1), Q::WantYes);
        // Agreement and refusal of a pending request: silent (RFC 1143).
        assert_eq!(table.receive(DO, 1), None);
        assert_eq!(table.local(1), Q::Yes);
        assert_eq!(table.receive(WONT, 31), None);
        assert_eq!(table.remote(31), Q::No);
        // Asked again after the refusal, then agreed: still silent.
        assert_eq!(table.request(31), Some(DO));
        assert_eq!(table.receive(WILL, 31), None);
        assert_eq!(table.remote(31), Q::Yes);
        // A DONT for a pending offer is accepted without an answer.
        assert_eq!(table.offer(3), Some(WILL));
        assert_eq!(table.receive(DONT, 3), None);
        assert_eq!(table.local(3), Q::No);
    }

    #[test]
    fn unknown_verbs_change_nothing() {
        let mut table = OptionTable::new(POLICY);
        assert_eq!(table.receive(250, 1), None);
        assert_eq!((table.local(1), table.remote(1)), (Q::No, Q::No));
    }
}
