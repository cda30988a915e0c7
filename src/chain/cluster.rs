//! A cluster of validators running the firmware's [`Tendermint`] state machine over a simulated validator
//! network: per-link base latency drawn once from `[latency_min, latency_max]`, per-message jitter (so
//! messages reorder), independent loss, timed partitions, and Byzantine behaviours per validator.
//!
//! The cluster keeps its own small event queue (integer ns, ordered by (time, sequence)), so `chain fuzz`
//! runs thousands of schedules a minute in process; in a scenario one [`crate::chain::ChainAgent`] steps it
//! on the run's event queue. Every random draw comes from `engine::stream(seed, 0, "chain-net")`.
//!
//! Safety is judged here: every honest decision is compared per height; two different honest decisions at
//! one height are a conflicting commit, and the culprits are the validators caught (on the wire, with valid
//! signatures) signing two different votes of one kind at one (height, round) of that height.

use crate::engine::{SimRng, stream};
use gridtwin_firmware::app::{Application, BlockInfo, Hash, Refusal};
use gridtwin_firmware::consensus::poa::Poa;
use gridtwin_firmware::consensus::{Config, Consensus, Message, Output, Proposal, SigCheck, Tendermint};
use gridtwin_firmware::ledger::{
    Block, Commit, Evidence, Genesis, Tip, Validator, ValidatorSet, VerifyingKey, Vote, VoteKind, domain, hash_parts,
    verify_signature,
};
use gridtwin_firmware::time::Instant;
use rand::RngExt;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::rc::Rc;

/// What a validator does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum Behaviour {
    Honest,
    /// Signs conflicting proposals and votes, split between two halves of the honest validators (the
    /// equivocators act as one coalition).
    Equivocate,
    /// Sends proposals but never its votes.
    WithholdVotes,
    /// Sends everything late (up to `delay_max` extra per message).
    Delay,
    /// Proposes blocks with a wrong state root (validly signed).
    ProposeInvalid,
    /// Also sends votes in other validators' names, with its own signatures.
    ForgeSignatures,
}

/// The validator network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetModel {
    pub latency_min_ns: u64,
    pub latency_max_ns: u64,
    /// Extra per-message delay, uniform in `[0, jitter]`.
    pub jitter_ns: u64,
    /// Probability that a message is lost.
    pub loss: f64,
}

/// Messages between the two groups are lost during `[start, end)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    pub start_ns: u64,
    pub end_ns: u64,
    /// Group of each validator (`true`: first group).
    pub group: Vec<bool>,
}

/// Which consensus the validators run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum Protocol {
    /// The Tendermint-style BFT state machine (finality on more than 2/3 of precommits).
    Tendermint,
    /// Proof-of-authority round robin with slots of `step` (rolling finality; Byzantine behaviours other
    /// than `Delay` and `WithholdVotes` do not apply).
    Poa { step_ms: u64 },
}

/// Everything a cluster is built from.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub keys: Vec<gridtwin_firmware::app::Key>,
    pub powers: Vec<u64>,
    pub behaviour: Vec<Behaviour>,
    pub net: NetModel,
    pub partitions: Vec<Partition>,
    pub timeouts: Config,
    /// Wait after deciding a block before starting the next height (Tendermint's `timeout_commit`).
    pub block_interval_ns: u64,
    /// Most extra delay of a `Delay` validator.
    pub delay_max_ns: u64,
    pub genesis: Genesis,
    pub seed: u64,
    pub protocol: Protocol,
}

struct Item {
    time: u64,
    seq: u64,
    ev: Ev,
}
impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.seq) == (o.time, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(o.time, o.seq))
    }
}

enum Ev {
    Deliver { to: u32, bytes: Rc<Vec<u8>> },
    Deadline { node: u32 },
    Start { node: u32 },
}

/// Signature checks shared by every validator of the cluster (each vote is checked once, not n times).
/// Keyed by (validator, signature) with the signed bytes kept beside the verdict, so a hit costs a lookup
/// and a compare, not an allocation; a signature reused over other bytes (a forgery) is verified afresh.
///
/// With [`SigCache::spawn_verifier`], a vote put on the wire is verified ahead on a second thread while the
/// simulation runs on: its first receiver, 50 ms or more later in simulated time, finds the verdict ready.
/// A verdict is a pure function of (key, bytes, signature), so where it is computed changes no result.
#[derive(Default)]
pub struct SigCache {
    map: HashMap<[u8; 68], (Box<[u8]>, bool)>,
    ahead: Option<Verifier>,
}

