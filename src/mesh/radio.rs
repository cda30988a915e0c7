//! Radio hardware model: the datasheet of a mesh radio (`models/radio-*.ron`), in dBm, dB, MHz, bit/s, µs, mA, V.
//!
//! It fixes the PHY (modulation, frequency, rate, framing), the link budget (power, sensitivity, noise figure,
//! antenna and cable), the 802.15.4 MAC timing and constants, and the supply currents used for energy.

use serde::{Deserialize, Serialize};

/// Modulation family, which selects the bit-error model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PhyKind {
    /// IEEE 802.15.4g SUN-FSK, binary FSK with non-coherent detection.
    SunFsk,
    /// IEEE 802.15.4 2.4 GHz O-QPSK with DSSS (16-ary orthogonal signalling).
    OQpsk,
}

/// 802.15.4 unslotted CSMA/CA constants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacParams {
    /// macMinBE.
    pub min_be: u8,
    /// macMaxBE.
    pub max_be: u8,
    /// macMaxCSMABackoffs.
    pub max_backoffs: u8,
    /// macMaxFrameRetries.
    pub max_retries: u8,
    /// Transmit queue length, frames.
    pub queue_frames: u16,
}

impl Default for MacParams {
    fn default() -> Self {
        MacParams { min_be: 3, max_be: 5, max_backoffs: 4, max_retries: 3, queue_frames: 16 }
    }
}

/// A radio as its datasheet describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadioModel {
    pub name: String,
    pub phy: PhyKind,
    pub frequency_mhz: f64,
    pub bitrate_bps: f64,
    pub tx_power_dbm: f64,
    /// Weakest signal the receiver synchronises to; below it a frame is not received at all.
    pub sensitivity_dbm: f64,
    /// Receiver noise figure including implementation loss.
    pub noise_figure_db: f64,
    /// Noise-equivalent receiver bandwidth.
    pub noise_bandwidth_hz: f64,
    pub antenna_gain_dbi: f64,
    /// Cable, connector and enclosure loss, per side.
    pub system_loss_db: f64,
    /// Energy-detection threshold of clear channel assessment.
    pub cca_threshold_dbm: f64,
    /// A later frame this much stronger than the one being received takes the receiver over (and an earlier one
    /// this much weaker does not block reception).
    pub capture_threshold_db: f64,
    pub preamble_bytes: u16,
    pub sfd_bytes: u16,
    pub phr_bytes: u16,
    /// MAC header of a data frame with short addresses and PAN id compression.
    pub mac_header_bytes: u16,
    pub fcs_bytes: u16,
    pub max_psdu_bytes: u16,
    /// aTurnaroundTime (rx-to-tx and tx-to-rx).
    pub turnaround_us: u32,
    /// Clear channel assessment duration.
    pub cca_us: u32,
    /// aUnitBackoffPeriod.
    pub unit_backoff_us: u32,
    #[serde(default)]
    pub mac: MacParams,
    pub supply_v: f64,
    pub tx_ma: f64,
    pub rx_ma: f64,
    pub listen_ma: f64,
    pub sleep_ua: f64,
    /// Line-of-sight range the datasheet claims, m (checked against the propagation model in use).
    pub range_m: f64,
}

/// Bytes of an 802.15.4 immediate acknowledgement PSDU (frame control, sequence number, FCS).
pub const ACK_PSDU_BYTES: u16 = 5;

