//! The batch payload the gateway publishes on `grid/{gateway_id}/events`: many LMU readings, losslessly and
//! compactly. Pure functions over bytes, shared by the gateway firmware and any consumer (the cloud service).
//!
//! Format (version 1). Integers marked *varint* are unsigned LEB128 (7 bits per byte, low first, at most
//! 10 bytes); *zigzag* maps a signed value to unsigned first (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...):
//!
//! ```text
//! header:   version u8 (= 1) | count varint | base_ms u64 LE (the earliest taken_at_ms in the batch)
//! reading:  lmu_id varint | seq varint | taken_at_ms - base_ms varint
//!           | v_cv[3] u16 LE | i_ma[3] varint | p_w zigzag | q_var zigzag | flags varint
//! ```
//!
//! Units as in the LMU report frame ([`crate::report`]): centivolts, milliamperes, watts, vars, milliseconds.
//! Bytes per reading: 15 at the least, 54 at the most; a reading of a loaded LV feeder (LMU id < 128, seq
//! < 16,384, readings of one interval within 16 s, currents of 0.13–2,097 A) takes 21–27 bytes, against 48
//! for the raw report frame. The header takes 10–12 bytes. [`encoded_len`] gives the exact size.

use crate::report::ReportRepr;
use alloc::vec::Vec;

/// Format version.
pub const VERSION: u8 = 1;
/// Most readings one batch may hold (a decoder refuses more).
pub const MAX_READINGS: usize = 65_535;

/// What is wrong with a batch, and at which byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchError {
    pub at_byte: usize,
    pub kind: BatchErrorKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchErrorKind {
    /// Unknown format version.
    Version,
    /// The bytes end inside a field.
    Truncated,
    /// A varint is longer than its type allows.
    Overflow,
    /// More readings than [`MAX_READINGS`].
    TooMany,
    /// Bytes are left after the last reading.
    Trailing,
}

impl core::fmt::Display for BatchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let what = match self.kind {
            BatchErrorKind::Version => "unknown batch format version",
            BatchErrorKind::Truncated => "batch ends inside a field",
            BatchErrorKind::Overflow => "varint out of range",
            BatchErrorKind::TooMany => "more readings than a batch may hold",
            BatchErrorKind::Trailing => "bytes left after the last reading",
        };
        write!(f, "{what} (byte {})", self.at_byte)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn zigzag(v: i32) -> u64 {
    ((v << 1) ^ (v >> 31)) as u32 as u64
}

fn unzigzag(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

fn base_ms(readings: &[ReportRepr]) -> u64 {
    readings.iter().map(|r| r.taken_at_ms).min().unwrap_or(0)
}

/// Exact encoded size of `readings` as one batch.
pub fn encoded_len(readings: &[ReportRepr]) -> usize {
    let base = base_ms(readings);
    1 + varint_len(readings.len() as u64) + 8 + readings.iter().map(|r| reading_len(r, base)).sum::<usize>()
}

/// Encoded size of one reading in a batch whose base time is `base_ms`.
pub fn reading_len(r: &ReportRepr, base_ms: u64) -> usize {
    varint_len(r.lmu_id as u64)
        + varint_len(r.seq as u64)
        + varint_len(r.taken_at_ms.saturating_sub(base_ms))
        + 6
        + r.i_ma.iter().map(|&i| varint_len(i as u64)).sum::<usize>()
        + varint_len(zigzag(r.p_w))
        + varint_len(zigzag(r.q_var))
        + varint_len(r.flags as u64)
}

/// Appends `readings` as one batch; errors (writing nothing) if there are more than [`MAX_READINGS`].
pub fn encode(readings: &[ReportRepr], out: &mut Vec<u8>) -> Result<usize, BatchError> {
    if readings.len() > MAX_READINGS {
        return Err(BatchError { at_byte: 0, kind: BatchErrorKind::TooMany });
    }
    let start = out.len();
    let base = base_ms(readings);
    out.push(VERSION);
    put_varint(out, readings.len() as u64);
    out.extend_from_slice(&base.to_le_bytes());
    for r in readings {
        put_varint(out, r.lmu_id as u64);
        put_varint(out, r.seq as u64);
        put_varint(out, r.taken_at_ms - base);
        for v in r.v_cv {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for i in r.i_ma {
            put_varint(out, i as u64);
        }
        put_varint(out, zigzag(r.p_w));
        put_varint(out, zigzag(r.q_var));
        put_varint(out, r.flags as u64);
    }
    Ok(out.len() - start)
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn err(&self, kind: BatchErrorKind) -> BatchError {
        BatchError { at_byte: self.at, kind }
    }
    fn take<const N: usize>(&mut self) -> Result<[u8; N], BatchError> {
        let b = self.b;
        let s = b.get(self.at..self.at + N).ok_or(self.err(BatchErrorKind::Truncated))?;
        self.at += N;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn varint(&mut self, max: u64) -> Result<u64, BatchError> {
        let start = self.at;
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.b.get(self.at) else { return Err(self.err(BatchErrorKind::Truncated)) };
            self.at += 1;
            let part = (b & 0x7F) as u64;
            if i == 9 && part > 1 {
                return Err(BatchError { at_byte: start, kind: BatchErrorKind::Overflow });
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                if v > max {
                    return Err(BatchError { at_byte: start, kind: BatchErrorKind::Overflow });
                }
                return Ok(v);
            }
        }
        Err(BatchError { at_byte: start, kind: BatchErrorKind::Overflow })
    }
}

/// A zero-allocation reader over a batch's readings.
pub struct BatchReader<'a> {
    c: Cursor<'a>,
    left: usize,
    base: u64,
    failed: bool,
}

impl BatchReader<'_> {
    /// Readings the header announces.
    pub fn len(&self) -> usize {
        self.left
    }
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }
}

