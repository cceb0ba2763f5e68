//! The lease book: the lab's lease semantics as an in-memory state machine (the embedded
//! store's core; the Redis backend's `lease.lua` mirrors it, and the conformance suite holds both
//! to the same behaviour). Its twin for runs is [`RunBook`] in `runs.rs`.

use super::runs::RunBook;
use super::{
    Acquire, AcquireOutcome, BoardKey, BoardState, ENDED_LEASE_MEMORY_MS, LeaseEnd, LeaseRecord,
    Millis, ReapReport, StoreCounts, StoreError, StoreResult, Target, TicketPoll, TicketRecord,
    new_id,
};
use crate::api::Priority;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// How many ended leases are remembered at most (beside the age limit), so that a busy lab does
/// not grow without bound.
const ENDED_LEASE_MEMORY_COUNT: usize = 10_000;

/// A board's stored record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardRecord {
    pub id: String,
    pub family: String,
    pub location: String,
    /// Listed in the current lab description.
    pub present: bool,
    pub lease: Option<String>,
    pub unhealthy: bool,
    pub failures: u32,
    pub drained: bool,
    pub drain_reason: Option<String>,
    pub last_used: Option<Millis>,
}

impl BoardRecord {
    fn grantable(&self) -> bool {
        self.present && self.lease.is_none() && !self.unhealthy && !self.drained
    }
    fn serviceable(&self) -> bool {
        self.present && !self.unhealthy && !self.drained
    }
}

/// Keys touched by an operation, so the embedded store writes only what changed.
#[derive(Debug, Default)]
pub struct Dirty {
    pub boards: HashSet<String>,
    pub leases: HashSet<String>,
    pub tickets: HashSet<String>,
    pub seq: bool,
}

impl Dirty {
    pub fn is_empty(&self) -> bool {
        self.boards.is_empty() && self.leases.is_empty() && self.tickets.is_empty() && !self.seq
    }

    /// Takes in changes that could not be written, to write them with the next ones.
    pub fn merge(&mut self, other: Dirty) {
        self.boards.extend(other.boards);
        self.leases.extend(other.leases);
        self.tickets.extend(other.tickets);
        self.seq |= other.seq;
    }
}

/// Boards, leases and queue tickets, and every change to them (see [`RunBook`] for runs).
#[derive(Debug, Default)]
pub struct LeaseBook {
    pub boards: BTreeMap<String, BoardRecord>,
    /// Active leases and remembered ended ones.
    pub leases: HashMap<String, LeaseRecord>,
    pub tickets: HashMap<String, TicketRecord>,
    pub seq: u64,
    /// Waiting (not yet granted) tickets in service order.
    queue: BTreeSet<(Priority, u64, String)>,
    /// Ended leases, oldest first, for forgetting them.
    ended: VecDeque<(Millis, String)>,
    pub dirty: Dirty,
    /// Tickets granted by the last operation (to wake their long polls).
    pub granted: Vec<String>,
    /// Run history and its outbox, kept beside the leases (and committed with them).
    pub runs: RunBook,
}

impl LeaseBook {
    /// Builds the state from stored records (after a restart).
    pub fn restore(
        boards: Vec<BoardRecord>,
        leases: Vec<LeaseRecord>,
        tickets: Vec<TicketRecord>,
        seq: u64,
    ) -> LeaseBook {
        let mut state = LeaseBook {
            seq,
            ..LeaseBook::default()
        };
        for b in boards {
            state.boards.insert(b.id.clone(), b);
        }
        let mut ended: Vec<(Millis, String)> = Vec::new();
        for l in leases {
            if l.ended.is_some() {
                ended.push((l.expires_at, l.id.clone()));
            }
            state.leases.insert(l.id.clone(), l);
        }
        ended.sort();
        state.ended = ended.into();
        for t in tickets {
            if t.lease_id.is_none() {
                state.queue.insert((t.priority, t.seq, t.id.clone()));
            }
            state.tickets.insert(t.id.clone(), t);
        }
        state
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.dirty.seq = true;
        self.seq
    }

    pub fn sync_boards(&mut self, keys: &[BoardKey], now: Millis) {
        self.reap(now);
        let listed: HashSet<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        for b in self.boards.values_mut() {
            if b.present && !listed.contains(b.id.as_str()) {
                b.present = false;
                self.dirty.boards.insert(b.id.clone());
            }
        }
        for k in keys {
            let rec = self
                .boards
                .entry(k.id.clone())
                .or_insert_with(|| BoardRecord {
                    id: k.id.clone(),
                    family: k.family.clone(),
                    location: k.location.clone(),
                    present: true,
                    lease: None,
                    unhealthy: false,
                    failures: 0,
                    drained: false,
                    drain_reason: None,
                    last_used: None,
                });
            if !rec.present || rec.family != k.family || rec.location != k.location {
                rec.present = true;
                rec.family = k.family.clone();
                rec.location = k.location.clone();
            }
            self.dirty.boards.insert(k.id.clone());
        }
        // A board that came (back) may serve a waiter.
        let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
        for id in ids {
            self.dispatch(&id, now);
        }
    }

