//! Jammers on the radio channel: noise-like transmitters at fixed positions (the scenario's
//! `security.attackers`, `Jammer(..)`), on between a start and a stop time, either continuously or
//! reactively (a burst after every frame start they sense). Their power reaches a receiver through the
//! mesh's own propagation model (path loss and static shadowing, the jammer's links drawn as links of their
//! own) and enters the SINR of every reception it overlaps, and the energy a carrier sense measures.
//!
//! [`JamField`] is the immutable description (shared by the mesh agent and the LMUs' peer links); the mesh
//! keeps the reactive bursts it triggered in [`Bursts`]. Powers in dBm and mW, positions in m, times in ns.

use super::phy::{Interferer, dbm_to_mw, success_probability};
use super::propagation::{MIN_DISTANCE_M, Propagation};
use super::radio::RadioModel;
use std::collections::VecDeque;

/// How a jammer transmits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JamMode {
    /// On air for its whole period.
    Continuous,
    /// Listens, and transmits for `burst_ns` after each frame start it senses (once its reaction time has
    /// passed), while no burst of its own is on.
    Reactive { burst_ns: u64 },
}

/// One jammer.
#[derive(Clone, Debug, PartialEq)]
pub struct Jammer {
    pub x_m: f64,
    pub y_m: f64,
    /// Radiated power (EIRP), dBm.
    pub eirp_dbm: f64,
    pub start_ns: u64,
    pub stop_ns: u64,
    pub mode: JamMode,
}

/// Index under which jammer `k`'s links draw their static shadowing (above every node index).
pub fn shadow_index(k: usize) -> u32 {
    u32::MAX - k as u32
}

/// The jammers of a run with the radio and propagation they act through.
#[derive(Clone, Debug)]
pub struct JamField {
    pub jammers: Vec<Jammer>,
    pub radio: RadioModel,
    prop: Propagation,
    seed: u64,
    /// Delay from a frame's start to a reactive jammer's burst: the frame's synchronisation header (what the
    /// jammer detects) plus its receive-to-transmit turnaround, ns.
    pub react_ns: u64,
}

/// Most reactive bursts kept at once (older ones are dropped first; they are long over by then).
pub const BURSTS_MAX: usize = 65_536;

impl JamField {
    pub fn new(jammers: Vec<Jammer>, radio: RadioModel, prop: Propagation, seed: u64) -> JamField {
        let shr = (radio.preamble_bytes + radio.sfd_bytes) as f64 * 8.0 / radio.bitrate_bps * 1e9;
        let react_ns = shr.round() as u64 + radio.turnaround_us as u64 * 1000;
        JamField { jammers, radio, prop, seed, react_ns }
    }

    fn loss_db(&self, k: usize, x_m: f64, y_m: f64, other: u32) -> f64 {
        let j = &self.jammers[k];
        let d = (j.x_m - x_m).hypot(j.y_m - y_m).max(MIN_DISTANCE_M);
        self.prop.loss_db(self.seed, shadow_index(k), other, d, self.radio.frequency_mhz)
    }

    /// Power of jammer `k` at a receiver at (`x_m`, `y_m`) whose links draw shadowing as `rx`, dBm (the
    /// receiver's antenna gain and system loss applied).
    pub fn rx_dbm(&self, k: usize, x_m: f64, y_m: f64, rx: u32) -> f64 {
        self.jammers[k].eirp_dbm + self.radio.antenna_gain_dbi
            - self.radio.system_loss_db
            - self.loss_db(k, x_m, y_m, rx)
    }

    /// Whether jammer `k` senses a frame sent from (`x_m`, `y_m`) by `tx` (its power at the jammer reaches
    /// the radio's sensitivity).
    pub fn senses(&self, k: usize, x_m: f64, y_m: f64, tx: u32) -> bool {
        self.radio.link_budget_offset_dbm() - self.loss_db(k, x_m, y_m, tx) >= self.radio.sensitivity_dbm
    }

