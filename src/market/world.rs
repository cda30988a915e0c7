//! The scenario's `market` section and the market part of a world: contracts -> genesis -> agents, and the
//! report (summary `market` object, ledger and wallet tables, series and plots).
//!
//! `dr_peak_reduction_pct` compares the transformer's peak (highest slack power in any solved state) with the
//! same day without demand response: the part builds and runs that twin (the same scenario and seed with the
//! `dr` program removed, so every other random draw is the same) in the same process when it reports.

use super::app::{
    CH_FEED_IN, CH_MARKET, CH_P2P, CH_SELF, CH_TRADER, Genesis, MarketApp, MoveKind, Participant, PlantInfo, Privacy,
    Role, WalletInfo,
};
use super::certs::Range;
use super::clearing::{ACCEPT_ANY, Tech};
use super::contracts::{Baseline, Channel, Fallback, LoadedContracts};
use super::private;
use super::sim::{
    Customer, CustomerSpec, DeviceState, DrProgram, GridOperator, Measures, Meter, Metering, OfftakePrices, Orderer,
    SealPlan, Sequencer, Signer, key_for, outdoor_c, step_devices,
};
use super::view;
use crate::agents::Msg;
use crate::engine::{AgentId, SimDuration, Simulation};
use crate::grid::GridAgent;
use crate::grid::config::GeneratorConfig;
use crate::grid::network::Network;
use crate::grid::profiles::GeneratorKind;
use crate::report::{Report, Series, Table};
use crate::scenario::{Dur, InputError, Loaded};
use crate::world::Part;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

fn default_slot() -> Dur {
    Dur(SimDuration::from_mins(15))
}
fn default_block() -> Dur {
    Dur(SimDuration::from_secs(1))
}
fn default_min_c() -> f64 {
    2.0
}
fn default_max_c() -> f64 {
    12.0
}

/// The scenario's `market` section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MarketConfig {
    /// Settlement slot, e.g. "15min".
    #[serde(default = "default_slot")]
    pub slot: Dur,
    /// Contract file (RON), relative to the scenario.
    pub contracts: String,
    /// Delay from a transaction to the block that carries it.
    #[serde(default = "default_block")]
    pub block_every: Dur,
    /// Outdoor temperature over the day (deg C) for the heat pumps.
    #[serde(default = "default_min_c")]
    pub outdoor_min_c: f64,
    #[serde(default = "default_max_c")]
    pub outdoor_max_c: f64,
    /// The grid operator's demand-response program (none: the operator only watches).
    #[serde(default)]
    pub dr: Option<DrConfig>,
    /// Private readings: consumption goes on the ledger sealed for its owner, the grid operator and the
    /// auditors; bids are checked against the customers' declared consumption (none: everything in clear).
    #[serde(default)]
    pub privacy: Option<PrivacyConfig>,
}

/// Most auditors of a private ledger: each adds a 64-byte box to every sealed reading and claim.
pub const MAX_AUDITORS: usize = 64;

/// The `market.privacy` section: who besides the owner and the grid operator may read the sealed readings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Auditors entitled to read every customer's sealed readings, by name; each becomes a ledger participant.
    #[serde(default)]
    pub auditors: Vec<String>,
    /// Auditors whose access ends: nothing sealed for slots from `from` on is sealed for them.
    #[serde(default)]
    pub revoke: Vec<RevokeConfig>,
}

/// One revocation: the auditor, and the time (a whole number of slots into the run) its access ends.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RevokeConfig {
    /// One of `auditors`.
    pub auditor: String,
    /// From this time on (a whole number of slots) nothing is sealed for the auditor; what it could read before
    /// stays readable to it.
    pub from: Dur,
}

/// Demand-response program: trigger on transformer loading (kW), window length in slots, reward per kWh
/// reduced (milli-cents), most events per run.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DrConfig {
    pub trigger_kw: f64,
    pub window_slots: u32,
    pub reward: i64,
    #[serde(default = "one")]
    pub max_events: u32,
}

fn one() -> u32 {
    1
}

impl MarketConfig {
    pub fn validate(&self) -> Result<(), String> {
        let slot = self.slot.0.as_nanos();
        if slot < 60 * crate::engine::NS_PER_S || !(86_400 * crate::engine::NS_PER_S).is_multiple_of(slot) {
            return Err("market.slot must be at least 1min and divide a day".into());
        }
        if self.block_every.0 == SimDuration::ZERO || self.block_every.0.as_nanos() * 10 > slot {
            return Err("market.block_every must be positive and at most a tenth of the slot".into());
        }
        if !(self.outdoor_min_c.is_finite()
            && self.outdoor_max_c.is_finite()
            && self.outdoor_min_c <= self.outdoor_max_c)
        {
            return Err("market.outdoor_min_c must not exceed market.outdoor_max_c".into());
        }
        if let Some(d) = &self.dr
            && !(d.trigger_kw.is_finite()
                && d.trigger_kw > 0.0
                && (1..=96).contains(&d.window_slots)
                && d.reward >= 0
                && d.max_events <= 96)
        {
            return Err("market.dr: trigger_kw > 0, window_slots within 1..=96, reward >= 0, max_events <= 96".into());
        }
        if let Some(p) = &self.privacy {
            if self.dr.is_some() {
                return Err("market.privacy: demand response pays on metered reduction, which a private ledger \
                            seals; remove market.dr"
                    .into());
            }
            if p.auditors.len() > MAX_AUDITORS {
                return Err(format!(
                    "market.privacy.auditors: at most {MAX_AUDITORS} (one sealed box each per reading)"
                ));
            }
            for (k, a) in p.auditors.iter().enumerate() {
                if a.is_empty() || a.len() > 64 || !a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(format!(
                        "market.privacy.auditors[{k}]: \"{a}\" must be 1 to 64 letters, digits, '-' or '_'"
                    ));
                }
                if p.auditors[..k].contains(a) {
                    return Err(format!("market.privacy.auditors[{k}]: \"{a}\" is listed twice"));
                }
            }
            for (k, r) in p.revoke.iter().enumerate() {
                if !p.auditors.contains(&r.auditor) {
                    return Err(format!(
                        "market.privacy.revoke[{k}].auditor: \"{}\" is not one of market.privacy.auditors",
                        r.auditor
                    ));
                }
                if !r.from.0.as_nanos().is_multiple_of(slot) {
                    return Err(format!("market.privacy.revoke[{k}].from: must be a whole number of market slots"));
                }
                if p.revoke[..k].iter().any(|x| x.auditor == r.auditor) {
                    return Err(format!("market.privacy.revoke[{k}]: \"{}\" is revoked twice", r.auditor));
                }
            }
        }
        Ok(())
    }
}

