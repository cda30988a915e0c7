//! PHY error models: bit error rate from SINR, and packet success over a frame whose interference changes
//! as other transmissions start and stop (powers in mW, SINR linear, durations in ns).
//!
//! - O-QPSK (802.15.4 2.4 GHz): IEEE 802.15.4-2006 annex E.4.1.7, the model ns-3's `LrWpanErrorModel` uses:
//!   `BER = 8/15 * 1/16 * sum_{k=2}^{16} (-1)^k C(16,k) exp(20 SINR (1/k - 1))`.
//! - SUN 2-FSK: non-coherent binary FSK, `BER = 1/2 exp(-Eb/N0 / 2)` with `Eb/N0 = SINR * B / R`.
//!
//! A frame of `n` bits survives a stretch of constant SINR with probability `(1 - BER)^n`; a frame is cut into
//! such stretches at every interferer's start and end, and the stretches multiply.

use super::radio::{PhyKind, RadioModel};

/// dBm to mW.
#[inline]
pub fn dbm_to_mw(dbm: f64) -> f64 {
    (dbm * (std::f64::consts::LN_10 / 10.0)).exp()
}
/// mW to dBm.
#[inline]
pub fn mw_to_dbm(mw: f64) -> f64 {
    10.0 * mw.log10()
}

const BINOM16: [f64; 17] = [
    1.0, 16.0, 120.0, 560.0, 1820.0, 4368.0, 8008.0, 11440.0, 12870.0, 11440.0, 8008.0, 4368.0, 1820.0, 560.0, 120.0,
    16.0, 1.0,
];

/// Bit error rate of 802.15.4 O-QPSK at linear SINR `snr`.
pub fn oqpsk_ber(snr: f64) -> f64 {
    let mut sum = 0.0;
    for (k, c) in BINOM16.iter().enumerate().skip(2) {
        let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
        sum += sign * c * (20.0 * snr * (1.0 / k as f64 - 1.0)).exp();
    }
    (8.0 / 15.0 / 16.0 * sum).clamp(0.0, 0.5)
}

/// Bit error rate of non-coherent binary FSK at `ebn0` (linear).
pub fn fsk_ber(ebn0: f64) -> f64 {
    (0.5 * (-ebn0 / 2.0).exp()).clamp(0.0, 0.5)
}

/// Bit error rate of `radio` at linear SINR (over its noise bandwidth).
pub fn ber(radio: &RadioModel, sinr: f64) -> f64 {
    match radio.phy {
        PhyKind::OQpsk => oqpsk_ber(sinr),
        PhyKind::SunFsk => fsk_ber(sinr * radio.noise_bandwidth_hz / radio.bitrate_bps),
    }
}

/// Packet error rate of `bytes` at constant linear SINR.
pub fn per(radio: &RadioModel, sinr: f64, bytes: u32) -> f64 {
    1.0 - (1.0 - ber(radio, sinr)).powf(8.0 * bytes as f64)
}

