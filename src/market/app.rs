//! The market as a deterministic [`Application`]: signed transactions in, state and a 32-byte state root out.
//!
//! Any orderer (the chain's validators, or the trusted sequencer of this crate) drives it through `check_tx`,
//! `execute_block` and `commit`; re-executing the same blocks from the same [`Genesis`] gives the same roots.
//! State holds integers only (Wh, milli-cents, slot numbers, nonces) in ordered maps; the root is SHA-256 over
//! the genesis hash and a canonical walk of the state.
//!
//! Transactions (payload of a signed envelope, canonical encoding in [`Tx::encode`]) and who may send them:
//! - `Reading` (a meter): the Wh a connection consumed, a plant produced (which mints its certificates into the
//!   owner's wallet) or a flexible-load sub-meter measured, in one slot; once per meter and slot.
//! - `Settle` (the market operator): the order book of one feeder and slot, the clearing and its integer dual
//!   certificate. The application rebuilds the book's fees and forbidden pairs from the contracts in genesis,
//!   checks every bid against its owner's contract and uncovered metered consumption and every ask against the
//!   plant's sell policy and certificates, checks the certificate (optimality, linear time), then moves
//!   certificates and money.
//! - `Offtake` (the market operator): a producer's certificates sold to the trader, the market or the feed-in
//!   tariff, at no less than the channel's minimum price in the sell policy.
//! - `MintImport` (the grid operator): grid-import certificates from the supplier mix (or only its renewable
//!   part, per the customer's fallback) for consumption the wallet's certificates do not cover.
//! - `Transfer`, `Claim` (a wallet's owner): move certificates; retire them against the owner's metered
//!   consumption of the same slot (refused above it).
//! - `DrEvent`, `DrSettle` (the grid operator) and `DrBaseline` (an enrolled customer, before the window):
//!   demand response, paid only for metered reduction of the flexible-load sub-meter against the baseline.
//!
//! On a private ledger (genesis with [`Privacy`]) consumption is sealed (see [`super::private`]):
//! - `SealedReading` (a consumption or flexible-load meter): a commitment to the Wh, its opening sealed for the
//!   parties [`entitled`] to read it; exactly those, or it is refused.
//! - `SealedClaim` (a wallet's owner): a commitment to the Wh claimed with a range proof that it lies within
//!   the reading and within the certificates held; it retires all of them. The rest of the reading is import.
//! - `Revoke` (the grid operator): an auditor is sealed for no more from a slot on.
//!
//! and clear consumption readings, clear claims, `MintImport` and demand response are refused, while bids and
//! self-consumption are checked against the declared consumption in genesis instead of the metered one.

use super::certs::{CertError, Range, Registry};
use super::clearing::{self, Ask, Bid, Book, Clearing, Duals, FORBIDDEN, Match, Tech};
use super::codec::{Dec, DecResult, Enc};
use super::private::{self, BOX_LEN, Sealed, SealedBox};
use gridtwin_firmware::app::{Application, BlockInfo, Envelope, Hash, Refusal, TxOutcome};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// What a signer may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The grid operator: grid-import certificates, demand response.
    Operator,
    /// The market operator (clearing proposer): settlements and channel sales.
    Market,
    /// The owner of a wallet.
    Owner(u32),
    /// A connection's main meter (consumption of the wallet's customer).
    Meter(u32),
    /// A customer's flexible-load sub-meter.
    FlexMeter(u32),
    /// A plant's production meter.
    PlantMeter(u32),
    /// An auditor: sends nothing, reads every sealed reading (until revoked).
    Auditor,
}

impl Role {
    fn encode(&self, e: &mut Enc) {
        match *self {
            Role::Operator => e.u8(0).u32(0),
            Role::Market => e.u8(1).u32(0),
            Role::Owner(w) => e.u8(2).u32(w),
            Role::Meter(w) => e.u8(3).u32(w),
            Role::FlexMeter(w) => e.u8(4).u32(w),
            Role::PlantMeter(p) => e.u8(5).u32(p),
            Role::Auditor => e.u8(6).u32(0),
        };
    }
    fn decode(d: &mut Dec) -> DecResult<Role> {
        let (t, x) = (d.u8()?, d.u32()?);
        Ok(match t {
            0 => Role::Operator,
            1 => Role::Market,
            2 => Role::Owner(x),
            3 => Role::Meter(x),
            4 => Role::FlexMeter(x),
            5 => Role::PlantMeter(x),
            6 => Role::Auditor,
            _ => return Err("unknown role"),
        })
    }
}

/// A registered identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Participant {
    pub name: String,
    pub key: [u8; 32],
    pub role: Role,
}

/// A wallet and the contract terms of its customer (channel and operator wallets have no preferences).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletInfo {
    pub id: String,
    /// Location (m) and feeder of the customer's connection.
    pub x_m: i64,
    pub y_m: i64,
    pub feeder: u32,
    pub accept: u8,
    pub max_distance_m: Option<u32>,
    pub same_feeder: bool,
    /// Named plants (empty: any).
    pub plants: Vec<u32>,
    pub price_cap: i64,
    pub renewable_only: bool,
    /// DR terms: (baseline: 0 = declared, n = mean of n prior slots; cap Wh per event).
    pub dr: Option<(u32, u64)>,
}

impl WalletInfo {
    /// A wallet with no connection and no preferences: an independent producer's, the operator's, a channel's.
    pub fn blank(id: &str) -> WalletInfo {
        WalletInfo {
            id: id.to_string(),
            x_m: 0,
            y_m: 0,
            feeder: u32::MAX,
            accept: super::clearing::ACCEPT_ANY,
            max_distance_m: None,
            same_feeder: false,
            plants: Vec::new(),
            price_cap: 0,
            renewable_only: false,
            dr: None,
        }
    }
}

/// A plant: technology, owner, location and sell policy (channel codes: 1 P2P, 2 trader, 3 market, 4 feed-in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlantInfo {
    pub id: String,
    pub tech: Tech,
    pub owner: u32,
    pub x_m: i64,
    pub y_m: i64,
    pub feeder: u32,
    pub self_consume: bool,
    /// (channel code, minimum price per kWh) in order of preference.
    pub channels: Vec<(u8, i64)>,
    /// A share of the supplier's mix (grid import), not a plant on the feeder.
    pub supplier: bool,
}

/// Channel codes in state and transactions.
pub const CH_SELF: u8 = 0;
pub const CH_P2P: u8 = 1;
pub const CH_TRADER: u8 = 2;
pub const CH_MARKET: u8 = 3;
pub const CH_FEED_IN: u8 = 4;
pub const CHANNEL_NAMES: [&str; 5] = ["self", "p2p", "trader", "market", "feed_in"];

/// Everything the application starts from (agreed by all validators).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Genesis {
    pub domain: String,
    pub slot_ns: u64,
    pub participants: Vec<Participant>,
    pub wallets: Vec<WalletInfo>,
    pub plants: Vec<PlantInfo>,
    /// Supplier mix: (plant index of the share, percent).
    pub mix: Vec<(u32, u32)>,
    /// Wallets of the grid operator and of the trader, market and feed-in counterparties.
    pub operator_wallet: u32,
    pub channel_wallets: [u32; 3],
    pub fee_base: i64,
    pub fee_per_km: i64,
    pub trader_cap_wh: u64,
    /// Supplier's retail price of grid import per kWh.
    pub retail: i64,
    /// Private readings (None: readings, claims and imports are in clear).
    pub privacy: Option<Privacy>,
}

/// A ledger whose consumption readings are sealed: see [`super::private`].
///
/// Consumption (main and flexible-load meters) goes on the ledger only as commitments with openings sealed for
/// the entitled parties; claims are sealed with a range proof and retire every certificate the wallet holds for
/// the slot (the split between consumed and spilled is private); the grid import is the claim's remainder and
/// is not minted in clear. So that nothing public depends on the readings, bids and the self-consumption a plant
/// keeps back are checked against each customer's declared consumption instead of the metered one, and demand
/// response (paid on metered reduction) is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Privacy {
    /// X25519 public keys of the parties that may read: (participant index, key), ascending and unique. Only
    /// owners, operators and auditors with a key here receive boxes.
    pub box_keys: Vec<(u32, [u8; 32])>,
    /// Per wallet: declared consumption (Wh) per slot of the day, repeating (empty: none declared).
    pub declared_wh: Vec<Vec<u32>>,
}