/// Feeder of every bus (by position): the position of the line leaving the transformer's LV bus that the bus
/// hangs from; `u32::MAX` for the substation's own buses and buses not reached.
pub fn feeders(net: &Network) -> Vec<u32> {
    let nb = net.buses.len();
    let mut adj: Vec<Vec<(usize, usize)>> = vec![Vec::new(); nb];
    for (k, l) in net.lines.iter().enumerate() {
        if let (Some(a), Some(b)) = (net.bus(l.from_bus), net.bus(l.to_bus)) {
            adj[a].push((b, k));
            adj[b].push((a, k));
        }
    }
    let mut feeder = vec![u32::MAX; nb];
    let mut seen = vec![false; nb];
    let mut queue = VecDeque::new();
    let roots: Vec<usize> = if net.trafos.is_empty() {
        net.ext_grids.iter().filter_map(|e| net.bus(e.bus)).collect()
    } else {
        net.trafos.iter().filter_map(|t| net.bus(t.lv_bus)).collect()
    };
    for r in roots {
        seen[r] = true;
        for &(b, k) in &adj[r] {
            if !seen[b] {
                seen[b] = true;
                feeder[b] = k as u32;
                queue.push_back(b);
            }
        }
    }
    while let Some(u) = queue.pop_front() {
        for &(b, _) in &adj[u] {
            if !seen[b] {
                seen[b] = true;
                feeder[b] = feeder[u];
                queue.push_back(b);
            }
        }
    }
    feeder
}

fn tech_of(kind: &GeneratorKind) -> Tech {
    match kind {
        GeneratorKind::Pv { .. } => Tech::Solar,
        GeneratorKind::Wind { .. } => Tech::Wind,
        GeneratorKind::Hydro { .. } => Tech::Hydro,
        GeneratorKind::Biogas { .. } => Tech::Biogas,
    }
}

fn channel_code(c: Channel) -> u8 {
    match c {
        Channel::P2p => CH_P2P,
        Channel::Trader => CH_TRADER,
        Channel::Market => CH_MARKET,
        Channel::FeedIn => CH_FEED_IN,
    }
}

/// The market as built.
pub struct MarketPart {
    pub sequencer: AgentId,
    pub metering: AgentId,
    pub operator: AgentId,
    pub customers: Vec<AgentId>,
    /// The no-DR twin to run for the peak comparison: (scenario, seed, until).
    twin: Option<(Loaded, u64, Option<SimDuration>)>,
    slot_ns: u64,
    /// The chain that orders and executes the market (None: the trusted sequencer does).
    pub chain: Option<crate::chain::ChainPart>,
}

fn sim_participant(g: &Genesis, name: &str) -> Option<u32> {
    g.participants.iter().position(|p| p.name == name).map(|k| k as u32)
}

/// A customer's declared consumption per slot of the day (Wh): what a private ledger checks bids and
/// self-consumption against, so that nothing public derives from a reading. It is the forecast the customer can
/// make from its contract alone: BDEW H0 at the grid's `annual_kwh` and day of the year without the households'
/// jitter (or the load's power in the network file), plus its heat pump and EV run without demand response from
/// their nominal start (set point, mean arrival) over the scenario's outdoor temperature. Home batteries only
/// shift solar surplus, so they add nothing.
fn declared_profile(loaded: &Loaded, net: &Network, cu: &super::contracts::Customer, cfg: &MarketConfig) -> Vec<u32> {
    let slot_ns = cfg.slot.0.as_nanos();
    let slots = (86_400 * crate::engine::NS_PER_S / slot_ns).max(1) as usize;
    let slot_s = slot_ns as f64 / crate::engine::NS_PER_S as f64;
    let grid = loaded.scenario.grid.as_ref();
    let h0 = grid.and_then(|g| match g.loads {
        crate::grid::config::LoadConfig::H0 { annual_kwh, .. } => Some((annual_kwh, g.day_of_year)),
        _ => None,
    });
    let load = cu.load;
    let nominal_kw = match net.loads.get(load) {
        Some(l) => l.p_mw * 1000.0,
        None => net.asym_loads.get(load - net.loads.len()).map_or(0.0, |l| (l.p_a_mw + l.p_b_mw + l.p_c_mw) * 1000.0),
    };
    let d = &cu.devices;
    let mut devices = DeviceState {
        hp: d.heat_pump.clone().map(|h| {
            let sp = h.setpoint_c;
            (h, sp, false)
        }),
        ev: d.ev.clone().map(|e| {
            let (arrive, left) = (e.arrive_h, (e.target_soc - e.arrive_soc).max(0.0) * e.battery_kwh);
            (e, arrive, left)
        }),
        battery: None,
    };
    let mut wh = vec![0.0f64; slots];
    for minute in 0..24 * 60u64 {
        let h = minute as f64 / 60.0;
        let now = crate::engine::SimTime(minute * 60 * crate::engine::NS_PER_S);
        let base_kw = match h0 {
            Some((annual, day)) => crate::grid::profiles::h0_kw(annual, day, minute as f64 * 60.0 + 30.0),
            None => nominal_kw,
        };
        let t_out = outdoor_c(cfg.outdoor_min_c, cfg.outdoor_max_c, h);
        let (hp, ev, b) = step_devices(&mut devices, now, 1.0 / 60.0, h, t_out, None, base_kw, 0.0);
        let k = ((minute * 60) as f64 / slot_s) as usize;
        if let Some(x) = wh.get_mut(k) {
            *x += (base_kw + hp + ev + b) * 1000.0 / 60.0;
        }
    }
    wh.iter().map(|x| x.round().clamp(0.0, u32::MAX as f64) as u32).collect()
}

