//! The market's agents on the event queue: the meters (fed by the grid's solved power flows), the customers
//! (wallet owners with heat pumps, EVs and home batteries as flexible loads with their own physics), the grid
//! operator's demand-response desk (watching transformer loading), and the trusted sequencer that stands in for
//! the chain: it batches signed transactions into blocks, drives the [`MarketApp`] through the `Application`
//! trait, and hosts the back-office roles that act on committed state (the market operator proposing each
//! slot's clearing with its certificate and channel sales, and the supplier desk minting grid-import
//! certificates), each with its own key.
//!
//! Per settlement slot `s` ending at `T`: the meters submit signed readings at `T`; block 1 (at `T + block`)
//! records them and mints production certificates; the market operator then clears each feeder's book and the
//! supplier desk mints imports (block 2); the customers, told the slot is settled, claim their metered
//! consumption (block 3).
//!
//! On a private ledger ([`SealPlan`]) the meters seal their consumption readings for the entitled parties and
//! hand each customer its opening; the customers seal a claim of what they consumed from the certificates they
//! hold, with its range proof, every slot; the supplier desk mints no imports (they are the claims' sealed
//! remainder), and the grid operator's desk submits the scenario's revocations.
//!
//! With the scenario's `chain` section the same three steps run on the chain: every agent submits to the chain
//! agent ([`Orderer::Chain`]), the validators order and execute the blocks, and the sequencer (now the market
//! operator's full node) re-executes each committed block it is sent, settles a slot once its readings are
//! committed and tells the customers to claim once the settlement is.

use super::app::{
    CH_FEED_IN, CH_MARKET, CH_P2P, CH_TRADER, Genesis, MarketApp, Role, Settle, Tx, entitled, sealed_aad,
};
use super::clearing;
use super::contracts::{Battery, Ev, HeatPump};
use super::private::{Opening, SealRng};
use crate::agents::Msg;
use crate::chain::{ChainMsg, CommittedBlock};
use crate::engine::{Agent, AgentId, Ctx, Event, NS_PER_S, SimDuration, SimRng, SimTime, class};
use crate::grid::{GridMsg, GridSnapshot};
use gridtwin_firmware::app::{Application, BlockInfo, Key, seal};
use rand::RngExt;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Messages of the market's agents.
#[derive(Clone, Debug)]
pub enum MarketMsg {
    /// A signed transaction for the sequencer's mempool.
    Tx(Arc<Vec<u8>>),
    /// A slot's readings were all submitted (meters -> sequencer): how many.
    SlotClosed { slot: u32, readings: u32 },
    /// A customer's main-meter reading of a slot (meter -> customer), with its commitment's opening on a
    /// private ledger (what the meter's home display tells its customer).
    Metered { slot: u32, wh: u64, opening: Option<Opening> },
    /// The slot's settlement is committed: claim now (sequencer -> customers), with the Wh of certificates the
    /// customer's wallet holds for the slot.
    Settled { slot: u32, held_wh: u64 },
    /// A demand-response offer (grid operator -> customers).
    DrOffer { event: u32, first_slot: u32, last_slot: u32, reward: i64 },
}

/// The signing key of participant `name` in `domain` (derived, so every run and validator agrees).
pub fn key_for(domain: &str, name: &str) -> Key {
    let seed: [u8; 32] = Sha256::digest(format!("gridtwin/market/key/{domain}/{name}").as_bytes()).into();
    Key::from_bytes(&seed)
}

/// What the meters and customers of a private ledger seal with: the genesis (domain, parties' keys) and the
/// revocations the grid operator submits (auditor -> first slot it may not read).
pub struct SealPlan {
    pub genesis: Genesis,
    pub revoked: BTreeMap<u32, u32>,
}

impl SealPlan {
    /// The parties `wallet`'s sealed transactions of `slot` are addressed to.
    pub fn recipients(&self, wallet: u32, slot: u32) -> Vec<(u32, [u8; 32])> {
        entitled(&self.genesis, &self.revoked, wallet, slot)
    }
}

/// The randomness of one sealed transaction: from the signer's public key, the transaction kind and the slot.
fn seal_rng(key: &Key, kind: u8, slot: u32) -> SealRng {
    let mut m = key.verifying_key().to_bytes().to_vec();
    m.push(kind);
    m.extend_from_slice(&slot.to_le_bytes());
    SealRng::from_material(&m)
}

/// A signer with its nonce.
pub struct Signer {
    pub key: Key,
    pub nonce: u64,
}

impl Signer {
    pub fn new(key: Key) -> Signer {
        Signer { key, nonce: 0 }
    }
    pub fn sign(&mut self, tx: &Tx) -> Arc<Vec<u8>> {
        self.nonce += 1;
        // Payloads are bounded by construction (books of at most MAX_ORDERS a side); a refusal would surface as
        // an undecodable transaction counted by the application.
        Arc::new(seal(&self.key, self.nonce, &tx.encode()).unwrap_or_default())
    }
}

/// Where the market's agents send their signed transactions: the trusted sequencer's mempool, or the chain's
/// validators (`Msg::Chain(ChainMsg::Submit)`), which order them and execute them on their own [`MarketApp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Orderer {
    Sequencer(AgentId),
    Chain(AgentId),
}

impl Orderer {
    /// Sends one signed transaction to the orderer.
    pub fn submit(&self, ctx: &mut Ctx<'_, Msg>, tx: Arc<Vec<u8>>) {
        match *self {
            Orderer::Sequencer(a) => {
                ctx.send(a, SimDuration::ZERO, Msg::Market(MarketMsg::Tx(tx)));
            }
            Orderer::Chain(a) => {
                let bytes = Arc::try_unwrap(tx).unwrap_or_else(|t| t.as_ref().clone());
                ctx.send(a, SimDuration::ZERO, Msg::Chain(ChainMsg::Submit(bytes)));
            }
        }
    }
}