impl Genesis {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.str(&self.domain).u64(self.slot_ns);
        e.u32(self.participants.len() as u32);
        for p in &self.participants {
            e.str(&p.name);
            e.0.extend_from_slice(&p.key);
            p.role.encode(&mut e);
        }
        e.u32(self.wallets.len() as u32);
        for w in &self.wallets {
            e.str(&w.id).i64(w.x_m).i64(w.y_m).u32(w.feeder).u8(w.accept);
            e.u32(w.max_distance_m.map_or(u32::MAX, |d| d)).u8(w.same_feeder as u8);
            e.u32(w.plants.len() as u32);
            for &p in &w.plants {
                e.u32(p);
            }
            e.i64(w.price_cap).u8(w.renewable_only as u8);
            match w.dr {
                None => e.u8(0),
                Some((b, cap)) => e.u8(1).u32(b).u64(cap),
            };
        }
        e.u32(self.plants.len() as u32);
        for p in &self.plants {
            e.str(&p.id).u8(p.tech as u8).u32(p.owner).i64(p.x_m).i64(p.y_m).u32(p.feeder);
            e.u8(p.self_consume as u8).u32(p.channels.len() as u32);
            for &(c, m) in &p.channels {
                e.u8(c).i64(m);
            }
            e.u8(p.supplier as u8);
        }
        e.u32(self.mix.len() as u32);
        for &(p, pct) in &self.mix {
            e.u32(p).u32(pct);
        }
        e.u32(self.operator_wallet);
        for w in self.channel_wallets {
            e.u32(w);
        }
        e.i64(self.fee_base).i64(self.fee_per_km).u64(self.trader_cap_wh).i64(self.retail);
        // The private section is appended only when present, so a clear ledger's genesis is unchanged.
        if let Some(p) = &self.privacy {
            e.u8(1).u32(p.box_keys.len() as u32);
            for (who, k) in &p.box_keys {
                e.u32(*who);
                e.0.extend_from_slice(k);
            }
            e.u32(p.declared_wh.len() as u32);
            for d in &p.declared_wh {
                e.u32(d.len() as u32);
                for &x in d {
                    e.u32(x);
                }
            }
        }
        e.0
    }

    pub fn decode(b: &[u8]) -> DecResult<Genesis> {
        let mut d = Dec::new(b);
        let domain = d.str()?;
        let slot_ns = d.u64()?;
        let n = d.len(37)?;
        let mut participants = Vec::with_capacity(n);
        for _ in 0..n {
            let name = d.str()?;
            let key = d.key()?;
            let role = Role::decode(&mut d)?;
            participants.push(Participant { name, key, role });
        }
        let n = d.len(40)?;
        let mut wallets = Vec::with_capacity(n);
        for _ in 0..n {
            let id = d.str()?;
            let (x_m, y_m, feeder, accept) = (d.i64()?, d.i64()?, d.u32()?, d.u8()?);
            let md = d.u32()?;
            let same_feeder = d.u8()? != 0;
            let k = d.len(4)?;
            let mut plants = Vec::with_capacity(k);
            for _ in 0..k {
                plants.push(d.u32()?);
            }
            let price_cap = d.i64()?;
            let renewable_only = d.u8()? != 0;
            let dr = match d.u8()? {
                0 => None,
                _ => Some((d.u32()?, d.u64()?)),
            };
            let max_distance_m = (md != u32::MAX).then_some(md);
            wallets.push(WalletInfo {
                id,
                x_m,
                y_m,
                feeder,
                accept,
                max_distance_m,
                same_feeder,
                plants,
                price_cap,
                renewable_only,
                dr,
            });
        }
        let n = d.len(40)?;
        let mut plants = Vec::with_capacity(n);
        for _ in 0..n {
            let id = d.str()?;
            let tech = Tech::from_code(d.u8()?).ok_or("unknown technology")?;
            let (owner, x_m, y_m, feeder) = (d.u32()?, d.i64()?, d.i64()?, d.u32()?);
            let self_consume = d.u8()? != 0;
            let k = d.len(9)?;
            let mut channels = Vec::with_capacity(k);
            for _ in 0..k {
                channels.push((d.u8()?, d.i64()?));
            }
            let supplier = d.u8()? != 0;
            plants.push(PlantInfo { id, tech, owner, x_m, y_m, feeder, self_consume, channels, supplier });
        }
        let n = d.len(8)?;
        let mut mix = Vec::with_capacity(n);
        for _ in 0..n {
            mix.push((d.u32()?, d.u32()?));
        }
        let operator_wallet = d.u32()?;
        let channel_wallets = [d.u32()?, d.u32()?, d.u32()?];
        let (fee_base, fee_per_km, trader_cap_wh, retail) = (d.i64()?, d.i64()?, d.u64()?, d.i64()?);
        let privacy = if d.at_end() {
            None
        } else {
            if d.u8()? != 1 {
                return Err("unknown genesis section");
            }
            let n = d.len(36)?;
            let mut box_keys = Vec::with_capacity(n);
            for _ in 0..n {
                box_keys.push((d.u32()?, d.key()?));
            }
            let n = d.len(4)?;
            let mut declared_wh = Vec::with_capacity(n);
            for _ in 0..n {
                let k = d.len(4)?;
                let mut v = Vec::with_capacity(k);
                for _ in 0..k {
                    v.push(d.u32()?);
                }
                declared_wh.push(v);
            }
            Some(Privacy { box_keys, declared_wh })
        };
        d.finish()?;
        let g = Genesis {
            domain,
            slot_ns,
            participants,
            wallets,
            plants,
            mix,
            operator_wallet,
            channel_wallets,
            fee_base,
            fee_per_km,
            trader_cap_wh,
            retail,
            privacy,
        };
        g.check()?;
        Ok(g)
    }

    /// Internal consistency: every index points somewhere.
    pub fn check(&self) -> DecResult<()> {
        let (nw, np) = (self.wallets.len() as u32, self.plants.len() as u32);
        for p in &self.participants {
            match p.role {
                Role::Owner(w) | Role::Meter(w) | Role::FlexMeter(w) if w >= nw => return Err("role names no wallet"),
                Role::PlantMeter(x) if x >= np => return Err("role names no plant"),
                _ => {}
            }
        }
        if self.plants.iter().any(|p| p.owner >= nw) || self.wallets.iter().any(|w| w.plants.iter().any(|&p| p >= np)) {
            return Err("plant or wallet index out of range");
        }
        if self.mix.iter().any(|&(p, _)| p >= np)
            || self.operator_wallet >= nw
            || self.channel_wallets.iter().any(|&w| w >= nw)
        {
            return Err("mix or channel index out of range");
        }
        if self.slot_ns == 0 {
            return Err("zero slot");
        }
        if let Some(p) = &self.privacy {
            if p.box_keys.windows(2).any(|w| w[0].0 >= w[1].0)
                || p.box_keys.iter().any(|&(who, _)| who as usize >= self.participants.len())
            {
                return Err("box keys must name participants, ascending and once each");
            }
            if p.declared_wh.len() > self.wallets.len() {
                return Err("declared consumption for more wallets than there are");
            }
        }
        Ok(())
    }

    /// `wh` of grid import split over the supplier's mix (only its renewable part for a customer with a green
    /// fallback) by largest remainder: (plant, Wh) per share; empty when no share fits.
    pub fn import_shares(&self, wi: &WalletInfo, wh: u64) -> Vec<(u32, u64)> {
        let shares: Vec<(u32, u64)> = self
            .mix
            .iter()
            .filter(|&&(p, _)| !wi.renewable_only || self.plants[p as usize].tech.renewable())
            .map(|&(p, pct)| (p, pct as u64))
            .collect();
        let total: u64 = shares.iter().map(|s| s.1).sum();
        if total == 0 {
            return Vec::new();
        }
        let mut parts: Vec<(u32, u64, u64)> =
            shares.iter().map(|&(p, s)| (p, wh * s / total, (wh * s) % total)).collect();
        let mut left = wh - parts.iter().map(|x| x.1).sum::<u64>();
        let mut order: Vec<usize> = (0..parts.len()).collect();
        order.sort_by_key(|&k| (std::cmp::Reverse(parts[k].2), k));
        for k in order {
            if left == 0 {
                break;
            }
            parts[k].1 += 1;
            left -= 1;
        }
        parts.into_iter().map(|(p, q, _)| (p, q)).collect()
    }

    /// The declared consumption of `wallet` in `slot` (Wh; 0 when none is declared).
    pub fn declared_wh(&self, wallet: u32, slot: u32) -> u64 {
        let Some(p) = &self.privacy else { return 0 };
        match p.declared_wh.get(wallet as usize) {
            Some(d) if !d.is_empty() => d[slot as usize % d.len()] as u64,
            _ => 0,
        }
    }

    /// Distance in whole metres between a wallet's connection and a plant.
    pub fn distance_m(&self, w: u32, p: u32) -> u64 {
        let (a, b) = (&self.wallets[w as usize], &self.plants[p as usize]);
        let dx = (a.x_m - b.x_m).unsigned_abs() as u128;
        let dy = (a.y_m - b.y_m).unsigned_abs() as u128;
        isqrt(dx * dx + dy * dy) as u64
    }

    /// Grid fee per kWh between a wallet and a plant, or [`FORBIDDEN`] when the customer's preferences rule
    /// the pair out (beyond the maximum distance, another feeder, not a named plant, the customer's own plant).
    pub fn fee(&self, w: u32, p: u32) -> i64 {
        let (a, b) = (&self.wallets[w as usize], &self.plants[p as usize]);
        let d = self.distance_m(w, p);
        if b.owner == w
            || b.supplier
            || a.max_distance_m.is_some_and(|m| d > m as u64)
            || (a.same_feeder && a.feeder != b.feeder)
            || (!a.plants.is_empty() && !a.plants.contains(&p))
        {
            return FORBIDDEN;
        }
        self.fee_base.saturating_add(self.fee_per_km.saturating_mul(d as i64) / 1000)
    }

    pub fn min_price(&self, p: u32, channel: u8) -> Option<i64> {
        self.plants[p as usize].channels.iter().find(|c| c.0 == channel).map(|c| c.1)
    }

    /// The kWh code of serial `wh / 1000` of (plant, slot).
    pub fn kwh_code(&self, plant: u32, slot: u32, wh: u64) -> String {
        format!("{}-{}-{}-{}", self.domain, self.plants[plant as usize].id, slot, wh / 1000)
    }
}

