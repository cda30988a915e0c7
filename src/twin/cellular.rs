//! The gateway's 3G/4G modem and backhaul as a digital twin (`models/modem-*.ron`).
//!
//! What it models, with units in the names:
//! - **Attach** once at power-up (`attach_ms`), and **RRC promotion** from idle to connected before a transfer
//!   after more than `tail_ms` of inactivity (`promotion_ms`); the radio stays connected for the `tail_ms`
//!   inactivity timer after the last transfer (the "tail" that dominates modem energy).
//! - **Round-trip time**: lognormal with median `rtt_median_ms` and log-sigma `rtt_sigma`, drawn from the
//!   agent's own stream; one-way latency is half a draw plus the transfer time at `uplink_kbps`/`downlink_kbps`.
//!   Transfers on one direction are delivered in order (TCP).
//! - **Outages**: intervals without coverage (scheduled in the scenario, or drawn as an alternating renewal
//!   process); a connection breaks at an outage's start and bytes in flight are lost.
//! - **Overheads**: IPv4 + TCP headers per segment (`ip_tcp_header_bytes`, segments of at most `mss_bytes`,
//!   one pure ACK segment back per data segment), the TCP handshake (3 segments) and, with TLS, the handshake
//!   bytes (`tls_handshake_bytes`, a scenario parameter) plus `tls_record_bytes` per record.
//! - **Energy**: promotion (`promotion_mw` x `promotion_ms`) + transfer (`tx_mw` / `rx_mw` x airtime) + tail
//!   (`tail_mw` x min(gap, `tail_ms`)) per upload, and `idle_mw` otherwise.
//! - **Bytes per day** as a carrier bills them: every IP byte both ways.
//!
//! `Usage` records transfers so that energy and bytes can be computed for the run as simulated and for
//! alternatives (TLS on/off, one reading per publish) with the very same functions.

use crate::engine::{SimDuration, SimRng, SimTime};
use rand::RngExt;
use serde::{Deserialize, Serialize};

/// A modem's datasheet and network figures.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModemModel {
    /// "3G" or "4G" (informational).
    pub technology: String,
    pub attach_ms: f64,
    pub promotion_ms: f64,
    pub tail_ms: f64,
    pub rtt_median_ms: f64,
    pub rtt_sigma: f64,
    pub uplink_kbps: f64,
    pub downlink_kbps: f64,
    pub mss_bytes: u32,
    pub ip_tcp_header_bytes: u32,
    pub tls_record_bytes: u32,
    pub idle_mw: f64,
    pub promotion_mw: f64,
    pub tx_mw: f64,
    pub rx_mw: f64,
    pub tail_mw: f64,
}

impl ModemModel {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let pos = [
            ("uplink_kbps", self.uplink_kbps),
            ("downlink_kbps", self.downlink_kbps),
            ("rtt_median_ms", self.rtt_median_ms),
        ];
        for (f, v) in pos {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{f}: must be a positive number"));
            }
        }
        let nonneg = [
            ("attach_ms", self.attach_ms),
            ("promotion_ms", self.promotion_ms),
            ("tail_ms", self.tail_ms),
            ("rtt_sigma", self.rtt_sigma),
            ("idle_mw", self.idle_mw),
            ("promotion_mw", self.promotion_mw),
            ("tx_mw", self.tx_mw),
            ("rx_mw", self.rx_mw),
            ("tail_mw", self.tail_mw),
        ];
        for (f, v) in nonneg {
            if !(v.is_finite() && (0.0..=1e7).contains(&v)) {
                return Err(format!("{f}: must be a non-negative number below 1e7"));
            }
        }
        if !(64..=65_535).contains(&self.mss_bytes) {
            return Err("mss_bytes: must be in 64..=65535".into());
        }
        if self.ip_tcp_header_bytes > 120 || self.tls_record_bytes > 256 {
            return Err("ip_tcp_header_bytes/tls_record_bytes: implausibly large".into());
        }
        Ok(())
    }
}

