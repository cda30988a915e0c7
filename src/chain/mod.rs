//! The private permissioned chain on a run: validators running the firmware's Tendermint state machine
//! ([`gridtwin_firmware::consensus`]) over a simulated validator network ([`cluster`]), Byzantine behaviours
//! per validator, adversarial fuzzing ([`fuzz`]), the ledger written under `OUT_DIR/ledger/` and its
//! verifier ([`store`]), and a small signed application ([`app`]) that the chain orders when no market runs.
//!
//! Scenario section `chain` (all durations as text, latencies per directed link):
//! ```ron
//! chain: (
//!     validators: [(name: "op-0", power: 2), (name: "op-1")],   // key from `key_seed` (default: the name)
//!     generated: 5,                                               // plus 5 validators `gen-0` ..
//!     links: (latency_min: "50ms", latency_max: "300ms", jitter: "20ms", loss: 0.0),
//!     partitions: [(start: "10min", end: "11min", group: [0, 1, 2])],
//!     byzantine: [(validator: 3, behaviour: Equivocate)],
//!     block_interval: "1s",
//!     load: (meters: 10, wallets: 10, tx_every: "2s", bad_every: 10),
//! )
//! ```
//! The one [`ChainAgent`] steps the cluster on the run's event queue and accepts transactions from other
//! agents ([`ChainMsg::Submit`]); its report adds the `ledger` and `consensus` summary objects and the ledger
//! files.

pub mod app;
pub mod cluster;
pub mod fuzz;
pub mod store;

use crate::agents::Msg;
use crate::engine::{Agent, AgentId, Ctx, Event, SimDuration, SimTime, Simulation, class, stream};
use crate::report::Report;
use crate::scenario::{Dur, InputError, Loaded};
use crate::world::Part;
use app::{Op, RegistryApp, signed};
use cluster::{Behaviour, Cluster, ClusterSpec, NetModel, Partition};
use gridtwin_firmware::app::Key;
use gridtwin_firmware::consensus::Config;
use gridtwin_firmware::ledger::identity::Role;
use gridtwin_firmware::ledger::{Genesis, domain, hash_parts};
use gridtwin_firmware::time::Duration;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Messages to and from the chain agent.
#[derive(Debug)]
pub enum ChainMsg {
    /// A signed transaction (an [`gridtwin_firmware::app::Envelope`]) for the mempool.
    Submit(Vec<u8>),
    /// A block of the canonical chain was decided (chain agent -> the application's subscriber).
    Committed(CommittedBlock),
}

/// A decided block as an application's full node sees it: what to execute and the root to expect after.
#[derive(Clone, Debug)]
pub struct CommittedBlock {
    pub height: u64,
    /// Block time (ns since the run's start).
    pub time_ns: u64,
    pub proposer: u32,
    pub txs: Vec<Vec<u8>>,
    /// The application's state root after executing the block.
    pub root: gridtwin_firmware::app::Hash,
}

fn one() -> u64 {
    1
}
fn dur_ms(ms: u64) -> Dur {
    Dur(SimDuration::from_millis(ms))
}

/// One validator of the scenario.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorSpec {
    pub name: String,
    /// Seed of the validator's ed25519 key (default: the name); equal seeds make equal keys.
    #[serde(default)]
    pub key_seed: Option<String>,
    #[serde(default = "one")]
    pub power: u64,
}

/// The validator network's links.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    #[serde(default = "lat_min")]
    pub latency_min: Dur,
    #[serde(default = "lat_max")]
    pub latency_max: Dur,
    #[serde(default)]
    pub jitter: Dur,
    /// Probability that one message is lost, 0..1.
    #[serde(default)]
    pub loss: f64,
}
fn lat_min() -> Dur {
    dur_ms(50)
}
fn lat_max() -> Dur {
    dur_ms(300)
}
impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig { latency_min: lat_min(), latency_max: lat_max(), jitter: Dur::default(), loss: 0.0 }
    }
}

/// Messages between `group` and the other validators are lost from `start` to `end`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    pub start: Dur,
    pub end: Dur,
    /// Validator indices of one side.
    pub group: Vec<u32>,
}

/// A Byzantine validator.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ByzantineSpec {
    pub validator: u32,
    pub behaviour: Behaviour,
}