fn isqrt(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    let mut x = (n as f64).sqrt() as u128;
    while x * x > n {
        x -= 1;
    }
    while (x + 1) * (x + 1) <= n {
        x += 1;
    }
    x
}

/// A settlement: the order book of one feeder and slot, its clearing and certificate.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Settle {
    pub slot: u32,
    pub feeder: u32,
    /// (wallet, Wh, price per kWh).
    pub bids: Vec<(u32, u64, i64)>,
    /// (plant, Wh, price per kWh).
    pub asks: Vec<(u32, u64, i64)>,
    /// (bid position, ask position, Wh, price per kWh).
    pub matches: Vec<(u32, u32, u64, i64)>,
    pub u: Vec<i64>,
    pub v: Vec<i64>,
}

/// A market transaction (the payload of an envelope).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tx {
    Reading {
        slot: u32,
        consumed_wh: u64,
        produced_wh: u64,
    },
    Settle(Settle),
    Transfer {
        to: u32,
        slot: u32,
        plant: u32,
        wh: u64,
    },
    Claim {
        slot: u32,
        wh: u64,
    },
    MintImport {
        wallet: u32,
        slot: u32,
        wh: u64,
    },
    Offtake {
        plant: u32,
        slot: u32,
        channel: u8,
        wh: u64,
        price: i64,
    },
    DrEvent {
        id: u32,
        first_slot: u32,
        last_slot: u32,
        reward: i64,
    },
    DrBaseline {
        event: u32,
        baseline_wh: Vec<i64>,
    },
    DrSettle {
        event: u32,
    },
    /// A consumption (or flexible-load) reading as a commitment, its opening sealed for the entitled parties.
    SealedReading {
        slot: u32,
        commitment: [u8; 32],
        sealed: Sealed,
    },
    /// A claim against the slot's sealed reading: its commitment, the range proof and the sealed opening. It
    /// retires every certificate the wallet holds for the slot.
    SealedClaim {
        slot: u32,
        commitment: [u8; 32],
        proof: Vec<u8>,
        sealed: Sealed,
    },
    /// An auditor reads no sealed transaction of `from_slot` or later.
    Revoke {
        participant: u32,
        from_slot: u32,
    },
}

fn enc_sealed(e: &mut Enc, s: &Sealed) {
    e.0.extend_from_slice(&s.ephemeral);
    e.u32(s.boxes.len() as u32);
    for b in &s.boxes {
        e.u32(b.recipient).bytes(&b.ciphertext);
    }
}

fn dec_sealed(d: &mut Dec) -> DecResult<Sealed> {
    let ephemeral = d.key()?;
    let n = d.len(8)?;
    let mut boxes = Vec::with_capacity(n);
    for _ in 0..n {
        boxes.push(SealedBox { recipient: d.u32()?, ciphertext: d.bytes()?.to_vec() });
    }
    Ok(Sealed { ephemeral, boxes })
}

/// The associated data of a sealed transaction's boxes: its kind, slot and commitment.
pub fn sealed_aad(kind: u8, slot: u32, commitment: &[u8; 32]) -> Vec<u8> {
    let mut a = Vec::with_capacity(37);
    a.push(kind);
    a.extend_from_slice(&slot.to_le_bytes());
    a.extend_from_slice(commitment);
    a
}

