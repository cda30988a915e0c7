//! The link LMUs use to talk to their neighbours until the radio mesh carries the frames: a configurable
//! one-way latency with jitter and an independent loss probability, behind the small [`PeerLink`] trait the
//! mesh will implement too. Units: ms in the model, ns in time; draws come from a seeded stream.
//!
//! Jammers ([`JamLink`]) act on this link with the mesh's physics: the frame's SINR at the receiver's pole
//! with the jammers' power, through the mesh's propagation model, decides whether it survives them.

use crate::engine::{SimDuration, SimRng};
use crate::mesh::jam::JamField;
use gridtwin_firmware::lmu::flisr::PeerId;
use rand::RngExt;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Carries a frame from one LMU to another: returns the delivery delay, or `None` when the frame is lost.
pub trait PeerLink {
    fn transmit(&mut self, from: PeerId, to: PeerId, frame_len: usize) -> Option<SimDuration>;
}

/// Latency and loss of the stand-in link.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkModel {
    /// Fixed one-way latency (ms).
    pub latency_ms: f64,
    /// Uniform extra latency in 0..jitter_ms (ms).
    pub jitter_ms: f64,
    /// Probability that a frame is lost (0..1).
    pub loss: f64,
}

impl Default for LinkModel {
    fn default() -> Self {
        LinkModel { latency_ms: 5.0, jitter_ms: 3.0, loss: 0.01 }
    }
}

impl LinkModel {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.latency_ms.is_finite() && (0.0..=10_000.0).contains(&self.latency_ms)) {
            return Err(format!("latency_ms: must be within 0..=10000 (got {})", self.latency_ms));
        }
        if !(self.jitter_ms.is_finite() && (0.0..=10_000.0).contains(&self.jitter_ms)) {
            return Err(format!("jitter_ms: must be within 0..=10000 (got {})", self.jitter_ms));
        }
        if !(self.loss.is_finite() && (0.0..=1.0).contains(&self.loss)) {
            return Err(format!("loss: must be within 0..=1 (got {})", self.loss));
        }
        Ok(())
    }
}

/// The stand-in link with its own random stream.
pub struct LossyLink {
    m: LinkModel,
    rng: SimRng,
    pub sent: u64,
    pub lost: u64,
}

impl LossyLink {
    pub fn new(m: LinkModel, rng: SimRng) -> Self {
        LossyLink { m, rng, sent: 0, lost: 0 }
    }
}

impl PeerLink for LossyLink {
    fn transmit(&mut self, _from: PeerId, _to: PeerId, _len: usize) -> Option<SimDuration> {
        self.sent += 1;
        let u: f64 = self.rng.random();
        let j: f64 = self.rng.random();
        if u < self.m.loss {
            self.lost += 1;
            return None;
        }
        let ns = ((self.m.latency_ms + j * self.m.jitter_ms) * 1e6).round() as u64;
        Some(SimDuration::from_nanos(ns))
    }
}

/// How long a frame corrupted by a jammer at this LMU's receiver (see [`crate::twin::LmuMsg::Corrupted`])
/// counts as evidence that its channel is jammed, ns. A frame that fails its check at a strong signal is what
/// a reactive jammer, silent on an idle channel, leaves behind (a low delivery ratio at a high signal
/// strength: the consistency check of jamming detection). Longer than the longest wait between retries on a
/// jammed channel (8 x `retry_ms`, see the firmware's `JAMMED_BACKOFF_MAX`), so an LMU whose every retry
/// draws a corrupted answer stays jammed between them.
pub const CORRUPTED_EVIDENCE_NS: u64 = 5_000_000_000;

/// Jamming on one LMU's peer link: the jammers, the poles of this LMU and its neighbours, a random stream
/// for the survival draws, and delivery counts inside and outside the jamming periods.
pub struct JamLink {
    field: Arc<JamField>,
    /// Pole of each LMU that may send or receive on this link, m.
    poles: BTreeMap<PeerId, (f64, f64)>,
    rng: SimRng,
    /// Frames lost to the jammers.
    pub lost: u64,
    /// Frames handed to the link while a jammer was in its period, and those delivered.
    pub sent_in: u64,
    pub delivered_in: u64,
    /// The same outside the jamming periods.
    pub sent_out: u64,
    pub delivered_out: u64,
    /// Last frame a jammer corrupted at this LMU's receiver, ns (see [`crate::twin::LmuMsg::Corrupted`]).
    corrupted_rx_ns: Option<u64>,
}

impl JamLink {
    pub fn new(field: Arc<JamField>, poles: BTreeMap<PeerId, (f64, f64)>, rng: SimRng) -> JamLink {
        JamLink {
            field,
            poles,
            rng,
            lost: 0,
            sent_in: 0,
            delivered_in: 0,
            sent_out: 0,
            delivered_out: 0,
            corrupted_rx_ns: None,
        }
    }

    /// Whether a frame of `frame_len` bytes from `from` to `to` sent at `now_ns` survives the jammers (it
    /// is lost with the probability the jammers add to its error rate at the receiver: one minus the ratio
    /// of its success with and without them, the link's own loss model covering the rest). Peers of unknown
    /// position are not jammed.
    pub fn survives(&mut self, now_ns: u64, from: PeerId, to: PeerId, frame_len: usize) -> bool {
        let (Some(&a), Some(&b)) = (self.poles.get(&from), self.poles.get(&to)) else { return true };
        let (with, clear) = self.field.link_success(now_ns, a, from as u32, b, to as u32, frame_len);
        if with >= clear || clear <= 0.0 {
            return true;
        }
        let u: f64 = self.rng.random();
        let ok = u < with / clear;
        if !ok {
            self.lost += 1;
        }
        ok
    }

    /// A frame a jammer corrupted arrived at this LMU's receiver at `now_ns`.
    pub fn note_corrupted(&mut self, now_ns: u64) {
        self.corrupted_rx_ns = Some(now_ns);
    }

    /// Whether LMU `me`'s radio finds its channel jammed at `now_ns`: the continuous jammers' energy at its
    /// pole reaches the radio's clear-channel threshold (the energy detection of 802.15.4 CCA mode 1), or a
    /// frame was corrupted at its receiver within [`CORRUPTED_EVIDENCE_NS`] (what a reactive jammer leaves).
    pub fn jammed(&self, now_ns: u64, me: PeerId) -> bool {
        if self.corrupted_rx_ns.is_some_and(|c| now_ns.saturating_sub(c) <= CORRUPTED_EVIDENCE_NS) {
            return true;
        }
        let Some(&(x, y)) = self.poles.get(&me) else { return false };
        self.field.idle_energy_dbm(now_ns, x, y, me as u32).is_some_and(|e| e >= self.field.radio.cca_threshold_dbm)
    }

    /// Counts a frame handed to the link at `now_ns` and whether it was delivered.
    pub fn count(&mut self, now_ns: u64, delivered: bool) {
        if self.field.in_period(now_ns) {
            self.sent_in += 1;
            self.delivered_in += delivered as u64;
        } else {
            self.sent_out += 1;
            self.delivered_out += delivered as u64;
        }
    }
}