const TAG_BLOCK: u64 = 1;
const TAG_SLOT: u64 = 2;
const TAG_STEP: u64 = 3;
const TAG_DR_SETTLE: u64 = 4;
const TAG_PROGRESS: u64 = 5;
const TAG_REVOKE: u64 = 6;

/// One committed block of the ledger.
#[derive(Clone, Debug)]
pub struct BlockRec {
    pub height: u64,
    pub time_ns: u64,
    pub txs: Vec<Arc<Vec<u8>>>,
    /// 0 = executed, else the refusal code.
    pub outcomes: Vec<u16>,
    pub root: [u8; 32],
}

/// Prices the back office uses for channel sales (milli-cents per kWh).
#[derive(Clone, Debug)]
pub struct OfftakePrices {
    pub trader: i64,
    pub market_hourly: Vec<i64>,
    pub feed_in: i64,
}

/// The trusted sequencer, with the market operator and supplier desk.
///
/// With a chain ([`Sequencer::on_chain`]) it orders nothing itself: it is the market operator's full node. It
/// submits its transactions to the chain agent, re-executes every committed block on its own [`MarketApp`]
/// replica (checking each state root against the validators'), keeps the same block records, and acts on the
/// committed state: once a slot's readings are all committed it proposes the slot's settlement, and once
/// the settlement is committed it tells the customers to claim. A slot whose readings or settlement do not
/// all arrive within a tenth of a slot goes ahead with what is committed.
pub struct Sequencer {
    pub app: MarketApp,
    mempool: Vec<Arc<Vec<u8>>>,
    block_scheduled: bool,
    block_every: SimDuration,
    pub blocks: Vec<BlockRec>,
    pub genesis_root: [u8; 32],
    market: Signer,
    market_who: u32,
    supply: Signer,
    supply_who: u32,
    prices: OfftakePrices,
    customers: Vec<AgentId>,
    /// Slots whose readings go into the next block, and whose settlement does.
    to_settle: Vec<u32>,
    pending_notify: Vec<u32>,
    /// Most transactions per block (the rest wait for the next).
    pub max_block_txs: usize,
    /// The chain agent that orders the market's transactions (None: this agent orders them).
    chain: Option<AgentId>,
    /// Chain mode: readings seen in committed blocks per slot.
    readings_seen: BTreeMap<u32, u32>,
    /// Chain mode: closed slots waiting for their readings: slot -> (readings submitted, closed at).
    closing: BTreeMap<u32, (u32, SimTime)>,
    /// Chain mode: settled slots waiting for their back-office transactions: slot -> (digests, submitted at).
    settling: BTreeMap<u32, (BTreeSet<[u8; 32]>, SimTime)>,
    /// Chain mode: committed blocks whose re-executed state root differs from the validators'.
    pub root_mismatches: u64,
}

impl Sequencer {
    pub fn new(app: MarketApp, block_every: SimDuration, prices: OfftakePrices, customers: Vec<AgentId>) -> Sequencer {
        let find = |name: &str| app.genesis.participants.iter().position(|p| p.name == name).map_or(0, |k| k as u32);
        let domain = app.genesis.domain.clone();
        let (market_who, supply_who) = (find("market-operator"), find("grid-operator-supply"));
        let genesis_root = app.root();
        Sequencer {
            app,
            mempool: Vec::new(),
            block_scheduled: false,
            block_every,
            blocks: Vec::new(),
            genesis_root,
            market: Signer::new(key_for(&domain, "market-operator")),
            market_who,
            supply: Signer::new(key_for(&domain, "grid-operator-supply")),
            supply_who,
            prices,
            customers,
            to_settle: Vec::new(),
            pending_notify: Vec::new(),
            max_block_txs: 10_000,
            chain: None,
            readings_seen: BTreeMap::new(),
            closing: BTreeMap::new(),
            settling: BTreeMap::new(),
            root_mismatches: 0,
        }
    }

    /// Leaves the ordering to the chain agent `chain` (see the type's docs).
    pub fn on_chain(mut self, chain: AgentId) -> Sequencer {
        self.chain = Some(chain);
        self
    }

    /// How long a chain-mode slot waits for missing readings or settlement transactions.
    fn patience(&self) -> SimDuration {
        SimDuration::from_nanos((self.app.genesis.slot_ns / 10).max(1))
    }

    /// Chain mode: executes a committed block on the replica and acts on the new committed state.
    fn on_committed(&mut self, b: CommittedBlock, ctx: &mut Ctx<'_, Msg>) {
        let info = BlockInfo { height: b.height, time_ns: b.time_ns, proposer: b.proposer };
        let refs: Vec<&[u8]> = b.txs.iter().map(|t| t.as_slice()).collect();
        let outcomes = self.app.execute_block(&info, &refs);
        let root = self.app.commit();
        if root != b.root {
            self.root_mismatches += 1;
            tracing::warn!("market replica: block {} state root differs from the chain's", b.height);
        }
        ctx.digest(u64::from_le_bytes(root[..8].try_into().unwrap_or([0; 8])));
        for t in b.txs.iter() {
            let d: [u8; 32] = Sha256::digest(t).into();
            for (set, _) in self.settling.values_mut() {
                set.remove(&d);
            }
            if let Ok(env) = gridtwin_firmware::app::Envelope::parse(t)
                && let Ok(Tx::Reading { slot, .. } | Tx::SealedReading { slot, .. }) = Tx::decode(env.payload)
            {
                *self.readings_seen.entry(slot).or_insert(0) += 1;
            }
        }
        let outcomes = outcomes.iter().map(|o| o.err().map_or(0, |r| r.code)).collect();
        let txs = b.txs.iter().map(|t| Arc::new(t.clone())).collect();
        self.blocks.push(BlockRec { height: b.height, time_ns: b.time_ns, txs, outcomes, root });
        self.progress(ctx);
    }

