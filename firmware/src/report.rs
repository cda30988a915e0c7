//! The LMU report frame: one reading an LMU sends upstream (over the mesh, then the coordinator's UART).
//!
//! Little-endian, 48 bytes, smoltcp style: [`ReportPacket`] is a zero-copy view over bytes that checks length
//! and CRC before any field is read; [`ReportRepr`] is the validated, high-level form. Units are in the names:
//! voltages in centivolts (phase to neutral RMS), currents in milliamperes RMS, powers in watts / vars.
//!
//! ```text
//! 0      1      2        6        10             18        24          36     40     44     46     48
//! | ver  | kind | lmu_id | seq    | taken_at_ms  | v_cv x3 | i_ma x3   | p_w  | q_var| flags| crc16 |
//! ```

/// Frame format version.
pub const VERSION: u8 = 1;
/// Frame kind: periodic reading.
pub const KIND_READING: u8 = 1;
/// Length of a report frame in bytes.
pub const LEN: usize = 48;

const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// Why bytes are not a valid report frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer or more bytes than a frame holds.
    Length,
    /// Unknown version or kind.
    Unsupported,
    /// The CRC does not match: the frame was corrupted.
    Checksum,
}

/// A zero-copy view of a report frame.
pub struct ReportPacket<T: AsRef<[u8]>>(T);

impl<T: AsRef<[u8]>> ReportPacket<T> {
    /// Checks length, version, kind and CRC.
    pub fn new_checked(buf: T) -> Result<Self, FrameError> {
        let b = buf.as_ref();
        if b.len() != LEN {
            return Err(FrameError::Length);
        }
        if b[0] != VERSION || b[1] != KIND_READING {
            return Err(FrameError::Unsupported);
        }
        let want = u16::from_le_bytes([b[LEN - 2], b[LEN - 1]]);
        if CRC.checksum(&b[..LEN - 2]) != want {
            return Err(FrameError::Checksum);
        }
        Ok(ReportPacket(buf))
    }
    fn u32_at(&self, i: usize) -> u32 {
        let b = self.0.as_ref();
        u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
    }
    pub fn lmu_id(&self) -> u32 {
        self.u32_at(2)
    }
    pub fn seq(&self) -> u32 {
        self.u32_at(6)
    }
}

/// A report frame's contents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportRepr {
    pub lmu_id: u32,
    pub seq: u32,
    pub taken_at_ms: u64,
    pub v_cv: [u16; 3],
    pub i_ma: [u32; 3],
    pub p_w: i32,
    pub q_var: i32,
    pub flags: u16,
}

impl ReportRepr {
    /// Reads a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &ReportPacket<T>) -> ReportRepr {
        let b = p.0.as_ref();
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        ReportRepr {
            lmu_id: p.lmu_id(),
            seq: p.seq(),
            taken_at_ms: u64::from_le_bytes([b[10], b[11], b[12], b[13], b[14], b[15], b[16], b[17]]),
            v_cv: [u16_at(18), u16_at(20), u16_at(22)],
            i_ma: [p.u32_at(24), p.u32_at(28), p.u32_at(32)],
            p_w: p.u32_at(36) as i32,
            q_var: p.u32_at(40) as i32,
            flags: u16_at(44),
        }
    }
    /// Writes the frame into `out` (exactly [`LEN`] bytes); errors if `out` is too short.
    pub fn emit(&self, out: &mut [u8]) -> Result<(), FrameError> {
        if out.len() < LEN {
            return Err(FrameError::Length);
        }
        let b = &mut out[..LEN];
        b[0] = VERSION;
        b[1] = KIND_READING;
        b[2..6].copy_from_slice(&self.lmu_id.to_le_bytes());
        b[6..10].copy_from_slice(&self.seq.to_le_bytes());
        b[10..18].copy_from_slice(&self.taken_at_ms.to_le_bytes());
        for k in 0..3 {
            b[18 + 2 * k..20 + 2 * k].copy_from_slice(&self.v_cv[k].to_le_bytes());
            b[24 + 4 * k..28 + 4 * k].copy_from_slice(&self.i_ma[k].to_le_bytes());
        }
        b[36..40].copy_from_slice(&self.p_w.to_le_bytes());
        b[40..44].copy_from_slice(&self.q_var.to_le_bytes());
        b[44..46].copy_from_slice(&self.flags.to_le_bytes());
        let crc = CRC.checksum(&b[..LEN - 2]);
        b[46..48].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }
    /// The frame as bytes.
    pub fn to_bytes(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        self.emit(&mut b).expect("a LEN-byte buffer holds a frame");
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_every_single_bit_flip() {
        let r = ReportRepr {
            lmu_id: 7,
            seq: 99,
            taken_at_ms: 123_456,
            v_cv: [23_000, 23_010, 22_990],
            i_ma: [1, 2, 3],
            p_w: -5,
            q_var: 6,
            flags: 1,
        };
        let b = r.to_bytes();
        assert_eq!(ReportRepr::parse(&ReportPacket::new_checked(&b[..]).unwrap()), r);
        for bit in 0..LEN * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(ReportPacket::new_checked(&c[..]).is_err(), "bit {bit}");
        }
        assert_eq!(ReportPacket::new_checked(&b[..10]).err(), Some(FrameError::Length));
    }
}