/// Transactions of the built-in registry application: meters sign readings, wallets transfer.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    #[serde(default = "ten")]
    pub meters: u32,
    #[serde(default = "ten")]
    pub wallets: u32,
    /// One transaction this often (0: none).
    #[serde(default = "two_s")]
    pub tx_every: Dur,
    /// Every k-th transaction is bad (cycling: bad signature, unknown signer, replayed, out of role); 0: none.
    #[serde(default)]
    pub bad_every: u32,
}
fn ten() -> u32 {
    10
}
fn two_s() -> Dur {
    dur_ms(2_000)
}
impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig { meters: 10, wallets: 10, tx_every: two_s(), bad_every: 0 }
    }
}

/// The `chain` section of a scenario.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    #[serde(default)]
    pub validators: Vec<ValidatorSpec>,
    /// Extra validators `gen-0`, `gen-1`, ... with power 1.
    #[serde(default)]
    pub generated: u32,
    #[serde(default)]
    pub links: LinkConfig,
    #[serde(default)]
    pub partitions: Vec<PartitionSpec>,
    #[serde(default)]
    pub byzantine: Vec<ByzantineSpec>,
    #[serde(default = "block_interval")]
    pub block_interval: Dur,
    #[serde(default = "t_propose")]
    pub timeout_propose: Dur,
    #[serde(default = "t_vote")]
    pub timeout_vote: Dur,
    #[serde(default = "t_vote")]
    pub timeout_delta: Dur,
    #[serde(default = "t_propose")]
    pub gossip_interval: Dur,
    /// Most extra delay of a `Delay` validator.
    #[serde(default = "delay_max")]
    pub delay_max: Dur,
    #[serde(default)]
    pub load: LoadConfig,
}
fn block_interval() -> Dur {
    dur_ms(1_000)
}
fn t_propose() -> Dur {
    dur_ms(1_000)
}
fn t_vote() -> Dur {
    dur_ms(500)
}
fn delay_max() -> Dur {
    dur_ms(3_000)
}

/// Most validators in a scenario.
pub const MAX_SCENARIO_VALIDATORS: usize = 1024;

/// The ed25519 key of a key seed.
pub fn key_from_seed_text(seed: &str) -> Key {
    Key::from_bytes(&hash_parts(b"gridtwin/key-seed/v1\0", &[seed.as_bytes()]))
}

impl ChainConfig {
    /// Names and key seeds of all validators, listed first, generated after.
    pub fn all_validators(&self) -> Vec<(String, String, u64)> {
        let mut v: Vec<(String, String, u64)> = self
            .validators
            .iter()
            .map(|s| (s.name.clone(), s.key_seed.clone().unwrap_or_else(|| s.name.clone()), s.power))
            .collect();
        for i in 0..self.generated {
            v.push((format!("gen-{i}"), format!("gen-{i}"), 1));
        }
        v
    }