    fn ticket_live(t: &TicketRecord, now: Millis) -> bool {
        t.poll_by > now && t.give_up_at.is_none_or(|g| g > now)
    }

    /// Ends expired leases and lapsed tickets, then hands the freed boards to waiters.
    pub fn reap(&mut self, now: Millis) -> ReapReport {
        let mut report = ReapReport::default();
        let expired: Vec<String> = self
            .boards
            .values()
            .filter_map(|b| b.lease.as_ref())
            .filter(|id| self.leases.get(*id).is_some_and(|l| l.expires_at <= now))
            .cloned()
            .collect();
        let mut freed = Vec::new();
        for id in expired {
            if let Some(board) = self.end_lease(&id, LeaseEnd::Expired, now) {
                freed.push(board);
            }
            report.expired.push(id);
        }
        let dead: Vec<String> = self
            .tickets
            .values()
            .filter(|t| !Self::ticket_live(t, now))
            .map(|t| t.id.clone())
            .collect();
        for id in dead {
            let Some(t) = self.remove_ticket(&id) else {
                continue;
            };
            match (&t.lease_id, t.claimed) {
                (None, _) => report.lapsed.push(id),
                (Some(lease), false) => {
                    if let Some(board) = self.end_lease(lease, LeaseEnd::Abandoned, now) {
                        freed.push(board);
                    }
                    report.lapsed.push(id);
                }
                // Claimed: the holder has its lease; the ticket was only a receipt.
                (Some(_), true) => {}
            }
        }
        // Same order as the Redis script, so both backends hand boards out alike.
        freed.sort();
        for board in freed {
            self.dispatch(&board, now);
        }
        self.forget_ended(now);
        report
    }

    fn forget_ended(&mut self, now: Millis) {
        while let Some((at, id)) = self.ended.front() {
            if *at + ENDED_LEASE_MEMORY_MS > now && self.ended.len() <= ENDED_LEASE_MEMORY_COUNT {
                break;
            }
            let id = id.clone();
            self.ended.pop_front();
            if self.leases.get(&id).is_some_and(|l| l.ended.is_some()) {
                self.leases.remove(&id);
                self.dirty.leases.insert(id);
            }
        }
    }

    fn remove_ticket(&mut self, id: &str) -> Option<TicketRecord> {
        let t = self.tickets.remove(id)?;
        self.queue.remove(&(t.priority, t.seq, t.id.clone()));
        self.dirty.tickets.insert(t.id.clone());
        Some(t)
    }

    /// Ends an active lease; returns the board it freed.
    fn end_lease(&mut self, id: &str, how: LeaseEnd, now: Millis) -> Option<String> {
        let lease = self.leases.get_mut(id)?;
        if lease.ended.is_some() {
            return None;
        }
        lease.ended = Some(how);
        // An ended lease's expiry is when it ended: the clock for forgetting it.
        lease.expires_at = lease.expires_at.min(now);
        self.ended.push_back((lease.expires_at, id.to_string()));
        self.dirty.leases.insert(id.to_string());
        let board = self.boards.get_mut(&lease.board_id)?;
        if board.lease.as_deref() == Some(id) {
            board.lease = None;
            board.last_used = Some(now);
            self.dirty.boards.insert(board.id.clone());
            Some(board.id.clone())
        } else {
            None
        }
    }

    fn grant(
        &mut self,
        board_id: &str,
        holder: &str,
        priority: Priority,
        ttl_ms: Millis,
        now: Millis,
    ) -> LeaseRecord {
        let grant_seq = self.next_seq();
        let board = self
            .boards
            .get_mut(board_id)
            .expect("grant is only called for a known board");
        let lease = LeaseRecord {
            id: new_id("l"),
            board_id: board.id.clone(),
            family: board.family.clone(),
            location: board.location.clone(),
            holder: holder.to_string(),
            priority,
            granted_at: now,
            expires_at: now + ttl_ms,
            ttl_ms,
            grant_seq,
            ended: None,
        };
        board.lease = Some(lease.id.clone());
        board.last_used = Some(now);
        self.dirty.boards.insert(board.id.clone());
        self.dirty.leases.insert(lease.id.clone());
        self.leases.insert(lease.id.clone(), lease.clone());
        lease
    }