    /// Chain mode: settles the slots whose readings are in and notifies the slots whose settlement is.
    fn progress(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let Some(chain) = self.chain else { return };
        let now = ctx.now();
        let wait = self.patience();
        let ready: Vec<u32> = self
            .closing
            .iter()
            .filter(|(s, (n, at))| {
                self.readings_seen.get(s).copied().unwrap_or(0) >= *n || now >= at.saturating_add(wait)
            })
            .map(|(s, _)| *s)
            .collect();
        for slot in ready {
            self.closing.remove(&slot);
            self.readings_seen.remove(&slot);
            let mut digests = BTreeSet::new();
            for (signer, tx) in self.propose(slot) {
                let bytes = if signer { self.market.sign(&tx) } else { self.supply.sign(&tx) };
                digests.insert(Sha256::digest(bytes.as_slice()).into());
                ctx.send(chain, SimDuration::ZERO, Msg::Chain(ChainMsg::Submit(bytes.as_ref().clone())));
            }
            self.settling.insert(slot, (digests, now));
            ctx.schedule_at(now.saturating_add(wait), class::DEFAULT, Msg::Timer(TAG_PROGRESS));
        }
        let done: Vec<u32> = self
            .settling
            .iter()
            .filter(|(_, (set, at))| set.is_empty() || now >= at.saturating_add(wait))
            .map(|(s, _)| *s)
            .collect();
        for slot in done {
            self.settling.remove(&slot);
            self.notify_settled(slot, ctx);
        }
    }

    /// Tells every customer (customer `k` owns wallet `k`) that `slot` is settled, with what its wallet holds.
    fn notify_settled(&self, slot: u32, ctx: &mut Ctx<'_, Msg>) {
        for (k, &c) in self.customers.iter().enumerate() {
            let held_wh = self.app.state.certs.held_in_slot(k as u32, slot);
            ctx.send(c, SimDuration::ZERO, Msg::Market(MarketMsg::Settled { slot, held_wh }));
        }
    }

    fn submit(&mut self, tx: Arc<Vec<u8>>, ctx: &mut Ctx<'_, Msg>) {
        if let Some(chain) = self.chain {
            Orderer::Chain(chain).submit(ctx, tx);
            return;
        }
        // Mempool admission: stateless checks and nonces against the committed state.
        match self.app.check_tx(&tx) {
            Ok(()) => self.mempool.push(tx),
            Err(e) => *self.app.refusals.entry(e.code).or_insert(0) += 1,
        }
        self.ensure_block(ctx);
    }

    fn ensure_block(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if !self.block_scheduled && !self.mempool.is_empty() {
            self.block_scheduled = true;
            ctx.schedule_at(ctx.now().saturating_add(self.block_every), class::DEFAULT, Msg::Timer(TAG_BLOCK));
        }
    }

    fn make_block(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.block_scheduled = false;
        let n = self.mempool.len().min(self.max_block_txs);
        let txs: Vec<Arc<Vec<u8>>> = self.mempool.drain(..n).collect();
        let height = self.blocks.len() as u64 + 1;
        let info = BlockInfo { height, time_ns: ctx.now().as_nanos(), proposer: 0 };
        let refs: Vec<&[u8]> = txs.iter().map(|t| t.as_slice()).collect();
        let outcomes = self.app.execute_block(&info, &refs);
        let root = self.app.commit();
        ctx.digest(u64::from_le_bytes(root[..8].try_into().unwrap_or([0; 8])));
        let outcomes = outcomes.iter().map(|o| o.err().map_or(0, |r| r.code)).collect();
        self.blocks.push(BlockRec { height, time_ns: info.time_ns, txs, outcomes, root });
        // What this block completed: a settlement -> tell the customers to claim; readings -> propose the
        // settlement on the state just committed.
        for slot in std::mem::take(&mut self.pending_notify) {
            self.notify_settled(slot, ctx);
        }
        for slot in std::mem::take(&mut self.to_settle) {
            for (signer, tx) in self.propose(slot) {
                let bytes = if signer { self.market.sign(&tx) } else { self.supply.sign(&tx) };
                self.mempool.push(bytes);
            }
            self.pending_notify.push(slot);
        }
        self.ensure_block(ctx);
    }

