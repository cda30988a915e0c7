//! Consensus of the private chain: a Tendermint-style BFT state machine ([`Tendermint`]) and a
//! proof-of-authority round-robin baseline ([`poa::Poa`]) behind one sans-IO interface ([`Consensus`]).
//!
//! Sans-IO: the driver hands in `now` (integer nanoseconds) with each wire message or expired deadline and
//! gets back, in an [`Output`], the messages to broadcast, catch-up requests to answer, equivocation evidence
//! seen, and at most one decided block with its commit. [`Consensus::next_deadline`] says when to call back.
//! The driver executes decided blocks on the application and starts the next height with the new state
//! root ([`Consensus::start_height`]). Nothing here reads a clock, blocks, or panics on bad bytes.
//!
//! The Tendermint algorithm follows Buchman, Kwon and Milosevic, *The latest gossip on BFT consensus* (2018):
//! rounds of propose, prevote and precommit with timeouts growing per round; a validator locks on a block
//! once it saw a polka (prevotes of more than 2/3 of the power) for it and prevotes only its locked block in
//! later rounds unless a newer polka unlocks it (locking rule); a proposer re-proposes the latest block with
//! a polka (valid-value rule); a block is decided on precommits of more than 2/3 of the power. More than
//! 1/3 of the power at a higher round makes a validator skip to it. Safety needs fewer than 1/3 of the power
//! Byzantine; liveness needs messages to arrive eventually, for which a validator re-sends its own messages
//! of the current round and relays the round's proposal and the votes it heard every `gossip_interval`, and answers a peer that is
//! a height behind with the decided block and its commit. A validator that hears a later height (for
//! `timeout_vote`, or at once when two heights behind) asks that peer for the decided blocks from its own height
//! on ([`Message::Request`]); the driver answers with up to [`MAX_CATCH_UP_BLOCKS`] blocks with their commits,
//! which are buffered up to [`MAX_HEIGHTS_AHEAD`] heights ahead (catch-up of commits under message loss).

pub mod poa;

use crate::app::Hash;
use crate::ledger::codec::{Reader, Writer};
use crate::ledger::{
    Block, Commit, CommitSig, Evidence, Header, LedgerError, Tip, ValidatorSet, Vote, VoteKind, domain, validate_block,
    validate_commit,
};
use crate::time::{Duration, Instant};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use ed25519_dalek::{Signer as _, SigningKey};

/// Most rounds ahead of the current one whose messages are kept (bounds memory under spam).
pub const MAX_ROUNDS_AHEAD: u32 = 32;
/// Most messages of later heights buffered while this height is being decided.
pub const MAX_FUTURE_MESSAGES: usize = 4096;
/// Messages up to this many heights ahead are buffered (decided blocks of a catch-up arrive together).
pub const MAX_HEIGHTS_AHEAD: u64 = 8;
/// Most decided blocks a validator sends a peer that asked to catch up (the driver's bound).
pub const MAX_CATCH_UP_BLOCKS: u64 = 8;
/// Most equivocation evidence items waiting to be put in a block.
pub const MAX_PENDING_EVIDENCE: usize = 256;
/// Most rule re-evaluations after one input (each applies at most one step of the state machine).
const MAX_RULE_PASSES: usize = 16;

/// Timeouts and identity of a consensus instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub chain_id: Hash,
    /// Wait for a proposal in round r: `timeout_propose + r * timeout_delta`.
    pub timeout_propose: Duration,
    /// Wait after seeing more than 2/3 of any prevotes or precommits: `timeout_vote + r * timeout_delta`.
    pub timeout_vote: Duration,
    pub timeout_delta: Duration,
    /// Re-send own messages of the current round this often.
    pub gossip_interval: Duration,
    /// Most transactions a proposer puts in one block.
    pub max_block_txs: usize,
    /// Peers each vote heard from another validator is relayed to on every gossip tick of a round that
    /// outlives `gossip_interval` (makes a double vote seen by someone holding the other vote, and carries
    /// votes around lost links); a conflicting vote is relayed at once.
    pub relay_fanout: u32,
}

impl Config {
    pub fn new(chain_id: Hash) -> Self {
        Config {
            chain_id,
            timeout_propose: Duration::from_millis(1_000),
            timeout_vote: Duration::from_millis(500),
            timeout_delta: Duration::from_millis(500),
            gossip_interval: Duration::from_millis(1_000),
            max_block_txs: 10_000,
            relay_fanout: 2,
        }
    }
}

/// A signed proposal of a block at (height, round), re-proposing a block with a polka at `pol_round` if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub height: u64,
    pub round: u32,
    pub pol_round: Option<u32>,
    pub block: Block,
    pub signature: [u8; 64],
}

/// The bytes a proposal's signature covers.
pub fn proposal_sign_bytes(
    chain_id: &Hash,
    height: u64,
    round: u32,
    pol_round: Option<u32>,
    block_hash: &Hash,
) -> Vec<u8> {
    let mut w = Writer::with_capacity(96);
    w.raw(domain::PROPOSAL).raw(chain_id).u64(height).u32(round).u32(pol_round.unwrap_or(u32::MAX)).raw(block_hash);
    w.buf
}

impl Proposal {
    pub fn sign(
        chain_id: &Hash,
        key: &SigningKey,
        height: u64,
        round: u32,
        pol_round: Option<u32>,
        block: Block,
    ) -> Proposal {
        let signature = key.sign(&proposal_sign_bytes(chain_id, height, round, pol_round, &block.hash())).to_bytes();
        Proposal { height, round, pol_round, block, signature }
    }
}

