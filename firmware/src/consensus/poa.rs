//! Proof-of-authority round robin (Aura-style, as public energy chains run it): time is cut into slots of
//! `step`; the validator `slot mod n` (weighted by power) signs one block on its best chain in its slot; the
//! longest chain wins; a block is final once validators holding more than half of the power have signed
//! blocks on top of it (rolling finality). The baseline the BFT state machine is compared against, behind
//! the same [`Consensus`] interface.
//!
//! A validator that receives a block it cannot attach asks the sender for the missing parent
//! ([`Message::Request`]); at most [`MAX_ORPHANS`] detached blocks are held. A reorganisation never goes
//! below a final block.

use super::{Consensus, Message, Output, Proposal, SigCheck, proposal_sign_bytes};
use crate::app::Hash;
use crate::ledger::{Block, Commit, CommitSig, Header, Tip, ValidatorSet};
use crate::time::{Duration, Instant};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use ed25519_dalek::SigningKey;

/// Most blocks kept off the best chain while their parents are fetched.
pub const MAX_ORPHANS: usize = 64;
/// Most blocks of the best chain kept (older final blocks are forgotten; the driver stores them).
pub const MAX_CHAIN: usize = 1 << 20;

/// One block of the chain with its slot and the proposer's signature.
#[derive(Clone, Debug)]
struct Entry {
    block: Block,
    hash: Hash,
    slot: u64,
    signature: [u8; 64],
}

/// The PoA state machine of one validator.
pub struct Poa {
    chain_id: Hash,
    step: Duration,
    vals: ValidatorSet,
    me: Option<(u32, SigningKey)>,
    chain: Vec<Entry>,
    orphans: BTreeMap<u64, Entry>,
    finalized: u64,
    queue: VecDeque<(Block, Commit)>,
    produced_slot: Option<u64>,
    state_root: Hash,
    txs: Vec<Vec<u8>>,
    started: bool,
    now: Instant,
}

impl Poa {
    pub fn new(chain_id: Hash, step: Duration, vals: ValidatorSet, me: Option<(u32, SigningKey)>) -> Self {
        Poa {
            chain_id,
            step: if step.as_nanos() == 0 { Duration::from_millis(1000) } else { step },
            vals,
            me,
            chain: Vec::new(),
            orphans: BTreeMap::new(),
            finalized: 0,
            queue: VecDeque::new(),
            produced_slot: None,
            state_root: [0; 32],
            txs: Vec::new(),
            started: false,
            now: Instant::ZERO,
        }
    }

    fn slot_of(&self, t: Instant) -> u64 {
        t.as_nanos() / self.step.as_nanos()
    }
    fn proposer(&self, slot: u64) -> u32 {
        self.vals.proposer(0, (slot % self.vals.total_power()) as u32)
    }
    fn head_hash(&self) -> Hash {
        self.chain.last().map_or(self.chain_id, |e| e.hash)
    }
    fn hash_at(&self, height: u64) -> Option<Hash> {
        if height == 0 { Some(self.chain_id) } else { self.chain.get(height as usize - 1).map(|e| e.hash) }
    }

    fn produce(&mut self, out: &mut Output) {
        let slot = self.slot_of(self.now);
        let Some((idx, key)) = &self.me else { return };
        if self.proposer(slot) != *idx || self.produced_slot.is_some_and(|s| s >= slot) || self.chain.len() >= MAX_CHAIN
        {
            return;
        }
        if self.chain.last().is_some_and(|e| e.slot >= slot) {
            return;
        }
        self.produced_slot = Some(slot);
        let prev_time = self.chain.last().map_or(0, |e| e.block.header.time_ns);
        let header = Header {
            height: self.chain.len() as u64 + 1,
            round: slot as u32,
            prev_hash: self.head_hash(),
            time_ns: self.now.as_nanos().max(prev_time + 1),
            state_root: self.state_root,
            validators_hash: self.vals.hash(),
            proposer: *idx,
            ..Header::default()
        };
        let block = Block::build(header, self.txs.clone(), Vec::new());
        let height = header.height;
        let p = Proposal::sign(&self.chain_id, key, height, slot as u32, None, block);
        out.broadcast.push(Message::Proposal(p.clone()).to_bytes());
        let hash = p.block.hash();
        self.chain.push(Entry { block: p.block, hash, slot, signature: p.signature });
        self.finalize();
    }

    /// Marks final every block under which more than half of the power has signed.
    fn finalize(&mut self) {
        let mut seen = alloc::vec![false; self.vals.len()];
        let mut power = 0u64;
        let mut k = self.chain.len();
        while k > self.finalized as usize {
            let e = &self.chain[k - 1];
            let p = e.block.header.proposer as usize;
            if p < seen.len() && !seen[p] {
                seen[p] = true;
                power += self.vals.get(p as u32).map_or(0, |v| v.power);
            }
            if power.saturating_mul(2) > self.vals.total_power() {
                break;
            }
            k -= 1;
        }
        if k <= self.finalized as usize {
            return;
        }
        for h in self.finalized as usize + 1..=k {
            let e = &self.chain[h - 1];
            let commit = Commit {
                height: h as u64,
                round: e.slot as u32,
                block_hash: e.hash,
                sigs: alloc::vec![CommitSig { validator: e.block.header.proposer, signature: e.signature }],
            };
            self.queue.push_back((e.block.clone(), commit));
        }
        self.finalized = k as u64;
    }