impl Tx {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        match self {
            Tx::Reading { slot, consumed_wh, produced_wh } => {
                e.u8(1).u32(*slot).u64(*consumed_wh).u64(*produced_wh);
            }
            Tx::Settle(s) => {
                e.u8(2).u32(s.slot).u32(s.feeder);
                e.u32(s.bids.len() as u32);
                for &(w, wh, p) in &s.bids {
                    e.u32(w).u64(wh).i64(p);
                }
                e.u32(s.asks.len() as u32);
                for &(pl, wh, p) in &s.asks {
                    e.u32(pl).u64(wh).i64(p);
                }
                e.u32(s.matches.len() as u32);
                for &(b, a, wh, p) in &s.matches {
                    e.u32(b).u32(a).u64(wh).i64(p);
                }
                e.u32(s.u.len() as u32);
                for &x in &s.u {
                    e.i64(x);
                }
                e.u32(s.v.len() as u32);
                for &x in &s.v {
                    e.i64(x);
                }
            }
            Tx::Transfer { to, slot, plant, wh } => {
                e.u8(3).u32(*to).u32(*slot).u32(*plant).u64(*wh);
            }
            Tx::Claim { slot, wh } => {
                e.u8(4).u32(*slot).u64(*wh);
            }
            Tx::MintImport { wallet, slot, wh } => {
                e.u8(5).u32(*wallet).u32(*slot).u64(*wh);
            }
            Tx::Offtake { plant, slot, channel, wh, price } => {
                e.u8(6).u32(*plant).u32(*slot).u8(*channel).u64(*wh).i64(*price);
            }
            Tx::DrEvent { id, first_slot, last_slot, reward } => {
                e.u8(7).u32(*id).u32(*first_slot).u32(*last_slot).i64(*reward);
            }
            Tx::DrBaseline { event, baseline_wh } => {
                e.u8(8).u32(*event).u32(baseline_wh.len() as u32);
                for &b in baseline_wh {
                    e.i64(b);
                }
            }
            Tx::DrSettle { event } => {
                e.u8(9).u32(*event);
            }
            Tx::SealedReading { slot, commitment, sealed } => {
                e.u8(10).u32(*slot);
                e.0.extend_from_slice(commitment);
                enc_sealed(&mut e, sealed);
            }
            Tx::SealedClaim { slot, commitment, proof, sealed } => {
                e.u8(11).u32(*slot);
                e.0.extend_from_slice(commitment);
                e.bytes(proof);
                enc_sealed(&mut e, sealed);
            }
            Tx::Revoke { participant, from_slot } => {
                e.u8(12).u32(*participant).u32(*from_slot);
            }
        }
        e.0
    }

    pub fn decode(b: &[u8]) -> DecResult<Tx> {
        let mut d = Dec::new(b);
        let tx = match d.u8()? {
            1 => Tx::Reading { slot: d.u32()?, consumed_wh: d.u64()?, produced_wh: d.u64()? },
            2 => {
                let (slot, feeder) = (d.u32()?, d.u32()?);
                let n = d.len(20)?;
                let mut bids = Vec::with_capacity(n);
                for _ in 0..n {
                    bids.push((d.u32()?, d.u64()?, d.i64()?));
                }
                let n = d.len(20)?;
                let mut asks = Vec::with_capacity(n);
                for _ in 0..n {
                    asks.push((d.u32()?, d.u64()?, d.i64()?));
                }
                let n = d.len(24)?;
                let mut matches = Vec::with_capacity(n);
                for _ in 0..n {
                    matches.push((d.u32()?, d.u32()?, d.u64()?, d.i64()?));
                }
                let n = d.len(8)?;
                let mut u = Vec::with_capacity(n);
                for _ in 0..n {
                    u.push(d.i64()?);
                }
                let n = d.len(8)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(d.i64()?);
                }
                Tx::Settle(Settle { slot, feeder, bids, asks, matches, u, v })
            }
            3 => Tx::Transfer { to: d.u32()?, slot: d.u32()?, plant: d.u32()?, wh: d.u64()? },
            4 => Tx::Claim { slot: d.u32()?, wh: d.u64()? },
            5 => Tx::MintImport { wallet: d.u32()?, slot: d.u32()?, wh: d.u64()? },
            6 => Tx::Offtake { plant: d.u32()?, slot: d.u32()?, channel: d.u8()?, wh: d.u64()?, price: d.i64()? },
            7 => Tx::DrEvent { id: d.u32()?, first_slot: d.u32()?, last_slot: d.u32()?, reward: d.i64()? },
            8 => {
                let event = d.u32()?;
                let n = d.len(8)?;
                let mut baseline_wh = Vec::with_capacity(n);
                for _ in 0..n {
                    baseline_wh.push(d.i64()?);
                }
                Tx::DrBaseline { event, baseline_wh }
            }
            9 => Tx::DrSettle { event: d.u32()? },
            10 => Tx::SealedReading { slot: d.u32()?, commitment: d.key()?, sealed: dec_sealed(&mut d)? },
            11 => Tx::SealedClaim {
                slot: d.u32()?,
                commitment: d.key()?,
                proof: d.bytes()?.to_vec(),
                sealed: dec_sealed(&mut d)?,
            },
            12 => Tx::Revoke { participant: d.u32()?, from_slot: d.u32()? },
            _ => return Err("unknown transaction kind"),
        };
        d.finish()?;
        Ok(tx)
    }

    fn permitted(&self, role: Role) -> bool {
        matches!(
            (self, role),
            (Tx::Reading { .. }, Role::Meter(_) | Role::FlexMeter(_) | Role::PlantMeter(_))
                | (Tx::SealedReading { .. }, Role::Meter(_) | Role::FlexMeter(_))
                | (Tx::Settle(_) | Tx::Offtake { .. }, Role::Market)
                | (
                    Tx::MintImport { .. } | Tx::DrEvent { .. } | Tx::DrSettle { .. } | Tx::Revoke { .. },
                    Role::Operator
                )
                | (
                    Tx::Transfer { .. } | Tx::Claim { .. } | Tx::DrBaseline { .. } | Tx::SealedClaim { .. },
                    Role::Owner(_)
                )
        )
    }
}

/// The parties entitled to read `wallet`'s sealed transactions of `slot` given the revocations `revoked`
/// (auditor -> first slot it may not read): see [`MarketApp::entitled`].
pub fn entitled(g: &Genesis, revoked: &BTreeMap<u32, u32>, wallet: u32, slot: u32) -> Vec<(u32, [u8; 32])> {
    let Some(p) = &g.privacy else { return Vec::new() };
    p.box_keys
        .iter()
        .filter(|&&(who, _)| match g.participants.get(who as usize).map(|p| p.role) {
            Some(Role::Owner(w)) => w == wallet,
            Some(Role::Operator) => true,
            Some(Role::Auditor) => revoked.get(&who).is_none_or(|&from| slot < from),
            _ => false,
        })
        .copied()
        .collect()
}

/// Application refusal codes (from [`Refusal::APP_BASE`]).
pub mod code {
    pub const BAD_PAYLOAD: u16 = 100;
    pub const DUPLICATE: u16 = 101;
    pub const INSUFFICIENT: u16 = 102;
    pub const ABOVE_METERED: u16 = 103;
    pub const CONTRACT: u16 = 104;
    pub const NOT_OPTIMAL: u16 = 105;
    pub const UNKNOWN_ITEM: u16 = 106;
    pub const TOO_LATE: u16 = 107;
    /// A sealed transaction on a clear ledger, or a clear one where readings are sealed.
    pub const PRIVACY: u16 = 108;
    /// A claim's range proof does not verify.
    pub const BAD_PROOF: u16 = 109;
    /// Boxes not addressed to exactly the parties entitled to read.
    pub const RECIPIENTS: u16 = 110;
}

fn refuse(code: u16, reason: &'static str) -> Refusal {
    Refusal { code, reason }
}

/// State of one DR event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrState {
    pub first_slot: u32,
    pub last_slot: u32,
    pub reward: i64,
    pub settled: bool,
}

/// The application's state (everything the root covers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub nonces: BTreeMap<u32, u64>,
    pub certs: Registry,
    /// (meter participant, slot) -> (consumed Wh, produced Wh).
    pub readings: BTreeMap<(u32, u32), (u64, u64)>,
    /// (wallet, slot) -> Wh consumed (main meter).
    pub metered: BTreeMap<(u32, u32), u64>,
    /// (wallet, slot) -> net Wh of the flexible-load sub-meter.
    pub flex: BTreeMap<(u32, u32), i64>,
    /// Wallet balances, milli-cents.
    pub balances: BTreeMap<u32, i64>,
    pub settled: BTreeSet<(u32, u32)>,
    pub dr_events: BTreeMap<u32, DrState>,
    pub baselines: BTreeMap<(u32, u32), Vec<i64>>,
    /// (event, wallet) -> (Wh reduced and paid, milli-cents paid).
    pub payouts: BTreeMap<(u32, u32), (u64, i64)>,
    /// (plant, channel) -> (Wh, milli-cents revenue).
    pub sold: BTreeMap<(u32, u8), (u64, i64)>,
    /// Private ledgers: (wallet, slot) -> commitment of the main meter's consumption.
    pub sealed: BTreeMap<(u32, u32), [u8; 32]>,
    /// (wallet, slot) -> commitment of the flexible-load sub-meter's consumption.
    pub sealed_flex: BTreeMap<(u32, u32), [u8; 32]>,
    /// (wallet, slot) -> (claim commitment, Wh of certificates it retired).
    pub sealed_claims: BTreeMap<(u32, u32), ([u8; 32], u64)>,
    /// Auditor participant -> first slot it may not read.
    pub revoked: BTreeMap<u32, u32>,
}