/// A consensus wire message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Proposal(Proposal),
    Vote(Vote),
    /// A decided block and its commit (answers a peer that is behind).
    Decided(Block, Commit),
    /// Validator `from` asks for the block at `height` (PoA chain sync).
    Request {
        from: u32,
        height: u64,
    },
}

const TAG_PROPOSAL: u8 = 1;
const TAG_VOTE: u8 = 2;
const TAG_DECIDED: u8 = 3;
const TAG_REQUEST: u8 = 4;

impl Message {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Message::Proposal(p) => {
                w.u8(TAG_PROPOSAL).u64(p.height).u32(p.round).u32(p.pol_round.unwrap_or(u32::MAX)).raw(&p.signature);
                p.block.encode(&mut w);
            }
            Message::Vote(v) => {
                w.u8(TAG_VOTE);
                v.encode(&mut w);
            }
            Message::Decided(b, c) => {
                w.u8(TAG_DECIDED);
                w.bytes(&b.to_bytes());
                c.encode(&mut w);
            }
            Message::Request { from, height } => {
                w.u8(TAG_REQUEST).u32(*from).u64(*height);
            }
        }
        w.buf
    }
    pub fn decode(bytes: &[u8]) -> Result<Message, LedgerError> {
        let mut r = Reader::new(bytes);
        let m = match r.u8()? {
            TAG_PROPOSAL => {
                let height = r.u64()?;
                let round = r.u32()?;
                let pol = r.u32()?;
                let signature = r.arr64()?;
                let block = Block::decode(&mut r)?;
                Message::Proposal(Proposal {
                    height,
                    round,
                    pol_round: (pol != u32::MAX).then_some(pol),
                    block,
                    signature,
                })
            }
            TAG_VOTE => Message::Vote(Vote::decode(&mut r)?),
            TAG_DECIDED => {
                let b = r.bytes(crate::ledger::MAX_BLOCK_BYTES)?;
                let mut rb = Reader::new(b);
                let block = Block::decode(&mut rb)?;
                rb.finish()?;
                Message::Decided(block, Commit::decode(&mut r)?)
            }
            TAG_REQUEST => Message::Request { from: r.u32()?, height: r.u64()? },
            _ => return Err(LedgerError::Malformed("unknown message tag")),
        };
        r.finish()?;
        Ok(m)
    }
    /// Height the message is about.
    pub fn height(&self) -> u64 {
        match self {
            Message::Proposal(p) => p.height,
            Message::Vote(v) => v.height,
            Message::Decided(b, _) => b.header.height,
            Message::Request { height, .. } => *height,
        }
    }
}

/// Verifies ed25519 signatures for the state machine; a driver may share one cache among many validators
/// (every validator checks the same votes), which changes nothing but speed.
pub trait SigCheck {
    fn check(&mut self, vals: &ValidatorSet, validator: u32, msg: &[u8], sig: &[u8; 64]) -> bool;
}

/// Plain verification, no cache.
#[derive(Clone, Copy, Debug, Default)]
pub struct Verify;

impl SigCheck for Verify {
    fn check(&mut self, vals: &ValidatorSet, validator: u32, msg: &[u8], sig: &[u8; 64]) -> bool {
        vals.verify(validator, msg, sig).is_ok()
    }
}

/// What one call produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Encoded messages for every other validator.
    pub broadcast: Vec<Vec<u8>>,
    /// Encoded messages for one peer (relayed votes).
    pub direct: Vec<(u32, Vec<u8>)>,
    /// (peer, height): the peer is behind; send it the decided block of that height with its commit.
    pub catch_up: Vec<(u32, u64)>,
    /// Equivocation seen (each item once).
    pub evidence: Vec<Evidence>,
    /// A decided block with its commit; the driver executes it and calls `start_height`.
    pub decided: Option<(Block, Commit)>,
    /// Messages refused (bad encoding, bad signature, wrong proposer, invalid block).
    pub refused: u32,
}

/// The interface shared by the BFT state machine and the PoA baseline.
pub trait Consensus {
    /// Starts deciding `tip.height` with `txs` as this validator's candidate transactions.
    fn start_height(&mut self, now: Instant, tip: Tip, txs: Vec<Vec<u8>>, sig: &mut dyn SigCheck, out: &mut Output);
    /// Handles one wire message.
    fn on_message(&mut self, now: Instant, bytes: &[u8], sig: &mut dyn SigCheck, out: &mut Output);
    /// Handles expired deadlines (call at or after [`Consensus::next_deadline`]).
    fn on_deadline(&mut self, now: Instant, sig: &mut dyn SigCheck, out: &mut Output);
    fn next_deadline(&self) -> Option<Instant>;
    /// Height being decided.
    fn height(&self) -> u64;
    /// Round being run (0 for PoA).
    fn round(&self) -> u32;
}

/// Step within a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Propose,
    Prevote,
    Precommit,
    /// Decided; waiting for `start_height`.
    Decided,
}

#[derive(Clone, Debug, Default)]
struct RoundState {
    proposal: Option<Proposal>,
    proposal_hash: Option<Hash>,
    prevotes: Vec<Option<Vote>>,
    precommits: Vec<Option<Vote>>,
    /// A second, conflicting vote of a validator (an equivocator counts for both values: safe while
    /// Byzantine power is below 1/3, and it keeps a polka verifiable by everyone).
    prevotes_alt: Vec<Option<Vote>>,
    precommits_alt: Vec<Option<Vote>>,
    /// Validators heard from in this round (any message).
    heard: Vec<bool>,
    prevote_timeout_set: bool,
    precommit_timeout_set: bool,
    polka_seen: bool,
}