/// Entries kept before the cache is emptied (bounds memory on long runs).
const SIG_CACHE_MAX: usize = 1 << 18;
/// Most verifications queued ahead on the verifier thread (beyond it, votes are verified when received).
const MAX_AHEAD: usize = 4096;

type Verdict = ([u8; 68], Box<[u8]>, bool);

/// The thread that verifies signatures ahead, and the keys it has not answered yet.
struct Verifier {
    jobs: Option<std::sync::mpsc::SyncSender<(VerifyingKey, Verdict)>>,
    done: std::sync::mpsc::Receiver<Verdict>,
    pending: std::collections::HashSet<[u8; 68]>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Verifier {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn cache_key(validator: u32, sig: &[u8; 64]) -> [u8; 68] {
    let mut k = [0u8; 68];
    k[..4].copy_from_slice(&validator.to_le_bytes());
    k[4..].copy_from_slice(sig);
    k
}

impl SigCache {
    /// Starts the verifier thread (for long runs with many validators; short ones verify inline).
    pub fn spawn_verifier(&mut self) {
        if self.ahead.is_some() {
            return;
        }
        let (jobs, rx) = std::sync::mpsc::sync_channel::<(VerifyingKey, Verdict)>(MAX_AHEAD);
        let (tx, done) = std::sync::mpsc::channel::<Verdict>();
        let spawned = std::thread::Builder::new().name("sig-verify".into()).spawn(move || {
            for (vk, (k, msg, _)) in rx {
                let mut sig = [0u8; 64];
                sig.copy_from_slice(&k[4..]);
                let ok = verify_signature(&vk, &msg, &sig);
                if tx.send((k, msg, ok)).is_err() {
                    return;
                }
            }
        });
        if let Ok(thread) = spawned {
            self.ahead = Some(Verifier {
                jobs: Some(jobs),
                done,
                pending: std::collections::HashSet::new(),
                thread: Some(thread),
            });
        }
    }

    /// Queues the verification of a signature about to be received (no-op without the verifier thread, or
    /// when it is known, pending, or the queue is full).
    pub fn prefetch(&mut self, vals: &ValidatorSet, validator: u32, msg: &[u8], sig: &[u8; 64]) {
        let Some(v) = self.ahead.as_mut() else { return };
        let k = cache_key(validator, sig);
        if v.pending.len() >= MAX_AHEAD || v.pending.contains(&k) || self.map.contains_key(&k) {
            return;
        }
        let Some(vk) = vals.verifying_key(validator) else { return };
        if let Some(jobs) = &v.jobs
            && jobs.try_send((*vk, (k, msg.into(), false))).is_ok()
        {
            v.pending.insert(k);
        }
    }

    fn insert(&mut self, k: [u8; 68], msg: Box<[u8]>, ok: bool) {
        if self.map.len() >= SIG_CACHE_MAX {
            self.map.clear();
        }
        self.map.insert(k, (msg, ok));
    }

    /// Takes the verdicts the thread has produced; with `wait_for`, blocks until that key's has come.
    fn collect(&mut self, wait_for: Option<&[u8; 68]>) {
        let Some(mut v) = self.ahead.take() else { return };
        loop {
            let next = match wait_for {
                Some(k) if v.pending.contains(k) => v.done.recv().ok(),
                _ => v.done.try_recv().ok(),
            };
            let Some((k, msg, ok)) = next else { break };
            v.pending.remove(&k);
            self.insert(k, msg, ok);
        }
        self.ahead = Some(v);
    }
}

impl SigCheck for SigCache {
    fn check(&mut self, vals: &ValidatorSet, validator: u32, msg: &[u8], sig: &[u8; 64]) -> bool {
        let k = cache_key(validator, sig);
        if self.ahead.is_some() {
            self.collect(Some(&k));
        }
        match self.map.get(&k) {
            Some((m, ok)) if **m == *msg => return *ok,
            Some(_) => return vals.verify(validator, msg, sig).is_ok(),
            None => {}
        }
        let ok = vals.verify(validator, msg, sig).is_ok();
        self.insert(k, msg.into(), ok);
        ok
    }
}

/// One decision of one honest validator.
#[derive(Clone, Copy, Debug)]
pub struct Decision {
    pub node: u32,
    pub hash: Hash,
    pub time_ns: u64,
    pub round: u32,
    /// The block's own time (when its proposer made it).
    pub block_time_ns: u64,
}

/// A height at which honest validators decided different blocks.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Conflict {
    pub height: u64,
    pub culprits: Vec<u32>,
}

/// Most votes kept per (validator, height, round, kind) for double-signing checks (bounds a forger's spam).
const MAX_VOTES_WATCHED: usize = 4;
/// Heights below every honest validator's for which votes are still watched for double signing.
const VOTE_WATCH_HEIGHTS: u64 = 64;

/// Most events one cluster processes in one `run_until` (guards against a livelock in the model).
const MAX_EVENTS_PER_CALL: u64 = 50_000_000;

/// Counters of a cluster run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub bytes_sent: Vec<u64>,
    pub messages_sent: u64,
    pub messages_lost: u64,
    pub messages_refused: u64,
    pub evidence_seen: u64,
    /// Transactions refused at submission (check_tx) or execution, by reason.
    pub tx_refused: BTreeMap<&'static str, u64>,
    pub tx_submitted: u64,
    pub tx_committed: u64,
}