    /// The back office's transactions for `slot` on the committed state: per feeder the clearing (with its
    /// certificate), then channel sales of what remains sellable, then grid-import certificates for what
    /// remains uncovered. `true` marks the market operator's, `false` the supplier desk's.
    pub fn propose(&self, slot: u32) -> Vec<(bool, Tx)> {
        let mut scratch = self.app.scratch();
        let g = self.app.genesis.clone();
        let mut out = Vec::new();
        let mut feeders: Vec<u32> = g.wallets.iter().map(|w| w.feeder).filter(|&f| f != u32::MAX).collect();
        feeders.sort_unstable();
        feeders.dedup();
        for f in feeders {
            let mut s = Settle { slot, feeder: f, ..Default::default() };
            for (w, wi) in g.wallets.iter().enumerate() {
                let u = scratch.uncovered(w as u32, slot);
                if wi.feeder == f && u > 0 {
                    s.bids.push((w as u32, u, wi.price_cap));
                }
            }
            for (p, pi) in g.plants.iter().enumerate() {
                if pi.feeder != f || pi.supplier {
                    continue;
                }
                let Some(min) = g.min_price(p as u32, CH_P2P) else { continue };
                let q = scratch.sellable(p as u32, slot);
                if q > 0 {
                    s.asks.push((p as u32, q, min));
                }
            }
            if s.bids.is_empty() || s.asks.is_empty() {
                continue;
            }
            let Ok(book) = scratch.book_of(&s) else { continue };
            let Ok((c, d)) = clearing::clear(&book) else { continue };
            s.matches = c.matches.iter().map(|m| (m.bid as u32, m.ask as u32, m.wh, m.price)).collect();
            s.u = d.u;
            s.v = d.v;
            let tx = Tx::Settle(s);
            if scratch.apply_as(self.market_who, &tx).is_ok() {
                out.push((true, tx));
            }
        }
        let hour = ((slot as u64 * g.slot_ns / (3600 * NS_PER_S)) % 24) as usize;
        for (p, pi) in g.plants.iter().enumerate() {
            if pi.supplier {
                continue;
            }
            for &(ch, min) in &pi.channels {
                let price = match ch {
                    CH_TRADER => self.prices.trader,
                    CH_MARKET => self.prices.market_hourly.get(hour).copied().unwrap_or(0),
                    CH_FEED_IN => self.prices.feed_in,
                    _ => continue,
                };
                let mut q = scratch.sellable(p as u32, slot);
                if ch == CH_TRADER {
                    q = q.min(g.trader_cap_wh);
                }
                if q == 0 || price < min {
                    continue;
                }
                let tx = Tx::Offtake { plant: p as u32, slot, channel: ch, wh: q, price };
                if scratch.apply_as(self.market_who, &tx).is_ok() {
                    out.push((true, tx));
                }
            }
        }
        for w in 0..g.wallets.len() as u32 {
            let u = scratch.uncovered(w, slot);
            if u > 0 {
                let tx = Tx::MintImport { wallet: w, slot, wh: u };
                if scratch.apply_as(self.supply_who, &tx).is_ok() {
                    out.push((false, tx));
                }
            }
        }
        out
    }
}

impl Agent<Msg> for Sequencer {
    fn handle(&mut self, e: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        match e.msg {
            Msg::Timer(TAG_BLOCK) => self.make_block(ctx),
            Msg::Market(MarketMsg::Tx(tx)) => self.submit(tx, ctx),
            Msg::Market(MarketMsg::SlotClosed { slot, readings }) => {
                if self.chain.is_some() {
                    self.closing.insert(slot, (readings, ctx.now()));
                    ctx.schedule_at(
                        ctx.now().saturating_add(self.patience()),
                        class::DEFAULT,
                        Msg::Timer(TAG_PROGRESS),
                    );
                    self.progress(ctx);
                } else {
                    self.to_settle.push(slot);
                }
            }
            Msg::Timer(TAG_PROGRESS) => self.progress(ctx),
            Msg::Chain(ChainMsg::Committed(b)) => self.on_committed(b, ctx),
            _ => {}
        }
    }
    fn kind(&self) -> &'static str {
        "market-sequencer"
    }
}

/// What a meter measures.
#[derive(Clone, Copy, Debug)]
pub enum Measures {
    /// A customer's connection: its load plus its flexible devices (sgen position, negative = consumption).
    Connection { load: usize, flex_sgen: Option<usize> },
    /// A customer's flexible devices (sgen position).
    Flex { sgen: usize },
    /// A plant (sgen position).
    Plant { sgen: usize },
}

/// One meter.
pub struct Meter {
    pub measures: Measures,
    pub signer: Signer,
    /// Customer agent that receives the connection's readings.
    pub customer: Option<AgentId>,
    /// The wallet whose consumption it measures (a connection's or flexible-load meter).
    pub wallet: Option<u32>,
    /// Cumulative energy (Wh, exact float integral): consumed and produced.
    cum_in_wh: f64,
    cum_out_wh: f64,
    /// Cumulative integers already read.
    read_in_wh: u64,
    read_out_wh: u64,
}

impl Meter {
    pub fn new(measures: Measures, signer: Signer, customer: Option<AgentId>, wallet: Option<u32>) -> Meter {
        Meter { measures, signer, customer, wallet, cum_in_wh: 0.0, cum_out_wh: 0.0, read_in_wh: 0, read_out_wh: 0 }
    }

    /// Consumed and produced power (kW) in a snapshot.
    fn power_kw(&self, s: &GridSnapshot) -> (f64, f64) {
        let sg = |k: usize| s.sgen_p_mw.get(k).copied().unwrap_or(0.0) * 1000.0;
        match self.measures {
            Measures::Connection { load, flex_sgen } => {
                let p = s.load_p_mw.get(load).copied().unwrap_or(0.0) * 1000.0 - flex_sgen.map_or(0.0, sg);
                (p.max(0.0), (-p).max(0.0))
            }
            Measures::Flex { sgen } => ((-sg(sgen)).max(0.0), sg(sgen).max(0.0)),
            Measures::Plant { sgen } => ((-sg(sgen)).max(0.0), sg(sgen).max(0.0)),
        }
    }
}