/// The Tendermint state machine of one validator (or an observer with `me = None`).
pub struct Tendermint {
    cfg: Config,
    vals: ValidatorSet,
    me: Option<(u32, SigningKey)>,
    tip: Tip,
    txs: Vec<Vec<u8>>,
    round: u32,
    step: Step,
    locked: Option<(u32, Block)>,
    valid: Option<(u32, Block)>,
    rounds: BTreeMap<u32, RoundState>,
    validity: BTreeMap<Hash, bool>,
    timeout_propose: Option<(Instant, u32)>,
    timeout_prevote: Option<(Instant, u32)>,
    timeout_precommit: Option<(Instant, u32)>,
    next_gossip: Instant,
    /// Own messages of the current round (re-sent each gossip tick).
    own: BTreeMap<u32, Vec<Vec<u8>>>,
    future: Vec<Vec<u8>>,
    pending_evidence: Vec<Evidence>,
    evidence_keys: BTreeSet<(u32, u64, u32, u8)>,
    started: bool,
    /// Last catch-up answer per peer: (height, time).
    served: BTreeMap<u32, (u64, Instant)>,
    /// When a message of a later height first arrived at this height (evidence of being behind).
    behind_since: Option<Instant>,
    /// Last catch-up request: (height, time).
    requested: Option<(u64, Instant)>,
    now: Instant,
}

impl Tendermint {
    /// A validator with index `me` in `vals` and its key (or an observer with `None`).
    pub fn new(cfg: Config, vals: ValidatorSet, me: Option<(u32, SigningKey)>) -> Self {
        let tip = Tip { height: 1, prev_hash: cfg.chain_id, prev_time_ns: 0, state_root: [0; 32] };
        Tendermint {
            cfg,
            vals,
            me,
            tip,
            txs: Vec::new(),
            round: 0,
            step: Step::Propose,
            locked: None,
            valid: None,
            rounds: BTreeMap::new(),
            validity: BTreeMap::new(),
            timeout_propose: None,
            timeout_prevote: None,
            timeout_precommit: None,
            next_gossip: Instant::MAX,
            own: BTreeMap::new(),
            future: Vec::new(),
            pending_evidence: Vec::new(),
            evidence_keys: BTreeSet::new(),
            started: false,
            served: BTreeMap::new(),
            behind_since: None,
            requested: None,
            now: Instant::ZERO,
        }
    }
    pub fn step(&self) -> Step {
        self.step
    }
    pub fn validators(&self) -> &ValidatorSet {
        &self.vals
    }
    pub fn locked_round(&self) -> Option<u32> {
        self.locked.as_ref().map(|l| l.0)
    }
    pub fn pending_evidence(&self) -> &[Evidence] {
        &self.pending_evidence
    }

    fn n(&self) -> usize {
        self.vals.len()
    }

    fn round_mut(&mut self, r: u32) -> &mut RoundState {
        let n = self.vals.len();
        self.rounds.entry(r).or_insert_with(|| RoundState {
            prevotes: alloc::vec![None; n],
            precommits: alloc::vec![None; n],
            prevotes_alt: alloc::vec![None; n],
            precommits_alt: alloc::vec![None; n],
            heard: alloc::vec![false; n],
            ..RoundState::default()
        })
    }

    fn power(&self, r: u32, kind: VoteKind, value: Option<Option<&Hash>>) -> u64 {
        let Some(rs) = self.rounds.get(&r) else { return 0 };
        let (list, alt) = if kind == VoteKind::Prevote {
            (&rs.prevotes, &rs.prevotes_alt)
        } else {
            (&rs.precommits, &rs.precommits_alt)
        };
        let mut p = 0;
        for (i, (v, a)) in list.iter().zip(alt).enumerate() {
            let hit = |v: &Option<Vote>| v.as_ref().is_some_and(|v| value.is_none_or(|want| v.block.as_ref() == want));
            if hit(v) || (value.is_some() && hit(a)) {
                p += self.vals.get(i as u32).map_or(0, |x| x.power);
            }
        }
        p
    }

    fn is_valid(&mut self, block: &Block, proposal_round: u32) -> bool {
        let h = block.hash();
        if let Some(v) = self.validity.get(&h) {
            return *v;
        }
        let hd = &block.header;
        let ok = validate_block(&self.cfg.chain_id, &self.vals, &self.tip, block, None).is_ok()
            && hd.round <= proposal_round
            && hd.proposer == self.vals.proposer(hd.height, hd.round);
        self.validity.insert(h, ok);
        ok
    }

    /// Whether the proposal of round `r` is a valid block (cached by hash; no clone).
    fn proposal_valid(&mut self, r: u32) -> bool {
        let Some(p) = self.rounds.get_mut(&r).and_then(|s| s.proposal.take()) else { return false };
        let ok = self.is_valid(&p.block, r);
        if let Some(rs) = self.rounds.get_mut(&r) {
            rs.proposal = Some(p);
        }
        ok
    }

    fn send(&mut self, m: Message, out: &mut Output) {
        let b = m.to_bytes();
        self.own.entry(self.round).or_default().push(b.clone());
        out.broadcast.push(b);
    }