    /// Energy of the continuous jammers on air at `t_ns` at a receiver at (`x_m`, `y_m`) whose links draw
    /// shadowing as `rx`, dBm (`None` when none is on): what the receiver's energy detection reads on an
    /// otherwise idle channel. Reactive jammers are silent until a frame starts, so an idle channel shows none
    /// of them.
    pub fn idle_energy_dbm(&self, t_ns: u64, x_m: f64, y_m: f64, rx: u32) -> Option<f64> {
        let mw: f64 = (0..self.jammers.len())
            .filter(|&k| {
                let j = &self.jammers[k];
                j.mode == JamMode::Continuous && j.start_ns <= t_ns && t_ns < j.stop_ns
            })
            .map(|k| dbm_to_mw(self.rx_dbm(k, x_m, y_m, rx)))
            .sum();
        (mw > 0.0).then(|| 10.0 * mw.log10())
    }

    /// Whether `t_ns` lies in some jammer's period.
    pub fn in_period(&self, t_ns: u64) -> bool {
        self.jammers.iter().any(|j| j.start_ns <= t_ns && t_ns < j.stop_ns)
    }

    /// The burst jammer `k` (reactive) sends for a frame starting at `start_ns`, if it is active then.
    pub fn burst_for(&self, k: usize, start_ns: u64) -> Option<(u64, u64)> {
        let j = &self.jammers[k];
        let JamMode::Reactive { burst_ns } = j.mode else { return None };
        if start_ns < j.start_ns || start_ns >= j.stop_ns {
            return None;
        }
        let a = start_ns + self.react_ns;
        let b = (a + burst_ns).min(j.stop_ns);
        (a < b).then_some((a, b))
    }

    /// Probability that a frame of `frame_bytes` network bytes sent at `start_ns` from (`tx_xy`, shadow
    /// index `tx`) to (`rx_xy`, `rx`) survives, with and without the jammers: (with, without). The frame is
    /// judged alone (no other frames on air): the link it crosses has its own loss model for everything else.
    pub fn link_success(
        &self,
        start_ns: u64,
        tx_xy: (f64, f64),
        tx: u32,
        rx_xy: (f64, f64),
        rx: u32,
        frame_bytes: usize,
    ) -> (f64, f64) {
        let r = &self.radio;
        let psdu = r.data_psdu_bytes(frame_bytes);
        let end_ns = start_ns + r.airtime_ns(psdu);
        let d = (tx_xy.0 - rx_xy.0).hypot(tx_xy.1 - rx_xy.1).max(MIN_DISTANCE_M);
        let signal = dbm_to_mw(r.link_budget_offset_dbm() - self.prop.loss_db(self.seed, tx, rx, d, r.frequency_mhz));
        let noise = dbm_to_mw(r.noise_floor_dbm());
        let bits = 8.0 * psdu as f64;
        let clear = success_probability(r, start_ns, end_ns, signal, noise, bits, &[]);
        let mut ints = Vec::new();
        for k in 0..self.jammers.len() {
            let j = &self.jammers[k];
            let span = match j.mode {
                JamMode::Continuous => Some((j.start_ns, j.stop_ns)),
                JamMode::Reactive { .. } if self.senses(k, tx_xy.0, tx_xy.1, tx) => self.burst_for(k, start_ns),
                JamMode::Reactive { .. } => None,
            };
            if let Some((a, b)) = span
                && a < end_ns
                && b > start_ns
            {
                ints.push(Interferer { start: a, end: b, mw: dbm_to_mw(self.rx_dbm(k, rx_xy.0, rx_xy.1, rx)) });
            }
        }
        if ints.is_empty() {
            return (clear, clear);
        }
        (success_probability(r, start_ns, end_ns, signal, noise, bits, &ints), clear)
    }
}

/// Reactive bursts on the mesh's channel, (start, end, jammer), in start order.
#[derive(Clone, Debug, Default)]
pub struct Bursts {
    list: VecDeque<(u64, u64, u32)>,
    /// End of each jammer's latest burst (a jammer on air does not react).
    busy_until: Vec<u64>,
}

