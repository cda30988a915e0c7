//! Smart contracts as data-only policies (RON, `contracts/*.ron`), validated at load with located errors and
//! interpreted deterministically: no loops the data can drive beyond its own bounded lists, no floats in what
//! reaches the ledger, bounded cost (every list has a maximum length).
//!
//! - A customer's **supply preferences**: accepted technologies, maximum distance (m) or same feeder only,
//!   named plants, a price cap (milli-cents per kWh) and the fallback for what the market does not cover
//!   (the supplier's mix, or only its renewable part).
//! - A producer's **sell policy**: self-consume first or not, then the channels in order (P2P, trader,
//!   market, feed-in), each with a minimum price (milli-cents per kWh).
//! - A customer's **demand-response offer**: minimum reward per kWh reduced, baseline method (declared before
//!   the window, or the mean of the slots before it) and a cap (Wh per event).
//!
//! Devices (heat pump, EV, home battery) are described here too: they are the customer's flexible loads, with
//! their own physics (floats are fine there: they are physics, and only metered integer Wh reach the ledger).

use super::clearing::Tech;
use crate::scenario::ron_path::{find, parse_path};
use crate::scenario::{InputError, parse_ron};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most entries of any list in a contract file (bounds the cost of interpreting it).
pub const MAX_ITEMS: usize = 1000;

/// A contract file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Contracts {
    /// The certificate domain: the first part of every kWh code.
    pub domain: String,
    pub customers: Vec<Customer>,
    pub plants: Vec<Plant>,
    /// The supplier's mix for grid imports (percent per technology, summing to 100).
    pub supplier_mix: Vec<MixShare>,
    pub prices: Prices,
}

/// One share of the supplier's mix.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MixShare {
    pub tech: Tech,
    pub pct: u32,
}

/// Prices outside the P2P market and grid fees (milli-cents per kWh).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Grid fee of a P2P trade: `fee_base + fee_per_km x distance` per kWh.
    pub fee_base: i64,
    pub fee_per_km: i64,
    /// What the trader pays per kWh.
    pub trader: i64,
    /// Most Wh the trader takes per plant and slot.
    pub trader_cap_wh: u64,
    /// Day-ahead market price per hour of the day (24 values), per kWh.
    pub market_hourly: Vec<i64>,
    /// Feed-in tariff per kWh.
    pub feed_in: i64,
    /// Supplier's retail price per kWh of grid import.
    pub retail: i64,
}

/// A customer: a load of the network, its wallet, preferences, devices and DR offer.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// Wallet id (letters, digits, `_`; no `-`, which separates the parts of a kWh code).
    pub id: String,
    /// Position of the customer's load among the network's loads.
    pub load: usize,
    pub preferences: Preferences,
    #[serde(default)]
    pub devices: Devices,
    #[serde(default)]
    pub dr: Option<DrOffer>,
}

/// Supply preferences.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// Accepted technologies (empty = any).
    #[serde(default)]
    pub technologies: Vec<Tech>,
    /// Only plants within this distance (metres along the ground).
    #[serde(default)]
    pub max_distance_m: Option<u32>,
    /// Only plants on the customer's own feeder.
    #[serde(default)]
    pub same_feeder: bool,
    /// Only these plants (empty = any plant that passes the other rules).
    #[serde(default)]
    pub plants: Vec<String>,
    /// Highest price per kWh paid in the P2P market (milli-cents per kWh, before the grid fee).
    pub price_cap: i64,
    #[serde(default)]
    pub fallback: Fallback,
}

/// Where the energy the market does not cover comes from.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum Fallback {
    /// The supplier's mix.
    #[default]
    SupplierMix,
    /// Only the renewable part of the supplier's mix (a green tariff).
    RenewableOnly,
}

/// A producer's sell policy.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SellPolicy {
    /// Cover the owner's own consumption first.
    #[serde(default)]
    pub self_consume: bool,
    /// Channels in order of preference, each used only at or above its minimum price.
    pub channels: Vec<ChannelRule>,
}

/// One sales channel with its minimum price (milli-cents per kWh).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelRule {
    pub channel: Channel,
    pub min_price: i64,
}