    fn vote(&mut self, kind: VoteKind, block: Option<Hash>, out: &mut Output, sig: &mut dyn SigCheck) {
        let Some((idx, key)) = &self.me else { return };
        let v = Vote::sign(&self.cfg.chain_id, key, kind, self.tip.height, self.round, block, *idx);
        self.send(Message::Vote(v), out);
        self.add_vote(v, out, sig);
    }

    fn start_round(&mut self, r: u32, out: &mut Output, sig: &mut dyn SigCheck) {
        self.round = r;
        self.step = Step::Propose;
        self.timeout_prevote = None;
        self.timeout_precommit = None;
        // Forget rounds far behind (their votes can no longer change anything but a late decision).
        let keep_from = r.saturating_sub(4);
        let locked = self.locked.as_ref().map(|l| l.0);
        let validr = self.valid.as_ref().map(|l| l.0);
        self.rounds.retain(|k, _| *k >= keep_from || Some(*k) == locked || Some(*k) == validr);
        self.own.retain(|k, _| *k >= keep_from || Some(*k) == locked || Some(*k) == validr);
        let proposer = self.vals.proposer(self.tip.height, r);
        match &self.me {
            Some((idx, key)) if *idx == proposer => {
                let (pol, block) = match &self.valid {
                    Some((vr, b)) => (Some(*vr), b.clone()),
                    None => (None, self.new_block(r)),
                };
                let p = Proposal::sign(&self.cfg.chain_id, key, self.tip.height, r, pol, block);
                self.send(Message::Proposal(p.clone()), out);
                self.accept_proposal(p);
            }
            _ => {}
        }
        let t = self.cfg.timeout_propose.as_nanos() + r as u64 * self.cfg.timeout_delta.as_nanos();
        self.timeout_propose = Some((self.now.saturating_add(Duration(t)), r));
        self.run_rules(out, sig);
    }

    fn new_block(&self, r: u32) -> Block {
        let time_ns = self.now.as_nanos().max(self.tip.prev_time_ns + 1);
        let header = Header {
            height: self.tip.height,
            round: r,
            prev_hash: self.tip.prev_hash,
            time_ns,
            state_root: self.tip.state_root,
            validators_hash: self.vals.hash(),
            proposer: self.vals.proposer(self.tip.height, r),
            ..Header::default()
        };
        let txs = self.txs.iter().take(self.cfg.max_block_txs).cloned().collect();
        let ev = self.pending_evidence.iter().filter(|e| e.height() < self.tip.height).copied().collect();
        Block::build(header, txs, ev)
    }

    fn accept_proposal(&mut self, p: Proposal) {
        let idx = self.vals.proposer(p.height, p.round);
        let rs = self.round_mut(p.round);
        if rs.proposal.is_none() {
            rs.heard[idx as usize] = true;
            rs.proposal_hash = Some(p.block.hash());
            rs.proposal = Some(p);
        }
    }

    /// Relays a vote heard from another validator to `relay_fanout` peers (chosen by the vote, not at random).
    fn relay(&self, v: &Vote, out: &mut Output) {
        let n = self.n() as u64;
        let Some((me, _)) = &self.me else { return };
        if n < 3 {
            return;
        }
        let mut sent = 0;
        let mut k = (v.validator as u64).wrapping_mul(31).wrapping_add(v.round as u64 * 7 + v.kind as u64 + *me as u64);
        for _ in 0..n {
            if sent >= self.cfg.relay_fanout {
                break;
            }
            k = k.wrapping_add(1);
            let p = (k % n) as u32;
            if p != *me && p != v.validator {
                out.direct.push((p, Message::Vote(*v).to_bytes()));
                sent += 1;
            }
        }
    }

    fn add_vote(&mut self, v: Vote, out: &mut Output, _sig: &mut dyn SigCheck) {
        let i = v.validator as usize;
        let rs = self.round_mut(v.round);
        rs.heard[i] = true;
        let (slot, alt) = if v.kind == VoteKind::Prevote {
            (&mut rs.prevotes[i], &mut rs.prevotes_alt[i])
        } else {
            (&mut rs.precommits[i], &mut rs.precommits_alt[i])
        };
        match slot {
            None => {
                // Relayed on the gossip tick, not at once: in a round that ends before the tick every peer got
                // the vote from its signer, and an eager relay would triple the traffic for nothing.
                *slot = Some(v);
            }
            Some(old) if old.block != v.block => {
                let old = *old;
                if alt.is_none() {
                    *alt = Some(v);
                }
                let e = Evidence::new(old, v);
                let key = (v.validator, v.height, v.round, v.kind as u8);
                if self.evidence_keys.insert(key) {
                    self.relay(&v, out);
                    self.relay(&old, out);
                    out.evidence.push(e);
                    if self.pending_evidence.len() < MAX_PENDING_EVIDENCE {
                        self.pending_evidence.push(e);
                    }
                }
            }
            Some(_) => {}
        }
    }

    /// Applies the rules of the algorithm until none fires.
    fn run_rules(&mut self, out: &mut Output, sig: &mut dyn SigCheck) {
        for _ in 0..MAX_RULE_PASSES {
            if self.step == Step::Decided || !self.apply_one(out, sig) {
                return;
            }
        }
    }

