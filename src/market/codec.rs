//! The canonical binary encoding of market transactions and genesis: fixed-width little-endian integers,
//! `u32` lengths before lists and strings, no optional encodings (one value, one byte string). Decoding is
//! strict: every length is bounded, trailing bytes are refused, and it never panics.

/// Most items in one encoded list (bounds every decoder).
pub const MAX_LIST: usize = 1 << 16;

#[derive(Default)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
        self
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
}

/// A strict reader over canonical bytes.
pub struct Dec<'a> {
    b: &'a [u8],
    i: usize,
}

pub type DecResult<T> = Result<T, &'static str>;

impl<'a> Dec<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Dec { b, i: 0 }
    }
    fn take(&mut self, n: usize) -> DecResult<&'a [u8]> {
        let end = self.i.checked_add(n).ok_or("length overflow")?;
        let s = self.b.get(self.i..end).ok_or("truncated")?;
        self.i = end;
        Ok(s)
    }
    pub fn u8(&mut self) -> DecResult<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> DecResult<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    pub fn u64(&mut self) -> DecResult<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    pub fn i64(&mut self) -> DecResult<i64> {
        Ok(self.u64()? as i64)
    }
    /// A list length, bounded by [`MAX_LIST`] and by the bytes left (each item at least `min_item` bytes).
    pub fn len(&mut self, min_item: usize) -> DecResult<usize> {
        let n = self.u32()? as usize;
        if n > MAX_LIST || n.saturating_mul(min_item.max(1)) > self.b.len() - self.i {
            return Err("list too long");
        }
        Ok(n)
    }
    pub fn bytes(&mut self) -> DecResult<&'a [u8]> {
        let n = self.len(1)?;
        self.take(n)
    }
    pub fn str(&mut self) -> DecResult<String> {
        std::str::from_utf8(self.bytes()?).map(str::to_string).map_err(|_| "invalid UTF-8")
    }
    pub fn key(&mut self) -> DecResult<[u8; 32]> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }
    /// Whether every byte was read (an optional trailing section is absent).
    pub fn at_end(&self) -> bool {
        self.i == self.b.len()
    }
    pub fn finish(self) -> DecResult<()> {
        if self.i == self.b.len() { Ok(()) } else { Err("trailing bytes") }
    }
}