/// Where a producer's energy goes.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum Channel {
    P2p,
    Trader,
    Market,
    FeedIn,
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::P2p => "p2p",
            Channel::Trader => "trader",
            Channel::Market => "market",
            Channel::FeedIn => "feed_in",
        }
    }
}

/// A plant: a generator of the scenario's grid section, its owner and sell policy.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Plant {
    /// Plant id (letters, digits, `_`).
    pub id: String,
    /// Position of the generator in the scenario's `grid.generators`.
    pub generator: usize,
    /// The owning customer's id; `None`: an independent producer with a wallet named after the plant.
    #[serde(default)]
    pub owner: Option<String>,
    pub sell: SellPolicy,
}

/// A customer's demand-response offer.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DrOffer {
    /// Smallest reward per kWh reduced the customer accepts (milli-cents per kWh).
    pub min_reward: i64,
    pub baseline: Baseline,
    /// Most Wh paid per event.
    pub cap_wh: u64,
}

/// How the reduction is measured.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum Baseline {
    /// The customer declares its planned flexible consumption per window slot before the window starts.
    Declared,
    /// The mean of the flexible meter's net consumption over the `n` slots before the window.
    PriorSlots(u32),
}

/// Flexible loads.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    #[serde(default)]
    pub heat_pump: Option<HeatPump>,
    #[serde(default)]
    pub ev: Option<Ev>,
    #[serde(default)]
    pub battery: Option<Battery>,
}

/// An air-source heat pump heating a house (one thermal capacity, one loss coefficient), on a thermostat.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeatPump {
    pub rated_kw: f64,
    pub cop: f64,
    /// Heat loss of the house (kW per kelvin of indoor-outdoor difference).
    pub ua_kw_per_k: f64,
    /// Thermal capacity of the house (kWh per kelvin).
    pub capacity_kwh_per_k: f64,
    pub setpoint_c: f64,
    /// Thermostat dead band (K, total width).
    pub band_k: f64,
    /// Setpoint reduction while a DR event runs (K).
    pub dr_setback_k: f64,
}

/// An electric vehicle charging at home.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ev {
    pub battery_kwh: f64,
    pub charger_kw: f64,
    /// Arrival time of day (hours, e.g. 17.5), and a uniform spread around it (hours).
    pub arrive_h: f64,
    pub arrive_spread_h: f64,
    /// Departure next morning (hours of day, e.g. 7.0).
    pub depart_h: f64,
    /// State of charge on arrival and the target by departure (0..1).
    pub arrive_soc: f64,
    pub target_soc: f64,
}

/// A home battery behind the meter (never exports).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Battery {
    pub capacity_kwh: f64,
    pub power_kw: f64,
    /// Initial state of charge (0..1).
    pub soc: f64,
    /// Round-trip efficiency (0..1], applied on charging.
    pub efficiency: f64,
}

fn id_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A contract file with its text, for located errors.
pub struct LoadedContracts {
    pub contracts: Contracts,
    pub file: String,
    pub text: String,
}

impl LoadedContracts {
    /// Parses contract text (errors located by the RON parser).
    pub fn parse(file: &str, text: &str) -> Result<LoadedContracts, InputError> {
        let contracts = parse_ron::<Contracts>(file, text)?;
        Ok(LoadedContracts { contracts, file: file.to_string(), text: text.to_string() })
    }

    /// An error located at `path` in the contract file.
    pub fn error_at(&self, path: &str, message: impl Into<String>) -> InputError {
        let pos = parse_path(path).ok().and_then(|p| find(&self.text, &p)).map_or(0, |r| r.start);
        InputError::at(&self.file, &self.text, pos, format!("`{path}`: {}", message.into()), None)
    }