    /// Applies the first rule that fires; returns whether one did.
    fn apply_one(&mut self, out: &mut Output, sig: &mut dyn SigCheck) -> bool {
        let r = self.round;
        let h = self.tip.height;
        // Decide: a proposal at any round r' and precommits of > 2/3 for it.
        let rounds: Vec<u32> = self.rounds.keys().copied().collect();
        for rr in rounds {
            let Some(bh) = self.rounds.get(&rr).and_then(|s| s.proposal_hash) else { continue };
            if !self.vals.is_quorum(self.power(rr, VoteKind::Precommit, Some(Some(&bh)))) {
                continue;
            }
            let Some(p) = self.rounds.get(&rr).and_then(|s| s.proposal.clone()) else { continue };
            if self.is_valid(&p.block, rr) {
                let rs = &self.rounds[&rr];
                let sigs = rs
                    .precommits
                    .iter()
                    .chain(&rs.precommits_alt)
                    .flatten()
                    .filter(|v| v.block == Some(bh))
                    .map(|v| CommitSig { validator: v.validator, signature: v.signature })
                    .collect();
                let commit = Commit { height: h, round: rr, block_hash: bh, sigs };
                self.decide(p.block, commit, out);
                return true;
            }
        }
        // Skip to a higher round when more than 1/3 of the power is there.
        let higher: Vec<u32> = self.rounds.range(r + 1..).map(|(k, _)| *k).collect();
        for rr in higher.into_iter().rev() {
            let heard = &self.rounds[&rr].heard;
            let p: u64 = heard
                .iter()
                .enumerate()
                .filter(|(_, h)| **h)
                .map(|(i, _)| self.vals.get(i as u32).map_or(0, |v| v.power))
                .sum();
            if self.vals.is_one_third(p) {
                self.start_round(rr, out, sig);
                return true;
            }
        }
        let proposal: Option<(Hash, Option<u32>)> =
            self.rounds.get(&r).and_then(|s| Some((s.proposal_hash?, s.proposal.as_ref()?.pol_round)));
        if self.step == Step::Propose
            && let Some((bh, pol)) = proposal
        {
            match pol {
                None => {
                    let ok = self.proposal_valid(r) && self.locked.as_ref().is_none_or(|(_, b)| b.hash() == bh);
                    self.step = Step::Prevote;
                    self.vote(VoteKind::Prevote, ok.then_some(bh), out, sig);
                    return true;
                }
                Some(vr) if vr < r && self.vals.is_quorum(self.power(vr, VoteKind::Prevote, Some(Some(&bh)))) => {
                    let ok = self.proposal_valid(r)
                        && self.locked.as_ref().is_none_or(|(lr, b)| *lr <= vr || b.hash() == bh);
                    self.step = Step::Prevote;
                    self.vote(VoteKind::Prevote, ok.then_some(bh), out, sig);
                    return true;
                }
                _ => {}
            }
        }
        if self.step == Step::Prevote
            && !self.rounds.get(&r).is_some_and(|s| s.prevote_timeout_set)
            && self.vals.is_quorum(self.power(r, VoteKind::Prevote, None))
        {
            self.round_mut(r).prevote_timeout_set = true;
            let t = self.cfg.timeout_vote.as_nanos() + r as u64 * self.cfg.timeout_delta.as_nanos();
            self.timeout_prevote = Some((self.now.saturating_add(Duration(t)), r));
            return true;
        }
        if self.step >= Step::Prevote
            && let Some((bh, _)) = proposal
            && !self.rounds.get(&r).is_some_and(|s| s.polka_seen)
            && self.vals.is_quorum(self.power(r, VoteKind::Prevote, Some(Some(&bh))))
            && self.proposal_valid(r)
            && let Some(block) = self.rounds.get(&r).and_then(|s| s.proposal.as_ref()).map(|p| p.block.clone())
        {
            self.round_mut(r).polka_seen = true;
            if self.step == Step::Prevote {
                self.locked = Some((r, block.clone()));
                self.step = Step::Precommit;
                self.vote(VoteKind::Precommit, Some(bh), out, sig);
            }
            self.valid = Some((r, block));
            return true;
        }
        if self.step == Step::Prevote && self.vals.is_quorum(self.power(r, VoteKind::Prevote, Some(None))) {
            self.step = Step::Precommit;
            self.vote(VoteKind::Precommit, None, out, sig);
            return true;
        }
        if !self.rounds.get(&r).is_some_and(|s| s.precommit_timeout_set)
            && self.vals.is_quorum(self.power(r, VoteKind::Precommit, None))
        {
            self.round_mut(r).precommit_timeout_set = true;
            let t = self.cfg.timeout_vote.as_nanos() + r as u64 * self.cfg.timeout_delta.as_nanos();
            self.timeout_precommit = Some((self.now.saturating_add(Duration(t)), r));
            return true;
        }
        false
    }

    fn decide(&mut self, block: Block, mut commit: Commit, out: &mut Output) {
        commit.sigs.sort_by_key(|s| s.validator);
        // Evidence now on chain leaves the pending list.
        let on_chain: BTreeSet<(u32, u64, u32, u8)> =
            block.evidence.iter().map(|e| (e.validator(), e.height(), e.a.round, e.a.kind as u8)).collect();
        self.pending_evidence.retain(|e| !on_chain.contains(&(e.validator(), e.height(), e.a.round, e.a.kind as u8)));
        let h = block.header.height;
        self.pending_evidence.retain(|e| e.height() + 100 > h);
        self.evidence_keys.retain(|k| k.1 + 100 > h);
        self.step = Step::Decided;
        self.timeout_propose = None;
        self.timeout_prevote = None;
        self.timeout_precommit = None;
        out.decided = Some((block, commit));
    }