    /// Gives a grantable board to the first live waiter that matches it.
    fn dispatch(&mut self, board_id: &str, now: Millis) {
        let Some(board) = self.boards.get(board_id) else {
            return;
        };
        if !board.grantable() {
            return;
        }
        let family = board.family.clone();
        let mut lapsed = Vec::new();
        let mut chosen = None;
        for (_, _, tid) in &self.queue {
            let Some(t) = self.tickets.get(tid) else {
                continue;
            };
            if !Self::ticket_live(t, now) {
                lapsed.push(tid.clone());
                continue;
            }
            let matches = match &t.board_id {
                Some(b) => b == board_id,
                None => t.family == family,
            };
            if matches {
                chosen = Some(tid.clone());
                break;
            }
        }
        for tid in lapsed {
            self.remove_ticket(&tid);
        }
        let Some(tid) = chosen else {
            return;
        };
        let Some(t) = self.tickets.get(&tid).cloned() else {
            return;
        };
        let lease = self.grant(board_id, &t.holder, t.priority, t.ttl_ms, now);
        self.queue.remove(&(t.priority, t.seq, tid.clone()));
        if let Some(t) = self.tickets.get_mut(&tid) {
            t.lease_id = Some(lease.id);
        }
        self.dirty.tickets.insert(tid.clone());
        self.granted.push(tid);
    }

    fn position(&self, ticket: &TicketRecord, now: Millis) -> u32 {
        let ahead = self
            .queue
            .range(..(ticket.priority, ticket.seq, ticket.id.clone()))
            .filter_map(|(_, _, id)| self.tickets.get(id))
            .filter(|t| t.family == ticket.family && Self::ticket_live(t, now))
            .count();
        u32::try_from(ahead).unwrap_or(u32::MAX).saturating_add(1)
    }

    pub fn acquire(&mut self, req: &Acquire, now: Millis) -> StoreResult<AcquireOutcome> {
        self.reap(now);
        let (family, label, candidates): (String, String, Vec<&BoardRecord>) = match &req.target {
            Target::Family(f) => {
                let c: Vec<&BoardRecord> = self
                    .boards
                    .values()
                    .filter(|b| b.present && &b.family == f)
                    .collect();
                if c.is_empty() {
                    return Err(StoreError::UnknownFamily(f.clone()));
                }
                (f.clone(), f.clone(), c)
            }
            Target::Board(id) => match self.boards.get(id).filter(|b| b.present) {
                Some(b) => (b.family.clone(), id.clone(), vec![b]),
                None => return Err(StoreError::UnknownBoard(id.clone())),
            },
        };
        let best = candidates
            .iter()
            .filter(|b| b.grantable())
            .min_by_key(|b| {
                (
                    req.location.as_ref().is_none_or(|l| l != &b.location),
                    b.last_used.unwrap_or(0),
                    b.id.clone(),
                )
            })
            .map(|b| b.id.clone());
        if let Some(board) = best {
            let lease = self.grant(&board, &req.holder, req.priority, req.ttl_ms, now);
            return Ok(AcquireOutcome::Granted(lease));
        }
        if !candidates.iter().any(|b| b.serviceable()) {
            return Err(StoreError::NoHealthyBoard { target: label });
        }
        let Some(terms) = req.queue else {
            return Err(StoreError::NoneFree(label));
        };
        let seq = self.next_seq();
        let ticket = TicketRecord {
            id: new_id("q"),
            family,
            board_id: match &req.target {
                Target::Board(b) => Some(b.clone()),
                Target::Family(_) => None,
            },
            location: req.location.clone(),
            priority: req.priority,
            holder: req.holder.clone(),
            ttl_ms: req.ttl_ms,
            seq,
            lapse_ms: terms.lapse_ms,
            poll_by: now + terms.lapse_ms,
            give_up_at: terms.give_up_at,
            lease_id: None,
            claimed: false,
        };
        self.queue
            .insert((ticket.priority, ticket.seq, ticket.id.clone()));
        self.tickets.insert(ticket.id.clone(), ticket.clone());
        self.dirty.tickets.insert(ticket.id.clone());
        let position = self.position(&ticket, now);
        Ok(AcquireOutcome::Queued { ticket, position })
    }

    pub fn poll_ticket(&mut self, id: &str, now: Millis) -> StoreResult<TicketPoll> {
        self.reap(now);
        let Some(t) = self.tickets.get_mut(id) else {
            return Err(StoreError::UnknownTicket(id.to_string()));
        };
        t.poll_by = now + t.lapse_ms;
        let lease_id = t.lease_id.clone();
        if lease_id.is_some() {
            t.claimed = true;
        }
        self.dirty.tickets.insert(id.to_string());
        match lease_id {
            Some(lid) => self
                .leases
                .get(&lid)
                .cloned()
                .map(TicketPoll::Granted)
                .ok_or(StoreError::UnknownLease(lid)),
            None => {
                let ticket = self.tickets[id].clone();
                let position = self.position(&ticket, now);
                Ok(TicketPoll::Waiting { ticket, position })
            }
        }
    }