    fn on_block(&mut self, p: Proposal, out: &mut Output, sig: &mut dyn SigCheck) {
        let slot = p.round as u64;
        let hd = &p.block.header;
        let proposer = self.proposer(slot);
        if hd.proposer != proposer || hd.round != p.round || hd.height != p.height || slot > self.slot_of(self.now) + 1
        {
            out.refused += 1;
            return;
        }
        if hd.validators_hash != self.vals.hash() || p.block.check_roots().is_err() {
            out.refused += 1;
            return;
        }
        let hash = p.block.hash();
        if self.hash_at(p.height) == Some(hash) {
            return;
        }
        let msg = proposal_sign_bytes(&self.chain_id, p.height, p.round, None, &hash);
        if p.pol_round.is_some() || !sig.check(&self.vals, proposer, &msg, &p.signature) {
            out.refused += 1;
            return;
        }
        let height = p.height;
        if self.orphans.len() >= MAX_ORPHANS {
            self.orphans.clear();
        }
        self.orphans.insert(height, Entry { block: p.block, hash, slot, signature: p.signature });
        self.attach(out);
        // Still detached: ask the sender for the parent.
        if let Some((&low, e)) = self.orphans.iter().next()
            && low > 1
            && self.hash_at(low - 1) != Some(e.block.header.prev_hash)
            && let Some((me, _)) = &self.me
        {
            out.direct.push((proposer, Message::Request { from: *me, height: low - 1 }.to_bytes()));
        }
    }

    /// Attaches a run of orphans to the chain when it links up and is longer than the current best chain.
    fn attach(&mut self, out: &mut Output) {
        let Some((&low, _)) = self.orphans.iter().next() else { return };
        let Some(parent) = self.hash_at(low - 1) else { return };
        if self.orphans[&low].block.header.prev_hash != parent || low <= self.finalized {
            return;
        }
        let mut run = Vec::new();
        let mut h = low;
        let mut prev = parent;
        let mut prev_slot = if low >= 2 { self.chain[low as usize - 2].slot } else { 0 };
        while let Some(e) = self.orphans.get(&h) {
            if e.block.header.prev_hash != prev || (h > 1 && e.slot <= prev_slot) {
                break;
            }
            prev = e.hash;
            prev_slot = e.slot;
            run.push(e.clone());
            h += 1;
        }
        let new_len = low - 1 + run.len() as u64;
        if run.is_empty() || new_len <= self.chain.len() as u64 {
            // Not longer: drop what was checked.
            self.orphans.retain(|k, _| *k >= h);
            return;
        }
        self.chain.truncate(low as usize - 1);
        self.chain.extend(run);
        self.orphans.retain(|k, _| *k >= h);
        let _ = out;
        self.finalize();
    }
}

impl Consensus for Poa {
    fn start_height(&mut self, now: Instant, tip: Tip, txs: Vec<Vec<u8>>, _sig: &mut dyn SigCheck, out: &mut Output) {
        if now > self.now {
            self.now = now;
        }
        self.state_root = tip.state_root;
        self.txs = txs;
        self.started = true;
        if let Some(d) = self.queue.pop_front() {
            out.decided = Some(d);
        }
    }
    fn on_message(&mut self, now: Instant, bytes: &[u8], sig: &mut dyn SigCheck, out: &mut Output) {
        if now > self.now {
            self.now = now;
        }
        match Message::decode(bytes) {
            Ok(Message::Proposal(p)) => self.on_block(p, out, sig),
            Ok(Message::Request { from, height }) => {
                if let Some(e) = self.chain.get((height as usize).wrapping_sub(1))
                    && (from as usize) < self.vals.len()
                {
                    let p = Proposal {
                        height,
                        round: e.slot as u32,
                        pol_round: None,
                        block: e.block.clone(),
                        signature: e.signature,
                    };
                    out.direct.push((from, Message::Proposal(p).to_bytes()));
                }
            }
            Ok(_) => {}
            Err(_) => out.refused += 1,
        }
        if out.decided.is_none() && self.started {
            out.decided = self.queue.pop_front();
        }
    }
    fn on_deadline(&mut self, now: Instant, _sig: &mut dyn SigCheck, out: &mut Output) {
        if now > self.now {
            self.now = now;
        }
        if self.started {
            self.produce(out);
            if out.decided.is_none() {
                out.decided = self.queue.pop_front();
            }
        }
    }
    fn next_deadline(&self) -> Option<Instant> {
        if !self.started {
            return None;
        }
        if !self.queue.is_empty() {
            return Some(self.now);
        }
        let next = (self.slot_of(self.now) + 1) * self.step.as_nanos();
        let this = self.slot_of(self.now) * self.step.as_nanos();
        let mine_now = self.me.as_ref().is_some_and(|(i, _)| self.proposer(self.slot_of(self.now)) == *i)
            && self.produced_slot != Some(self.slot_of(self.now));
        Some(Instant(if mine_now { this.max(self.now.as_nanos()) } else { next }))
    }
    fn height(&self) -> u64 {
        self.finalized + 1
    }
    fn round(&self) -> u32 {
        0
    }
}