    fn handle(&mut self, bytes: &[u8], out: &mut Output, sig: &mut dyn SigCheck) {
        let Ok(msg) = Message::decode(bytes) else {
            out.refused += 1;
            return;
        };
        let h = self.tip.height;
        if let Message::Request { from, height } = msg {
            // A peer asks for the decided blocks from `height` on (the driver sends them, bounded).
            if height < h && (from as usize) < self.n() && self.me.as_ref().is_none_or(|(i, _)| *i != from) {
                let again = self.cfg.timeout_vote.as_nanos() / 2;
                let due = self
                    .served
                    .get(&from)
                    .is_none_or(|(sh, t)| *sh != height || self.now >= t.saturating_add(Duration(again)));
                if due {
                    self.served.insert(from, (height, self.now));
                    out.catch_up.push((from, height));
                }
            } else {
                out.refused += u32::from((from as usize) >= self.n());
            }
            return;
        }
        let mh = msg.height();
        if mh > h {
            if mh <= h + MAX_HEIGHTS_AHEAD && self.future.len() < MAX_FUTURE_MESSAGES {
                self.future.push(bytes.to_vec());
            }
            self.maybe_request(mh, &msg, out);
            return;
        }
        if mh == h && self.step == Step::Decided {
            return;
        }
        if mh < h {
            // A peer behind: ask the driver to send it the decided block (at most once per gossip interval).
            let peer = match &msg {
                Message::Vote(v) => Some(v.validator),
                Message::Proposal(p) => Some(self.vals.proposer(p.height, p.round)),
                Message::Decided(..) | Message::Request { .. } => None,
            };
            if let Some(peer) = peer
                && (peer as usize) < self.n()
            {
                let due = self
                    .served
                    .get(&peer)
                    .is_none_or(|(sh, t)| *sh != mh || self.now >= t.saturating_add(self.cfg.gossip_interval));
                if due {
                    self.served.insert(peer, (mh, self.now));
                    out.catch_up.push((peer, mh));
                }
            }
            return;
        }
        match msg {
            Message::Vote(v) => {
                if v.validator as usize >= self.n() || v.round > self.round + MAX_ROUNDS_AHEAD {
                    out.refused += 1;
                    return;
                }
                let known = self.rounds.get(&v.round).is_some_and(|rs| {
                    let (l, a) = if v.kind == VoteKind::Prevote {
                        (&rs.prevotes, &rs.prevotes_alt)
                    } else {
                        (&rs.precommits, &rs.precommits_alt)
                    };
                    l[v.validator as usize] == Some(v) || a[v.validator as usize] == Some(v)
                });
                if known {
                    return;
                }
                if !sig.check(&self.vals, v.validator, &v.sign_bytes(&self.cfg.chain_id), &v.signature) {
                    out.refused += 1;
                    return;
                }
                self.add_vote(v, out, sig);
            }
            Message::Proposal(p) => {
                if p.round > self.round + MAX_ROUNDS_AHEAD
                    || self.rounds.get(&p.round).is_some_and(|s| s.proposal.is_some())
                {
                    return;
                }
                let proposer = self.vals.proposer(p.height, p.round);
                let msgb = proposal_sign_bytes(&self.cfg.chain_id, p.height, p.round, p.pol_round, &p.block.hash());
                if !sig.check(&self.vals, proposer, &msgb, &p.signature) {
                    out.refused += 1;
                    return;
                }
                if !self.is_valid(&p.block, p.round) {
                    out.refused += 1;
                }
                self.accept_proposal(p);
            }
            Message::Decided(b, c) => {
                if self.step == Step::Decided {
                    return;
                }
                let ok = validate_commit(&self.cfg.chain_id, &self.vals, &b, &c).is_ok() && self.is_valid(&b, u32::MAX);
                if !ok {
                    out.refused += 1;
                    return;
                }
                self.decide(b, c, out);
                return;
            }
            Message::Request { .. } => return,
        }
        self.run_rules(out, sig);
    }

    /// A message of height `mh` above ours arrived: after `timeout_vote` of such evidence (at once when two or
    /// more heights behind), ask its sender for the decided blocks from our height on, at most once per half
    /// `timeout_vote` (catch-up of commits, instead of waiting for our gossip to reach a peer that moved on).
    fn maybe_request(&mut self, mh: u64, msg: &Message, out: &mut Output) {
        let h = self.tip.height;
        let since = *self.behind_since.get_or_insert(self.now);
        let vote = self.cfg.timeout_vote.as_nanos();
        if mh < h + 2 && self.now < since.saturating_add(Duration(vote)) {
            return;
        }
        if self.requested.is_some_and(|(rh, t)| rh == h && self.now < t.saturating_add(Duration(vote / 2))) {
            return;
        }
        let peer = match msg {
            Message::Vote(v) => v.validator,
            Message::Proposal(p) => self.vals.proposer(p.height, p.round),
            Message::Decided(..) | Message::Request { .. } => return,
        };
        let Some((me, _)) = &self.me else { return };
        if peer == *me || peer as usize >= self.n() {
            return;
        }
        self.requested = Some((h, self.now));
        out.direct.push((peer, Message::Request { from: *me, height: h }.to_bytes()));
    }

    fn set_now(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }
}