/// The feeder's meters: integrate the solved power flows, read every slot (cumulative rounding: a slot's
/// reading is `round(cumulative at its end) - round(cumulative at its start)`, so no meter drifts by more than
/// half a Wh from the power flow over any span of slots), sign and submit.
pub struct Metering {
    pub meters: Vec<Meter>,
    orderer: Orderer,
    sequencer: AgentId,
    slot: SimDuration,
    last: Option<(SimTime, Arc<GridSnapshot>)>,
    /// Per slot: (sum of integer readings, exact integral of the same meters, slack energy Wh, meters).
    pub slots: Vec<SlotEnergy>,
    slack_cum_wh: f64,
    slack_read_wh: f64,
    exact_read_wh: f64,
    /// A private ledger: consumption readings are sealed.
    pub seal: Option<Arc<SealPlan>>,
}

/// Energy of one slot across all meters.
#[derive(Clone, Copy, Debug, Default)]
pub struct SlotEnergy {
    pub slot: u32,
    /// Net Wh of all meters' integer readings (consumption minus production).
    pub read_net_wh: i64,
    /// The same from the exact integral of the power flow.
    pub exact_net_wh: f64,
    /// Energy drawn from the slack (Wh): the readings plus the losses.
    pub slack_wh: f64,
    pub consumed_wh: u64,
    pub produced_wh: u64,
}

impl Metering {
    /// Meters that submit to `orderer` and tell the back office `sequencer` when a slot is read.
    pub fn new(meters: Vec<Meter>, orderer: Orderer, sequencer: AgentId, slot: SimDuration) -> Metering {
        Metering {
            meters,
            orderer,
            sequencer,
            slot,
            last: None,
            slots: Vec::new(),
            slack_cum_wh: 0.0,
            slack_read_wh: 0.0,
            exact_read_wh: 0.0,
            seal: None,
        }
    }

    fn integrate(&mut self, now: SimTime) {
        if let Some((t0, s)) = &self.last {
            let h = (now.as_nanos() - t0.as_nanos()) as f64 / (3600.0 * NS_PER_S as f64);
            for m in &mut self.meters {
                let (pin, pout) = m.power_kw(s);
                m.cum_in_wh += pin * 1000.0 * h;
                m.cum_out_wh += pout * 1000.0 * h;
            }
            self.slack_cum_wh += s.slack_s_mva.re * 1e6 * h;
        }
        if let Some(l) = &mut self.last {
            l.0 = now;
        }
    }

    fn read(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.integrate(ctx.now());
        let slot = (ctx.now().as_nanos() / self.slot.as_nanos()).saturating_sub(1) as u32;
        let mut e = SlotEnergy { slot, ..Default::default() };
        let mut exact = 0.0;
        for m in &mut self.meters {
            let cin = m.cum_in_wh.round().max(0.0) as u64;
            let cout = m.cum_out_wh.round().max(0.0) as u64;
            let (din, dout) = (cin.saturating_sub(m.read_in_wh), cout.saturating_sub(m.read_out_wh));
            m.read_in_wh = cin.max(m.read_in_wh);
            m.read_out_wh = cout.max(m.read_out_wh);
            if !matches!(m.measures, Measures::Flex { .. }) {
                e.read_net_wh += din as i64 - dout as i64;
                e.consumed_wh += din;
                e.produced_wh += dout;
                exact += m.cum_in_wh - m.cum_out_wh;
            }
            let (consumed_wh, produced_wh) = match m.measures {
                Measures::Connection { .. } => (din, 0),
                _ => (din, dout),
            };
            let mut opening = None;
            let tx = match (&self.seal, m.measures, m.wallet) {
                // Sealed: the connection's consumption (all its clear reading has), and the flexible load's
                // consumption (a private ledger keeps no discharge figure: nothing on it pays for one).
                (Some(plan), Measures::Connection { .. } | Measures::Flex { .. }, Some(w)) => {
                    let kind = if matches!(m.measures, Measures::Flex { .. }) { 1 } else { 0 };
                    let mut rng = seal_rng(&m.signer.key, kind, slot);
                    let o = Opening { wh: consumed_wh, blinding: rng.blinding() };
                    let commitment = o.commit();
                    let aad = sealed_aad(10, slot, &commitment);
                    let sealed = super::private::seal(&o, &plan.recipients(w, slot), &aad, &mut rng);
                    opening = Some(o);
                    Tx::SealedReading { slot, commitment, sealed }
                }
                _ => Tx::Reading { slot, consumed_wh, produced_wh },
            };
            self.orderer.submit(ctx, m.signer.sign(&tx));
            if let Some(c) = m.customer {
                ctx.send(c, SimDuration::ZERO, Msg::Market(MarketMsg::Metered { slot, wh: din, opening }));
            }
        }
        e.exact_net_wh = exact - self.exact_read_wh;
        self.exact_read_wh = exact;
        e.slack_wh = self.slack_cum_wh - self.slack_read_wh;
        self.slack_read_wh = self.slack_cum_wh;
        self.slots.push(e);
        let readings = self.meters.len() as u32;
        ctx.send(self.sequencer, SimDuration::ZERO, Msg::Market(MarketMsg::SlotClosed { slot, readings }));
        ctx.schedule_at(ctx.now().saturating_add(self.slot), class::GRID - 1, Msg::Timer(TAG_SLOT));
    }
}

impl Agent<Msg> for Metering {
    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.schedule_at(ctx.now().saturating_add(self.slot), class::GRID - 1, Msg::Timer(TAG_SLOT));
    }
    fn handle(&mut self, e: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        match e.msg {
            Msg::Timer(TAG_SLOT) => self.read(ctx),
            Msg::Grid(GridMsg::Solved(s)) => {
                self.integrate(ctx.now());
                self.last = Some((ctx.now(), s));
            }
            _ => {}
        }
    }
    fn kind(&self) -> &'static str {
        "market-metering"
    }
}

