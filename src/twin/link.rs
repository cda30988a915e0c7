//! The link LMUs use to talk to their neighbours until the radio mesh carries the frames: a configurable
//! one-way latency with jitter and an independent loss probability, behind the small [`PeerLink`] trait the
//! mesh will implement too. Units: ms in the model, ns in time; draws come from a seeded stream.

use crate::engine::{SimDuration, SimRng};
use gridtwin_firmware::lmu::flisr::PeerId;
use rand::RngExt;

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