/// How a certificate range moved (the provenance log replayed by `wallet trace`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveKind {
    Mint,
    Import,
    /// A P2P trade at `price` per kWh (seller's) plus `fee`.
    Trade {
        price: i64,
        fee: i64,
    },
    Transfer,
    Offtake {
        channel: u8,
        price: i64,
    },
    Claim,
    /// Retired by a sealed claim: consumed or spilled, in a split only the entitled parties can read.
    SealedClaim,
}

/// One movement of a certificate range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Movement {
    pub height: u64,
    pub kind: MoveKind,
    /// Wallet it left (`u32::MAX` for mints).
    pub from: u32,
    /// Wallet it reached (the claimant for claims).
    pub to: u32,
    pub range: Range,
}

/// The outcome of a settlement, for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettleRecord {
    pub slot: u32,
    pub feeder: u32,
    pub bids: usize,
    pub asks: usize,
    pub volume_wh: u64,
    pub welfare: i128,
    pub greedy_welfare: i128,
    pub cda_welfare: i128,
    /// Volume-weighted mean seller price (milli-cents per kWh), if anything traded.
    pub mean_price: Option<i64>,
}

/// The market application.
pub struct MarketApp {
    pub genesis: Genesis,
    genesis_hash: Hash,
    signers: BTreeMap<[u8; 32], u32>,
    pub state: State,
    committed_nonces: BTreeMap<u32, u64>,
    block: BlockInfo,
    /// Provenance of every certificate range (not part of the state root: derived from the ledger).
    pub log: Vec<Movement>,
    /// Settlement records (reporting).
    pub settlements: Vec<SettleRecord>,
    pub refusals: BTreeMap<u16, u64>,
}

impl MarketApp {
    pub fn new(genesis: Genesis) -> MarketApp {
        let genesis_hash: Hash = Sha256::digest(genesis.encode()).into();
        let signers = genesis.participants.iter().enumerate().map(|(i, p)| (p.key, i as u32)).collect();
        MarketApp {
            genesis,
            genesis_hash,
            signers,
            state: State::default(),
            committed_nonces: BTreeMap::new(),
            block: BlockInfo { height: 0, time_ns: 0, proposer: 0 },
            log: Vec::new(),
            settlements: Vec::new(),
            refusals: BTreeMap::new(),
        }
    }

    /// A copy of the current state to try transactions on (no log, no records).
    pub fn scratch(&self) -> MarketApp {
        MarketApp {
            genesis: self.genesis.clone(),
            genesis_hash: self.genesis_hash,
            signers: self.signers.clone(),
            state: self.state.clone(),
            committed_nonces: BTreeMap::new(),
            block: self.block,
            log: Vec::new(),
            settlements: Vec::new(),
            refusals: BTreeMap::new(),
        }
    }

    /// Applies `tx` as participant `who` without an envelope (for a proposer trying its transactions on a
    /// [`MarketApp::scratch`] copy; the ledger only ever executes signed envelopes).
    pub fn apply_as(&mut self, who: u32, tx: &Tx) -> TxOutcome {
        if !tx.permitted(self.genesis.participants.get(who as usize).ok_or(Refusal::UNKNOWN_SIGNER)?.role) {
            return Err(Refusal::NOT_PERMITTED);
        }
        self.apply(who, tx)
    }

    /// The block being executed (or last executed).
    pub fn block(&self) -> BlockInfo {
        self.block
    }

    /// The root of the current (working) state.
    pub fn root(&self) -> Hash {
        let mut h = Sha256::new();
        h.update(self.genesis_hash);
        let s = &self.state;
        let mut put = |b: &[u8]| h.update(b);
        put(&(s.nonces.len() as u64).to_le_bytes());
        for (k, v) in &s.nonces {
            put(&k.to_le_bytes());
            put(&v.to_le_bytes());
        }
        s.certs.digest_into(&mut put);
        put(&(s.readings.len() as u64).to_le_bytes());
        for (&(m, sl), &(c, p)) in &s.readings {
            for x in [m as u64, sl as u64, c, p] {
                put(&x.to_le_bytes());
            }
        }
        put(&(s.metered.len() as u64).to_le_bytes());
        for (&(w, sl), &c) in &s.metered {
            for x in [w as u64, sl as u64, c] {
                put(&x.to_le_bytes());
            }
        }
        put(&(s.flex.len() as u64).to_le_bytes());
        for (&(w, sl), &c) in &s.flex {
            for x in [w as u64, sl as u64, c as u64] {
                put(&x.to_le_bytes());
            }
        }
        put(&(s.balances.len() as u64).to_le_bytes());
        for (&w, &b) in &s.balances {
            put(&(w as u64).to_le_bytes());
            put(&b.to_le_bytes());
        }
        put(&(s.settled.len() as u64).to_le_bytes());
        for &(a, b) in &s.settled {
            put(&(((a as u64) << 32) | b as u64).to_le_bytes());
        }
        put(&(s.dr_events.len() as u64).to_le_bytes());
        for (&id, e) in &s.dr_events {
            for x in [id as u64, e.first_slot as u64, e.last_slot as u64, e.reward as u64, e.settled as u64] {
                put(&x.to_le_bytes());
            }
        }
        put(&(s.baselines.len() as u64).to_le_bytes());
        for (&(e, w), b) in &s.baselines {
            put(&(((e as u64) << 32) | w as u64).to_le_bytes());
            put(&(b.len() as u64).to_le_bytes());
            for x in b {
                put(&x.to_le_bytes());
            }
        }
        put(&(s.payouts.len() as u64).to_le_bytes());
        for (&(e, w), &(wh, mc)) in &s.payouts {
            for x in [e as u64, w as u64, wh, mc as u64] {
                put(&x.to_le_bytes());
            }
        }
        put(&(s.sold.len() as u64).to_le_bytes());
        for (&(p, c), &(wh, mc)) in &s.sold {
            for x in [p as u64, c as u64, wh, mc as u64] {
                put(&x.to_le_bytes());
            }
        }
        // Private state only on a private ledger, so a clear ledger's roots are unchanged.
        if self.genesis.privacy.is_some() {
            for m in [&s.sealed, &s.sealed_flex] {
                put(&(m.len() as u64).to_le_bytes());
                for (&(w, sl), c) in m {
                    put(&(((w as u64) << 32) | sl as u64).to_le_bytes());
                    put(c);
                }
            }
            put(&(s.sealed_claims.len() as u64).to_le_bytes());
            for (&(w, sl), (c, held)) in &s.sealed_claims {
                put(&(((w as u64) << 32) | sl as u64).to_le_bytes());
                put(c);
                put(&held.to_le_bytes());
            }
            put(&(s.revoked.len() as u64).to_le_bytes());
            for (&who, &from) in &s.revoked {
                put(&(((who as u64) << 32) | from as u64).to_le_bytes());
            }
        }
        h.finalize().into()
    }

    fn authenticate(&self, tx: &[u8], nonces: &BTreeMap<u32, u64>) -> Result<(u32, u64, Tx), Refusal> {
        let env = Envelope::parse(tx)?;
        env.verify()?;
        let &who = self.signers.get(&env.signer).ok_or(Refusal::UNKNOWN_SIGNER)?;
        if nonces.get(&who).is_some_and(|&n| env.nonce <= n) {
            return Err(Refusal::REPLAYED);
        }
        let t = Tx::decode(env.payload).map_err(|_| refuse(code::BAD_PAYLOAD, "undecodable payload"))?;
        if !t.permitted(self.genesis.participants[who as usize].role) {
            return Err(Refusal::NOT_PERMITTED);
        }
        Ok((who, env.nonce, t))
    }

    fn credit(&mut self, w: u32, mc: i64) {
        *self.state.balances.entry(w).or_insert(0) += mc;
    }