/// Outdoor temperature (deg C) at hour of day `h`: a cosine between `min_c` (03:00) and `max_c` (15:00).
pub fn outdoor_c(min_c: f64, max_c: f64, h: f64) -> f64 {
    let mid = 0.5 * (min_c + max_c);
    let amp = 0.5 * (max_c - min_c);
    mid + amp * (2.0 * std::f64::consts::PI * (h - 15.0) / 24.0).cos()
}

/// The state of a customer's flexible devices (integrated in one-minute steps).
#[derive(Clone, Debug)]
pub struct DeviceState {
    pub hp: Option<(HeatPump, f64, bool)>,
    pub ev: Option<(Ev, f64, f64)>,
    pub battery: Option<(Battery, f64)>,
}

/// What a DR window asks of the devices.
#[derive(Clone, Copy, Debug)]
pub struct DrWindow {
    pub start: SimTime,
    pub end: SimTime,
    /// Heat pumps come back at a drawn delay after the window (staggered restore).
    pub restore: SimTime,
}

/// Steps the devices by `dt_h` hours at hour of day `h`: returns (heat pump kW, EV kW, battery kW (+ charge)).
/// `base_kw` is the house load and `pv_kw` the customer's own PV (for the battery's self-consumption).
#[allow(clippy::too_many_arguments)]
pub fn step_devices(
    d: &mut DeviceState,
    now: SimTime,
    dt_h: f64,
    h: f64,
    t_out_c: f64,
    dr: Option<DrWindow>,
    base_kw: f64,
    pv_kw: f64,
) -> (f64, f64, f64) {
    let in_window = dr.is_some_and(|w| now >= w.start && now < w.end);
    let held_back = dr.is_some_and(|w| now >= w.start && now < w.restore);
    let mut hp_kw = 0.0;
    if let Some((hp, t_in, on)) = &mut d.hp {
        let sp = if held_back { hp.setpoint_c - hp.dr_setback_k } else { hp.setpoint_c };
        if *t_in < sp - 0.5 * hp.band_k {
            *on = true;
        } else if *t_in > sp + 0.5 * hp.band_k {
            *on = false;
        }
        hp_kw = if *on { hp.rated_kw } else { 0.0 };
        let q = hp_kw * hp.cop - hp.ua_kw_per_k * (*t_in - t_out_c);
        *t_in += q * dt_h / hp.capacity_kwh_per_k;
    }
    let mut ev_kw = 0.0;
    if let Some((ev, arrive_h, left_kwh)) = &mut d.ev {
        let depart = if ev.depart_h <= *arrive_h { ev.depart_h + 24.0 } else { ev.depart_h };
        let plugged = h >= *arrive_h && h < depart;
        if plugged && *left_kwh > 1e-9 {
            ev_kw = match dr {
                Some(_) if in_window => 0.0,
                Some(w) if now >= w.end => {
                    // After the window: spread the rest evenly until departure.
                    let hours_left = (depart - h).max(dt_h);
                    (*left_kwh / hours_left).min(ev.charger_kw)
                }
                _ => ev.charger_kw,
            };
            ev_kw = ev_kw.min(*left_kwh / dt_h);
            *left_kwh -= ev_kw * dt_h;
        }
    }
    let mut batt_kw = 0.0;
    if let Some((b, soc)) = &mut d.battery {
        let load = base_kw + hp_kw + ev_kw;
        let room_kwh = (1.0 - *soc) * b.capacity_kwh;
        let avail_kwh = *soc * b.capacity_kwh;
        if in_window {
            batt_kw = -(0.9 * load).min(b.power_kw).min(avail_kwh / dt_h);
        } else if pv_kw > load {
            batt_kw = (pv_kw - load).min(b.power_kw).min(room_kwh / (dt_h * b.efficiency));
        } else if pv_kw > 0.0 {
            batt_kw = -(0.9 * (load - pv_kw)).min(b.power_kw).min(avail_kwh / dt_h);
        }
        if batt_kw > 0.0 {
            *soc += batt_kw * dt_h * b.efficiency / b.capacity_kwh;
        } else {
            *soc += batt_kw * dt_h / b.capacity_kwh;
        }
        *soc = soc.clamp(0.0, 1.0);
    }
    (hp_kw, ev_kw, batt_kw)
}

/// A customer: owner of a wallet, with flexible devices and a DR contract.
pub struct Customer {
    pub id: String,
    pub wallet: u32,
    owner: Signer,
    sequencer: Orderer,
    grid: AgentId,
    pub devices: DeviceState,
    flex_sgen: Option<usize>,
    load: usize,
    pv_sgens: Vec<usize>,
    /// (min reward, declared baseline?) of the DR contract.
    dr_terms: Option<(i64, bool)>,
    dr: Option<DrWindow>,
    outdoor: (f64, f64),
    slot: SimDuration,
    metered: BTreeMap<u32, (u64, Option<Opening>)>,
    /// A private ledger: claims are sealed.
    seal: Option<Arc<SealPlan>>,
    base_kw: f64,
    pv_kw: f64,
    rng: Option<SimRng>,
    pub claims: u64,
    pub dr_accepted: u32,
}

/// Parameters of a customer agent.
pub struct CustomerSpec {
    pub id: String,
    pub wallet: u32,
    pub owner: Signer,
    pub sequencer: Orderer,
    pub grid: AgentId,
    pub devices: DeviceState,
    pub flex_sgen: Option<usize>,
    pub load: usize,
    pub pv_sgens: Vec<usize>,
    pub dr_terms: Option<(i64, bool)>,
    pub outdoor: (f64, f64),
    pub slot: SimDuration,
    pub seal: Option<Arc<SealPlan>>,
}