fn ms(x: f64) -> SimDuration {
    SimDuration::from_nanos((x.max(0.0) * 1e6).round() as u64)
}

/// TLS settings of the backhaul connection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tls {
    /// Handshake bytes, client + server (about 1,000 with one ECDSA P-256 certificate, 1,600 with RSA-2048).
    pub handshake_bytes: u32,
}

/// One transfer on the radio: when, and MQTT bytes (before TLS) up and down; or a connection set-up (TCP
/// handshake, and the TLS handshake when TLS is on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    pub at: SimTime,
    pub up_app_bytes: u32,
    pub down_app_bytes: u32,
    /// Of `up_app_bytes`, the bytes of batch PUBLISH packets (for the one-reading-per-publish comparison).
    pub publish_up_bytes: u32,
    pub connect: bool,
}

/// Bytes and energy of a sequence of transfers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UsageFigures {
    pub ip_bytes_up: u64,
    pub ip_bytes_down: u64,
    pub uploads: u64,
    pub promotions: u64,
    pub energy_j: f64,
}

impl UsageFigures {
    pub fn ip_bytes(&self) -> u64 {
        self.ip_bytes_up + self.ip_bytes_down
    }
}

impl ModemModel {
    /// IP bytes for `app` bytes of one write in one direction: TLS record overhead (if TLS), IP/TCP headers
    /// per segment. Returns (bytes this way, bytes of pure ACKs the other way).
    pub fn wire_bytes(&self, app: u32, tls: bool) -> (u64, u64) {
        if app == 0 {
            return (0, 0);
        }
        let payload = app as u64 + if tls { self.tls_record_bytes as u64 } else { 0 };
        let segments = payload.div_ceil(self.mss_bytes as u64);
        (payload + segments * self.ip_tcp_header_bytes as u64, segments * self.ip_tcp_header_bytes as u64)
    }

    /// Airtime of `bytes` at `kbps`.
    fn airtime_s(bytes: u64, kbps: f64) -> f64 {
        bytes as f64 * 8.0 / (kbps * 1000.0)
    }

    /// IP bytes of a connection set-up (up, down): TCP SYN / SYN-ACK / ACK (20 option bytes on SYNs) and,
    /// with TLS, the handshake (a quarter from the client), each flight with its segment headers.
    pub fn setup_bytes(&self, tls: Option<Tls>) -> (u64, u64) {
        let hdr = self.ip_tcp_header_bytes as u64;
        let (mut up, mut down) = (2 * hdr + 20, hdr + 20);
        if let Some(t) = tls {
            let client = t.handshake_bytes as u64 / 4;
            let server = t.handshake_bytes as u64 - client;
            let seg = |n: u64| n.div_ceil(self.mss_bytes as u64) * hdr;
            up += client + seg(client) + seg(server);
            down += server + seg(server) + seg(client);
        }
        (up, down)
    }

    /// Bytes and energy of `transfers` (sorted by time) over `span`, with or without TLS.
    pub fn usage(&self, transfers: &[Transfer], tls: Option<Tls>, span: SimDuration) -> UsageFigures {
        let mut f = UsageFigures::default();
        let tail_s = self.tail_ms / 1000.0;
        let mut radio_busy_s = 0.0;
        let mut last_end: Option<f64> = None;
        let mut energy = 0.0;
        for t in transfers {
            let (up, down) = if t.connect {
                self.setup_bytes(tls)
            } else {
                let (up, ack_down) = self.wire_bytes(t.up_app_bytes, tls.is_some());
                let (down, ack_up) = self.wire_bytes(t.down_app_bytes, tls.is_some());
                (up + ack_up, down + ack_down)
            };
            f.ip_bytes_up += up;
            f.ip_bytes_down += down;
            let start = t.at.as_secs_f64();
            let promote = match last_end {
                Some(e) if start <= e + tail_s => {
                    let gap = (start - e).max(0.0);
                    energy += gap * self.tail_mw / 1000.0;
                    radio_busy_s += gap;
                    false
                }
                Some(_) => {
                    energy += tail_s * self.tail_mw / 1000.0;
                    radio_busy_s += tail_s;
                    true
                }
                None => true,
            };
            let mut s = start;
            if promote {
                f.promotions += 1;
                energy += self.promotion_ms / 1000.0 * self.promotion_mw / 1000.0;
                radio_busy_s += self.promotion_ms / 1000.0;
                s += self.promotion_ms / 1000.0;
            }
            let tx = Self::airtime_s(up, self.uplink_kbps);
            let rx = Self::airtime_s(down, self.downlink_kbps);
            energy += tx * self.tx_mw / 1000.0 + rx * self.rx_mw / 1000.0;
            radio_busy_s += tx + rx;
            if t.up_app_bytes > 0 {
                f.uploads += 1;
            }
            let end = s + tx + rx;
            last_end = Some(last_end.map_or(end, |e: f64| e.max(end)));
        }
        if let Some(e) = last_end {
            let left = (span.as_secs_f64() - e).clamp(0.0, tail_s);
            energy += left * self.tail_mw / 1000.0;
            radio_busy_s += left;
        }
        let idle_s = (span.as_secs_f64() - radio_busy_s).max(0.0);
        energy += idle_s * self.idle_mw / 1000.0;
        f.energy_j = energy;
        f
    }
}