/// Name of the market application in a chain's genesis.
pub const APP_NAME: &str = "gridtwin-market/v1";

/// Adds the market's agents for `cfg` around the grid agent `grid` running `net` with `generators`; with the
/// scenario's `chain` section, the chain's validators order and execute the market's transactions.
#[allow(clippy::too_many_arguments)]
pub fn add(
    sim: &mut Simulation<Msg>,
    loaded: &Loaded,
    cfg: &MarketConfig,
    grid: AgentId,
    net: &Network,
    generators: &[GeneratorConfig],
    seed: u64,
    until: Option<SimDuration>,
) -> Result<MarketPart, InputError> {
    cfg.validate().map_err(|e| loaded.error_in("market", e))?;
    let r = loaded.resolve(&cfg.contracts).map_err(|e| loaded.error_at("market.contracts", e, None))?;
    let lc = LoadedContracts::parse(&r.file, &r.text)?;
    let n_loads = net.loads.len() + net.asym_loads.len();
    lc.validate(n_loads, generators.len())?;
    let c = &lc.contracts;
    let xy = crate::world::grid::bus_positions(net);
    let fd = feeders(net);
    let load_bus: Vec<i64> = net.loads.iter().map(|l| l.bus).chain(net.asym_loads.iter().map(|l| l.bus)).collect();
    let pos =
        |bus: i64| net.bus(bus).map_or((0, 0, u32::MAX), |b| (xy[b].0.round() as i64, xy[b].1.round() as i64, fd[b]));
    let domain = c.domain.clone();
    // Wallets: customers, independent producers, then the operator and the channel counterparties.
    let mut wallets = Vec::new();
    for cu in &c.customers {
        let (x_m, y_m, feeder) = pos(load_bus[cu.load]);
        let p = &cu.preferences;
        let accept =
            if p.technologies.is_empty() { ACCEPT_ANY } else { p.technologies.iter().fold(0, |m, t| m | t.bit()) };
        let plants =
            p.plants.iter().filter_map(|n| c.plants.iter().position(|pl| &pl.id == n).map(|k| k as u32)).collect();
        wallets.push(WalletInfo {
            id: cu.id.clone(),
            x_m,
            y_m,
            feeder,
            accept,
            max_distance_m: p.max_distance_m,
            same_feeder: p.same_feeder,
            plants,
            price_cap: p.price_cap,
            renewable_only: p.fallback == Fallback::RenewableOnly,
            dr: cu.dr.as_ref().map(|d| {
                (
                    match d.baseline {
                        Baseline::Declared => 0,
                        Baseline::PriorSlots(n) => n,
                    },
                    d.cap_wh,
                )
            }),
        });
    }
    let blank = WalletInfo::blank;
    let mut plant_owner = Vec::new();
    for p in &c.plants {
        let w = match &p.owner {
            Some(o) => c.customers.iter().position(|cu| &cu.id == o).unwrap_or(0) as u32,
            None => {
                wallets.push(blank(&p.id));
                wallets.len() as u32 - 1
            }
        };
        plant_owner.push(w);
    }
    let operator_wallet = wallets.len() as u32;
    for id in ["grid_operator", "trader", "exchange", "feed_in"] {
        wallets.push(blank(id));
    }
    let mut plants = Vec::new();
    for (k, p) in c.plants.iter().enumerate() {
        let g = &generators[p.generator];
        let (x_m, y_m, feeder) = pos(g.bus);
        plants.push(PlantInfo {
            id: p.id.clone(),
            tech: tech_of(&g.kind),
            owner: plant_owner[k],
            x_m,
            y_m,
            feeder,
            self_consume: p.sell.self_consume && p.owner.is_some(),
            channels: p.sell.channels.iter().map(|ch| (channel_code(ch.channel), ch.min_price)).collect(),
            supplier: false,
        });
    }
    let mut mix = Vec::new();
    for m in &c.supplier_mix {
        mix.push((plants.len() as u32, m.pct));
        plants.push(PlantInfo {
            id: format!("mix_{}", m.tech.name()),
            tech: m.tech,
            owner: operator_wallet,
            x_m: 0,
            y_m: 0,
            feeder: u32::MAX,
            self_consume: false,
            channels: Vec::new(),
            supplier: true,
        });
    }
    let mut participants = Vec::new();
    let mut add_p = |name: String, role: Role| {
        participants.push(Participant { key: key_for(&domain, &name).verifying_key().to_bytes(), name, role });
    };
    for (w, cu) in c.customers.iter().enumerate() {
        add_p(format!("owner/{}", cu.id), Role::Owner(w as u32));
        add_p(format!("meter/{}", cu.id), Role::Meter(w as u32));
        let d = &cu.devices;
        if d.heat_pump.is_some() || d.ev.is_some() || d.battery.is_some() {
            add_p(format!("flex/{}", cu.id), Role::FlexMeter(w as u32));
        }
    }
    for (k, p) in c.plants.iter().enumerate() {
        if p.owner.is_none() {
            add_p(format!("owner/{}", p.id), Role::Owner(plant_owner[k]));
        }
        add_p(format!("meter/{}", p.id), Role::PlantMeter(k as u32));
    }
    add_p("market-operator".into(), Role::Market);
    add_p("grid-operator-supply".into(), Role::Operator);
    add_p("grid-operator-dr".into(), Role::Operator);
    if let Some(p) = &cfg.privacy {
        for a in &p.auditors {
            add_p(format!("auditor/{a}"), Role::Auditor);
        }
    }
    let privacy = cfg.privacy.as_ref().map(|_| {
        // Boxes go to the owners, the grid operator's supply desk (which bills the imports) and the auditors.
        let box_keys = participants
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(p.role, Role::Owner(_) | Role::Auditor) || p.name == "grid-operator-supply")
            .map(|(k, p)| (k as u32, private::box_public(&domain, &p.name)))
            .collect();
        let declared_wh = c.customers.iter().map(|cu| declared_profile(loaded, net, cu, cfg)).collect();
        Privacy { box_keys, declared_wh }
    });
    let genesis = Genesis {
        domain: domain.clone(),
        slot_ns: cfg.slot.0.as_nanos(),
        participants,
        wallets,
        plants,
        mix,
        operator_wallet,
        channel_wallets: [operator_wallet + 1, operator_wallet + 2, operator_wallet + 3],
        fee_base: c.prices.fee_base,
        fee_per_km: c.prices.fee_per_km,
        trader_cap_wh: c.prices.trader_cap_wh,
        retail: c.prices.retail,
        privacy,
    };
    genesis.check().map_err(|e| loaded.error_at("market", format!("inconsistent genesis: {e}"), None))?;
    // Flexible devices: one static generator per customer with devices (negative = consumption).
    let engine = |e: crate::engine::EngineError| loaded.error_at("market", e.to_string(), None);
    let sgen_base = net.sgens.len();
    let mut flex_sgens = Vec::new();
    {
        let ga = sim
            .agent_mut::<GridAgent>(grid)
            .ok_or_else(|| loaded.error_at("market", "the market needs the `grid` section", None))?;
        for cu in &c.customers {
            let d = &cu.devices;
            flex_sgens.push(if d.heat_pump.is_some() || d.ev.is_some() || d.battery.is_some() {
                Some(ga.model.add_sgen(load_bus[cu.load], 0.0, 0.0, "flex").map_err(|e| lc.error_at("customers", e))?)
            } else {
                None
            });
        }
    }
    let first = sim.next_agent_id().0;
    let sequencer = AgentId(first);
    let metering = AgentId(first + 1);
    let operator = AgentId(first + 2);
    let customers: Vec<AgentId> = (0..c.customers.len() as u32).map(|k| AgentId(first + 3 + k)).collect();
    let prices = OfftakePrices {
        trader: c.prices.trader,
        market_hourly: c.prices.market_hourly.clone(),
        feed_in: c.prices.feed_in,
    };
    let chain_cfg = loaded.scenario.chain.clone();
    // The chain agent comes right after the customers.
    let chain_id = AgentId(first + 3 + c.customers.len() as u32);
    let orderer = if chain_cfg.is_some() { Orderer::Chain(chain_id) } else { Orderer::Sequencer(sequencer) };
    let hosted = chain_cfg.as_ref().map(|_| crate::chain::HostedApp {
        name: APP_NAME.into(),
        state: genesis.encode(),
        app: Box::new(MarketApp::new(genesis.clone())),
        subscriber: sequencer,
    });
    // What the meters, customers and grid operator of a private ledger seal with.
    let revocations: Vec<(u32, u32)> = cfg.privacy.as_ref().map_or(Vec::new(), |p| {
        p.revoke
            .iter()
            .filter_map(|r| {
                let who = sim_participant(&genesis, &format!("auditor/{}", r.auditor))?;
                Some((who, (r.from.0.as_nanos() / cfg.slot.0.as_nanos()) as u32))
            })
            .collect()
    });
    let seal_plan = genesis
        .privacy
        .as_ref()
        .map(|_| Arc::new(SealPlan { genesis: genesis.clone(), revoked: revocations.iter().copied().collect() }));
    let app = MarketApp::new(genesis);
    let mut seq = Sequencer::new(app, cfg.block_every.0, prices, customers.clone());
    if chain_cfg.is_some() {
        seq = seq.on_chain(chain_id);
    }
    let mut meters = Vec::new();
    for (k, cu) in c.customers.iter().enumerate() {
        let m = Measures::Connection { load: cu.load, flex_sgen: flex_sgens[k] };
        let w = Some(k as u32);
        meters.push(Meter::new(m, Signer::new(key_for(&domain, &format!("meter/{}", cu.id))), Some(customers[k]), w));
        if let Some(s) = flex_sgens[k] {
            meters.push(Meter::new(
                Measures::Flex { sgen: s },
                Signer::new(key_for(&domain, &format!("flex/{}", cu.id))),
                None,
                w,
            ));
        }
    }
    for p in &c.plants {
        let m = Measures::Plant { sgen: sgen_base + p.generator };
        meters.push(Meter::new(m, Signer::new(key_for(&domain, &format!("meter/{}", p.id))), None, None));
    }
    let program = cfg.dr.as_ref().map(|d| DrProgram {
        trigger_kw: d.trigger_kw,
        window_slots: d.window_slots,
        reward: d.reward,
        max_events: d.max_events,
    });
    let offered: Vec<AgentId> =
        c.customers.iter().zip(&customers).filter(|(cu, _)| cu.dr.is_some()).map(|(_, &a)| a).collect();
    sim.add_agent(Box::new(seq)).map_err(engine)?;
    let mut metering_agent = Metering::new(meters, orderer, sequencer, cfg.slot.0);
    metering_agent.seal = seal_plan.clone();
    sim.add_agent(Box::new(metering_agent)).map_err(engine)?;
    let op_signer = Signer::new(key_for(&domain, "grid-operator-dr"));
    let mut grid_operator = GridOperator::new(program, op_signer, orderer, offered, cfg.slot.0);
    grid_operator.revocations = revocations;
    sim.add_agent(Box::new(grid_operator)).map_err(engine)?;
    for (k, cu) in c.customers.iter().enumerate() {
        let d = &cu.devices;
        let devices = DeviceState {
            hp: d.heat_pump.clone().map(|h| (h, 20.0, false)),
            ev: d.ev.clone().map(|e| (e, 0.0, 0.0)),
            battery: d.battery.clone().map(|b| {
                let soc = b.soc;
                (b, soc)
            }),
        };
        let pv_sgens = c
            .plants
            .iter()
            .filter(|p| p.owner.as_deref() == Some(cu.id.as_str()))
            .map(|p| sgen_base + p.generator)
            .collect();
        let spec = CustomerSpec {
            id: cu.id.clone(),
            wallet: k as u32,
            owner: Signer::new(key_for(&domain, &format!("owner/{}", cu.id))),
            sequencer: orderer,
            grid,
            devices,
            flex_sgen: flex_sgens[k],
            load: cu.load,
            pv_sgens,
            dr_terms: cu.dr.as_ref().map(|o| (o.min_reward, o.baseline == Baseline::Declared)),
            outdoor: (cfg.outdoor_min_c, cfg.outdoor_max_c),
            slot: cfg.slot.0,
            seal: seal_plan.clone(),
        };
        sim.add_agent(Box::new(Customer::new(spec))).map_err(engine)?;
    }
    if let Some(ga) = sim.agent_mut::<GridAgent>(grid) {
        ga.subscribe(metering);
        ga.subscribe(operator);
        for (k, &a) in customers.iter().enumerate() {
            if flex_sgens[k].is_some() {
                ga.subscribe(a);
            }
        }
    }
    let chain = match (&chain_cfg, hosted) {
        (Some(cc), Some(h)) => {
            if sim.next_agent_id() != chain_id {
                return Err(loaded.error_at("market", "internal: the chain agent's id moved", None));
            }
            Some(crate::chain::add_app(sim, loaded, cc, seed, h)?)
        }
        _ => None,
    };
    // The twin without DR orders on the trusted sequencer: the peak is physics, not ordering, and the draws
    // of every agent but the chain's are the same.
    let twin = cfg.dr.as_ref().map(|_| {
        let mut l = loaded.clone();
        if let Some(m) = &mut l.scenario.market {
            m.dr = None;
        }
        l.scenario.chain = None;
        (l, seed, until)
    });
    Ok(MarketPart { sequencer, metering, operator, customers, twin, slot_ns: cfg.slot.0.as_nanos(), chain })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Peak transformer loading (kW) and per-slot peaks of the no-DR twin.