/// The two signed proposals (encoded) an equivocating proposer sends to the two halves.
type SplitProposal = (Rc<Vec<u8>>, Rc<Vec<u8>>);

/// Validators, network and chain of one run.
pub struct Cluster {
    pub chain_id: Hash,
    pub vals: ValidatorSet,
    keys: Vec<gridtwin_firmware::app::Key>,
    nodes: Vec<Box<dyn Consensus>>,
    pub behaviour: Vec<Behaviour>,
    net: NetModel,
    partitions: Vec<Partition>,
    link_ns: Vec<u64>,
    rng: SimRng,
    now: u64,
    queue: BinaryHeap<Reverse<Item>>,
    seq: u64,
    scheduled: Vec<Option<u64>>,
    sig: SigCache,
    block_interval_ns: u64,
    delay_max_ns: u64,
    /// Per node: hashes of the blocks it decided, by height - 1.
    pub decided_by: Vec<Vec<Hash>>,
    tips: Vec<Tip>,
    halted: Vec<bool>,
    /// Every decided block (honest or not) by hash, with the first commit seen for it.
    blocks: BTreeMap<Hash, (Block, Commit)>,
    /// Honest decisions by height.
    pub decisions: BTreeMap<u64, Vec<Decision>>,
    /// The first honest decision of each height (the chain that is stored and executed).
    pub canonical: Vec<Hash>,
    roots_after: BTreeMap<Hash, Hash>,
    app: Option<Box<dyn Application>>,
    genesis_root: Hash,
    mempool: Vec<Vec<u8>>,
    /// First time an honest validator started each height.
    pub height_start_ns: BTreeMap<u64, u64>,
    // Byzantine coalition.
    side: Vec<u8>,
    plans: BTreeMap<(u64, u32), SplitProposal>,
    sent_votes: BTreeMap<(u32, u64, u32, u8), Vec<Vote>>,
    double_signers: BTreeMap<u64, BTreeSet<u32>>,
    pub stats: Stats,
    /// Validators start a height only when the mempool holds a transaction (Tendermint's
    /// `create_empty_blocks = false`): an idle chain sends nothing.
    pub wait_for_transactions: bool,
    /// Validators waiting for a transaction to start their next height.
    idle: Vec<u32>,
}