/// An outage: no coverage in `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    pub start: SimTime,
    pub end: SimTime,
}

/// The live link state used by the gateway agent: promotion and in-order delivery both ways.
#[derive(Clone, Debug)]
pub struct CellLink {
    pub model: ModemModel,
    pub tls: Option<Tls>,
    /// Extra one-way latency between the cell and the broker (core network, internet).
    pub core_latency: SimDuration,
    outages: Vec<Outage>,
    last_activity: Option<SimTime>,
    up_free_at: SimTime,
    down_free_at: SimTime,
    pub transfers: Vec<Transfer>,
    /// Connection set-ups (TCP + TLS handshakes) and connections broken by an outage.
    pub connects: u64,
    pub broken: u64,
}

impl CellLink {
    pub fn new(model: ModemModel, tls: Option<Tls>, core_latency: SimDuration, mut outages: Vec<Outage>) -> Self {
        outages.sort_by_key(|o| (o.start, o.end));
        CellLink {
            model,
            tls,
            core_latency,
            outages,
            last_activity: None,
            up_free_at: SimTime::ZERO,
            down_free_at: SimTime::ZERO,
            transfers: Vec::new(),
            connects: 0,
            broken: 0,
        }
    }

    /// The outages (sorted).
    pub fn outages(&self) -> &[Outage] {
        &self.outages
    }
    /// The outage covering `t`, if any.
    pub fn outage_at(&self, t: SimTime) -> Option<Outage> {
        self.outages.iter().copied().find(|o| o.start <= t && t < o.end)
    }
    /// The first outage starting after `t`.
    pub fn next_outage_after(&self, t: SimTime) -> Option<Outage> {
        self.outages.iter().copied().find(|o| o.start > t)
    }

    fn rtt(&self, rng: &mut SimRng) -> SimDuration {
        // Lognormal: median x exp(sigma x z), z standard normal (Box-Muller from two uniforms).
        let u1: f64 = rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = rng.random_range(0.0..1.0);
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        ms(self.model.rtt_median_ms * (self.model.rtt_sigma * z).exp())
    }

    fn half_rtt(&self, rng: &mut SimRng) -> SimDuration {
        SimDuration::from_nanos(self.rtt(rng).as_nanos() / 2)
    }

    fn core_latency2(&self) -> SimDuration {
        SimDuration::from_nanos(self.core_latency.as_nanos().saturating_mul(2))
    }

    fn promotion(&mut self, now: SimTime) -> SimDuration {
        let tail = ms(self.model.tail_ms);
        let p = match self.last_activity {
            Some(t) if now <= t.saturating_add(tail) => SimDuration::ZERO,
            Some(_) => ms(self.model.promotion_ms),
            None => ms(self.model.attach_ms + self.model.promotion_ms),
        };
        self.last_activity = Some(now);
        p
    }