fn run_twin(twin: &(Loaded, u64, Option<SimDuration>), operator: AgentId) -> Result<(f64, BTreeMap<u32, f64>), String> {
    let (l, seed, until) = twin;
    let mut w = crate::world::build(l, *seed, *until).map_err(|e| e.to_string())?;
    w.run(1, |_, _| {})?;
    let op = w.sim.agent::<GridOperator>(operator).ok_or("twin has no grid operator")?;
    Ok((op.peak_kw, op.peak_by_slot.clone()))
}

impl Part for MarketPart {
    fn report(&self, sim: &Simulation<Msg>, r: &mut Report) {
        if let Some(c) = &self.chain {
            c.report(sim, r);
        }
        let (Some(seq), Some(met), Some(op)) = (
            sim.agent::<Sequencer>(self.sequencer),
            sim.agent::<Metering>(self.metering),
            sim.agent::<GridOperator>(self.operator),
        ) else {
            return;
        };
        let app = &seq.app;
        let g = &app.genesis;
        let certs = &app.state.certs;
        let audit = certs.audit();
        // On a private ledger the report reads what the grid operator's supply desk can open: consumption,
        // claims and imports per wallet and slot.
        let view = g.privacy.as_ref().and_then(|_| {
            let accepted = seq
                .blocks
                .iter()
                .flat_map(|b| b.txs.iter().zip(&b.outcomes).filter(|(_, o)| **o == 0).map(|(t, _)| t.as_slice()));
            view::open_as(g, accepted, "grid-operator-supply")
        });
        // What each wallet consumed from certificates: claimed ranges, or the consumed part of sealed claims.
        let claims: Vec<(u32, Range)> = match &view {
            None => app.log.iter().filter(|m| m.kind == MoveKind::Claim).map(|m| (m.to, m.range)).collect(),
            // The consumed part of each sealed claim, and the import over the supplier's mix as it would have
            // been minted (no codes: it is not on the ledger in clear).
            Some(v) => v
                .claimed_wh
                .iter()
                .flat_map(|(&(w, slot), &k)| {
                    let import = match (g.wallets.get(w as usize), v.import_wh(w, slot)) {
                        (Some(wi), Some(u)) if u > 0 => g.import_shares(wi, u),
                        _ => Vec::new(),
                    };
                    view::consumed_ranges(app, w, slot, k)
                        .into_iter()
                        .chain(import.into_iter().map(move |(plant, len)| Range { plant, slot, start: 0, len }))
                        .map(move |r| (w, r))
                })
                .collect(),
        };
        // Slots with claims in: every consumed Wh of theirs has an origin.
        let claimed_slots: Vec<u32> = {
            let mut v: Vec<u32> = match &view {
                None => claims.iter().map(|c| c.1.slot).collect(),
                Some(_) => app.state.sealed_claims.keys().map(|k| k.1).collect(),
            };
            v.sort_unstable();
            v.dedup();
            v
        };
        let uncovered: Vec<u32> = match &view {
            None => claimed_slots.iter().copied().filter(|&s| app.uncovered_after_claims(s).is_some()).collect(),
            // A sealed claim covers its reading by construction (claim plus import); a reading without a claim
            // does not.
            Some(_) => {
                let mut v: Vec<u32> = app
                    .state
                    .sealed
                    .keys()
                    .filter(|k| claimed_slots.contains(&k.1) && !app.state.sealed_claims.contains_key(k))
                    .map(|k| k.1)
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            }
        };
        // Claims by wallet and technology; local solar and preference shares.
        let n_customers = self.customers.len();
        let mut by_wallet_tech: BTreeMap<(u32, Tech), u64> = BTreeMap::new();
        let mut pref_wh = vec![0u64; n_customers];
        let mut claimed_by = vec![0u64; n_customers];
        let (mut local_solar, mut all_claims) = (0u64, 0u64);
        let nslots = (86_400_000_000_000u64 / self.slot_ns).max(1) as usize;
        let days = (sim.now().as_nanos() / 86_400_000_000_000 + 1) as usize;
        let mut cum_tech: Vec<BTreeMap<Tech, Vec<f64>>> = vec![BTreeMap::new(); n_customers];
        let total_slots = nslots * days;
        for &(to, range) in &claims {
            let p = &g.plants[range.plant as usize];
            *by_wallet_tech.entry((to, p.tech)).or_insert(0) += range.len;
            all_claims += range.len;
            if p.tech == Tech::Solar && !p.supplier {
                local_solar += range.len;
            }
            if let Some(wi) = g.wallets.get(to as usize)
                && (to as usize) < n_customers
            {
                claimed_by[to as usize] += range.len;
                let named_ok = wi.plants.is_empty() || wi.plants.contains(&range.plant);
                if wi.accept & p.tech.bit() != 0 && named_ok {
                    pref_wh[to as usize] += range.len;
                }
                let col = cum_tech[to as usize].entry(p.tech).or_insert_with(|| vec![0.0; total_slots]);
                if (range.slot as usize) < total_slots {
                    col[range.slot as usize] += range.len as f64 / 1000.0;
                }
            }
        }
        let pct = |a: u64, b: u64| if b > 0 { 100.0 * a as f64 / b as f64 } else { 0.0 };
        let (w_opt, w_greedy, w_cda): (i128, i128, i128) = app
            .settlements
            .iter()
            .fold((0, 0, 0), |a, s| (a.0 + s.welfare, a.1 + s.greedy_welfare, a.2 + s.cda_welfare));
        let p2p_wh: u64 = app.settlements.iter().map(|s| s.volume_wh).sum();
        let import_wh: u64 = match &view {
            None => app.log.iter().filter(|m| m.kind == MoveKind::Import).map(|m| m.range.len).sum(),
            Some(v) => v.claimed_wh.keys().filter_map(|&(w, sl)| v.import_wh(w, sl)).sum(),
        };
        // Demand response against the no-DR twin.
        let (twin_peak, twin_slots) = match &self.twin {
            Some(t) => match run_twin(t, self.operator) {
                Ok(x) => (Some(x.0), x.1),
                Err(e) => {
                    tracing::warn!("no-DR twin failed: {e}");
                    (None, BTreeMap::new())
                }
            },
            None => (None, BTreeMap::new()),
        };
        let reduction = twin_peak.map_or(0.0, |p| if p > 0.0 { 100.0 * (p - op.peak_kw) / p } else { 0.0 });
        let (dr_wh, dr_mc): (u64, i64) = app.state.payouts.values().fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.1));
        // Metering conservation: per slot, integer readings against the exact integral.
        let meters = met.meters.iter().filter(|m| !matches!(m.measures, Measures::Flex { .. })).count();
        let max_err = met.slots.iter().map(|e| (e.read_net_wh as f64 - e.exact_net_wh).abs()).fold(0.0, f64::max);
        let losses_wh: f64 = met.slots.iter().map(|e| e.slack_wh - e.read_net_wh as f64).sum();
        // Producers' channels.
        let mut channels = serde_json::Map::new();
        let mut ct = Table::new(&[
            "plant",
            "tech",
            "owner",
            "produced_wh",
            "self_wh",
            "p2p_wh",
            "trader_wh",
            "market_wh",
            "feed_in_wh",
            "unsold_wh",
            "p2p_revenue_mc",
            "trader_revenue_mc",
            "market_revenue_mc",
            "feed_in_revenue_mc",
        ]);
        for (k, p) in g.plants.iter().enumerate().filter(|(_, p)| !p.supplier) {
            let k = k as u32;
            let produced: u64 = certs.all_minted().filter(|((pl, _), _)| *pl == k).map(|(_, v)| v).sum();
            let get = |ch: u8| app.state.sold.get(&(k, ch)).copied().unwrap_or((0, 0));
            let (s, p2p, tr, mk, fi) = (get(CH_SELF), get(CH_P2P), get(CH_TRADER), get(CH_MARKET), get(CH_FEED_IN));
            let unsold = produced.saturating_sub(s.0 + p2p.0 + tr.0 + mk.0 + fi.0);
            channels.insert(
                p.id.clone(),
                json!({"tech": p.tech.name(), "produced_wh": produced, "self_wh": s.0, "p2p_wh": p2p.0,
                       "trader_wh": tr.0, "market_wh": mk.0, "feed_in_wh": fi.0, "unsold_wh": unsold,
                       "revenue_mc": p2p.1 + tr.1 + mk.1 + fi.1}),
            );
            ct.push(vec![
                p.id.clone(),
                p.tech.name().into(),
                g.wallets[p.owner as usize].id.clone(),
                produced.to_string(),
                s.0.to_string(),
                p2p.0.to_string(),
                tr.0.to_string(),
                mk.0.to_string(),
                fi.0.to_string(),
                unsold.to_string(),
                p2p.1.to_string(),
                tr.1.to_string(),
                mk.1.to_string(),
                fi.1.to_string(),
            ]);
        }
        let root = seq.blocks.last().map_or(seq.genesis_root, |b| b.root);
        let txs: usize = seq.blocks.iter().map(|b| b.txs.len()).sum();
        let refused: usize = seq.blocks.iter().map(|b| b.outcomes.iter().filter(|&&o| o != 0).count()).sum();
        let refusals: serde_json::Map<String, serde_json::Value> =
            app.refusals.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let pref_share: Vec<f64> = (0..n_customers).map(|w| pct(pref_wh[w], claimed_by[w])).collect();
        let privacy = view.as_ref().map_or(serde_json::Value::Null, |v| privacy_summary(app, v));
        r.summary.insert(
            "market".into(),
            json!({
                "minted_wh": certs.minted_wh,
                "claimed_wh": certs.claimed_wh,
                "held_wh": certs.held_wh,
                "certificates_consistent": audit.is_ok(),
                "audit_error": audit.err(),
                "slots_claimed": claimed_slots.len(),
                "slots_with_unclaimed_consumption": uncovered,
                "blocks": seq.blocks.len(),
                "transactions": txs,
                "refused": refused,
                "refusals_by_code": refusals,
                "state_root": hex(&root),
                "orderer": if self.chain.is_some() { "chain" } else { "sequencer" },
                "replica_root_mismatches": seq.root_mismatches,
                "p2p_wh": p2p_wh,
                "import_wh": import_wh,
                "welfare_optimal": welfare_num(w_opt),
                "welfare_greedy": welfare_num(w_greedy),
                "welfare_cda": welfare_num(w_cda),
                "greedy_pct_of_optimum": if w_opt > 0 { json!(100.0 * w_greedy as f64 / w_opt as f64) } else { json!(null) },
                "cda_pct_of_optimum": if w_opt > 0 { json!(100.0 * w_cda as f64 / w_opt as f64) } else { json!(null) },
                "local_solar_share_pct": pct(local_solar, all_claims),
                "preference_share_pct_mean": if n_customers > 0 { pref_share.iter().sum::<f64>() / n_customers as f64 } else { 0.0 },
                "dr_events": op.events.len(),
                "dr_peak_kw": op.peak_kw,
                "no_dr_peak_kw": twin_peak,
                "dr_peak_reduction_pct": reduction,
                "dr_reduced_wh": dr_wh,
                "dr_payouts_mc": dr_mc,
                "meters": meters,
                "metering_max_slot_error_wh": max_err,
                "losses_wh": losses_wh,
                "channels": channels,
                "privacy": privacy,
            }),
        );
        let peak = match twin_peak {
            Some(p) => format!("DR peak {:.1} kW vs {p:.1} kW without (-{reduction:.1} %)", op.peak_kw),
            None => format!("peak {:.1} kW", op.peak_kw),
        };
        r.human.push(format!(
            "market: {} blocks, {} txs ({} refused); minted {} Wh = {} {} + held {}; P2P {} kWh; {peak}",
            seq.blocks.len(),
            txs,
            refused,
            certs.minted_wh,
            if g.privacy.is_some() { "retired" } else { "claimed" },
            certs.claimed_wh,
            certs.held_wh,
            p2p_wh / 1000,
        ));
        if let Some(v) = &view {
            r.human.push(format!(
                "private ledger: {} readings and {} claims sealed (claims range-proved); the grid operator reads \
                 {} Wh consumed = {} Wh from certificates + {} Wh grid import",
                app.state.sealed.len() + app.state.sealed_flex.len(),
                app.state.sealed_claims.len(),
                v.consumed_wh
                    .iter()
                    .filter(|(k, _)| app.state.sealed_claims.contains_key(k))
                    .map(|(_, x)| x)
                    .sum::<u64>(),
                v.claimed_wh.values().sum::<u64>(),
                import_wh,
            ));
        }
        r.tables.push(("market_channels".into(), ct));
        // Wallets.
        let mut wt = Table::new(&[
            "wallet",
            "consumed_wh",
            "claimed_wh",
            "preference_share_pct",
            "solar_wh",
            "wind_wh",
            "hydro_wh",
            "biogas_wh",
            "conventional_wh",
            "nuclear_wh",
            "balance_mc",
            "dr_reduced_wh",
            "dr_paid_mc",
        ]);
        for (w, wi) in g.wallets.iter().enumerate() {
            let w = w as u32;
            let consumed: u64 = match &view {
                None => app.state.metered.iter().filter(|((x, _), _)| *x == w).map(|(_, v)| v).sum(),
                Some(v) => v.consumed_wh.iter().filter(|((x, _), _)| *x == w).map(|(_, v)| v).sum(),
            };
            let claimed: u64 = by_wallet_tech.iter().filter(|((x, _), _)| *x == w).map(|(_, v)| v).sum();
            let tech = |t: Tech| by_wallet_tech.get(&(w, t)).copied().unwrap_or(0).to_string();
            let (drw, drm) =
                app.state.payouts.iter().filter(|((_, x), _)| *x == w).fold((0, 0), |a, (_, v)| (a.0 + v.0, a.1 + v.1));
            wt.push(vec![
                wi.id.clone(),
                consumed.to_string(),
                claimed.to_string(),
                if (w as usize) < n_customers { format!("{:.2}", pref_share[w as usize]) } else { String::new() },
                tech(Tech::Solar),
                tech(Tech::Wind),
                tech(Tech::Hydro),
                tech(Tech::Biogas),
                tech(Tech::Conventional),
                tech(Tech::Nuclear),
                app.state.balances.get(&w).copied().unwrap_or(0).to_string(),
                drw.to_string(),
                drm.to_string(),
            ]);
        }
        r.tables.push(("market_wallets".into(), wt));
        // The ledger: genesis, then every transaction in order; and the blocks with their state roots.
        let mut lt = Table::new(&["height", "time_ns", "index", "outcome", "bytes_hex"]);
        lt.push(vec!["0".into(), "0".into(), "0".into(), "genesis".into(), hex(&g.encode())]);
        let mut bt = Table::new(&["height", "time_ns", "txs", "refused", "state_root"]);
        bt.push(vec!["0".into(), "0".into(), "0".into(), "0".into(), hex(&seq.genesis_root)]);
        for b in &seq.blocks {
            for (i, (t, o)) in b.txs.iter().zip(&b.outcomes).enumerate() {
                lt.push(vec![b.height.to_string(), b.time_ns.to_string(), i.to_string(), o.to_string(), hex(t)]);
            }
            let refused = b.outcomes.iter().filter(|&&o| o != 0).count();
            bt.push(vec![
                b.height.to_string(),
                b.time_ns.to_string(),
                b.txs.len().to_string(),
                refused.to_string(),
                hex(&b.root),
            ]);
        }
        r.tables.push(("market_ledger".into(), lt));
        r.tables.push(("market_blocks".into(), bt));
        // Series per slot: volumes, prices, welfare, DR.
        let slot_s = self.slot_ns as f64 * 1e-9;
        let nseries = met.slots.len();
        let t_s: Vec<f64> = (0..nseries).map(|k| k as f64 * slot_s).collect();
        let mut minted = vec![0.0; nseries];
        let mut claimed = vec![0.0; nseries];
        let mut imported = vec![0.0; nseries];
        for m in &app.log {
            let k = m.range.slot as usize;
            if k >= nseries {
                continue;
            }
            match m.kind {
                MoveKind::Mint => minted[k] += m.range.len as f64 / 1000.0,
                MoveKind::Import => imported[k] += m.range.len as f64 / 1000.0,
                _ => {}
            }
        }
        for (_, r) in &claims {
            if let Some(x) = claimed.get_mut(r.slot as usize) {
                *x += r.len as f64 / 1000.0;
            }
        }
        if let Some(v) = &view {
            for &(w, sl) in v.claimed_wh.keys() {
                if let (Some(x), Some(u)) = (imported.get_mut(sl as usize), v.import_wh(w, sl)) {
                    *x += u as f64 / 1000.0;
                }
            }
        }
        let mut p2p = vec![0.0; nseries];
        let mut price = vec![f64::NAN; nseries];
        let (mut wo, mut wg, mut wc) = (vec![0.0; nseries], vec![0.0; nseries], vec![0.0; nseries]);
        for s in &app.settlements {
            let k = s.slot as usize;
            if k < nseries {
                p2p[k] += s.volume_wh as f64 / 1000.0;
                price[k] = s.mean_price.map_or(f64::NAN, |p| p as f64 / 1000.0);
                // Welfare in cents: Wh x milli-cents per kWh / 1e6.
                wo[k] += s.welfare as f64 / 1e6;
                wg[k] += s.greedy_welfare as f64 / 1e6;
                wc[k] += s.cda_welfare as f64 / 1e6;
            }
        }
        r.series.push(Series {
            name: "market_volumes".into(),
            y_label: "kWh per slot".into(),
            t_s: t_s.clone(),
            columns: vec![
                ("minted_kwh".into(), minted),
                ("p2p_kwh".into(), p2p),
                ("grid_import_kwh".into(), imported),
                ("claimed_kwh".into(), claimed),
            ],
        });
        r.series.push(Series {
            name: "market_prices".into(),
            y_label: "ct per kWh".into(),
            t_s: t_s.clone(),
            columns: vec![("p2p_mean_price_ct_per_kwh".into(), price)],
        });
        r.series.push(Series {
            name: "market_welfare".into(),
            y_label: "welfare per slot (ct)".into(),
            t_s: t_s.clone(),
            columns: vec![("optimal_ct".into(), wo), ("greedy_ct".into(), wg), ("cda_ct".into(), wc)],
        });
        let peak = |m: &BTreeMap<u32, f64>, k: usize| m.get(&(k as u32)).copied().unwrap_or(f64::NAN);
        let mut dr_cols =
            vec![("transformer_peak_kw_with_dr".into(), (0..nseries).map(|k| peak(&op.peak_by_slot, k)).collect())];
        if !twin_slots.is_empty() {
            dr_cols
                .push(("transformer_peak_kw_without_dr".into(), (0..nseries).map(|k| peak(&twin_slots, k)).collect()));
        }
        r.series.push(Series {
            name: "market_dr".into(),
            y_label: "kW (highest per slot)".into(),
            t_s: t_s.clone(),
            columns: dr_cols,
        });
        // Origin mix per customer wallet: cumulative kWh claimed by technology.
        for (w, cols) in cum_tech.iter().enumerate() {
            if cols.is_empty() {
                continue;
            }
            let columns = cols
                .iter()
                .map(|(t, v)| {
                    let mut acc = 0.0;
                    let c: Vec<f64> = v
                        .iter()
                        .take(nseries)
                        .map(|x| {
                            acc += x;
                            acc
                        })
                        .collect();
                    (format!("{}_kwh", t.name()), c)
                })
                .collect();
            r.series.push(Series {
                name: format!("market_origin_{}", g.wallets[w].id),
                y_label: "kWh claimed (cumulative)".into(),
                t_s: t_s.clone(),
                columns,
            });
        }
    }
}

