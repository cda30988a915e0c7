//! Non-volatile records of the LMU: the protection settings and a ring-buffer event log, laid out on a
//! byte-addressed [`Storage`] with a CRC-32 per record so torn or corrupted records are rejected.
//!
//! Layout: bytes `0..SETTINGS_LEN` hold the settings record (magic, version, length, payload, CRC);
//! the event log follows as `LOG_SLOTS` fixed 24-byte records (sequence, time in ns, kind, section, value,
//! CRC); the newest valid sequence marks the head after a reboot.

use crate::hal::storage::Storage;
use crate::lmu::SettingsError;
use crate::lmu::protection::{Curve, OvercurrentStage, ProtectionSettings};
use alloc::vec::Vec;

const MAGIC: u32 = 0x4C4D_5531; // "LMU1"
const VERSION: u16 = 3;
/// Bytes reserved for the settings record.
pub const SETTINGS_LEN: u32 = 256;
/// Size of one event-log record.
pub const LOG_RECORD_LEN: u32 = 24;
/// Event-log slots.
pub const LOG_SLOTS: u32 = 128;

/// CRC-32 (IEEE 802.3, reflected), bitwise so it needs no table.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Why a record could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NvmError<E> {
    /// The storage device failed.
    Device(E),
    /// No valid record (blank, torn or corrupted).
    Corrupt,
    /// The record decoded but a setting is out of range.
    Invalid(SettingsError),
    /// The storage is too small for the layout.
    TooSmall,
}

fn put_stage(out: &mut Vec<u8>, s: &OvercurrentStage) {
    out.push(s.enabled as u8);
    out.push(match s.curve {
        Curve::DefiniteTime => 0,
        Curve::StandardInverse => 1,
        Curve::VeryInverse => 2,
        Curve::ExtremelyInverse => 3,
        Curve::LongTimeInverse => 4,
    });
    out.extend_from_slice(&s.pickup_a.to_le_bytes());
    out.extend_from_slice(&s.tms.to_le_bytes());
    out.extend_from_slice(&s.delay_ms.to_le_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let s = self.b.get(self.pos..self.pos + N)?;
        self.pos += N;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes::<1>().map(|b| b[0])
    }
    fn f64(&mut self) -> Option<f64> {
        self.bytes::<8>().map(f64::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.bytes::<4>().map(u32::from_le_bytes)
    }
    fn stage(&mut self) -> Option<OvercurrentStage> {
        let enabled = self.u8()? == 1;
        let curve = match self.u8()? {
            0 => Curve::DefiniteTime,
            1 => Curve::StandardInverse,
            2 => Curve::VeryInverse,
            3 => Curve::ExtremelyInverse,
            4 => Curve::LongTimeInverse,
            _ => return None,
        };
        Some(OvercurrentStage { enabled, curve, pickup_a: self.f64()?, tms: self.f64()?, delay_ms: self.u32()? })
    }
}

/// Encodes protection settings as a self-checking record.
pub fn encode_settings(s: &ProtectionSettings) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&s.u_nominal_v.to_le_bytes());
    put_stage(&mut p, &s.phase);
    put_stage(&mut p, &s.phase_high);
    put_stage(&mut p, &s.earth);
    for x in [s.delta_phase_a, s.delta_earth_a, s.delta_power_w, s.char_angle_deg] {
        p.extend_from_slice(&x.to_le_bytes());
    }
    p.push(s.directional as u8);
    p.push(s.open_conductor as u8);
    for x in [s.loss_pu, s.healthy_pu, s.neutral_shift_pu] {
        p.extend_from_slice(&x.to_le_bytes());
    }
    p.extend_from_slice(&s.open_conductor_delay_ms.to_le_bytes());
    for x in [s.current_drop_ratio, s.current_drop_min_a, s.unbalance_step_pu, s.sag_swing_pu] {
        p.extend_from_slice(&x.to_le_bytes());
    }
    let mut out = Vec::with_capacity(p.len() + 12);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(p.len() as u16).to_le_bytes());
    out.extend_from_slice(&p);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes and validates a settings record.
pub fn decode_settings(b: &[u8]) -> Result<ProtectionSettings, Option<SettingsError>> {
    if b.len() < 12 {
        return Err(None);
    }
    let len = u16::from_le_bytes([b[6], b[7]]) as usize;
    let total = 8 + len + 4;
    if b.len() < total || u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != MAGIC {
        return Err(None);
    }
    let crc = u32::from_le_bytes([b[total - 4], b[total - 3], b[total - 2], b[total - 1]]);
    if crc32(&b[..total - 4]) != crc || u16::from_le_bytes([b[4], b[5]]) != VERSION {
        return Err(None);
    }
    let mut r = Reader { b: &b[8..8 + len], pos: 0 };
    let s = (|| {
        Some(ProtectionSettings {
            u_nominal_v: r.f64()?,
            phase: r.stage()?,
            phase_high: r.stage()?,
            earth: r.stage()?,
            delta_phase_a: r.f64()?,
            delta_earth_a: r.f64()?,
            delta_power_w: r.f64()?,
            char_angle_deg: r.f64()?,
            directional: r.u8()? == 1,
            open_conductor: r.u8()? == 1,
            loss_pu: r.f64()?,
            healthy_pu: r.f64()?,
            neutral_shift_pu: r.f64()?,
            open_conductor_delay_ms: r.u32()?,
            current_drop_ratio: r.f64()?,
            current_drop_min_a: r.f64()?,
            unbalance_step_pu: r.f64()?,
            sag_swing_pu: r.f64()?,
        })
    })()
    .ok_or(None)?;
    s.validate().map_err(Some)?;
    Ok(s)
}