    /// Checks ranges and consistency; messages start with the path of the bad field.
    pub fn validate(&self) -> Result<(), String> {
        let all = self.all_validators();
        if all.is_empty() {
            return Err("chain.validators: no validators (list some or set `generated`)".into());
        }
        if all.len() > MAX_SCENARIO_VALIDATORS {
            return Err(format!("chain.validators: {} validators; the limit is {MAX_SCENARIO_VALIDATORS}", all.len()));
        }
        let mut keys: Vec<[u8; 32]> = Vec::new();
        for (i, (name, seed, power)) in all.iter().enumerate() {
            let at =
                if i < self.validators.len() { format!("chain.validators[{i}]") } else { "chain.generated".into() };
            if *power == 0 {
                return Err(format!("{at}.power: validator `{name}` has zero voting power; give it at least 1"));
            }
            let k = key_from_seed_text(seed).verifying_key().to_bytes();
            if let Some(j) = keys.iter().position(|x| *x == k) {
                return Err(format!(
                    "{at}.key_seed: validator `{name}` has the same key as validator {j} (`{}`); give each validator its own key_seed",
                    all[j].0
                ));
            }
            keys.push(k);
        }
        let total: u128 = all.iter().map(|v| v.2 as u128).sum();
        if total >= 1 << 60 {
            return Err("chain.validators: total voting power is too large".into());
        }
        let l = &self.links;
        if l.latency_max.0 < l.latency_min.0 {
            return Err("chain.links.latency_max: below latency_min".into());
        }
        if !(0.0..1.0).contains(&l.loss) {
            return Err(format!("chain.links.loss: {} is not a probability below 1", l.loss));
        }
        for (k, p) in self.partitions.iter().enumerate() {
            if p.end.0 <= p.start.0 {
                return Err(format!("chain.partitions[{k}].end: not after start"));
            }
            if let Some(g) = p.group.iter().find(|g| **g as usize >= all.len()) {
                return Err(format!("chain.partitions[{k}].group: validator {g} does not exist"));
            }
        }
        for (k, b) in self.byzantine.iter().enumerate() {
            if b.validator as usize >= all.len() {
                return Err(format!("chain.byzantine[{k}].validator: validator {} does not exist", b.validator));
            }
            if self.byzantine[..k].iter().any(|x| x.validator == b.validator) {
                return Err(format!("chain.byzantine[{k}].validator: validator {} is listed twice", b.validator));
            }
        }
        for (name, d) in [
            ("block_interval", self.block_interval),
            ("timeout_propose", self.timeout_propose),
            ("timeout_vote", self.timeout_vote),
            ("gossip_interval", self.gossip_interval),
        ] {
            if d.0 == SimDuration::ZERO && name != "block_interval" {
                return Err(format!("chain.{name}: must be longer than zero"));
            }
        }
        if self.load.meters > 100_000 || self.load.wallets > 100_000 {
            return Err("chain.load: at most 100000 meters and wallets".into());
        }
        Ok(())
    }

    /// The cluster this section describes (keys, network, behaviours, genesis of the registry application).
    pub fn spec(&self, seed: u64) -> (ClusterSpec, Clients) {
        let all = self.all_validators();
        let n = all.len();
        let keys: Vec<Key> = all.iter().map(|v| key_from_seed_text(&v.1)).collect();
        let mut behaviour = vec![Behaviour::Honest; n];
        for b in &self.byzantine {
            behaviour[b.validator as usize] = b.behaviour;
        }
        let partitions = self
            .partitions
            .iter()
            .map(|p| Partition {
                start_ns: p.start.0.as_nanos(),
                end_ns: p.end.0.as_nanos(),
                group: (0..n).map(|i| p.group.contains(&(i as u32))).collect(),
            })
            .collect();
        let mut t = Config::new([0; 32]);
        t.timeout_propose = Duration(self.timeout_propose.0.as_nanos());
        t.timeout_vote = Duration(self.timeout_vote.0.as_nanos());
        t.timeout_delta = Duration(self.timeout_delta.0.as_nanos());
        t.gossip_interval = Duration(self.gossip_interval.0.as_nanos());
        let clients = Clients::new(&self.load, seed);
        let spec = ClusterSpec {
            keys,
            powers: all.iter().map(|v| v.2).collect(),
            behaviour,
            net: NetModel {
                latency_min_ns: self.links.latency_min.0.as_nanos(),
                latency_max_ns: self.links.latency_max.0.as_nanos(),
                jitter_ns: self.links.jitter.0.as_nanos(),
                loss: self.links.loss,
            },
            partitions,
            timeouts: t,
            block_interval_ns: self.block_interval.0.as_nanos(),
            delay_max_ns: self.delay_max.0.as_nanos(),
            genesis: Genesis {
                chain_name: b"gridtwin".to_vec(),
                app_name: app::APP_NAME.as_bytes().to_vec(),
                validators: Vec::new(),
                app_state: clients.genesis.encode(),
            },
            seed,
            protocol: cluster::Protocol::Tendermint,
        };
        (spec, clients)
    }
}

/// The registry application's clients: one operator, meters and wallets with their keys and nonces.
pub struct Clients {
    pub operator: Key,
    pub meters: Vec<Key>,
    pub wallets: Vec<Key>,
    nonces: std::collections::BTreeMap<[u8; 32], u64>,
    pub genesis: app::State,
    tx_every_ns: u64,
    bad_every: u32,
    count: u64,
    last_good: Option<Vec<u8>>,
    rng: crate::engine::SimRng,
}