    /// Opens a connection at `now`: returns when it is up (promotion, TCP handshake, TLS handshake).
    pub fn connect(&mut self, now: SimTime, rng: &mut SimRng) -> SimTime {
        self.connects += 1;
        let p = self.promotion(now);
        let mut t = now.saturating_add(p).saturating_add(self.rtt(rng)).saturating_add(self.core_latency2());
        if let Some(tls) = self.tls {
            let server = tls.handshake_bytes - tls.handshake_bytes / 4;
            t = t.saturating_add(self.rtt(rng)).saturating_add(self.core_latency2()).saturating_add(
                SimDuration::from_nanos((ModemModel::airtime_s(server as u64, self.model.downlink_kbps) * 1e9) as u64),
            );
        }
        self.transfers.push(Transfer { at: now, connect: true, ..Default::default() });
        self.last_activity = Some(t);
        t
    }

    /// When the last bytes sent down so far reach the modem.
    pub fn down_idle_at(&self) -> SimTime {
        self.down_free_at
    }

    /// Sends `bytes` of MQTT up at `now`: returns the arrival time at the broker.
    pub fn send_up(&mut self, now: SimTime, bytes: u32, publish_bytes: u32, rng: &mut SimRng) -> SimTime {
        let p = self.promotion(now);
        let (wire, _) = self.model.wire_bytes(bytes, self.tls.is_some());
        let air = SimDuration::from_nanos((ModemModel::airtime_s(wire, self.model.uplink_kbps) * 1e9) as u64);
        let start = now.saturating_add(p).max(self.up_free_at);
        self.up_free_at = start.saturating_add(air);
        self.last_activity = Some(self.up_free_at);
        self.transfers.push(Transfer {
            at: now,
            up_app_bytes: bytes,
            publish_up_bytes: publish_bytes,
            ..Default::default()
        });
        self.up_free_at.saturating_add(self.half_rtt(rng)).saturating_add(self.core_latency)
    }

    /// Bytes from the broker reaching the cell at `at_cell`: returns when the modem has them.
    pub fn send_down(&mut self, at_cell: SimTime, bytes: u32, rng: &mut SimRng) -> SimTime {
        let p = self.promotion(at_cell);
        let (wire, _) = self.model.wire_bytes(bytes, self.tls.is_some());
        let air = SimDuration::from_nanos((ModemModel::airtime_s(wire, self.model.downlink_kbps) * 1e9) as u64);
        let start = at_cell.saturating_add(p).saturating_add(self.half_rtt(rng)).max(self.down_free_at);
        self.down_free_at = start.saturating_add(air);
        self.last_activity = Some(self.down_free_at);
        self.transfers.push(Transfer { at: at_cell, down_app_bytes: bytes, ..Default::default() });
        self.down_free_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn lte() -> ModemModel {
        ron::from_str(include_str!("../../models/modem-lte-cat1.ron")).unwrap()
    }

    #[test]
    fn overheads_and_tail_energy() {
        let m = lte();
        m.validate().unwrap();
        // One 100-byte write: one segment, 40 bytes of headers, a 40-byte ACK back.
        assert_eq!(m.wire_bytes(100, false), (140, 40));
        assert_eq!(m.wire_bytes(100, true), (162, 40));
        assert_eq!(m.wire_bytes(3000, false).0, 3000 + 3 * 40);
        let day = SimDuration::from_secs(86_400);
        let one = |at_s: u64| Transfer {
            at: SimTime::from_secs(at_s),
            up_app_bytes: 100,
            down_app_bytes: 4,
            ..Default::default()
        };
        // Two uploads 1 s apart share one promotion; 1 h apart each pay one and a full tail.
        let close = m.usage(&[one(10), one(11)], None, day);
        let apart = m.usage(&[one(10), one(3610)], None, day);
        assert_eq!((close.promotions, apart.promotions), (1, 2));
        assert!(apart.energy_j > close.energy_j);
        assert_eq!(close.ip_bytes(), 2 * (140 + 40 + 44 + 40));
    }
}
