//! The links' model: every link's mean power from positions, path loss and static shadowing, and the weighing
//! of one frame at one receiver (capture, half duplex, interference, the error model's success probability).
//! Powers in dBm and mW, positions and distances in m, times in ns.
//!
//! Why apart from the mesh agent: nothing in it changes while the mesh runs, except the extra losses of
//! degraded links (set by an event, between frames), so a frame can be weighed at many receivers from a
//! shared reference to it, by the agent's thread or by its helper ([`super::helper`]), with the same arithmetic
//! either way. What a reception changes (the PHY's random draw, the receiver counters) is not here: the agent
//! applies a [`Weighed`] outcome in the receivers' order ([`super::medium::MeshAgent`]'s `settle`).

use super::channel::OnAir;
use super::phy::{Interferer, dbm_to_mw, success_probability};
use super::propagation::{MIN_DISTANCE_M, Propagation, inverse_normal_cdf};
use super::radio::RadioModel;

/// Shadowing bins of [`LinkModel::bound_links`]: the top bits of a link's shadowing hash.
const SHADOW_BIN_BITS: u32 = 12;

/// See the module docs.
#[derive(Clone, Debug)]
pub(crate) struct LinkModel {
    pub(crate) radio: RadioModel,
    pub(crate) prop: Propagation,
    pub(crate) seed: u64,
    /// `Propagation::shadow_key(seed)`: the seed's part of every link's shadowing hash, computed once.
    shadow_key: u64,
    /// The receiver's noise power, mW.
    pub(crate) noise_mw: f64,
    /// Transmit power plus antenna gains, dBm (a link's mean power is this less its loss).
    pub(crate) offset_dbm: f64,
    /// Extra loss of degraded links, dB, by (lower index << 32 | higher index), sorted; empty in most runs, so
    /// the hot path pays one length check.
    pub(crate) link_extra_db: Vec<(u64, f64)>,
    /// Node positions by index, m (a compact copy for the link computations of the channel).
    pub(crate) xy: Vec<(f64, f64)>,
    /// Square of the distance beyond which no transmission reaches the interference threshold, m^2.
    pub(crate) reach2: f64,
    /// Mean received power below which a transmission is ignored at a receiver (interference, CCA), dBm.
    pub(crate) interference_dbm: f64,
    /// Log-distance propagation: reference distance (m), loss there (dB) and dB per decade.
    log_distance: Option<(f64, f64, f64)>,
    /// Per shadowing bin, the squared distance beyond which a link is surely below `interference_dbm`, m^2
    /// (log-distance propagation; empty otherwise). See [`LinkModel::bound_links`].
    pub(crate) below_floor_d2: Vec<f64>,
}

/// A frame weighed at one receiver: what [`LinkModel::weigh`] found, before the reception's random draw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Weighed {
    /// Below sensitivity: not a reception at all (no counter moves).
    Below,
    /// Lost for sure: the receiver was transmitting, or locked onto another frame, or another captured it;
    /// `interferers` were met before that was known.
    Lost { interferers: u32 },
    /// Decoded with probability `p` (1.0 or more: surely) at power `p_dbm`, through `interferers` overlapping
    /// frames.
    Chance { p: f64, p_dbm: f64, interferers: u32 },
}

impl LinkModel {
    /// A model for `radio` and `prop` with seed `seed`; positions, reach and bounds are set by the mesh's build.
    pub(crate) fn new(radio: &RadioModel, prop: &Propagation, seed: u64) -> LinkModel {
        LinkModel {
            radio: radio.clone(),
            prop: prop.clone(),
            seed,
            shadow_key: Propagation::shadow_key(seed),
            noise_mw: dbm_to_mw(radio.noise_floor_dbm()),
            offset_dbm: radio.link_budget_offset_dbm(),
            link_extra_db: Vec::new(),
            xy: Vec::new(),
            reach2: f64::INFINITY,
            interference_dbm: radio.noise_floor_dbm(),
            log_distance: match *prop {
                Propagation::LogDistance { exponent, ref_distance_m, .. } => Some((
                    ref_distance_m,
                    super::propagation::fspl_db(ref_distance_m, radio.frequency_mhz),
                    10.0 * exponent,
                )),
                _ => None,
            },
            below_floor_d2: Vec::new(),
        }
    }