impl Cluster {
    /// Builds the cluster; with `app`, canonical blocks are executed on it (else the state root is a hash
    /// chain over the blocks' transaction roots).
    pub fn new(spec: ClusterSpec, app: Option<Box<dyn Application>>) -> Result<Cluster, String> {
        let n = spec.keys.len();
        if spec.powers.len() != n || spec.behaviour.len() != n {
            return Err("keys, powers and behaviours differ in length".into());
        }
        let validators: Vec<Validator> = spec
            .keys
            .iter()
            .zip(&spec.powers)
            .map(|(k, p)| Validator { key: k.verifying_key().to_bytes(), power: *p })
            .collect();
        let vals = ValidatorSet::new(validators.clone()).map_err(|e| e.to_string())?;
        let mut genesis = spec.genesis.clone();
        genesis.validators = validators;
        let chain_id = genesis.chain_id();
        let cfg = Config { chain_id, ..spec.timeouts };
        let nodes = (0..n)
            .map(|i| -> Box<dyn Consensus> {
                let me = Some((i as u32, spec.keys[i].clone()));
                match spec.protocol {
                    Protocol::Tendermint => Box::new(Tendermint::new(cfg, vals.clone(), me)),
                    Protocol::Poa { step_ms } => Box::new(Poa::new(
                        chain_id,
                        gridtwin_firmware::time::Duration::from_millis(step_ms),
                        vals.clone(),
                        me,
                    )),
                }
            })
            .collect();
        let mut rng = stream(spec.seed, 0, "chain-net");
        let mut link_ns = vec![0; n * n];
        for l in link_ns.iter_mut() {
            *l = rng.random_range(spec.net.latency_min_ns..=spec.net.latency_max_ns.max(spec.net.latency_min_ns));
        }
        let mut side = vec![2u8; n];
        let honest: Vec<usize> = (0..n).filter(|i| spec.behaviour[*i] == Behaviour::Honest).collect();
        for (k, i) in honest.iter().enumerate() {
            side[*i] = if k < honest.len().div_ceil(2) { 0 } else { 1 };
        }
        let genesis_root = match &app {
            Some(_) => hash_parts(domain::STATE, &[&genesis.app_state]),
            None => hash_parts(domain::STATE, &[b"null"]),
        };
        let mut c = Cluster {
            chain_id,
            vals,
            keys: spec.keys,
            nodes,
            behaviour: spec.behaviour,
            net: spec.net,
            partitions: spec.partitions,
            link_ns,
            rng,
            now: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            scheduled: vec![None; n],
            sig: SigCache::default(),
            block_interval_ns: spec.block_interval_ns,
            delay_max_ns: spec.delay_max_ns,
            decided_by: vec![Vec::new(); n],
            tips: Vec::new(),
            halted: vec![false; n],
            blocks: BTreeMap::new(),
            decisions: BTreeMap::new(),
            canonical: Vec::new(),
            roots_after: BTreeMap::new(),
            app,
            genesis_root,
            mempool: Vec::new(),
            height_start_ns: BTreeMap::new(),
            side,
            plans: BTreeMap::new(),
            sent_votes: BTreeMap::new(),
            double_signers: BTreeMap::new(),
            stats: Stats { bytes_sent: vec![0; n], ..Stats::default() },
            wait_for_transactions: false,
            idle: Vec::new(),
        };
        c.genesis_root = c.app.as_mut().map_or(c.genesis_root, |a| a.commit());
        let tip = Tip { height: 1, prev_hash: chain_id, prev_time_ns: 0, state_root: c.genesis_root };
        c.tips = vec![tip; n];
        for i in 0..n {
            c.push(0, Ev::Start { node: i as u32 });
        }
        Ok(c)
    }

    /// Verifies the votes put on the wire ahead, on a second thread (same results; for long runs).
    pub fn verify_ahead(&mut self) {
        self.sig.spawn_verifier();
    }

    pub fn n(&self) -> usize {
        self.nodes.len()
    }
    pub fn now_ns(&self) -> u64 {
        self.now
    }
    pub fn is_honest(&self, i: usize) -> bool {
        self.behaviour[i] == Behaviour::Honest
    }
    /// Time of the next internal event.
    pub fn next_time(&self) -> Option<u64> {
        self.queue.peek().map(|r| r.0.time)
    }
    /// Decided blocks of the canonical chain with their commits, in height order.
    pub fn canonical_blocks(&self) -> impl Iterator<Item = &(Block, Commit)> {
        self.canonical.iter().filter_map(|h| self.blocks.get(h))
    }
    /// Lowest height every honest, running validator has decided.
    pub fn min_honest_height(&self) -> u64 {
        (0..self.n())
            .filter(|i| self.is_honest(*i) && !self.halted[*i])
            .map(|i| self.decided_by[i].len() as u64)
            .min()
            .unwrap_or(0)
    }
    pub fn max_honest_height(&self) -> u64 {
        (0..self.n()).filter(|i| self.is_honest(*i)).map(|i| self.decided_by[i].len() as u64).max().unwrap_or(0)
    }