impl Consensus for Tendermint {
    fn start_height(&mut self, now: Instant, tip: Tip, txs: Vec<Vec<u8>>, sig: &mut dyn SigCheck, out: &mut Output) {
        self.set_now(now);
        self.tip = tip;
        self.txs = txs;
        self.locked = None;
        self.valid = None;
        self.rounds.clear();
        self.own.clear();
        self.validity.clear();
        self.started = true;
        self.next_gossip = self.now.saturating_add(self.cfg.gossip_interval);
        self.behind_since = None;
        self.start_round(0, out, sig);
        // Buffered messages: this height's are handled, later heights' kept, earlier ones dropped.
        let future = core::mem::take(&mut self.future);
        for m in future {
            let Ok(mh) = Message::decode(&m).map(|x| x.height()) else { continue };
            if mh < self.tip.height {
                continue;
            }
            if mh > self.tip.height || self.step == Step::Decided {
                if mh > self.tip.height && self.future.len() < MAX_FUTURE_MESSAGES {
                    self.future.push(m);
                }
                continue;
            }
            self.handle(&m, out, sig);
        }
    }

    fn on_message(&mut self, now: Instant, bytes: &[u8], sig: &mut dyn SigCheck, out: &mut Output) {
        self.set_now(now);
        if !self.started {
            if self.future.len() < MAX_FUTURE_MESSAGES {
                self.future.push(bytes.to_vec());
            }
            return;
        }
        self.handle(bytes, out, sig);
    }

    fn on_deadline(&mut self, now: Instant, sig: &mut dyn SigCheck, out: &mut Output) {
        self.set_now(now);
        if !self.started || self.step == Step::Decided {
            return;
        }
        let r = self.round;
        if let Some((t, tr)) = self.timeout_propose
            && now >= t
        {
            self.timeout_propose = None;
            if tr == r && self.step == Step::Propose {
                self.step = Step::Prevote;
                self.vote(VoteKind::Prevote, None, out, sig);
            }
        }
        if let Some((t, tr)) = self.timeout_prevote
            && now >= t
        {
            self.timeout_prevote = None;
            if tr == self.round && self.step == Step::Prevote {
                self.step = Step::Precommit;
                self.vote(VoteKind::Precommit, None, out, sig);
            }
        }
        if let Some((t, tr)) = self.timeout_precommit
            && now >= t
        {
            self.timeout_precommit = None;
            if tr == self.round && self.step != Step::Decided {
                self.start_round(tr + 1, out, sig);
            }
        }
        if now >= self.next_gossip {
            self.next_gossip = now.saturating_add(self.cfg.gossip_interval);
            // Own messages of this round, the previous one, and the rounds of the lock and the valid value
            // (so everyone can eventually check the polka a re-proposal cites).
            let mut rounds = alloc::vec![self.round, self.round.saturating_sub(1)];
            rounds.extend(self.locked.as_ref().map(|l| l.0));
            rounds.extend(self.valid.as_ref().map(|l| l.0));
            rounds.sort_unstable();
            rounds.dedup();
            for r in rounds {
                if let Some(m) = self.own.get(&r) {
                    out.broadcast.extend(m.iter().cloned());
                }
            }
            // Relay the votes heard from others in this round and the previous one (the round is slow: some
            // peer may have lost them, and an equivocator's two votes reach someone holding both).
            let me = self.me.as_ref().map(|(i, _)| *i);
            let first = self.round.saturating_sub(1);
            for r in first..=self.round {
                let Some(rs) = self.rounds.get(&r) else { continue };
                for v in rs.prevotes.iter().chain(rs.precommits.iter()).flatten() {
                    if Some(v.validator) != me {
                        self.relay(v, out);
                    }
                }
            }
            // Relay the current round's proposal when it is someone else's.
            if let Some(p) = self.rounds.get(&self.round).and_then(|s| s.proposal.as_ref())
                && self.me.as_ref().is_none_or(|(i, _)| *i != self.vals.proposer(p.height, p.round))
            {
                out.broadcast.push(Message::Proposal(p.clone()).to_bytes());
            }
        }
        self.run_rules(out, sig);
    }

    fn next_deadline(&self) -> Option<Instant> {
        if !self.started || self.step == Step::Decided {
            return None;
        }
        [self.timeout_propose, self.timeout_prevote, self.timeout_precommit]
            .into_iter()
            .flatten()
            .map(|t| t.0)
            .chain(core::iter::once(self.next_gossip))
            .min()
    }

    fn height(&self) -> u64 {
        self.tip.height
    }