    /// Bounds the links' powers before their shadowing is computed, so that most links far from a receiver are
    /// ruled out by a hash and a comparison instead of a logarithm and a normal quantile. Call once
    /// `interference_dbm` is set.
    ///
    /// Why it is exact: a link's shadowing is `sigma * z(u)` with `u` read from the top bits of its hash and `z`
    /// the (increasing) normal quantile, so within a bin of those bits it is at least the quantile of the
    /// bin's smallest `u`. With that shadowing, the median loss that already puts the link below the threshold
    /// gives a distance; a link farther than it (with a margin of 1e-6 dB and 1e-9 relative for rounding) is
    /// below the threshold whatever its exact shadowing, and `link_dbm_at` returns `None` for it, as the full
    /// computation would. Only log-distance propagation with a positive exponent is bounded.
    pub(crate) fn bound_links(&mut self) {
        self.below_floor_d2.clear();
        let Some((d0, l0, slope)) = self.log_distance else { return };
        let sigma = self.prop.shadowing_db();
        if !(slope > 0.0 && sigma >= 0.0 && d0 > 0.0) {
            return;
        }
        let shift = 53 - SHADOW_BIN_BITS;
        let d_min = d0.max(MIN_DISTANCE_M);
        for k in 0..(1u64 << SHADOW_BIN_BITS) {
            // The bin's smallest variate, as `std_normal` forms it.
            let u = ((k << shift) as f64 + 0.5) / (1u64 << 53) as f64;
            let z = inverse_normal_cdf(u);
            let shadow_min_db = sigma * (z - 1e-9 * (1.0 + z.abs()));
            let median_max_db = self.offset_dbm - self.interference_dbm + 1e-6 - l0 - shadow_min_db;
            let d = d0 * 10f64.powf(median_max_db / slope);
            self.below_floor_d2.push(d.max(d_min).powi(2) * (1.0 + 1e-9));
        }
    }

    /// Mean received power at `to` of a transmission from `from`, dBm (shadowing included, no fading).
    pub(crate) fn mean_rx_dbm(&self, from: usize, to: usize) -> f64 {
        let (a, b) = (self.xy[from], self.xy[to]);
        let d = ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
        self.offset_dbm - self.loss_db(from, to, d) - self.extra_db(from, to)
    }

    /// Extra loss a `DegradeLink` event put on the link between `a` and `b`, dB.
    #[inline]
    fn extra_db(&self, a: usize, b: usize) -> f64 {
        if self.link_extra_db.is_empty() {
            return 0.0;
        }
        let key = ((a.min(b) as u64) << 32) | a.max(b) as u64;
        self.link_extra_db.binary_search_by_key(&key, |e| e.0).map_or(0.0, |k| self.link_extra_db[k].1)
    }

    /// Sets the extra loss of the link between `a` and `b`, dB (0 removes it).
    pub(crate) fn set_extra_db(&mut self, a: usize, b: usize, loss_db: f64) {
        let key = ((a.min(b) as u64) << 32) | a.max(b) as u64;
        match self.link_extra_db.binary_search_by_key(&key, |e| e.0) {
            Ok(k) if loss_db == 0.0 => {
                self.link_extra_db.remove(k);
            }
            Ok(k) => self.link_extra_db[k].1 = loss_db,
            Err(_) if loss_db == 0.0 => {}
            Err(k) => self.link_extra_db.insert(k, (key, loss_db)),
        }
    }

    /// Path loss of a link, dB (the propagation model's, with the log-distance reference loss computed once).
    #[inline]
    fn loss_db(&self, from: usize, to: usize, d: f64) -> f64 {
        self.loss_db_hashed(from, to, d, self.link_hash(from, to))
    }

    /// [`LinkModel::loss_db`] with the link's shadowing hash ([`LinkModel::link_hash`]) already drawn.
    #[inline]
    fn loss_db_hashed(&self, from: usize, to: usize, d: f64, h: u64) -> f64 {
        match self.log_distance {
            Some((d0, l0, slope)) if d > d0 && d >= MIN_DISTANCE_M => {
                l0 + slope * (d / d0).log10() + self.prop.shadow_db_from_hash(h)
            }
            _ => self.prop.loss_db(self.seed, from as u32, to as u32, d, self.radio.frequency_mhz),
        }
    }

    /// The hash that draws the link `from -> to`'s shadowing (see [`Propagation::shadow_hash_keyed`]).
    #[inline]
    fn link_hash(&self, from: usize, to: usize) -> u64 {
        self.prop.shadow_hash_keyed(self.shadow_key, from as u32, to as u32)
    }