/// Checks the header and returns a reader over the readings.
pub fn reader(bytes: &[u8]) -> Result<BatchReader<'_>, BatchError> {
    let mut c = Cursor { b: bytes, at: 0 };
    let [v] = c.take::<1>()?;
    if v != VERSION {
        return Err(BatchError { at_byte: 0, kind: BatchErrorKind::Version });
    }
    let at = c.at;
    let n = c.varint(u64::MAX)?;
    if n > MAX_READINGS as u64 {
        return Err(BatchError { at_byte: at, kind: BatchErrorKind::TooMany });
    }
    let base = u64::from_le_bytes(c.take::<8>()?);
    Ok(BatchReader { c, left: n as usize, base, failed: false })
}

impl Iterator for BatchReader<'_> {
    type Item = Result<ReportRepr, BatchError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.left == 0 {
            if self.c.at != self.c.b.len() {
                self.failed = true;
                return Some(Err(self.c.err(BatchErrorKind::Trailing)));
            }
            return None;
        }
        self.left -= 1;
        let r = (|| {
            let c = &mut self.c;
            let lmu_id = c.varint(u32::MAX as u64)? as u32;
            let seq = c.varint(u32::MAX as u64)? as u32;
            let at = c.at;
            let dt = c.varint(u64::MAX)?;
            let taken_at_ms =
                self.base.checked_add(dt).ok_or(BatchError { at_byte: at, kind: BatchErrorKind::Overflow })?;
            let mut v_cv = [0u16; 3];
            for v in &mut v_cv {
                *v = u16::from_le_bytes(c.take::<2>()?);
            }
            let mut i_ma = [0u32; 3];
            for i in &mut i_ma {
                *i = c.varint(u32::MAX as u64)? as u32;
            }
            let p_w = unzigzag(c.varint(u32::MAX as u64)? as u32);
            let q_var = unzigzag(c.varint(u32::MAX as u64)? as u32);
            let flags = c.varint(u16::MAX as u64)? as u16;
            Ok(ReportRepr { lmu_id, seq, taken_at_ms, v_cv, i_ma, p_w, q_var, flags })
        })();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

/// Decodes a whole batch.
pub fn decode(bytes: &[u8]) -> Result<Vec<ReportRepr>, BatchError> {
    let r = reader(bytes)?;
    let mut v = Vec::with_capacity(r.len().min(4096));
    for x in r {
        v.push(x?);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: u32) -> ReportRepr {
        ReportRepr {
            lmu_id: i,
            seq: 95 * i,
            taken_at_ms: 36_000_000 + 700 * i as u64,
            v_cv: [23_012, 22_987, 23_100 + i as u16],
            i_ma: [12_345, 9_876, 0],
            p_w: -4_200 + i as i32,
            q_var: 310,
            flags: 0,
        }
    }

    #[test]
    fn roundtrip_and_exact_length() {
        let rs: Vec<_> = (0..13).map(sample).collect();
        let mut b = Vec::new();
        let n = encode(&rs, &mut b).unwrap();
        assert_eq!(n, encoded_len(&rs));
        assert_eq!(decode(&b).unwrap(), rs);
        let extremes = ReportRepr {
            lmu_id: u32::MAX,
            seq: u32::MAX,
            taken_at_ms: u64::MAX,
            v_cv: [u16::MAX; 3],
            i_ma: [u32::MAX; 3],
            p_w: i32::MIN,
            q_var: i32::MAX,
            flags: u16::MAX,
        };
        let mut b = Vec::new();
        encode(&[extremes, ReportRepr::default()], &mut b).unwrap();
        assert_eq!(decode(&b).unwrap(), [extremes, ReportRepr::default()]);
        assert_eq!(reading_len(&extremes, 0), 54);
        assert_eq!(reading_len(&ReportRepr::default(), 0), 15);
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_an_error() {
        let rs: Vec<_> = (0..3).map(sample).collect();
        let mut b = Vec::new();
        encode(&rs, &mut b).unwrap();
        for k in 0..b.len() {
            assert!(decode(&b[..k]).is_err(), "prefix {k}");
        }
        b.push(0);
        assert_eq!(decode(&b).unwrap_err().kind, BatchErrorKind::Trailing);
        assert_eq!(decode(&[2]).unwrap_err().kind, BatchErrorKind::Version);
    }
}