impl Clients {
    fn new(l: &LoadConfig, seed: u64) -> Clients {
        let operator = key_from_seed_text("operator");
        let meters: Vec<Key> = (0..l.meters).map(|i| key_from_seed_text(&format!("meter-{i}"))).collect();
        let wallets: Vec<Key> = (0..l.wallets).map(|i| key_from_seed_text(&format!("wallet-{i}"))).collect();
        let mut g = app::State::default();
        let _ = g.registry.register(operator.verifying_key().to_bytes(), Role::Operator);
        for m in &meters {
            let _ = g.registry.register(m.verifying_key().to_bytes(), Role::Meter);
        }
        for w in &wallets {
            let _ = g.registry.register(w.verifying_key().to_bytes(), Role::Wallet);
            g.balances.insert(w.verifying_key().to_bytes(), 1_000_000);
        }
        Clients {
            operator,
            meters,
            wallets,
            nonces: Default::default(),
            genesis: g,
            tx_every_ns: l.tx_every.0.as_nanos(),
            bad_every: l.bad_every,
            count: 0,
            last_good: None,
            rng: stream(seed, 0, "chain-load"),
        }
    }

    fn nonce(&mut self, k: &Key) -> u64 {
        let e = self.nonces.entry(k.verifying_key().to_bytes()).or_insert(0);
        *e += 1;
        *e
    }

    /// The next transaction of the load (every `bad_every`-th one bad, cycling through four kinds).
    pub fn next_tx(&mut self) -> Option<Vec<u8>> {
        if self.meters.is_empty() && self.wallets.is_empty() {
            return None;
        }
        self.count += 1;
        let bad = self.bad_every > 0 && self.count.is_multiple_of(self.bad_every as u64);
        let use_meter = !self.meters.is_empty() && (self.wallets.is_empty() || self.rng.random::<bool>());
        let (key, op) = if use_meter {
            let m = self.meters[self.rng.random_range(0..self.meters.len())].clone();
            let op = Op::Reading { meter: m.verifying_key().to_bytes(), energy_wh: self.rng.random_range(1..=5_000) };
            (m, op)
        } else {
            let w = self.wallets[self.rng.random_range(0..self.wallets.len())].clone();
            let to = self.wallets[self.rng.random_range(0..self.wallets.len())].verifying_key().to_bytes();
            (w, Op::Transfer { to, amount: self.rng.random_range(1..=100) })
        };
        if !bad {
            let n = self.nonce(&key);
            let tx = signed(&key, n, op);
            self.last_good = Some(tx.clone());
            return Some(tx);
        }
        Some(match (self.count / self.bad_every.max(1) as u64) % 4 {
            // A replay: an earlier good transaction, byte for byte.
            2 if self.last_good.is_some() => self.last_good.clone().unwrap_or_default(),
            0 | 2 => {
                let n = self.nonce(&key);
                let mut t = signed(&key, n, op);
                if let Some(b) = t.last_mut() {
                    *b ^= 0x01;
                }
                t
            }
            1 => signed(&key_from_seed_text(&format!("stranger-{}", self.count)), 1, op),
            _ => {
                // A meter trying to move money, or a wallet signing a reading: not its role.
                let n = self.nonce(&key);
                let wrong = match op {
                    Op::Reading { meter, .. } => Op::Transfer { to: meter, amount: 1 },
                    _ => Op::Reading { meter: key.verifying_key().to_bytes(), energy_wh: 1 },
                };
                signed(&key, n, wrong)
            }
        })
    }
}

const TIMER_STEP: u64 = 1;
const TIMER_LOAD: u64 = 2;

/// The validator network on the run's queue: steps the cluster to each of its event times.
pub struct ChainAgent {
    pub cluster: Cluster,
    pub clients: Clients,
    pub genesis: Genesis,
    step_at: Option<u64>,
    /// Told of every canonical block (the application's full node), with how many were told.
    subscriber: Option<AgentId>,
    delivered: usize,
}

impl ChainAgent {
    /// Sends the canonical blocks decided since the last call to the subscriber.
    fn deliver(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let Some(to) = self.subscriber else { return };
        while self.delivered < self.cluster.canonical.len() {
            let hash = self.cluster.canonical[self.delivered];
            self.delivered += 1;
            let Some((b, _)) = self.cluster.block(&hash) else { continue };
            let m = CommittedBlock {
                height: b.header.height,
                time_ns: b.header.time_ns,
                proposer: b.header.proposer,
                txs: b.txs.clone(),
                root: self.cluster.root_after(&hash).unwrap_or([0; 32]),
            };
            ctx.send(to, SimDuration::ZERO, Msg::Chain(ChainMsg::Committed(m)));
        }
    }