    /// Checks references and ranges against the grid: `loads` loads and `generators` generators.
    pub fn validate(&self, loads: usize, generators: usize) -> Result<(), InputError> {
        let c = &self.contracts;
        if !id_ok(&c.domain) {
            return Err(self.error_at("domain", "must be 1..=32 letters, digits or `_`"));
        }
        for (name, n) in [("customers", c.customers.len()), ("plants", c.plants.len())] {
            if n > MAX_ITEMS {
                return Err(self.error_at(name, format!("at most {MAX_ITEMS} entries")));
            }
        }
        let mut ids = BTreeSet::new();
        let mut used_loads = BTreeSet::new();
        for (k, cu) in c.customers.iter().enumerate() {
            let at = |f: &str| format!("customers[{k}].{f}");
            if !id_ok(&cu.id) || !ids.insert(cu.id.clone()) {
                return Err(
                    self.error_at(&at("id"), format!("\"{}\" must be a unique id of letters, digits or `_`", cu.id))
                );
            }
            if cu.load >= loads || !used_loads.insert(cu.load) {
                return Err(self.error_at(&at("load"), format!("no free load {} (the network has {loads})", cu.load)));
            }
            let p = &cu.preferences;
            if p.technologies.len() > 16 || p.plants.len() > MAX_ITEMS {
                return Err(self.error_at(&at("preferences"), "too many entries"));
            }
            if !(0..=100_000_000).contains(&p.price_cap) {
                return Err(
                    self.error_at(&at("preferences.price_cap"), "must be within 0..=100000000 milli-cents per kWh")
                );
            }
            for (q, name) in p.plants.iter().enumerate() {
                if !c.plants.iter().any(|pl| &pl.id == name) {
                    let known: Vec<&str> = c.plants.iter().map(|p| p.id.as_str()).collect();
                    return Err(self.error_at(
                        &at(&format!("preferences.plants[{q}]")),
                        format!("customer \"{}\" names unknown plant \"{name}\" (known: {})", cu.id, known.join(", ")),
                    ));
                }
            }
            let d = &cu.devices;
            let finite_pos = |v: f64| v.is_finite() && v > 0.0;
            let frac = |v: f64| (0.0..=1.0).contains(&v);
            if let Some(h) = &d.heat_pump
                && !(finite_pos(h.rated_kw)
                    && finite_pos(h.cop)
                    && finite_pos(h.ua_kw_per_k)
                    && finite_pos(h.capacity_kwh_per_k)
                    && (5.0..=30.0).contains(&h.setpoint_c)
                    && finite_pos(h.band_k)
                    && (0.0..=10.0).contains(&h.dr_setback_k))
            {
                return Err(self.error_at(
                    &at("devices.heat_pump"),
                    "powers, COP, UA and capacity must be positive; setpoint 5..=30 C; setback 0..=10 K",
                ));
            }
            if let Some(e) = &d.ev
                && !(finite_pos(e.battery_kwh)
                    && finite_pos(e.charger_kw)
                    && (0.0..24.0).contains(&e.arrive_h)
                    && (0.0..=6.0).contains(&e.arrive_spread_h)
                    && (0.0..24.0).contains(&e.depart_h)
                    && frac(e.arrive_soc)
                    && frac(e.target_soc)
                    && e.arrive_soc <= e.target_soc)
            {
                return Err(self.error_at(
                    &at("devices.ev"),
                    "sizes positive, hours within 0..24, 0 <= arrive_soc <= target_soc <= 1",
                ));
            }
            if let Some(b) = &d.battery
                && !(finite_pos(b.capacity_kwh)
                    && finite_pos(b.power_kw)
                    && frac(b.soc)
                    && b.efficiency > 0.0
                    && b.efficiency <= 1.0)
            {
                return Err(
                    self.error_at(&at("devices.battery"), "sizes positive, soc within 0..=1, efficiency within (0, 1]")
                );
            }
            if let Some(o) = &cu.dr {
                if o.min_reward < 0 || o.cap_wh == 0 {
                    return Err(self.error_at(&at("dr"), "min_reward must be >= 0 and cap_wh > 0"));
                }
                if let Baseline::PriorSlots(n) = o.baseline
                    && !(1..=96).contains(&n)
                {
                    return Err(self.error_at(&at("dr.baseline"), "PriorSlots needs 1..=96 slots"));
                }
                if d.heat_pump.is_none() && d.ev.is_none() && d.battery.is_none() {
                    return Err(self
                        .error_at(&at("dr"), format!("customer \"{}\" offers DR but has no flexible device", cu.id)));
                }
            }
        }
        let mut pids = BTreeSet::new();
        let mut used_gens = BTreeSet::new();
        for (k, p) in c.plants.iter().enumerate() {
            let at = |f: &str| format!("plants[{k}].{f}");
            if !id_ok(&p.id) || !pids.insert(p.id.clone()) || ids.contains(&p.id) {
                return Err(
                    self.error_at(&at("id"), format!("\"{}\" must be a unique id (also among customers)", p.id))
                );
            }
            if p.generator >= generators || !used_gens.insert(p.generator) {
                return Err(self.error_at(
                    &at("generator"),
                    format!("no free generator {} (the grid has {generators})", p.generator),
                ));
            }
            if let Some(o) = &p.owner
                && !c.customers.iter().any(|cu| &cu.id == o)
            {
                return Err(self.error_at(&at("owner"), format!("unknown customer \"{o}\"")));
            }
            if p.sell.channels.is_empty() || p.sell.channels.len() > 4 {
                return Err(self.error_at(&at("sell.channels"), "list 1..=4 channels"));
            }
            let mut seen = BTreeSet::new();
            for (q, ch) in p.sell.channels.iter().enumerate() {
                if !seen.insert(ch.channel) || !(0..=100_000_000).contains(&ch.min_price) {
                    return Err(self.error_at(
                        &at(&format!("sell.channels[{q}]")),
                        "each channel once, min_price within 0..=100000000",
                    ));
                }
            }
        }
        let total: u32 = c.supplier_mix.iter().map(|m| m.pct).sum();
        if total != 100 || c.supplier_mix.len() > 7 {
            return Err(self.error_at("supplier_mix", format!("shares add up to {total} %, not 100 %")));
        }
        if c.supplier_mix.iter().any(|m| m.tech == Tech::Grid) {
            return Err(self.error_at("supplier_mix", "name the technologies of the mix, not `grid`"));
        }
        let pr = &c.prices;
        if pr.market_hourly.len() != 24 {
            return Err(self.error_at("prices.market_hourly", "give 24 hourly prices"));
        }
        for (name, v) in [
            ("fee_base", pr.fee_base),
            ("fee_per_km", pr.fee_per_km),
            ("trader", pr.trader),
            ("feed_in", pr.feed_in),
            ("retail", pr.retail),
        ] {
            if !(0..=100_000_000).contains(&v) {
                return Err(
                    self.error_at(&format!("prices.{name}"), "must be within 0..=100000000 milli-cents per kWh")
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"Contracts(
    domain: "dorf",
    customers: [
        (id: "h1", load: 0, preferences: (technologies: [solar], price_cap: 30000, plants: ["pv1"])),
        (id: "h2", load: 1, preferences: (price_cap: 25000)),
    ],
    plants: [(id: "pv1", generator: 0, owner: Some("h2"), sell: (self_consume: true, channels: [(channel: P2p, min_price: 8000)]))],
    supplier_mix: [(tech: nuclear, pct: 40), (tech: wind, pct: 60)],
    prices: (fee_base: 500, fee_per_km: 2000, trader: 7000, trader_cap_wh: 1000, market_hourly: [9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000, 9000], feed_in: 6000, retail: 32000),
)"#;

    #[test]
    fn a_good_file_validates_and_unknown_plants_are_located() {
        LoadedContracts::parse("c.ron", GOOD).unwrap().validate(2, 1).unwrap();
        let bad = GOOD.replace("plants: [\"pv1\"]", "plants: [\"pv9\"]");
        let e = LoadedContracts::parse("c.ron", &bad).unwrap().validate(2, 1).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("unknown plant \"pv9\""), "{}", e.message);
        let bad = GOOD.replace("[solar]", "[coal]");
        let e = LoadedContracts::parse("c.ron", &bad).err().expect("unknown technology refused");
        assert!(e.message.contains("coal"), "{}", e.message);
    }
}