/// Received power at which `bytes` frames see `target_per` with noise only, dBm (bisection).
pub fn sensitivity_for_per_dbm(radio: &RadioModel, bytes: u32, target_per: f64) -> f64 {
    let noise = radio.noise_floor_dbm();
    let (mut lo, mut hi) = (-20.0, 40.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if per(radio, dbm_to_mw(mid) / 1.0, bytes) > target_per {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    noise + hi
}

/// One interferer as a receiver sees it: on air over `[start, end)` ns with power `mw`.
#[derive(Clone, Copy, Debug)]
pub struct Interferer {
    pub start: u64,
    pub end: u64,
    pub mw: f64,
}

/// Probability that a frame on air over `[start, end)` at `signal_mw`, with `bits` of payload protected by the
/// checksum, survives noise `noise_mw` and the given interferers (which may overlap it partly).
pub fn success_probability(
    radio: &RadioModel,
    start: u64,
    end: u64,
    signal_mw: f64,
    noise_mw: f64,
    bits: f64,
    interferers: &[Interferer],
) -> f64 {
    if end <= start {
        return 0.0;
    }
    if interferers.is_empty() {
        return (1.0 - ber(radio, signal_mw / noise_mw)).powf(bits);
    }
    let total = (end - start) as f64;
    // Sweep over the times where the interference level changes (on the stack for the usual few interferers).
    let mut level = 0.0;
    let mut stack = [(0u64, 0f64); 64];
    let mut heap = Vec::new();
    let ev: &mut [(u64, f64)] = if 2 * interferers.len() <= stack.len() {
        &mut stack[..]
    } else {
        heap.resize(2 * interferers.len(), (0, 0.0));
        &mut heap[..]
    };
    let mut n = 0;
    for i in interferers {
        if i.end <= start || i.start >= end {
            continue;
        }
        if i.start <= start {
            level += i.mw;
        } else {
            ev[n] = (i.start, i.mw);
            n += 1;
        }
        if i.end < end {
            ev[n] = (i.end, -i.mw);
            n += 1;
        }
    }
    let ev = &mut ev[..n];
    ev.sort_unstable_by_key(|e| e.0);
    let segment = |a: u64, b: u64, i_mw: f64| {
        let sinr = signal_mw / (noise_mw + i_mw.max(0.0));
        (1.0 - ber(radio, sinr)).powf(bits * (b - a) as f64 / total)
    };
    let (mut t, mut p) = (start, 1.0);
    for &(at, d) in ev.iter() {
        if at > t {
            p *= segment(t, at, level);
            t = at;
        }
        level += d;
    }
    if end > t {
        p *= segment(t, end, level);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn radio(name: &str) -> RadioModel {
        let text = std::fs::read_to_string(format!("{}/models/{name}.ron", env!("CARGO_MANIFEST_DIR"))).unwrap();
        ron::from_str(&text).unwrap()
    }

    #[test]
    fn oqpsk_per_matches_ieee_annex_e_and_ns3() {
        let r = radio("radio-oqpsk-2450");
        let p20 = per(&r, 1.0, 20);
        let p127 = per(&r, dbm_to_mw(1.0), 127);
        assert!((p20 - 0.0255).abs() < 1e-4, "{p20}");
        assert!((p127 - 0.0130).abs() < 1e-4, "{p127}");
        // Monotone in SINR and saturates.
        assert!(per(&r, 0.5, 20) > p20 && per(&r, 2.0, 20) < p20);
        assert!(per(&r, 1e-3, 127) > 0.999);
    }

    #[test]
    fn fsk_ber_closed_form() {
        assert!((fsk_ber(0.0) - 0.5).abs() < 1e-12);
        assert!((fsk_ber(20.0) - 0.5 * (-10f64).exp()).abs() < 1e-15);
    }

    #[test]
    fn model_sensitivities_agree_with_datasheets() {
        // 802.15.4 defines sensitivity at 1 % PER (O-QPSK) and 10 % PER (SUN-FSK) for a 20-octet PSDU.
        for (m, per_target) in [("radio-sun-fsk-868", 0.1), ("radio-oqpsk-2450", 0.01), ("radio-oqpsk-2450-pa", 0.01)] {
            let r = radio(m);
            let s = sensitivity_for_per_dbm(&r, 20, per_target);
            assert!((s - r.sensitivity_dbm).abs() < 2.0, "{m}: error model gives {s:.1} dBm");
        }
    }

    #[test]
    fn partial_overlap_is_worse_than_none_and_better_than_full() {
        let r = radio("radio-oqpsk-2450");
        let noise = dbm_to_mw(r.noise_floor_dbm());
        let sig = noise * 10f64.powf(0.4); // 4 dB SNR
        let bits = 8.0 * 60.0;
        let clean = success_probability(&r, 0, 1000, sig, noise, bits, &[]);
        let half =
            success_probability(&r, 0, 1000, sig, noise, bits, &[Interferer { start: 500, end: 3000, mw: noise }]);
        let full = success_probability(&r, 0, 1000, sig, noise, bits, &[Interferer { start: 0, end: 1000, mw: noise }]);
        assert!(clean > half && half > full, "{clean} {half} {full}");
        // Half the bits at the interfered SINR: the product of the two halves.
        let expect = clean.sqrt() * full.sqrt();
        assert!((half - expect).abs() < 1e-12);
    }
}