impl RadioModel {
    /// Checks physical plausibility, naming the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        let n = &self.name;
        let bad = |field: &str, why: &str| Err(format!("radio model `{n}`: `{field}` {why}"));
        let finite = [
            ("frequency_mhz", self.frequency_mhz),
            ("bitrate_bps", self.bitrate_bps),
            ("tx_power_dbm", self.tx_power_dbm),
            ("sensitivity_dbm", self.sensitivity_dbm),
            ("noise_figure_db", self.noise_figure_db),
            ("noise_bandwidth_hz", self.noise_bandwidth_hz),
            ("antenna_gain_dbi", self.antenna_gain_dbi),
            ("system_loss_db", self.system_loss_db),
            ("cca_threshold_dbm", self.cca_threshold_dbm),
            ("capture_threshold_db", self.capture_threshold_db),
            ("supply_v", self.supply_v),
            ("tx_ma", self.tx_ma),
            ("rx_ma", self.rx_ma),
            ("listen_ma", self.listen_ma),
            ("sleep_ua", self.sleep_ua),
            ("range_m", self.range_m),
        ];
        for (f, v) in finite {
            if !v.is_finite() {
                return bad(f, "must be a finite number");
            }
        }
        if !(1.0..=100_000.0).contains(&self.frequency_mhz) {
            return bad("frequency_mhz", &format!("= {} is outside 1 MHz ..= 100 GHz", self.frequency_mhz));
        }
        if !(100.0..=1e8).contains(&self.bitrate_bps) {
            return bad("bitrate_bps", &format!("= {} is outside 100 ..= 1e8 bit/s", self.bitrate_bps));
        }
        if !(-40.0..=36.0).contains(&self.tx_power_dbm) {
            return bad("tx_power_dbm", &format!("= {} dBm is outside -40 ..= 36 dBm", self.tx_power_dbm));
        }
        if !(-150.0..=-40.0).contains(&self.sensitivity_dbm) {
            return bad("sensitivity_dbm", &format!("= {} dBm is outside -150 ..= -40 dBm", self.sensitivity_dbm));
        }
        if !(0.0..=30.0).contains(&self.noise_figure_db) {
            return bad("noise_figure_db", "must be within 0 ..= 30 dB");
        }
        if !(self.noise_bandwidth_hz > 0.0 && self.noise_bandwidth_hz <= 1e9) {
            return bad("noise_bandwidth_hz", "must be > 0 and <= 1 GHz");
        }
        if self.sensitivity_dbm < self.noise_floor_dbm() - 30.0 {
            return bad(
                "sensitivity_dbm",
                &format!(
                    "= {} dBm is more than 30 dB below the noise floor {:.1} dBm (check noise_figure_db and noise_bandwidth_hz)",
                    self.sensitivity_dbm,
                    self.noise_floor_dbm()
                ),
            );
        }
        if !(-20.0..=30.0).contains(&self.antenna_gain_dbi) {
            return bad("antenna_gain_dbi", "must be within -20 ..= 30 dBi");
        }
        if !(0.0..=40.0).contains(&self.system_loss_db) {
            return bad("system_loss_db", "must be within 0 ..= 40 dB");
        }
        if self.cca_threshold_dbm < self.sensitivity_dbm - 20.0 || self.cca_threshold_dbm > 0.0 {
            return bad("cca_threshold_dbm", "must be between sensitivity - 20 dB and 0 dBm");
        }
        if !(0.0..=40.0).contains(&self.capture_threshold_db) {
            return bad("capture_threshold_db", "must be within 0 ..= 40 dB");
        }
        if self.max_psdu_bytes < self.mac_header_bytes + self.fcs_bytes + 16 {
            return bad("max_psdu_bytes", "leaves fewer than 16 bytes of payload after MAC header and FCS");
        }
        if self.sfd_bytes == 0 {
            return bad("sfd_bytes", "must be >= 1");
        }
        if self.turnaround_us == 0 || self.turnaround_us > 100_000 {
            return bad("turnaround_us", "must be within 1 ..= 100000 µs");
        }
        if self.unit_backoff_us == 0 || self.unit_backoff_us > 1_000_000 {
            return bad("unit_backoff_us", "must be within 1 ..= 1000000 µs");
        }
        if self.cca_us == 0 || self.cca_us > self.unit_backoff_us {
            return bad("cca_us", "must be > 0 and <= unit_backoff_us");
        }
        let m = &self.mac;
        if m.min_be > m.max_be || m.max_be > 8 {
            return bad("mac.min_be/mac.max_be", "need min_be <= max_be <= 8");
        }
        if m.max_backoffs > 5 {
            return bad("mac.max_backoffs", "must be <= 5 (IEEE 802.15.4 range 0..=5)");
        }
        if m.max_retries > 7 {
            return bad("mac.max_retries", "must be <= 7 (IEEE 802.15.4 range 0..=7)");
        }
        if m.queue_frames == 0 || m.queue_frames > 1024 {
            return bad("mac.queue_frames", "must be within 1 ..= 1024");
        }
        if !(self.supply_v > 0.0 && self.supply_v <= 60.0) {
            return bad("supply_v", "must be > 0 and <= 60 V");
        }
        for (f, v) in [("tx_ma", self.tx_ma), ("rx_ma", self.rx_ma), ("listen_ma", self.listen_ma)] {
            if !(0.0..=5000.0).contains(&v) {
                return bad(f, "must be within 0 ..= 5000 mA");
            }
        }
        if !(0.0..=1e6).contains(&self.sleep_ua) {
            return bad("sleep_ua", "must be within 0 ..= 1e6 µA");
        }
        if !(self.range_m > 0.0 && self.range_m <= 1e5) {
            return bad("range_m", "must be > 0 and <= 100 km");
        }
        Ok(())
    }

    /// Thermal noise plus noise figure over the noise bandwidth, dBm.
    pub fn noise_floor_dbm(&self) -> f64 {
        -174.0 + 10.0 * self.noise_bandwidth_hz.log10() + self.noise_figure_db
    }

    /// Transmit EIRP minus the receiving side's losses: what a 0 dB path delivers to the receiver, dBm.
    pub fn link_budget_offset_dbm(&self) -> f64 {
        self.tx_power_dbm + 2.0 * self.antenna_gain_dbi - 2.0 * self.system_loss_db
    }

    /// Largest path loss a frame survives at the sensitivity limit, dB.
    pub fn max_path_loss_db(&self) -> f64 {
        self.link_budget_offset_dbm() - self.sensitivity_dbm
    }

    /// Time on air of a PPDU carrying `psdu_bytes`, ns (synchronisation header + PHY header + PSDU).
    pub fn airtime_ns(&self, psdu_bytes: u16) -> u64 {
        let bytes = (self.preamble_bytes + self.sfd_bytes + self.phr_bytes) as f64 + psdu_bytes as f64;
        (bytes * 8.0 / self.bitrate_bps * 1e9).round() as u64
    }

    /// PSDU bytes of a data frame carrying `payload` network-layer bytes.
    pub fn data_psdu_bytes(&self, payload: usize) -> u16 {
        (self.mac_header_bytes as usize + self.fcs_bytes as usize + payload).min(u16::MAX as usize) as u16
    }

    /// Largest network frame one MAC frame carries, bytes.
    pub fn max_payload_bytes(&self) -> usize {
        (self.max_psdu_bytes - self.mac_header_bytes - self.fcs_bytes) as usize
    }

    /// macAckWaitDuration: unit backoff + turnaround + the acknowledgement's airtime, ns.
    pub fn ack_wait_ns(&self) -> u64 {
        (self.unit_backoff_us as u64 + self.turnaround_us as u64) * 1_000 + self.airtime_ns(ACK_PSDU_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn load(name: &str) -> RadioModel {
        let path = format!("{}/models/{name}.ron", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        ron::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn shipped_models_are_valid() {
        for m in ["radio-sun-fsk-868", "radio-oqpsk-2450", "radio-oqpsk-2450-pa"] {
            let r = load(m);
            r.validate().unwrap();
            assert_eq!(r.name, m.trim_start_matches("radio-"));
        }
    }

    #[test]
    fn airtime_of_a_maximum_oqpsk_frame_is_4256_us() {
        // 6 bytes of SHR+PHR plus 127 bytes at 250 kb/s = 133 * 32 µs.
        assert_eq!(load("radio-oqpsk-2450").airtime_ns(127), 4_256_000);
    }

    #[test]
    fn impossible_values_are_named() {
        let mut r = load("radio-sun-fsk-868");
        r.tx_power_dbm = 90.0;
        assert!(r.validate().unwrap_err().contains("tx_power_dbm"));
        let mut r = load("radio-sun-fsk-868");
        r.sensitivity_dbm = -200.0;
        assert!(r.validate().unwrap_err().contains("sensitivity_dbm"));
        let mut r = load("radio-sun-fsk-868");
        r.bitrate_bps = f64::NAN;
        assert!(r.validate().unwrap_err().contains("bitrate_bps"));
        let mut r = load("radio-sun-fsk-868");
        r.mac.min_be = 6;
        assert!(r.validate().unwrap_err().contains("min_be"));
    }
}