/// The `market.privacy` object of a private ledger: what is sealed, what it costs on the ledger, and what the grid
/// operator's supply desk reads from it.
fn privacy_summary(app: &MarketApp, v: &view::SealedView) -> serde_json::Value {
    let g = &app.genesis;
    let mean = |k: usize| if v.sealed_txs[k] > 0 { v.sealed_bytes[k] as f64 / v.sealed_txs[k] as f64 } else { 0.0 };
    let consumed: u64 = v.consumed_wh.values().sum();
    let claimed: u64 = v.claimed_wh.values().sum();
    let import: u64 = v.claimed_wh.keys().filter_map(|&(w, s)| v.import_wh(w, s)).sum();
    let spilled: u64 = app
        .state
        .sealed_claims
        .iter()
        .map(|(k, &(_, held))| held.saturating_sub(v.claimed_wh.get(k).copied().unwrap_or(0)))
        .sum();
    let name = |who: u32| g.participants.get(who as usize).map_or("?".to_string(), |p| p.name.clone());
    let auditors: Vec<String> =
        g.participants.iter().filter(|p| p.role == Role::Auditor).map(|p| p.name.clone()).collect();
    let revoked: serde_json::Map<String, serde_json::Value> =
        app.state.revoked.iter().map(|(&who, &from)| (name(who), json!(from))).collect();
    json!({
        "sealed_readings": app.state.sealed.len() + app.state.sealed_flex.len(),
        "sealed_claims": app.state.sealed_claims.len(),
        "reading_tx_bytes_mean": mean(0),
        "claim_tx_bytes_mean": mean(1),
        "auditors": auditors,
        "revoked_from_slot": revoked,
        "grid_operator_opened": v.consumed_wh.len() + v.flex_wh.len() + v.claimed_wh.len(),
        "grid_operator_unreadable": v.unreadable,
        "consumption_wh": consumed,
        "claimed_wh": claimed,
        "import_wh": import,
        "spilled_wh": spilled,
    })
}

fn welfare_num(w: i128) -> serde_json::Value {
    i64::try_from(w).map_or_else(|_| json!(w.to_string()), |v| json!(v))
}