    /// The consumption bids and self-consumption are measured against: the metered Wh, or on a private ledger
    /// the declared Wh (public, so nothing derived from it reveals a reading).
    fn consumption_basis(&self, wallet: u32, slot: u32) -> u64 {
        if self.genesis.privacy.is_some() {
            self.genesis.declared_wh(wallet, slot)
        } else {
            self.state.metered.get(&(wallet, slot)).copied().unwrap_or(0)
        }
    }

    /// Wh of `slot` consumption `wallet` has not yet covered with certificates (held or claimed); on a private
    /// ledger, of its declared consumption.
    pub fn uncovered(&self, wallet: u32, slot: u32) -> u64 {
        let m = self.consumption_basis(wallet, slot);
        m.saturating_sub(self.state.certs.held_in_slot(wallet, slot) + self.state.certs.claimed_in_slot(wallet, slot))
    }

    /// Wh of (plant, slot) certificates its owner may sell: all it holds, less what covers the owner's own
    /// uncovered consumption when the policy says self-consume first.
    pub fn sellable(&self, plant: u32, slot: u32) -> u64 {
        let p = &self.genesis.plants[plant as usize];
        let held = self.state.certs.held_of(p.owner, slot, plant);
        if !p.self_consume {
            return held;
        }
        let m = self.consumption_basis(p.owner, slot);
        let other = self.state.certs.held_in_slot(p.owner, slot) - held;
        let need = m.saturating_sub(self.state.certs.claimed_in_slot(p.owner, slot) + other);
        held.saturating_sub(need)
    }

    fn record(&mut self, kind: MoveKind, from: u32, to: u32, ranges: &[Range]) {
        let height = self.block.height;
        self.log.extend(ranges.iter().map(|&range| Movement { height, kind, from, to, range }));
    }

    /// The order book a settlement describes, with fees and forbidden pairs from the contracts.
    pub fn book_of(&self, s: &Settle) -> Result<Book, Refusal> {
        let g = &self.genesis;
        let bad = refuse(code::UNKNOWN_ITEM, "settlement names an unknown wallet or plant");
        let mut bids = Vec::with_capacity(s.bids.len());
        for &(w, wh, price) in &s.bids {
            let wi = g.wallets.get(w as usize).ok_or(bad)?;
            bids.push(Bid { id: wi.id.clone(), wh, price, accept: wi.accept });
        }
        let mut asks = Vec::with_capacity(s.asks.len());
        for &(p, wh, price) in &s.asks {
            let pi = g.plants.get(p as usize).ok_or(bad)?;
            asks.push(Ask { id: pi.id.clone(), wh, price, tech: pi.tech });
        }
        let mut fees = Vec::with_capacity(bids.len() * asks.len());
        for &(w, _, _) in &s.bids {
            for &(p, _, _) in &s.asks {
                fees.push(g.fee(w, p));
            }
        }
        Ok(Book { bids, asks, fees })
    }

    fn settle(&mut self, s: &Settle) -> TxOutcome {
        let g = &self.genesis;
        if self.state.settled.contains(&(s.slot, s.feeder)) {
            return Err(refuse(code::DUPLICATE, "feeder and slot already settled"));
        }
        if s.bids.len() > clearing::MAX_ORDERS || s.asks.len() > clearing::MAX_ORDERS {
            return Err(refuse(code::BAD_PAYLOAD, "book too large"));
        }
        let book = self.book_of(s)?;
        // Contracts: one bid per wallet at its price cap, within its uncovered consumption; one ask per plant on
        // this feeder at its P2P minimum price, within what its policy lets it sell.
        let mut seen = BTreeSet::new();
        for &(w, wh, price) in &s.bids {
            let wi = &g.wallets[w as usize];
            if !seen.insert(w) || wi.feeder != s.feeder || price != wi.price_cap {
                return Err(refuse(code::CONTRACT, "bid breaks its customer's contract"));
            }
            if wh == 0 || wh > self.uncovered(w, s.slot) {
                return Err(refuse(code::ABOVE_METERED, "bid above the uncovered metered consumption"));
            }
        }
        let mut seen = BTreeSet::new();
        for &(p, wh, price) in &s.asks {
            let pi = &g.plants[p as usize];
            if !seen.insert(p) || pi.feeder != s.feeder || pi.supplier || g.min_price(p, CH_P2P) != Some(price) {
                return Err(refuse(code::CONTRACT, "ask breaks its plant's sell policy"));
            }
            if wh == 0 || wh > self.sellable(p, s.slot) {
                return Err(refuse(code::INSUFFICIENT, "ask above the plant's sellable certificates"));
            }
        }
        let mut matches = Vec::with_capacity(s.matches.len());
        for &(b, a, wh, price) in &s.matches {
            if b as usize >= book.bids.len() || a as usize >= book.asks.len() {
                return Err(refuse(code::BAD_PAYLOAD, "match outside the book"));
            }
            matches.push(Match { bid: b as usize, ask: a as usize, wh, price });
        }
        let welfare =
            clearing::welfare(&book, &matches).map_err(|_| refuse(code::CONTRACT, "match breaks a preference"))?;
        let c = Clearing { matches, welfare };
        let d = Duals { u: s.u.clone(), v: s.v.clone() };
        clearing::verify(&book, &c, &d).map_err(|_| refuse(code::NOT_OPTIMAL, "clearing certificate refused"))?;
        for m in &c.matches {
            if m.price != book.asks[m.ask].price + d.v[m.ask] {
                return Err(refuse(code::NOT_OPTIMAL, "match price is not the seller's dual price"));
            }
        }
        // Execute: certificates to buyers, money to sellers and fees to the grid operator.
        let op = self.genesis.operator_wallet;
        let mut volume = 0u64;
        let mut value = 0i128;
        for m in &c.matches {
            let (w, _, _) = s.bids[m.bid];
            let (p, _, _) = s.asks[m.ask];
            let owner = self.genesis.plants[p as usize].owner;
            let fee = book.fee(m.bid, m.ask);
            let moved = self.state.certs.transfer(owner, w, s.slot, Some(p), m.wh).map_err(cert_refusal)?;
            self.record(MoveKind::Trade { price: m.price, fee }, owner, w, &moved);
            let to_seller = mul_div(m.price, m.wh);
            let to_grid = mul_div(fee, m.wh);
            self.credit(owner, to_seller);
            self.credit(op, to_grid);
            self.credit(w, -(to_seller + to_grid));
            let e = self.state.sold.entry((p, CH_P2P)).or_insert((0, 0));
            e.0 += m.wh;
            e.1 += to_seller;
            volume += m.wh;
            value += m.wh as i128 * m.price as i128;
        }
        self.state.settled.insert((s.slot, s.feeder));
        self.settlements.push(SettleRecord {
            slot: s.slot,
            feeder: s.feeder,
            bids: book.bids.len(),
            asks: book.asks.len(),
            volume_wh: volume,
            welfare: c.welfare,
            greedy_welfare: clearing::greedy(&book).welfare,
            cda_welfare: clearing::cda(&book, s.slot as u64).welfare,
            mean_price: (volume > 0).then(|| (value / volume as i128) as i64),
        });
        Ok(())
    }

    /// The parties entitled to read `wallet`'s sealed transactions of `slot`, with their X25519 keys: its
    /// owners, the operators and the auditors not revoked by then, in participant order.
    pub fn entitled(&self, wallet: u32, slot: u32) -> Vec<(u32, [u8; 32])> {
        entitled(&self.genesis, &self.state.revoked, wallet, slot)
    }

    /// Refuses boxes not addressed to exactly the entitled parties (each once, in order, of the sealed size).
    fn check_recipients(&self, wallet: u32, slot: u32, sealed: &Sealed) -> TxOutcome {
        let want = self.entitled(wallet, slot);
        let ok = want.len() == sealed.boxes.len()
            && want.iter().zip(&sealed.boxes).all(|(w, b)| w.0 == b.recipient && b.ciphertext.len() == BOX_LEN);
        if ok { Ok(()) } else { Err(refuse(code::RECIPIENTS, "sealed for other parties than those entitled")) }
    }