impl Customer {
    pub fn new(s: CustomerSpec) -> Customer {
        Customer {
            id: s.id,
            wallet: s.wallet,
            owner: s.owner,
            sequencer: s.sequencer,
            grid: s.grid,
            devices: s.devices,
            flex_sgen: s.flex_sgen,
            load: s.load,
            pv_sgens: s.pv_sgens,
            dr_terms: s.dr_terms,
            dr: None,
            outdoor: s.outdoor,
            slot: s.slot,
            metered: BTreeMap::new(),
            seal: s.seal,
            base_kw: 0.0,
            pv_kw: 0.0,
            rng: None,
            claims: 0,
            dr_accepted: 0,
        }
    }

    fn hour(now: SimTime) -> f64 {
        (now.as_nanos() % (86_400 * NS_PER_S)) as f64 / (3600.0 * NS_PER_S as f64)
    }

    fn step(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now();
        let h = Self::hour(now);
        let t_out = outdoor_c(self.outdoor.0, self.outdoor.1, h);
        let (hp, ev, b) = step_devices(&mut self.devices, now, 1.0 / 60.0, h, t_out, self.dr, self.base_kw, self.pv_kw);
        if let Some(k) = self.flex_sgen {
            let p_mw = -(hp + ev + b) / 1000.0;
            ctx.send_at(self.grid, now, class::GRID, Msg::Grid(GridMsg::SetGeneration { sgen: k, p_mw, q_mvar: 0.0 }));
        }
        ctx.schedule_at(now.saturating_add(SimDuration::from_mins(1)), class::GRID - 2, Msg::Timer(TAG_STEP));
    }

    /// The flexible load's Wh per slot from `first` to `last` without DR (the declared baseline).
    fn baseline(&self, now: SimTime, first: u32, last: u32) -> Vec<i64> {
        let mut d = self.devices.clone();
        let mut out = vec![0f64; (last - first + 1) as usize];
        let mut t = now;
        let end = SimTime((last as u64 + 1) * self.slot.as_nanos());
        let step = SimDuration::from_mins(1);
        while t < end {
            let h = Self::hour(t);
            let t_out = outdoor_c(self.outdoor.0, self.outdoor.1, h);
            let (a, b, c) = step_devices(&mut d, t, 1.0 / 60.0, h, t_out, None, self.base_kw, self.pv_kw);
            let s = (t.as_nanos() / self.slot.as_nanos()) as u32;
            if s >= first {
                out[(s - first) as usize] += (a + b + c) * 1000.0 / 60.0;
            }
            t = t.saturating_add(step);
        }
        out.iter().map(|x| x.round() as i64).map(|x| x.max(0)).collect()
    }
}

impl Agent<Msg> for Customer {
    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let mut rng = ctx.rng("devices");
        if let Some((ev, arrive_h, left)) = &mut self.devices.ev {
            *arrive_h = ev.arrive_h + ev.arrive_spread_h * (rng.random::<f64>() - 0.5);
            *left = (ev.target_soc - ev.arrive_soc) * ev.battery_kwh;
        }
        if let Some((hp, t_in, _)) = &mut self.devices.hp {
            *t_in = hp.setpoint_c + hp.band_k * (rng.random::<f64>() - 0.5);
        }
        self.rng = Some(rng);
        if self.flex_sgen.is_some() {
            ctx.schedule_at(ctx.now(), class::GRID - 2, Msg::Timer(TAG_STEP));
        }
    }

    fn handle(&mut self, e: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        match e.msg {
            Msg::Timer(TAG_STEP) => self.step(ctx),
            Msg::Grid(GridMsg::Solved(s)) => {
                self.base_kw = s.load_p_mw.get(self.load).copied().unwrap_or(0.0) * 1000.0;
                self.pv_kw = self.pv_sgens.iter().map(|&k| s.sgen_p_mw.get(k).copied().unwrap_or(0.0) * 1000.0).sum();
            }
            Msg::Market(MarketMsg::Metered { slot, wh, opening }) => {
                self.metered.insert(slot, (wh, opening));
            }
            Msg::Market(MarketMsg::Settled { slot, held_wh }) => match (self.metered.remove(&slot), &self.seal) {
                // Sealed: every slot is claimed, even with nothing consumed or held, so that whether a claim
                // comes tells nothing either.
                (Some((_, Some(reading))), Some(plan)) => {
                    let mut rng = seal_rng(&self.owner.key, 2, slot);
                    let claim = Opening { wh: reading.wh.min(held_wh), blinding: rng.blinding() };
                    let domain = &plan.genesis.domain;
                    let Ok(proof) =
                        super::private::prove_claim(domain, self.wallet, slot, &reading, &claim, held_wh, &mut rng)
                    else {
                        tracing::warn!("customer {}: slot {slot} reading out of the proof's range", self.id);
                        return;
                    };
                    let commitment = claim.commit();
                    let aad = sealed_aad(11, slot, &commitment);
                    let sealed = super::private::seal(&claim, &plan.recipients(self.wallet, slot), &aad, &mut rng);
                    let tx = self.owner.sign(&Tx::SealedClaim { slot, commitment, proof, sealed });
                    self.sequencer.submit(ctx, tx);
                    self.claims += 1;
                }
                (Some((wh, _)), _) if wh > 0 => {
                    let tx = self.owner.sign(&Tx::Claim { slot, wh });
                    self.sequencer.submit(ctx, tx);
                    self.claims += 1;
                }
                _ => {}
            },
            Msg::Market(MarketMsg::DrOffer { event, first_slot, last_slot, reward }) => {
                let Some((min_reward, declared)) = self.dr_terms else { return };
                if reward < min_reward || self.dr.is_some_and(|w| ctx.now() < w.restore) {
                    return;
                }
                let start = SimTime(first_slot as u64 * self.slot.as_nanos());
                let end = SimTime((last_slot as u64 + 1) * self.slot.as_nanos());
                let delay_ns = self.rng.as_mut().map_or(0, |r| (r.random::<f64>() * 3600.0) as u64 * NS_PER_S);
                if declared {
                    let b = self.baseline(ctx.now(), first_slot, last_slot);
                    let tx = self.owner.sign(&Tx::DrBaseline { event, baseline_wh: b });
                    self.sequencer.submit(ctx, tx);
                }
                self.dr = Some(DrWindow { start, end, restore: SimTime(end.as_nanos() + delay_ns) });
                self.dr_accepted += 1;
            }
            _ => {}
        }
    }
    fn kind(&self) -> &'static str {
        "market-customer"
    }
}