    fn reschedule(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some(t) = self.cluster.next_time()
            && self.step_at.is_none_or(|s| t < s)
        {
            let t = t.max(ctx.now().0);
            self.step_at = Some(t);
            ctx.schedule_at(SimTime(t), class::DEFAULT, Msg::Timer(TIMER_STEP));
        }
    }
}

impl Agent<Msg> for ChainAgent {
    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.clients.tx_every_ns > 0 {
            ctx.schedule(SimDuration::from_nanos(self.clients.tx_every_ns), Msg::Timer(TIMER_LOAD));
        }
        self.reschedule(ctx);
    }
    fn handle(&mut self, e: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        match e.msg {
            Msg::Timer(TIMER_STEP) => {
                if self.step_at != Some(ctx.now().0) {
                    return;
                }
                self.step_at = None;
                self.cluster.run_until(ctx.now().0);
                ctx.digest(self.cluster.canonical.len() as u64);
                self.deliver(ctx);
            }
            Msg::Timer(TIMER_LOAD) => {
                if let Some(tx) = self.clients.next_tx() {
                    self.cluster.submit(tx);
                }
                ctx.schedule(SimDuration::from_nanos(self.clients.tx_every_ns), Msg::Timer(TIMER_LOAD));
            }
            Msg::Chain(ChainMsg::Submit(tx)) => {
                self.cluster.run_until(ctx.now().0);
                self.deliver(ctx);
                self.cluster.submit(tx);
            }
            _ => {}
        }
        self.reschedule(ctx);
    }
    fn kind(&self) -> &'static str {
        "chain"
    }
}

/// Adds the chain agent of `c` to `sim`.
pub fn add(sim: &mut Simulation<Msg>, loaded: &Loaded, c: &ChainConfig, seed: u64) -> Result<ChainPart, InputError> {
    let (spec, clients) = c.spec(seed);
    let mut genesis = spec.genesis.clone();
    genesis.validators = spec
        .keys
        .iter()
        .zip(&spec.powers)
        .map(|(k, p)| gridtwin_firmware::ledger::Validator { key: k.verifying_key().to_bytes(), power: *p })
        .collect();
    let app = RegistryApp::from_state(clients.genesis.clone());
    let mut cluster = Cluster::new(spec, Some(Box::new(app))).map_err(|e| loaded.error_at("chain", e, None))?;
    cluster.verify_ahead();
    let agent = ChainAgent { cluster, clients, genesis, step_at: None, subscriber: None, delivered: 0 };
    let id = sim.add_agent(Box::new(agent)).map_err(|e| loaded.error_at("chain", e.to_string(), None))?;
    Ok(ChainPart { agent: id })
}

/// An application the chain orders instead of the built-in registry: its genesis name and bytes (what
/// [`store::app_for`] rebuilds it from), a fresh instance, and the agent told of every committed block.
pub struct HostedApp {
    pub name: String,
    pub state: Vec<u8>,
    pub app: Box<dyn gridtwin_firmware::app::Application>,
    pub subscriber: AgentId,
}

/// Adds the chain agent of `c` ordering and executing `hosted` (the section's `load` is not generated: the
/// application's own agents submit). Validators wait for transactions instead of deciding empty blocks.
pub fn add_app(
    sim: &mut Simulation<Msg>,
    loaded: &Loaded,
    c: &ChainConfig,
    seed: u64,
    hosted: HostedApp,
) -> Result<ChainPart, InputError> {
    let quiet = ChainConfig {
        load: LoadConfig { meters: 0, wallets: 0, tx_every: Dur(SimDuration::ZERO), bad_every: 0 },
        ..c.clone()
    };
    let (mut spec, clients) = quiet.spec(seed);
    spec.genesis.app_name = hosted.name.into_bytes();
    spec.genesis.app_state = hosted.state;
    let mut genesis = spec.genesis.clone();
    genesis.validators = spec
        .keys
        .iter()
        .zip(&spec.powers)
        .map(|(k, p)| gridtwin_firmware::ledger::Validator { key: k.verifying_key().to_bytes(), power: *p })
        .collect();
    let mut cluster = Cluster::new(spec, Some(hosted.app)).map_err(|e| loaded.error_at("chain", e, None))?;
    cluster.wait_for_transactions = true;
    cluster.verify_ahead();
    let agent =
        ChainAgent { cluster, clients, genesis, step_at: None, subscriber: Some(hosted.subscriber), delivered: 0 };
    let id = sim.add_agent(Box::new(agent)).map_err(|e| loaded.error_at("chain", e.to_string(), None))?;
    Ok(ChainPart { agent: id })
}