    fn sealed_reading(&mut self, role: Role, slot: u32, commitment: &[u8; 32], sealed: &Sealed) -> TxOutcome {
        let (w, flex) = match role {
            Role::Meter(w) => (w, false),
            Role::FlexMeter(w) => (w, true),
            _ => return Err(Refusal::NOT_PERMITTED),
        };
        let map = if flex { &self.state.sealed_flex } else { &self.state.sealed };
        if map.contains_key(&(w, slot)) {
            return Err(refuse(code::DUPLICATE, "meter already read for this slot"));
        }
        if curve25519_dalek_bp::ristretto::CompressedRistretto(*commitment).decompress().is_none() {
            return Err(refuse(code::BAD_PAYLOAD, "commitment is not a group element"));
        }
        self.check_recipients(w, slot, sealed)?;
        let map = if flex { &mut self.state.sealed_flex } else { &mut self.state.sealed };
        map.insert((w, slot), *commitment);
        Ok(())
    }

    fn sealed_claim(&mut self, w: u32, slot: u32, commitment: &[u8; 32], proof: &[u8], sealed: &Sealed) -> TxOutcome {
        let Some(reading) = self.state.sealed.get(&(w, slot)).copied() else {
            return Err(refuse(code::UNKNOWN_ITEM, "no sealed reading of this wallet and slot"));
        };
        if self.state.sealed_claims.contains_key(&(w, slot)) {
            return Err(refuse(code::DUPLICATE, "slot already claimed"));
        }
        self.check_recipients(w, slot, sealed)?;
        let held = self.state.certs.held_in_slot(w, slot);
        if !private::verify_claim(&self.genesis.domain, w, slot, &reading, commitment, held, proof) {
            return Err(refuse(code::BAD_PROOF, "claim proof refused"));
        }
        if held > 0 {
            self.retire(w, slot, held, MoveKind::SealedClaim)?;
        }
        self.state.sealed_claims.insert((w, slot), (*commitment, held));
        Ok(())
    }

    /// Retires `wh` of `w`'s certificates of `slot` (its own self-consumed plants' first) and logs them as
    /// `kind`. Its own plants' certificates count as self-consumption (on a private ledger, consumed or
    /// spilled).
    fn retire(&mut self, w: u32, slot: u32, wh: u64, kind: MoveKind) -> TxOutcome {
        let own: Vec<u32> = (0..self.genesis.plants.len() as u32)
            .filter(|&p| self.genesis.plants[p as usize].owner == w && self.genesis.plants[p as usize].self_consume)
            .collect();
        let retired = self.state.certs.claim(w, slot, wh, &own).map_err(cert_refusal)?;
        for r in &retired {
            if self.genesis.plants[r.plant as usize].owner == w {
                self.state.sold.entry((r.plant, CH_SELF)).or_insert((0, 0)).0 += r.len;
            }
        }
        self.record(kind, w, w, &retired);
        Ok(())
    }