    fn round(&self) -> u32 {
        self.round
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Validator;
    use alloc::collections::VecDeque;

    fn setup(n: usize) -> (Vec<SigningKey>, ValidatorSet, Config) {
        let keys: Vec<SigningKey> = (0..n).map(|i| SigningKey::from_bytes(&[i as u8 + 11; 32])).collect();
        let vals =
            ValidatorSet::new(keys.iter().map(|k| Validator { key: k.verifying_key().to_bytes(), power: 1 }).collect())
                .unwrap();
        (keys, vals, Config::new([7; 32]))
    }

    /// Runs `n` validators with instant delivery, dropping every message from validators in `silent`.
    fn run(n: usize, silent: &[u32], heights: u64) -> Vec<Vec<Hash>> {
        let (keys, vals, cfg) = setup(n);
        let mut nodes: Vec<Tendermint> =
            (0..n).map(|i| Tendermint::new(cfg, vals.clone(), Some((i as u32, keys[i].clone())))).collect();
        let mut decided = alloc::vec![Vec::new(); n];
        let mut q: VecDeque<(usize, Vec<u8>)> = VecDeque::new();
        let mut now = Instant::ZERO;
        let tip0 = Tip { height: 1, prev_hash: cfg.chain_id, prev_time_ns: 0, state_root: [0; 32] };
        let mut sig = Verify;
        let push = |q: &mut VecDeque<(usize, Vec<u8>)>, from: usize, out: &Output| {
            if !silent.contains(&(from as u32)) {
                for b in &out.broadcast {
                    for to in 0..n {
                        if to != from {
                            q.push_back((to, b.clone()));
                        }
                    }
                }
            }
        };
        for (i, node) in nodes.iter_mut().enumerate() {
            let mut out = Output::default();
            node.start_height(now, tip0, alloc::vec![alloc::vec![i as u8]], &mut sig, &mut out);
            push(&mut q, i, &out);
        }
        for _ in 0..200_000 {
            if decided.iter().enumerate().all(|(i, d)| silent.contains(&(i as u32)) || d.len() as u64 >= heights) {
                break;
            }
            let (to, b, out) = if let Some((to, b)) = q.pop_front() {
                let mut out = Output::default();
                nodes[to].on_message(now, &b, &mut sig, &mut out);
                (to, b, out)
            } else {
                // Nothing in flight: advance to the earliest deadline.
                let (i, t) = nodes
                    .iter()
                    .enumerate()
                    .filter_map(|(i, x)| x.next_deadline().map(|t| (i, t)))
                    .min_by_key(|x| x.1)
                    .unwrap();
                now = t;
                let mut out = Output::default();
                nodes[i].on_deadline(now, &mut sig, &mut out);
                (i, Vec::new(), out)
            };
            let _ = b;
            push(&mut q, to, &out);
            if let Some((blk, commit)) = out.decided {
                validate_commit(&cfg.chain_id, &vals, &blk, &commit).unwrap();
                decided[to].push(blk.hash());
                let tip = Tip {
                    height: blk.header.height + 1,
                    prev_hash: blk.hash(),
                    prev_time_ns: blk.header.time_ns,
                    state_root: [0; 32],
                };
                let mut o2 = Output::default();
                now = now + Duration::from_millis(1);
                nodes[to].start_height(now, tip, Vec::new(), &mut sig, &mut o2);
                push(&mut q, to, &o2);
            }
        }
        decided
    }

    #[test]
    fn four_honest_validators_agree_on_every_height() {
        let d = run(4, &[], 5);
        for x in &d {
            assert!(x.len() >= 5);
            assert_eq!(x[..5], d[0][..5]);
        }
    }

    #[test]
    fn one_silent_validator_of_four_costs_rounds_not_safety_or_liveness() {
        let d = run(4, &[1], 6);
        let live: Vec<&Vec<Hash>> = d.iter().enumerate().filter(|(i, _)| *i != 1).map(|x| x.1).collect();
        for x in &live {
            assert!(x.len() >= 6);
            assert_eq!(x[..6], live[0][..6]);
        }
    }

    #[test]
    fn two_silent_of_four_stall_without_deciding() {
        let (keys, vals, cfg) = setup(4);
        let mut a = Tendermint::new(cfg, vals.clone(), Some((0, keys[0].clone())));
        let mut out = Output::default();
        let tip0 = Tip { height: 1, prev_hash: cfg.chain_id, prev_time_ns: 0, state_root: [0; 32] };
        a.start_height(Instant::ZERO, tip0, Vec::new(), &mut Verify, &mut out);
        for t in 1..100 {
            let mut o = Output::default();
            a.on_deadline(Instant(t * 1_000_000_000), &mut Verify, &mut o);
            assert!(o.decided.is_none());
        }
        // Garbage never panics and is counted.
        let mut o = Output::default();
        a.on_message(Instant(1), &[2, 1, 2, 3], &mut Verify, &mut o);
        assert_eq!(o.refused, 1);
    }

    #[test]
    fn a_double_vote_becomes_evidence() {
        let (keys, vals, cfg) = setup(4);
        let mut a = Tendermint::new(cfg, vals.clone(), Some((0, keys[0].clone())));
        let tip0 = Tip { height: 1, prev_hash: cfg.chain_id, prev_time_ns: 0, state_root: [0; 32] };
        let mut out = Output::default();
        a.start_height(Instant::ZERO, tip0, Vec::new(), &mut Verify, &mut out);
        let v1 = Vote::sign(&cfg.chain_id, &keys[2], VoteKind::Prevote, 1, 0, Some([1; 32]), 2);
        let v2 = Vote::sign(&cfg.chain_id, &keys[2], VoteKind::Prevote, 1, 0, Some([2; 32]), 2);
        let mut o = Output::default();
        a.on_message(Instant(1), &Message::Vote(v1).to_bytes(), &mut Verify, &mut o);
        a.on_message(Instant(2), &Message::Vote(v2).to_bytes(), &mut Verify, &mut o);
        assert_eq!(o.evidence.len(), 1);
        o.evidence[0].verify(&cfg.chain_id, &vals).unwrap();
        // A forged vote (validator 3's index, validator 2's signature) is refused.
        let mut f = Vote::sign(&cfg.chain_id, &keys[2], VoteKind::Prevote, 1, 0, None, 2);
        f.validator = 3;
        let mut o = Output::default();
        a.on_message(Instant(3), &Message::Vote(f).to_bytes(), &mut Verify, &mut o);
        assert_eq!(o.refused, 1);
    }
}
