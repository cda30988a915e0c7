//! Canonical little-endian byte codec of the ledger: a growable writer and a bounds-checked reader that never
//! panics (every read returns [`LedgerError::Truncated`] past the end) and refuses trailing bytes.

use super::LedgerError;
use alloc::vec::Vec;

/// Appends canonical fields to a byte vector.
#[derive(Default, Debug, Clone)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(n: usize) -> Self {
        Writer { buf: Vec::with_capacity(n) }
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// A `u32` length prefix and the bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.raw(v)
    }
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads canonical fields from a borrowed slice (zero copy for byte strings).
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], LedgerError> {
        if self.remaining() < n {
            return Err(LedgerError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8, LedgerError> {
        Ok(self.take(1)?[0])
    }
    /// A strict boolean: 0 or 1, anything else is malformed (so no bit of it is redundant).
    pub fn flag(&mut self) -> Result<bool, LedgerError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(LedgerError::Malformed("flag is neither 0 nor 1")),
        }
    }
    pub fn u32(&mut self) -> Result<u32, LedgerError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    pub fn u64(&mut self) -> Result<u64, LedgerError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    pub fn arr32(&mut self) -> Result<[u8; 32], LedgerError> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }
    pub fn arr64(&mut self) -> Result<[u8; 64], LedgerError> {
        let mut a = [0u8; 64];
        a.copy_from_slice(self.take(64)?);
        Ok(a)
    }
    /// A `u32`-length-prefixed byte string of at most `max` bytes.
    pub fn bytes(&mut self, max: usize) -> Result<&'a [u8], LedgerError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(LedgerError::Malformed("length above its limit"));
        }
        self.take(n)
    }
    /// Succeeds only when every byte was consumed.
    pub fn finish(&self) -> Result<(), LedgerError> {
        if self.remaining() == 0 { Ok(()) } else { Err(LedgerError::Malformed("trailing bytes")) }
    }
}