    fn apply(&mut self, who: u32, tx: &Tx) -> TxOutcome {
        let role = self.genesis.participants[who as usize].role;
        let now_slot = (self.block.time_ns / self.genesis.slot_ns) as u32;
        let private = self.genesis.privacy.is_some();
        match tx {
            Tx::SealedReading { .. } | Tx::SealedClaim { .. } | Tx::Revoke { .. } if !private => {
                return Err(refuse(code::PRIVACY, "this ledger has no private readings"));
            }
            Tx::Reading { .. } if private && matches!(role, Role::Meter(_) | Role::FlexMeter(_)) => {
                return Err(refuse(code::PRIVACY, "consumption readings of this ledger are sealed"));
            }
            Tx::Claim { .. } | Tx::MintImport { .. } if private => {
                return Err(refuse(code::PRIVACY, "claims and imports of this ledger are sealed"));
            }
            Tx::DrEvent { .. } | Tx::DrBaseline { .. } | Tx::DrSettle { .. } if private => {
                return Err(refuse(code::PRIVACY, "demand response pays on sealed readings"));
            }
            _ => {}
        }
        match tx {
            Tx::SealedReading { slot, commitment, sealed } => {
                if *slot >= now_slot {
                    return Err(refuse(code::TOO_LATE, "reading of a slot not yet over"));
                }
                self.sealed_reading(role, *slot, commitment, sealed)
            }
            Tx::SealedClaim { slot, commitment, proof, sealed } => {
                let Role::Owner(w) = role else { return Err(Refusal::NOT_PERMITTED) };
                self.sealed_claim(w, *slot, commitment, proof, sealed)
            }
            Tx::Revoke { participant, from_slot } => {
                let is_auditor =
                    self.genesis.participants.get(*participant as usize).is_some_and(|p| p.role == Role::Auditor);
                if !is_auditor {
                    return Err(refuse(code::UNKNOWN_ITEM, "only an auditor's access is revoked"));
                }
                if *from_slot < now_slot {
                    return Err(refuse(code::TOO_LATE, "revocation from a slot already begun"));
                }
                if self.state.revoked.contains_key(participant) {
                    return Err(refuse(code::DUPLICATE, "already revoked"));
                }
                self.state.revoked.insert(*participant, *from_slot);
                Ok(())
            }
            Tx::Reading { slot, consumed_wh, produced_wh } => {
                if *slot >= now_slot {
                    return Err(refuse(code::TOO_LATE, "reading of a slot not yet over"));
                }
                if self.state.readings.contains_key(&(who, *slot)) {
                    return Err(refuse(code::DUPLICATE, "meter already read for this slot"));
                }
                match role {
                    Role::Meter(w) => {
                        if *produced_wh != 0 {
                            return Err(refuse(code::BAD_PAYLOAD, "a consumption meter reports no production"));
                        }
                        self.state.metered.insert((w, *slot), *consumed_wh);
                    }
                    Role::FlexMeter(w) => {
                        self.state.flex.insert((w, *slot), *consumed_wh as i64 - *produced_wh as i64);
                    }
                    Role::PlantMeter(p) => {
                        if *consumed_wh != 0 {
                            return Err(refuse(code::BAD_PAYLOAD, "a plant meter reports production only"));
                        }
                        if *produced_wh > 0 {
                            let owner = self.genesis.plants[p as usize].owner;
                            let r = self.state.certs.mint(p, *slot, owner, *produced_wh).map_err(cert_refusal)?;
                            self.record(MoveKind::Mint, u32::MAX, owner, &[r]);
                        }
                    }
                    _ => return Err(Refusal::NOT_PERMITTED),
                }
                self.state.readings.insert((who, *slot), (*consumed_wh, *produced_wh));
                Ok(())
            }
            Tx::Settle(s) => self.settle(s),
            Tx::Transfer { to, slot, plant, wh } => {
                let Role::Owner(w) = role else { return Err(Refusal::NOT_PERMITTED) };
                if *to as usize >= self.genesis.wallets.len() {
                    return Err(refuse(code::UNKNOWN_ITEM, "no such wallet"));
                }
                let moved = self.state.certs.transfer(w, *to, *slot, Some(*plant), *wh).map_err(cert_refusal)?;
                self.record(MoveKind::Transfer, w, *to, &moved);
                Ok(())
            }
            Tx::Claim { slot, wh } => {
                let Role::Owner(w) = role else { return Err(Refusal::NOT_PERMITTED) };
                let metered = self.state.metered.get(&(w, *slot)).copied().unwrap_or(0);
                if self.state.certs.claimed_in_slot(w, *slot) + wh > metered {
                    return Err(refuse(code::ABOVE_METERED, "claim above the metered consumption"));
                }
                self.retire(w, *slot, *wh, MoveKind::Claim)
            }
            Tx::MintImport { wallet, slot, wh } => {
                let Some(wi) = self.genesis.wallets.get(*wallet as usize) else {
                    return Err(refuse(code::UNKNOWN_ITEM, "no such wallet"));
                };
                if *wh == 0 || *wh > self.uncovered(*wallet, *slot) {
                    return Err(refuse(code::ABOVE_METERED, "import above the uncovered metered consumption"));
                }
                let parts = self.genesis.import_shares(wi, *wh);
                if parts.is_empty() {
                    return Err(refuse(code::CONTRACT, "no mix share fits the customer's fallback"));
                }
                let bill = mul_div(self.genesis.retail, *wh);
                self.credit(*wallet, -bill);
                self.credit(self.genesis.operator_wallet, bill);
                for (p, q) in parts {
                    if q > 0 {
                        let r = self.state.certs.mint(p, *slot, *wallet, q).map_err(cert_refusal)?;
                        self.record(MoveKind::Import, u32::MAX, *wallet, &[r]);
                    }
                }
                Ok(())
            }
            Tx::Offtake { plant, slot, channel, wh, price } => {
                let Some(p) = self.genesis.plants.get(*plant as usize) else {
                    return Err(refuse(code::UNKNOWN_ITEM, "no such plant"));
                };
                let cw = match *channel {
                    CH_TRADER => self.genesis.channel_wallets[0],
                    CH_MARKET => self.genesis.channel_wallets[1],
                    CH_FEED_IN => self.genesis.channel_wallets[2],
                    _ => return Err(refuse(code::BAD_PAYLOAD, "not an offtake channel")),
                };
                match self.genesis.min_price(*plant, *channel) {
                    Some(m) if *price >= m => {}
                    _ => return Err(refuse(code::CONTRACT, "channel not in the sell policy or below its minimum")),
                }
                if *channel == CH_TRADER && *wh > self.genesis.trader_cap_wh {
                    return Err(refuse(code::CONTRACT, "above the trader's cap per sale"));
                }
                if *wh == 0 || *wh > self.sellable(*plant, *slot) {
                    return Err(refuse(code::INSUFFICIENT, "offtake above the plant's sellable certificates"));
                }
                let owner = p.owner;
                let moved = self.state.certs.transfer(owner, cw, *slot, Some(*plant), *wh).map_err(cert_refusal)?;
                self.record(MoveKind::Offtake { channel: *channel, price: *price }, owner, cw, &moved);
                let mc = mul_div(*price, *wh);
                self.credit(owner, mc);
                self.credit(cw, -mc);
                let e = self.state.sold.entry((*plant, *channel)).or_insert((0, 0));
                e.0 += wh;
                e.1 += mc;
                Ok(())
            }
            Tx::DrEvent { id, first_slot, last_slot, reward } => {
                if self.state.dr_events.contains_key(id) {
                    return Err(refuse(code::DUPLICATE, "DR event id in use"));
                }
                if first_slot > last_slot || last_slot - first_slot >= 96 || *first_slot < now_slot || *reward < 0 {
                    return Err(refuse(code::BAD_PAYLOAD, "DR window must be 1..=96 future slots, reward >= 0"));
                }
                self.state.dr_events.insert(
                    *id,
                    DrState { first_slot: *first_slot, last_slot: *last_slot, reward: *reward, settled: false },
                );
                Ok(())
            }
            Tx::DrBaseline { event, baseline_wh } => {
                let Role::Owner(w) = role else { return Err(Refusal::NOT_PERMITTED) };
                let Some(e) = self.state.dr_events.get(event) else {
                    return Err(refuse(code::UNKNOWN_ITEM, "no such DR event"));
                };
                if self.genesis.wallets[w as usize].dr.map(|d| d.0) != Some(0) {
                    return Err(refuse(code::CONTRACT, "customer's DR contract has no declared baseline"));
                }
                if now_slot >= e.first_slot {
                    return Err(refuse(code::TOO_LATE, "baseline declared after the window started"));
                }
                if baseline_wh.len() as u32 != e.last_slot - e.first_slot + 1 || baseline_wh.iter().any(|&b| b < 0) {
                    return Err(refuse(code::BAD_PAYLOAD, "one non-negative baseline per window slot"));
                }
                if self.state.baselines.contains_key(&(*event, w)) {
                    return Err(refuse(code::DUPLICATE, "baseline already declared"));
                }
                self.state.baselines.insert((*event, w), baseline_wh.clone());
                Ok(())
            }
            Tx::DrSettle { event } => {
                let Some(e) = self.state.dr_events.get(event).cloned() else {
                    return Err(refuse(code::UNKNOWN_ITEM, "no such DR event"));
                };
                if e.settled || now_slot <= e.last_slot {
                    return Err(refuse(code::TOO_LATE, "DR event already settled or not over"));
                }
                let op = self.genesis.operator_wallet;
                for w in 0..self.genesis.wallets.len() as u32 {
                    let Some((method, cap)) = self.genesis.wallets[w as usize].dr else { continue };
                    let baseline: Vec<i64> = if method == 0 {
                        match self.state.baselines.get(&(*event, w)) {
                            Some(b) => b.clone(),
                            None => continue,
                        }
                    } else {
                        let from = e.first_slot.saturating_sub(method);
                        let vals: Vec<i64> =
                            (from..e.first_slot).filter_map(|s| self.state.flex.get(&(w, s)).copied()).collect();
                        if vals.is_empty() {
                            continue;
                        }
                        let mean = vals.iter().sum::<i64>().max(0) / vals.len() as i64;
                        vec![mean; (e.last_slot - e.first_slot + 1) as usize]
                    };
                    let mut reduced = 0u64;
                    for (k, s) in (e.first_slot..=e.last_slot).enumerate() {
                        if let Some(&m) = self.state.flex.get(&(w, s)) {
                            reduced += (baseline[k] - m).max(0) as u64;
                        }
                    }
                    let reduced = reduced.min(cap);
                    let mc = mul_div(e.reward, reduced);
                    if reduced > 0 {
                        self.credit(w, mc);
                        self.credit(op, -mc);
                    }
                    self.state.payouts.insert((*event, w), (reduced, mc));
                }
                if let Some(x) = self.state.dr_events.get_mut(event) {
                    x.settled = true;
                }
                Ok(())
            }
        }
    }

    /// Every wallet's consumption of `slot` fully covered by claims (the "every consumed Wh has an origin"
    /// invariant), or the first wallet that is not.
    pub fn uncovered_after_claims(&self, slot: u32) -> Option<(u32, u64, u64)> {
        self.state
            .metered
            .range((0, slot)..)
            .filter(|(k, _)| k.1 == slot)
            .map(|(&(w, _), &m)| (w, m, self.state.certs.claimed_in_slot(w, slot)))
            .find(|&(_, m, c)| m != c)
    }
}

fn mul_div(price_per_kwh: i64, wh: u64) -> i64 {
    ((price_per_kwh as i128 * wh as i128) / 1000) as i64
}

fn cert_refusal(e: CertError) -> Refusal {
    match e {
        CertError::Insufficient { .. } | CertError::NotHeld { .. } => {
            refuse(code::INSUFFICIENT, "not enough certificates held")
        }
        CertError::Zero => refuse(code::BAD_PAYLOAD, "zero volume"),
        CertError::Overflow => refuse(code::BAD_PAYLOAD, "volume overflow"),
    }
}

impl Application for MarketApp {
    fn check_tx(&self, tx: &[u8]) -> TxOutcome {
        self.authenticate(tx, &self.committed_nonces).map(|_| ())
    }

    fn execute_block(&mut self, block: &BlockInfo, txs: &[&[u8]]) -> Vec<TxOutcome> {
        self.block = *block;
        let mut out = Vec::with_capacity(txs.len());
        for tx in txs {
            let r = match self.authenticate(tx, &self.state.nonces) {
                Ok((who, nonce, t)) => {
                    let r = self.apply(who, &t);
                    // A refused transaction still uses its nonce (it was ordered), so it cannot be replayed.
                    self.state.nonces.insert(who, nonce);
                    r
                }
                Err(e) => Err(e),
            };
            if let Err(e) = &r {
                *self.refusals.entry(e.code).or_insert(0) += 1;
            }
            out.push(r);
        }
        out
    }

    fn commit(&mut self) -> Hash {
        self.committed_nonces = self.state.nonces.clone();
        self.root()
    }
}