    pub fn cancel_ticket(&mut self, id: &str, now: Millis) -> StoreResult<()> {
        self.reap(now);
        let Some(t) = self.remove_ticket(id) else {
            return Err(StoreError::UnknownTicket(id.to_string()));
        };
        if let Some(lease) = t.lease_id
            && let Some(board) = self.end_lease(&lease, LeaseEnd::Released, now)
        {
            self.dispatch(&board, now);
        }
        Ok(())
    }

    fn lease_or_error(&self, id: &str) -> StoreResult<&LeaseRecord> {
        match self.leases.get(id) {
            None => Err(StoreError::UnknownLease(id.to_string())),
            Some(l) => match l.ended {
                Some(how) => Err(StoreError::LeaseEnded {
                    id: id.to_string(),
                    how,
                }),
                None => Ok(l),
            },
        }
    }

    pub fn renew(&mut self, id: &str, ttl_ms: Millis, now: Millis) -> StoreResult<LeaseRecord> {
        self.reap(now);
        self.lease_or_error(id)?;
        let lease = self
            .leases
            .get_mut(id)
            .ok_or_else(|| StoreError::UnknownLease(id.to_string()))?;
        lease.expires_at = now + ttl_ms;
        lease.ttl_ms = ttl_ms;
        self.dirty.leases.insert(id.to_string());
        Ok(lease.clone())
    }

    pub fn release_held(
        &mut self,
        id: &str,
        holder: Option<&str>,
        now: Millis,
    ) -> StoreResult<LeaseRecord> {
        self.reap(now);
        if let (Some(h), Some(l)) = (holder, self.leases.get(id))
            && l.holder != h
        {
            return Err(StoreError::NotHolder {
                id: id.to_string(),
                holder: l.holder.clone(),
            });
        }
        self.release(id, now)
    }

    pub fn release(&mut self, id: &str, now: Millis) -> StoreResult<LeaseRecord> {
        self.reap(now);
        self.lease_or_error(id)?;
        if let Some(board) = self.end_lease(id, LeaseEnd::Released, now) {
            self.dispatch(&board, now);
        }
        self.leases
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::UnknownLease(id.to_string()))
    }

    pub fn active_leases(&self) -> Vec<LeaseRecord> {
        let mut v: Vec<LeaseRecord> = self
            .boards
            .values()
            .filter_map(|b| b.lease.as_ref())
            .filter_map(|id| self.leases.get(id))
            .filter(|l| l.ended.is_none())
            .cloned()
            .collect();
        v.sort_by(|a, b| a.board_id.cmp(&b.board_id));
        v
    }

    pub fn board_state(&self, b: &BoardRecord) -> BoardState {
        BoardState {
            id: b.id.clone(),
            family: b.family.clone(),
            location: b.location.clone(),
            lease: b.lease.as_ref().and_then(|id| self.leases.get(id)).cloned(),
            unhealthy: b.unhealthy,
            failures: b.failures,
            drain_reason: b.drain_reason.clone(),
            drained: b.drained,
            last_used: b.last_used,
        }
    }

    pub fn board_states(&self) -> Vec<BoardState> {
        self.boards
            .values()
            .filter(|b| b.present)
            .map(|b| self.board_state(b))
            .collect()
    }

    fn present_board(&mut self, id: &str) -> StoreResult<&mut BoardRecord> {
        self.boards
            .get_mut(id)
            .filter(|b| b.present)
            .ok_or_else(|| StoreError::UnknownBoard(id.to_string()))
    }

    pub fn set_drain(
        &mut self,
        id: &str,
        reason: Option<String>,
        drained: bool,
        now: Millis,
    ) -> StoreResult<BoardState> {
        self.reap(now);
        let b = self.present_board(id)?;
        b.drained = drained;
        b.drain_reason = if drained { reason } else { None };
        self.dirty.boards.insert(id.to_string());
        if !drained {
            self.dispatch(id, now);
        }
        Ok(self.board_state(&self.boards[id]))
    }

    pub fn report_health(
        &mut self,
        id: &str,
        ok: bool,
        threshold: u32,
        now: Millis,
    ) -> StoreResult<BoardState> {
        self.reap(now);
        let b = self.present_board(id)?;
        if ok {
            b.failures = 0;
            b.unhealthy = false;
        } else {
            b.failures = b.failures.saturating_add(1);
            if b.failures >= threshold.max(1) {
                b.unhealthy = true;
            }
        }
        self.dirty.boards.insert(id.to_string());
        if ok {
            self.dispatch(id, now);
        }
        Ok(self.board_state(&self.boards[id]))
    }

    pub fn counts(&self) -> StoreCounts {
        StoreCounts {
            boards: self.boards.values().filter(|b| b.present).count() as u32,
            leases: self.active_leases().len() as u32,
            waiting: self.queue.len() as u32,
        }
    }
}
