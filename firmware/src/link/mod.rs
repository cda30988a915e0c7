//! The coordinator–gateway UART link framing: COBS byte stuffing with a CRC-16 trailer and `0x00` delimiters.
//!
//! A frame on the wire is
//!
//! ```text
//! 0x00 | COBS( payload || crc16_le(payload) ) | 0x00
//! ```
//!
//! COBS (Consistent Overhead Byte Stuffing) removes every `0x00` from the stuffed bytes, so `0x00` only ever
//! delimits frames: a receiver that joins mid-stream, or sees garbage, resynchronises at the next `0x00`. The
//! leading delimiter ends whatever noise preceded the frame, so a valid frame embedded in noise is always
//! recovered. The CRC is CRC-16/IBM-3740 (CCITT-FALSE), little-endian, over the payload.
//!
//! Overhead per frame: 2 delimiters + 2 CRC bytes + 1 COBS code byte + 1 more per full 254 bytes of (payload + CRC),
//! so a 48-byte LMU report frame is 48 + 5 = 53 bytes on the line ([`encoded_len`]).
//!
//! [`FrameDecoder`] is a bounded streaming receiver: it takes bytes one at a time (as a UART interrupt would),
//! decodes each completed frame in place and hands out a borrowed view of its payload. It never panics on any
//! byte sequence and never holds more than `max_frame` bytes; over-long runs are discarded and counted.

use alloc::vec::Vec;

const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// Frame delimiter on the wire.
pub const DELIMITER: u8 = 0x00;

/// Why received bytes were not a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The COBS stuffing is inconsistent (a code byte points past the end of the frame).
    Stuffing,
    /// Too short to hold a CRC.
    Short,
    /// The CRC does not match the payload (a bit error on the line).
    Checksum,
    /// More bytes than `max_frame` arrived without a delimiter (the run was discarded).
    Overlong,
}

impl core::fmt::Display for LinkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            LinkError::Stuffing => "inconsistent COBS stuffing",
            LinkError::Short => "frame shorter than its CRC",
            LinkError::Checksum => "CRC-16 mismatch",
            LinkError::Overlong => "frame longer than the receive buffer",
        })
    }
}

/// Bytes on the wire for a payload of `payload_len` bytes (delimiters, CRC and stuffing included): exact below
/// 252 payload bytes, an upper bound above (a zero byte inside a 254-byte run saves the extra code byte).
pub fn encoded_len(payload_len: usize) -> usize {
    let body = payload_len + 2;
    // One code byte to start, and one more after every run of 254 non-zero bytes.
    3 + body + body / 254
}

/// Appends the framed `payload` (delimiters, COBS, CRC) to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    let crc = CRC.checksum(payload).to_le_bytes();
    out.reserve(encoded_len(payload.len()));
    out.push(DELIMITER);
    let mut code_at = out.len();
    out.push(0);
    let mut code: u8 = 1;
    for &b in payload.iter().chain(crc.iter()) {
        if b == 0 {
            out[code_at] = code;
            code_at = out.len();
            out.push(0);
            code = 1;
        } else {
            out.push(b);
            code += 1;
            if code == 0xFF {
                out[code_at] = code;
                code_at = out.len();
                out.push(0);
                code = 1;
            }
        }
    }
    out[code_at] = code;
    out.push(DELIMITER);
}

/// Un-stuffs a COBS body (no delimiters) in place; returns the decoded length.
pub fn cobs_decode_in_place(buf: &mut [u8]) -> Result<usize, LinkError> {
    let (mut r, mut w) = (0usize, 0usize);
    while r < buf.len() {
        let code = buf[r] as usize;
        if code == 0 {
            return Err(LinkError::Stuffing);
        }
        r += 1;
        let end = r + code - 1;
        if end > buf.len() {
            return Err(LinkError::Stuffing);
        }
        while r < end {
            if buf[r] == 0 {
                return Err(LinkError::Stuffing);
            }
            buf[w] = buf[r];
            w += 1;
            r += 1;
        }
        // A code below 0xFF stands for a zero, except at the very end of the body.
        if code < 0xFF && r < buf.len() {
            buf[w] = 0;
            w += 1;
        }
    }
    Ok(w)
}

/// Decodes one frame body (the bytes between two delimiters) in place and returns its payload.
pub fn decode_in_place(body: &mut [u8]) -> Result<&[u8], LinkError> {
    let n = cobs_decode_in_place(body)?;
    if n < 2 {
        return Err(LinkError::Short);
    }
    let (payload, crc) = body[..n].split_at(n - 2);
    if CRC.checksum(payload) != u16::from_le_bytes([crc[0], crc[1]]) {
        return Err(LinkError::Checksum);
    }
    Ok(payload)
}

/// What one received byte completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// Nothing yet (inside a frame, or an empty gap between delimiters).
    Nothing,
    /// A valid frame's payload.
    Frame(&'a [u8]),
    /// A delimited run of bytes that was not a valid frame.
    Error(LinkError),
}