/// The grid operator's demand-response program.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DrProgram {
    pub trigger_kw: f64,
    pub window_slots: u32,
    pub reward: i64,
    pub max_events: u32,
}

/// The grid operator's DR desk: watches the transformer's loading in every solved power flow; above the
/// trigger it announces an event for the next slots and offers it to the enrolled customers; after the window
/// it asks the application to settle the payouts. Without a program it only watches (the no-DR twin).
pub struct GridOperator {
    program: Option<DrProgram>,
    signer: Signer,
    sequencer: Orderer,
    customers: Vec<AgentId>,
    slot: SimDuration,
    pub events: Vec<(u32, u32, u32, SimTime)>,
    /// Highest slack power per slot (kW) and its time.
    pub peak_by_slot: BTreeMap<u32, f64>,
    pub peak_kw: f64,
    pub peak_at: SimTime,
    busy_until: SimTime,
    /// Revocations to submit on a private ledger: (auditor participant, first slot it may not read).
    pub revocations: Vec<(u32, u32)>,
}

impl GridOperator {
    pub fn new(
        program: Option<DrProgram>,
        signer: Signer,
        sequencer: Orderer,
        customers: Vec<AgentId>,
        slot: SimDuration,
    ) -> GridOperator {
        GridOperator {
            program,
            signer,
            sequencer,
            customers,
            slot,
            events: Vec::new(),
            peak_by_slot: BTreeMap::new(),
            peak_kw: f64::NEG_INFINITY,
            peak_at: SimTime::ZERO,
            busy_until: SimTime::ZERO,
            revocations: Vec::new(),
        }
    }
}

impl Agent<Msg> for GridOperator {
    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        // Half a slot before the first slot it covers: committed long before any sealed transaction of that slot
        // (a slot's readings are sealed when it ends).
        for (k, &(_, from)) in self.revocations.iter().enumerate() {
            let at = (from as u64 * self.slot.as_nanos()).saturating_sub(self.slot.as_nanos() / 2);
            ctx.schedule_at(SimTime(at), class::DEFAULT, Msg::Timer(TAG_REVOKE + ((k as u64) << 8)));
        }
    }

    fn handle(&mut self, e: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        match e.msg {
            Msg::Timer(t) if t & 0xff == TAG_REVOKE => {
                if let Some(&(participant, from_slot)) = self.revocations.get((t >> 8) as usize) {
                    let tx = self.signer.sign(&Tx::Revoke { participant, from_slot });
                    self.sequencer.submit(ctx, tx);
                }
            }
            Msg::Grid(GridMsg::Solved(s)) => {
                let p_kw = s.slack_s_mva.re * 1000.0;
                let slot = (ctx.now().as_nanos() / self.slot.as_nanos()) as u32;
                let m = self.peak_by_slot.entry(slot).or_insert(f64::NEG_INFINITY);
                *m = m.max(p_kw);
                if p_kw > self.peak_kw {
                    self.peak_kw = p_kw;
                    self.peak_at = ctx.now();
                }
                let Some(pg) = self.program else { return };
                if p_kw <= pg.trigger_kw || ctx.now() < self.busy_until || self.events.len() as u32 >= pg.max_events {
                    return;
                }
                let id = self.events.len() as u32 + 1;
                let (first, last) = (slot + 1, slot + pg.window_slots);
                self.events.push((id, first, last, ctx.now()));
                let end = SimTime((last as u64 + 1) * self.slot.as_nanos());
                self.busy_until = end;
                let tx = self.signer.sign(&Tx::DrEvent { id, first_slot: first, last_slot: last, reward: pg.reward });
                self.sequencer.submit(ctx, tx);
                for &c in &self.customers {
                    let m = MarketMsg::DrOffer { event: id, first_slot: first, last_slot: last, reward: pg.reward };
                    ctx.send(c, SimDuration::ZERO, Msg::Market(m));
                }
                ctx.schedule_at(
                    end.saturating_add(SimDuration::from_secs(5)),
                    class::DEFAULT,
                    Msg::Timer(TAG_DR_SETTLE + ((id as u64) << 8)),
                );
            }
            Msg::Timer(t) if t & 0xff == TAG_DR_SETTLE => {
                let tx = self.signer.sign(&Tx::DrSettle { event: (t >> 8) as u32 });
                self.sequencer.submit(ctx, tx);
            }
            _ => {}
        }
    }
    fn kind(&self) -> &'static str {
        "market-grid-operator"
    }
}

/// The roles of a genesis's participants by name (for building agents).
pub fn participant(g: &Genesis, name: &str) -> Option<(u32, Role)> {
    g.participants.iter().position(|p| p.name == name).map(|k| (k as u32, g.participants[k].role))
}