/// The chain in a built world.
pub struct ChainPart {
    pub agent: AgentId,
}

fn pct(v: &mut [u64], q: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[((v.len() - 1) as f64 * q).round() as usize])
}

impl Part for ChainPart {
    fn report(&self, sim: &Simulation<Msg>, r: &mut Report) {
        let Some(a) = sim.agent::<ChainAgent>(self.agent) else { return };
        let c = &a.cluster;
        let blocks: Vec<_> = c.canonical_blocks().collect();
        let txs: usize = blocks.iter().map(|(b, _)| b.txs.len()).sum();
        let mut fin = c.finality_ns();
        let rounds = c.rounds_per_height();
        let n = c.n();
        let bytes = &c.stats.bytes_sent;
        let evidence = c.evidence_on_chain().len();
        let refused: serde_json::Map<String, serde_json::Value> =
            c.stats.tx_refused.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        r.summary.insert(
            "ledger".into(),
            json!({
                "blocks": blocks.len(),
                "transactions": txs,
                "transactions_submitted": c.stats.tx_submitted,
                "transactions_applied": c.stats.tx_committed,
                "transactions_refused": c.stats.tx_refused.values().sum::<u64>(),
                "refused_by_reason": refused,
                "evidence_recorded": evidence,
                "state_root": hex(&c.last_root()),
                "chain_id": hex(&c.chain_id),
                "dir": "ledger",
            }),
        );
        let ms = |v: Option<u64>| v.map_or(serde_json::Value::Null, |x| json!(x as f64 / 1e6));
        r.summary.insert(
            "consensus".into(),
            json!({
                "protocol": "tendermint",
                "validators": n,
                "byzantine": (0..n).filter(|i| !c.is_honest(*i)).count(),
                "heights": blocks.len(),
                "finality_ms_p50": ms(pct(&mut fin, 0.5)),
                "finality_ms_p99": ms(pct(&mut fin, 0.99)),
                "rounds_per_height_mean": if rounds.is_empty() { 0.0 } else { rounds.iter().map(|x| *x as f64).sum::<f64>() / rounds.len() as f64 },
                "rounds_per_height_max": rounds.iter().max().copied().unwrap_or(0),
                "bytes_sent_per_validator_mean": bytes.iter().sum::<u64>() / n.max(1) as u64,
                "bytes_sent_per_validator_max": bytes.iter().max().copied().unwrap_or(0),
                "messages_sent": c.stats.messages_sent,
                "messages_lost": c.stats.messages_lost,
                "messages_refused": c.stats.messages_refused,
                "evidence_seen": c.stats.evidence_seen,
                "evidence_recorded": evidence,
                "conflicting_commits": c.conflicts().len(),
            }),
        );
        r.human.push(format!(
            "chain: {} blocks, {} transactions ({} refused), finality p99 {} ms, {} evidence on chain",
            blocks.len(),
            txs,
            c.stats.tx_refused.values().sum::<u64>(),
            pct(&mut fin, 0.99).map_or("-".into(), |x| format!("{:.0}", x as f64 / 1e6)),
            evidence
        ));
        r.files.push(("ledger/genesis.bin".into(), a.genesis.to_bytes()));
        let last = blocks.last().map_or(c.chain_id, |(b, _)| b.hash());
        r.files.push((store::HEAD_FILE.into(), store::encode_head(blocks.len() as u64, &last, &c.last_root())));
        for (b, cm) in blocks {
            r.files.push((store::block_file(b.header.height), gridtwin_firmware::ledger::encode_stored(b, cm)));
        }
        let _ = domain::STATE;
    }
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