    /// Mean power at `to` of `from`'s transmissions, dBm; `None` below the interference threshold (the noise
    /// floor) or beyond the distance where shadowing could lift it there. Computed from the link's path loss
    /// and static shadowing on demand: no per-link table, and the same value every time. The transmitter's
    /// position `a` is given (an [`OnAir`] carries it), so scans of the channel do not touch the node table.
    #[inline]
    pub(crate) fn link_dbm_at(&self, a: (f64, f64), from: usize, to: usize) -> Option<f64> {
        let b = self.xy[to];
        let d2 = (a.0 - b.0).powi(2) + (a.1 - b.1).powi(2);
        if d2 > self.reach2 {
            return None;
        }
        // The link's hash is drawn once and serves both the bound and the shadowing.
        let h = self.link_hash(from, to);
        if self.bounded_out_hashed(d2, h) {
            return None;
        }
        self.link_dbm_exact_hashed(d2, from, to, h)
    }

    /// Whether [`LinkModel::bound_links`]' bound puts the link `from -> to` at squared distance `d2` (m^2)
    /// below the interference threshold, without computing its shadowing.
    #[cfg(test)]
    pub(crate) fn bounded_out(&self, d2: f64, from: usize, to: usize) -> bool {
        self.bounded_out_hashed(d2, self.link_hash(from, to))
    }

    /// Whether [`LinkModel::bound_links`]' bound puts a link at squared distance `d2` (m^2) with shadowing hash
    /// `h` below the interference threshold.
    #[inline]
    fn bounded_out_hashed(&self, d2: f64, h: u64) -> bool {
        if self.below_floor_d2.is_empty() || !self.link_extra_db.is_empty() {
            return false;
        }
        d2 > self.below_floor_d2[(h >> (64 - SHADOW_BIN_BITS)) as usize]
    }

    /// [`LinkModel::link_dbm_at`] computed in full, for a link at squared distance `d2` (m^2).
    #[cfg(test)]
    pub(crate) fn link_dbm_exact(&self, d2: f64, from: usize, to: usize) -> Option<f64> {
        self.link_dbm_exact_hashed(d2, from, to, self.link_hash(from, to))
    }

    /// [`LinkModel::link_dbm_at`] computed in full, for a link whose shadowing hash `h` is already drawn.
    #[inline]
    fn link_dbm_exact_hashed(&self, d2: f64, from: usize, to: usize, h: u64) -> Option<f64> {
        let p = self.offset_dbm - self.loss_db_hashed(from, to, d2.sqrt(), h) - self.extra_db(from, to);
        (p >= self.interference_dbm).then_some(p)
    }

    /// Weighs frame `f` at receiver `r` where it arrives at `p_dbm` (its mean power, with fading if any),
    /// against the frames `overlaps` overlapping it in time (in id order). `ints` is scratch space, left
    /// holding the interferers met. No jammers: a mesh with jammers weighs them on top ([`super::medium`]).
    pub(crate) fn weigh(
        &self,
        f: &OnAir,
        r: usize,
        p_dbm: f64,
        overlaps: &[OnAir],
        ints: &mut Vec<Interferer>,
    ) -> Weighed {
        ints.clear();
        let sens = self.radio.sensitivity_dbm;
        if p_dbm < sens {
            return Weighed::Below;
        }
        let cap = self.radio.capture_threshold_db;
        for g in overlaps {
            if g.src as usize == r {
                // Half duplex: it was transmitting.
                return Weighed::Lost { interferers: ints.len() as u32 };
            }
            let Some(pg) = self.link_dbm_at((g.x_m, g.y_m), g.src as usize, r) else { continue };
            if pg >= sens {
                let locked_elsewhere = g.start <= f.start && p_dbm < pg + cap;
                let captured_away = g.start > f.start && pg >= p_dbm + cap;
                if locked_elsewhere || captured_away {
                    return Weighed::Lost { interferers: ints.len() as u32 };
                }
            }
            ints.push(Interferer { start: g.start, end: g.end, mw: dbm_to_mw(pg) });
        }
        let p = self.success(f, p_dbm, ints);
        Weighed::Chance { p, p_dbm, interferers: ints.len() as u32 }
    }

    /// Probability that frame `f` received at `p_dbm` survives the interferers `ints` and the noise.
    #[inline]
    pub(crate) fn success(&self, f: &OnAir, p_dbm: f64, ints: &[Interferer]) -> f64 {
        success_probability(&self.radio, f.start, f.end, dbm_to_mw(p_dbm), self.noise_mw, 8.0 * f.psdu as f64, ints)
    }
}