    /// Offers a transaction to the mempool (every validator's: transaction gossip is not modelled); refused
    /// transactions are counted by reason.
    pub fn submit(&mut self, tx: Vec<u8>) {
        self.stats.tx_submitted += 1;
        if let Some(app) = &self.app
            && let Err(r) = app.check_tx(&tx)
        {
            *self.stats.tx_refused.entry(r.reason).or_default() += 1;
            return;
        }
        if self.mempool.len() < 100_000 {
            self.mempool.push(tx);
            // Idle validators start their height one block interval after the first transaction (so a burst
            // of transactions goes into one block).
            let at = self.now + self.block_interval_ns;
            for node in std::mem::take(&mut self.idle) {
                self.push(at, Ev::Start { node });
            }
        } else {
            *self.stats.tx_refused.entry("mempool full").or_default() += 1;
        }
    }

    /// Heights where honest validators decided different blocks, with the culprits.
    pub fn conflicts(&self) -> Vec<Conflict> {
        let mut v = Vec::new();
        for (h, ds) in &self.decisions {
            let distinct: BTreeSet<Hash> = ds.iter().map(|d| d.hash).collect();
            if distinct.len() > 1 {
                let mut culprits: BTreeSet<u32> = self.double_signers.get(h).cloned().unwrap_or_default();
                if culprits.is_empty() {
                    // Fall back on the validators that signed commits of two different blocks.
                    let signers: Vec<BTreeSet<u32>> = distinct
                        .iter()
                        .filter_map(|b| self.blocks.get(b))
                        .map(|(_, c)| c.sigs.iter().map(|s| s.validator).collect())
                        .collect();
                    if let [a, b, ..] = signers.as_slice() {
                        culprits = a.intersection(b).copied().collect();
                    }
                }
                v.push(Conflict { height: *h, culprits: culprits.into_iter().collect() });
            }
        }
        v
    }