/// Writes the settings record.
pub fn store_settings<S: Storage>(st: &mut S, s: &ProtectionSettings) -> Result<(), NvmError<S::Error>> {
    let rec = encode_settings(s);
    if rec.len() as u32 > SETTINGS_LEN || st.capacity() < SETTINGS_LEN {
        return Err(NvmError::TooSmall);
    }
    st.write(0, &rec).map_err(NvmError::Device)
}

/// Reads and validates the settings record.
pub fn load_settings<S: Storage>(st: &mut S) -> Result<ProtectionSettings, NvmError<S::Error>> {
    if st.capacity() < SETTINGS_LEN {
        return Err(NvmError::TooSmall);
    }
    let mut b = [0u8; SETTINGS_LEN as usize];
    st.read(0, &mut b).map_err(NvmError::Device)?;
    decode_settings(&b).map_err(|e| e.map_or(NvmError::Corrupt, NvmError::Invalid))
}

/// One event-log entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogEntry {
    pub seq: u32,
    pub time_ns: u64,
    /// Event code (application-defined: trip, open, close, dip, ...).
    pub kind: u16,
    pub section: u16,
    pub value: f32,
}

impl LogEntry {
    fn encode(&self) -> [u8; LOG_RECORD_LEN as usize] {
        let mut b = [0u8; LOG_RECORD_LEN as usize];
        b[0..4].copy_from_slice(&self.seq.to_le_bytes());
        b[4..12].copy_from_slice(&self.time_ns.to_le_bytes());
        b[12..14].copy_from_slice(&self.kind.to_le_bytes());
        b[14..16].copy_from_slice(&self.section.to_le_bytes());
        b[16..20].copy_from_slice(&self.value.to_le_bytes());
        let crc = crc32(&b[0..20]);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        b
    }
    fn decode(b: &[u8; LOG_RECORD_LEN as usize]) -> Option<LogEntry> {
        let crc = u32::from_le_bytes([b[20], b[21], b[22], b[23]]);
        if crc32(&b[0..20]) != crc {
            return None;
        }
        Some(LogEntry {
            seq: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            time_ns: u64::from_le_bytes([b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]]),
            kind: u16::from_le_bytes([b[12], b[13]]),
            section: u16::from_le_bytes([b[14], b[15]]),
            value: f32::from_le_bytes([b[16], b[17], b[18], b[19]]),
        })
    }
}

/// The ring-buffer event log.
pub struct EventLog {
    next_seq: u32,
}

impl EventLog {
    /// Scans the storage for the newest valid record (after a reboot).
    pub fn open<S: Storage>(st: &mut S) -> Result<Self, NvmError<S::Error>> {
        if st.capacity() < SETTINGS_LEN + LOG_SLOTS * LOG_RECORD_LEN {
            return Err(NvmError::TooSmall);
        }
        let mut next_seq = 0;
        for slot in 0..LOG_SLOTS {
            if let Some(e) = Self::read_slot(st, slot)? {
                next_seq = next_seq.max(e.seq.wrapping_add(1));
            }
        }
        Ok(EventLog { next_seq })
    }

    fn read_slot<S: Storage>(st: &mut S, slot: u32) -> Result<Option<LogEntry>, NvmError<S::Error>> {
        let mut b = [0u8; LOG_RECORD_LEN as usize];
        st.read(SETTINGS_LEN + slot * LOG_RECORD_LEN, &mut b).map_err(NvmError::Device)?;
        Ok(LogEntry::decode(&b))
    }

    /// Appends an entry, overwriting the oldest; returns its sequence number.
    pub fn append<S: Storage>(
        &mut self,
        st: &mut S,
        time_ns: u64,
        kind: u16,
        section: u16,
        value: f32,
    ) -> Result<u32, NvmError<S::Error>> {
        let seq = self.next_seq;
        let e = LogEntry { seq, time_ns, kind, section, value };
        st.write(SETTINGS_LEN + (seq % LOG_SLOTS) * LOG_RECORD_LEN, &e.encode()).map_err(NvmError::Device)?;
        self.next_seq = seq.wrapping_add(1);
        Ok(seq)
    }

    /// Valid entries, oldest first.
    pub fn entries<S: Storage>(&self, st: &mut S) -> Result<Vec<LogEntry>, NvmError<S::Error>> {
        let mut v = Vec::new();
        for slot in 0..LOG_SLOTS {
            if let Some(e) = Self::read_slot(st, slot)? {
                v.push(e);
            }
        }
        v.sort_by_key(|e| e.seq);
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hal::storage::RamStorage;

    #[test]
    fn settings_round_trip_and_corruption_is_detected() {
        let mut st = RamStorage(alloc::vec![0xFF; 8192]);
        let s = ProtectionSettings::default();
        store_settings(&mut st, &s).unwrap();
        assert_eq!(load_settings(&mut st).unwrap(), s);
        st.0[20] ^= 0x04;
        assert_eq!(load_settings(&mut st), Err(NvmError::Corrupt));
    }

    #[test]
    fn event_log_wraps_and_survives_reopen() {
        let mut st = RamStorage(alloc::vec![0xFF; 8192]);
        let mut log = EventLog::open(&mut st).unwrap();
        for k in 0..200u64 {
            log.append(&mut st, k * 10, 1, 2, k as f32).unwrap();
        }
        let log2 = EventLog::open(&mut st).unwrap();
        let e = log2.entries(&mut st).unwrap();
        assert_eq!(e.len(), LOG_SLOTS as usize);
        assert_eq!(e.last().unwrap().seq, 199);
        assert_eq!(e.first().unwrap().seq, 200 - LOG_SLOTS);
    }
}