/// A bounded streaming frame receiver.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max_frame: usize,
    overlong: bool,
    /// The buffer holds the last frame's payload (handed out as a view); cleared on the next push.
    done: bool,
    /// Valid frames received.
    pub frames: u64,
    /// Delimited runs rejected, by any [`LinkError`].
    pub errors: u64,
}

impl FrameDecoder {
    /// A receiver holding at most `max_frame` stuffed bytes between delimiters (at least 4).
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            max_frame: max_frame.max(4),
            overlong: false,
            done: false,
            frames: 0,
            errors: 0,
        }
    }

    /// Takes one byte from the line.
    pub fn push(&mut self, byte: u8) -> Received<'_> {
        if core::mem::take(&mut self.done) {
            self.buf.clear();
        }
        if byte != DELIMITER {
            if self.overlong {
                return Received::Nothing;
            }
            if self.buf.len() >= self.max_frame {
                self.overlong = true;
                self.buf.clear();
                return Received::Nothing;
            }
            self.buf.push(byte);
            return Received::Nothing;
        }
        if core::mem::take(&mut self.overlong) {
            self.buf.clear();
            self.errors += 1;
            return Received::Error(LinkError::Overlong);
        }
        if self.buf.is_empty() {
            return Received::Nothing;
        }
        let mut body = core::mem::take(&mut self.buf);
        let r = match cobs_decode_in_place(&mut body) {
            Ok(n) if n < 2 => Err(LinkError::Short),
            Ok(n) => {
                let crc = u16::from_le_bytes([body[n - 2], body[n - 1]]);
                if CRC.checksum(&body[..n - 2]) == crc { Ok(n - 2) } else { Err(LinkError::Checksum) }
            }
            Err(e) => Err(e),
        };
        // Keep the allocation: the payload is handed out as a view into it until the next push.
        self.buf = body;
        match r {
            Ok(n) => {
                self.frames += 1;
                self.buf.truncate(n);
                self.done = true;
                Received::Frame(&self.buf[..])
            }
            Err(e) => {
                self.buf.clear();
                self.errors += 1;
                Received::Error(e)
            }
        }
    }

    /// Feeds a slice and calls `on_frame` with each valid payload; returns the number of rejected runs.
    pub fn feed(&mut self, bytes: &[u8], mut on_frame: impl FnMut(&[u8])) -> u64 {
        let mut bad = 0;
        for &b in bytes {
            match self.push(b) {
                Received::Frame(p) => on_frame(p),
                Received::Error(_) => bad += 1,
                Received::Nothing => {}
            }
        }
        bad
    }

    /// Bytes waiting for a delimiter.
    pub fn pending(&self) -> usize {
        if self.done { 0 } else { self.buf.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(p: &[u8]) {
        let mut wire = Vec::new();
        encode(p, &mut wire);
        assert!(wire.len() <= encoded_len(p.len()), "len {}", p.len());
        if p.len() < 252 {
            assert_eq!(wire.len(), encoded_len(p.len()), "len {}", p.len());
        }
        assert!(wire[1..wire.len() - 1].iter().all(|&b| b != 0));
        let mut got = Vec::new();
        let mut d = FrameDecoder::new(2048);
        assert_eq!(d.feed(&wire, |f| got.push(f.to_vec())), 0);
        assert_eq!(got, [p.to_vec()]);
    }

    #[test]
    fn roundtrips_edge_lengths_and_zero_runs() {
        for n in [0usize, 1, 2, 251, 252, 253, 254, 255, 300, 508, 600] {
            roundtrip(&(0..n).map(|i| (i % 7) as u8).collect::<Vec<_>>());
            roundtrip(&alloc::vec![0u8; n]);
            roundtrip(&alloc::vec![0x5Au8; n]);
        }
        assert_eq!(encoded_len(48), 53);
    }

    #[test]
    fn flipped_bit_is_a_checksum_or_stuffing_error_and_the_next_frame_survives() {
        let mut wire = Vec::new();
        encode(b"hello gateway", &mut wire);
        wire[5] ^= 0x10;
        encode(b"next", &mut wire);
        let mut got = Vec::new();
        let mut d = FrameDecoder::new(64);
        assert_eq!(d.feed(&wire, |f| got.push(f.to_vec())), 1);
        assert_eq!(got, [b"next".to_vec()]);
    }

    #[test]
    fn overlong_runs_are_discarded_and_counted() {
        let mut wire = alloc::vec![7u8; 100];
        encode(b"ok", &mut wire);
        let mut got = 0;
        let mut d = FrameDecoder::new(16);
        // The leading noise has no delimiter until the frame's own: it is one overlong run.
        assert_eq!(d.feed(&wire, |_| got += 1), 1);
        assert_eq!(got, 1);
        assert!(d.pending() == 0);
    }
}