    fn push(&mut self, time: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Item { time, seq: self.seq, ev }));
    }

    /// Processes every event up to and including `t_ns`.
    pub fn run_until(&mut self, t_ns: u64) {
        let mut k = 0;
        while let Some(top) = self.queue.peek() {
            if top.0.time > t_ns || k >= MAX_EVENTS_PER_CALL {
                break;
            }
            k += 1;
            let Some(Reverse(item)) = self.queue.pop() else { break };
            self.now = self.now.max(item.time);
            self.handle(item.ev);
        }
        self.now = self.now.max(t_ns.min(self.next_time().unwrap_or(t_ns)));
    }

    /// Runs until every honest validator decided `heights` heights or `limit_ns` passed.
    pub fn run_heights(&mut self, heights: u64, limit_ns: u64) {
        while self.min_honest_height() < heights {
            match self.next_time() {
                Some(t) if t <= limit_ns => {
                    let Some(Reverse(item)) = self.queue.pop() else { break };
                    self.now = self.now.max(item.time);
                    self.handle(item.ev);
                }
                _ => break,
            }
        }
    }

    fn handle(&mut self, ev: Ev) {
        let now = Instant(self.now);
        match ev {
            Ev::Deliver { to, bytes } => {
                let i = to as usize;
                if self.halted[i] {
                    return;
                }
                let mut out = Output::default();
                self.nodes[i].on_message(now, &bytes, &mut self.sig, &mut out);
                self.after(i, out);
            }
            Ev::Deadline { node } => {
                let i = node as usize;
                if self.halted[i] || self.scheduled[i] != Some(self.now) {
                    return;
                }
                self.scheduled[i] = None;
                let mut out = Output::default();
                self.nodes[i].on_deadline(now, &mut self.sig, &mut out);
                self.after(i, out);
            }
            Ev::Start { node } => {
                let i = node as usize;
                if self.halted[i] {
                    return;
                }
                if self.wait_for_transactions && self.mempool.is_empty() {
                    self.idle.push(node);
                    return;
                }
                let tip = self.tips[i];
                if self.is_honest(i) {
                    self.height_start_ns.entry(tip.height).or_insert(self.now);
                }
                let txs = self.mempool.clone();
                let mut out = Output::default();
                self.nodes[i].start_height(now, tip, txs, &mut self.sig, &mut out);
                self.after(i, out);
            }
        }
    }

    fn after(&mut self, i: usize, out: Output) {
        self.stats.messages_refused += out.refused as u64;
        self.stats.evidence_seen += out.evidence.len() as u64;
        for b in out.broadcast {
            self.emit(i, b);
        }
        if self.behaviour[i] == Behaviour::Honest {
            for (peer, b) in out.direct {
                self.send(i, peer as usize, Rc::new(b), 0);
            }
        }
        for (peer, h) in out.catch_up {
            // The decided blocks from `h` on, a bounded run (each its own message, each can be lost).
            let upto = (h + gridtwin_firmware::consensus::MAX_CATCH_UP_BLOCKS).min(self.decided_by[i].len() as u64 + 1);
            for hh in h.max(1)..upto {
                if let Some(hash) = self.decided_by[i].get(hh as usize - 1).copied()
                    && let Some((b, c)) = self.blocks.get(&hash)
                {
                    let m = Rc::new(Message::Decided(b.clone(), c.clone()).to_bytes());
                    self.send(i, peer as usize, m, 0);
                }
            }
        }
        if let Some((block, commit)) = out.decided {
            self.on_decided(i, block, commit);
        }
        let nd = if self.halted[i] { None } else { self.nodes[i].next_deadline().map(|t| t.as_nanos()) };
        if nd != self.scheduled[i] {
            self.scheduled[i] = nd;
            if let Some(t) = nd {
                let t = t.max(self.now);
                self.scheduled[i] = Some(t);
                self.push(t, Ev::Deadline { node: i as u32 });
            }
        }
    }

    fn on_decided(&mut self, i: usize, block: Block, commit: Commit) {
        let h = block.header.height;
        let hash = block.hash();
        self.decided_by[i].push(hash);
        if self.is_honest(i) {
            self.decisions.entry(h).or_default().push(Decision {
                node: i as u32,
                hash,
                time_ns: self.now,
                round: commit.round,
                block_time_ns: block.header.time_ns,
            });
            if self.canonical.len() as u64 == h - 1 {
                self.canonical.push(hash);
                self.execute(&block);
                if h.is_multiple_of(VOTE_WATCH_HEIGHTS) {
                    // Votes of heights every honest validator left long ago can no longer decide anything.
                    let keep_from = self.min_honest_height().saturating_sub(VOTE_WATCH_HEIGHTS);
                    self.sent_votes.retain(|k, _| k.1 >= keep_from);
                }
            }
        }
        let root = match self.roots_after.get(&hash) {
            Some(r) => *r,
            None if self.app.is_none() => {
                let r = hash_parts(domain::STATE, &[&block.header.state_root, &block.header.tx_root]);
                self.roots_after.insert(hash, r);
                r
            }
            None => {
                // A block off the executed chain: this validator cannot go on (its ledger diverged).
                self.halted[i] = true;
                [0; 32]
            }
        };
        self.blocks.entry(hash).or_insert((block.clone(), commit));
        self.tips[i] = Tip { height: h + 1, prev_hash: hash, prev_time_ns: block.header.time_ns, state_root: root };
        if !self.halted[i] {
            self.push(self.now + self.block_interval_ns, Ev::Start { node: i as u32 });
        }
    }

    fn execute(&mut self, block: &Block) {
        let Some(app) = self.app.as_mut() else { return };
        let info =
            BlockInfo { height: block.header.height, time_ns: block.header.time_ns, proposer: block.header.proposer };
        let txs: Vec<&[u8]> = block.txs.iter().map(|t| t.as_slice()).collect();
        for o in app.execute_block(&info, &txs) {
            match o {
                Ok(()) => self.stats.tx_committed += 1,
                Err(Refusal { reason, .. }) => *self.stats.tx_refused.entry(reason).or_default() += 1,
            }
        }
        let root = app.commit();
        self.roots_after.insert(block.hash(), root);
        let done: BTreeSet<&Vec<u8>> = block.txs.iter().collect();
        self.mempool.retain(|t| !done.contains(t));
    }

    /// Puts one message on the wire from `from` to `to`.
    fn send(&mut self, from: usize, to: usize, bytes: Rc<Vec<u8>>, extra_ns: u64) {
        self.stats.messages_sent += 1;
        self.stats.bytes_sent[from] += bytes.len() as u64;
        let now = self.now;
        if self.partitions.iter().any(|p| now >= p.start_ns && now < p.end_ns && p.group.get(from) != p.group.get(to)) {
            self.stats.messages_lost += 1;
            return;
        }
        if self.net.loss > 0.0 && self.rng.random::<f64>() < self.net.loss {
            self.stats.messages_lost += 1;
            return;
        }
        let jitter = if self.net.jitter_ns > 0 { self.rng.random_range(0..=self.net.jitter_ns) } else { 0 };
        let t = now + self.link_ns[from * self.n() + to] + jitter + extra_ns;
        self.push(t, Ev::Deliver { to: to as u32, bytes });
    }

    fn broadcast(&mut self, from: usize, bytes: Rc<Vec<u8>>, extra_ns: u64, only: impl Fn(usize) -> bool) {
        for to in 0..self.n() {
            if to != from && only(to) {
                self.send(from, to, bytes.clone(), extra_ns);
            }
        }
    }

    /// Watches a vote on the wire for double signing. Votes are kept unverified, one per distinct value of
    /// each (validator, height, round, kind); signatures are checked only when a second value appears (an
    /// honest run verifies nothing here), so a forged vote in someone's name never makes them a culprit.
    fn record_vote(&mut self, v: &Vote) {
        let key = (v.validator, v.height, v.round, v.kind as u8);
        let seen = self.sent_votes.entry(key).or_default();
        if seen.iter().any(|o| o.block == v.block && o.signature == v.signature) {
            return;
        }
        if seen.len() >= MAX_VOTES_WATCHED {
            return;
        }
        seen.push(*v);
        if seen.iter().all(|o| o.block == seen[0].block) {
            return;
        }
        let seen = seen.clone();
        let mut valid: Vec<Option<Hash>> = Vec::new();
        for o in &seen {
            if self.sig.check(&self.vals, o.validator, &o.sign_bytes(&self.chain_id), &o.signature)
                && !valid.contains(&o.block)
            {
                valid.push(o.block);
            }
        }
        if valid.len() > 1 {
            self.double_signers.entry(v.height).or_default().insert(v.validator);
        }
    }

    /// Sends one message of validator `i`'s state machine, as its behaviour dictates.
    fn emit(&mut self, i: usize, bytes: Vec<u8>) {
        let msg = Message::decode(&bytes).ok();
        if let Some(Message::Vote(v)) = &msg {
            self.record_vote(v);
            self.sig.prefetch(&self.vals, v.validator, &v.sign_bytes(&self.chain_id), &v.signature);
        }
        match self.behaviour[i] {
            Behaviour::Honest => self.broadcast(i, Rc::new(bytes), 0, |_| true),
            Behaviour::WithholdVotes => {
                if !matches!(msg, Some(Message::Vote(_))) {
                    self.broadcast(i, Rc::new(bytes), 0, |_| true);
                }
            }
            Behaviour::Delay => {
                let b = Rc::new(bytes);
                for to in 0..self.n() {
                    if to != i {
                        let extra = self.rng.random_range(0..=self.delay_max_ns);
                        self.send(i, to, b.clone(), extra);
                    }
                }
            }
            Behaviour::ForgeSignatures => {
                if let Some(Message::Vote(v)) = &msg {
                    let victim = (v.validator as usize + 1 + self.rng.random_range(0..self.n() - 1)) % self.n();
                    let forged = Vote { validator: victim as u32, ..*v };
                    self.broadcast(i, Rc::new(Message::Vote(forged).to_bytes()), 0, |_| true);
                }
                self.broadcast(i, Rc::new(bytes), 0, |_| true);
            }
            Behaviour::ProposeInvalid => match msg {
                Some(Message::Proposal(p)) if p.block.header.proposer as usize == i => {
                    let mut b = p.block.clone();
                    b.header.state_root[0] ^= 0x5a;
                    let bad = Proposal::sign(&self.chain_id, &self.keys[i], p.height, p.round, p.pol_round, b);
                    self.broadcast(i, Rc::new(Message::Proposal(bad).to_bytes()), 0, |_| true);
                }
                _ => self.broadcast(i, Rc::new(bytes), 0, |_| true),
            },
            Behaviour::Equivocate => self.equivocate(i, msg, bytes),
        }
    }

    fn equivocate(&mut self, i: usize, msg: Option<Message>, bytes: Vec<u8>) {
        let side = self.side.clone();
        match msg {
            Some(Message::Proposal(p)) if self.vals.proposer(p.height, p.round) as usize == i => {
                let key = (p.height, p.round);
                if !self.plans.contains_key(&key) {
                    let mut b = p.block.clone();
                    b.header.time_ns += 1;
                    let pb = Proposal::sign(&self.chain_id, &self.keys[i], p.height, p.round, p.pol_round, b);
                    let (ha, hb) = (p.block.hash(), pb.block.hash());
                    self.plans.insert(key, (Rc::new(bytes), Rc::new(Message::Proposal(pb).to_bytes())));
                    // The whole coalition votes A to the first half and B to the second.
                    let coalition: Vec<usize> =
                        (0..self.n()).filter(|j| self.behaviour[*j] == Behaviour::Equivocate).collect();
                    for j in coalition {
                        for kind in [VoteKind::Prevote, VoteKind::Precommit] {
                            for (target, h) in [(0u8, ha), (1u8, hb)] {
                                let v = Vote::sign(
                                    &self.chain_id,
                                    &self.keys[j],
                                    kind,
                                    p.height,
                                    p.round,
                                    Some(h),
                                    j as u32,
                                );
                                self.record_vote(&v);
                                let m = Rc::new(Message::Vote(v).to_bytes());
                                self.broadcast(j, m, 0, |to| side[to] == target || (target == 0 && side[to] == 2));
                            }
                        }
                    }
                }
                let (a, b) = self.plans[&key].clone();
                self.broadcast(i, a, 0, |to| side[to] != 1);
                self.broadcast(i, b, 0, |to| side[to] == 1);
            }
            Some(Message::Vote(v)) => {
                if self.plans.contains_key(&(v.height, v.round)) {
                    return;
                }
                match v.block {
                    Some(_) => {
                        let nil =
                            Vote::sign(&self.chain_id, &self.keys[i], v.kind, v.height, v.round, None, v.validator);
                        self.record_vote(&nil);
                        self.broadcast(i, Rc::new(bytes), 0, |to| side[to] != 1);
                        self.broadcast(i, Rc::new(Message::Vote(nil).to_bytes()), 0, |to| side[to] == 1);
                    }
                    None => self.broadcast(i, Rc::new(bytes), 0, |_| true),
                }
            }
            // Others' proposals are not relayed (they would undo the split).
            Some(Message::Proposal(_)) => {}
            _ => self.broadcast(i, Rc::new(bytes), 0, |_| true),
        }
    }

    /// Finality samples (ns): for each height, each honest decision's time minus the height's start (the
    /// first honest validator entering the height, or the block's own time if that is earlier, as with PoA
    /// blocks made before their parents are final).
    pub fn finality_ns(&self) -> Vec<u64> {
        let mut v = Vec::new();
        for (h, ds) in &self.decisions {
            for d in ds {
                let s = self.height_start_ns.get(h).copied().unwrap_or(u64::MAX).min(d.block_time_ns);
                v.push(d.time_ns.saturating_sub(s));
            }
        }
        v
    }
    /// Rounds used per canonical height (1 = decided in round 0).
    pub fn rounds_per_height(&self) -> Vec<u32> {
        self.decisions.values().filter_map(|ds| ds.iter().map(|d| d.round + 1).min()).collect()
    }
    /// Evidence items on the canonical chain.
    pub fn evidence_on_chain(&self) -> Vec<Evidence> {
        self.canonical_blocks().flat_map(|(b, _)| b.evidence.iter().copied()).collect()
    }
    /// A decided block and its first commit seen, by hash.
    pub fn block(&self, hash: &Hash) -> Option<&(Block, Commit)> {
        self.blocks.get(hash)
    }
    /// Application state root after the canonical block `hash` (None: not executed).
    pub fn root_after(&self, hash: &Hash) -> Option<Hash> {
        self.roots_after.get(hash).copied()
    }
    pub fn genesis_root(&self) -> Hash {
        self.genesis_root
    }
    /// Application state root after the last canonical block.
    pub fn last_root(&self) -> Hash {
        self.canonical.last().and_then(|h| self.roots_after.get(h)).copied().unwrap_or(self.genesis_root)
    }
}
