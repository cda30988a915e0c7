//! The run digest: a running 64-bit fingerprint of every delivered event and of what agents choose to fold in.
//!
//! Equal scenario + seed + binary must give an equal digest; any change in event order, timing, routing or
//! folded outputs changes it. Cheap enough to stay on for every event (two multiplies per word).

/// A running, order-sensitive 64-bit digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest(u64);

impl Default for Digest {
    fn default() -> Self {
        Digest(0x8422_2325_cbf2_9ce4)
    }
}

impl Digest {
    /// Folds one word in; order matters.
    #[inline(always)]
    pub fn fold(&mut self, word: u64) {
        let x = (self.0 ^ word).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    }
    /// Folds bytes in (8 at a time, then the length).
    pub fn fold_bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.fold(u64::from_le_bytes(c.try_into().expect("8-byte chunk")));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.fold(u64::from_le_bytes(tail));
        self.fold(bytes.len() as u64);
    }
    /// Folds an f64 by its exact bits (so -0.0 and 0.0 differ; NaN payloads count).
    pub fn fold_f64(&mut self, v: f64) {
        self.fold(v.to_bits());
    }
    pub fn value(self) -> u64 {
        self.0
    }
    /// 16 lowercase hex digits.
    pub fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}