impl Bursts {
    pub fn new(jammers: usize) -> Bursts {
        Bursts { list: VecDeque::new(), busy_until: vec![0; jammers] }
    }

    /// Records jammer `k`'s burst over [`a`, `b`) unless it is still on air at `a` (returns whether it did);
    /// drops bursts that ended before `keep_after_ns`.
    pub fn push(&mut self, k: usize, a: u64, b: u64, keep_after_ns: u64) -> bool {
        while self.list.front().is_some_and(|&(_, e, _)| e < keep_after_ns) || self.list.len() >= BURSTS_MAX {
            self.list.pop_front();
        }
        if self.busy_until[k] > a {
            return false;
        }
        self.busy_until[k] = b;
        self.list.push_back((a, b, k as u32));
        true
    }

    /// Bursts overlapping [`start`, `end`).
    pub fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, u64, usize)> + '_ {
        self.list.iter().filter(move |&&(a, b, _)| a < end && b > start).map(|&(a, b, k)| (a, b, k as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn radio() -> RadioModel {
        let text =
            std::fs::read_to_string(format!("{}/models/radio-sun-fsk-868.ron", env!("CARGO_MANIFEST_DIR"))).unwrap();
        ron::from_str(&text).unwrap()
    }

    fn field(mode: JamMode, eirp_dbm: f64) -> JamField {
        let j = Jammer { x_m: 0.0, y_m: 0.0, eirp_dbm, start_ns: 1_000_000_000, stop_ns: 2_000_000_000, mode };
        JamField::new(vec![j], radio(), Propagation::default(), 7)
    }

    #[test]
    fn a_strong_jammer_kills_a_link_only_in_its_period() {
        let f = field(JamMode::Continuous, 14.0);
        let (tx, rx) = ((200.0, 0.0), (10.0, 0.0));
        let (with, clear) = f.link_success(1_500_000_000, tx, 1, rx, 2, 30);
        assert!(clear > 0.99 && with < 0.01, "{with} {clear}");
        let (with, clear) = f.link_success(2_500_000_000, tx, 1, rx, 2, 30);
        assert_eq!(with, clear);
        // Far away, a weak jammer hardly matters.
        let weak = field(JamMode::Continuous, -30.0);
        let (with, clear) = weak.link_success(1_500_000_000, (5000.0, 0.0), 1, (5100.0, 0.0), 2, 30);
        assert!((with - clear).abs() < 1e-3, "{with} {clear}");
    }

    #[test]
    fn a_reactive_jammer_hits_the_frames_it_senses_after_its_reaction_time() {
        let f = field(JamMode::Reactive { burst_ns: 2_000_000 }, 14.0);
        let (a, b) = f.burst_for(0, 1_200_000_000).unwrap();
        assert_eq!(a, 1_200_000_000 + f.react_ns);
        assert_eq!(b - a, 2_000_000);
        assert_eq!(f.burst_for(0, 500_000_000), None);
        let (with, clear) = f.link_success(1_200_000_000, (200.0, 0.0), 1, (10.0, 0.0), 2, 30);
        assert!(with < 0.01 && clear > 0.99, "{with} {clear}");
        // A sender the jammer cannot hear is not jammed.
        let (with, clear) = f.link_success(1_200_000_000, (20_000.0, 0.0), 1, (20_100.0, 0.0), 2, 30);
        assert_eq!(with, clear);
        let mut bursts = Bursts::new(1);
        bursts.push(0, 10, 20, 0);
        bursts.push(0, 15, 25, 0);
        bursts.push(0, 30, 40, 0);
        assert_eq!(bursts.overlapping(0, 100).count(), 2);
        bursts.push(0, 100, 110, 50);
        assert_eq!(bursts.overlapping(0, 1000).map(|b| b.0).collect::<Vec<_>>(), vec![100]);
    }
}
