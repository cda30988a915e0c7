//! HAL trait of the LMU's non-volatile storage (settings and the event log).
//!
//! Byte-addressed, like an SPI NOR flash or FRAM behind a small driver; the firmware lays out records with
//! CRCs itself ([`crate::lmu::nvm`]), so a torn write is detected rather than trusted.

use super::{ErrorKind, ErrorType};

/// Byte-addressed non-volatile memory.
pub trait Storage: ErrorType {
    /// Size in bytes.
    fn capacity(&self) -> u32;
    /// Reads `buf.len()` bytes at `offset`.
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error>;
    /// Writes `data` at `offset`.
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Self::Error>;
}

/// Storage over a byte buffer in RAM, with FRAM's behaviour: every byte writable in place, no erase, no
/// wear. For the power-on self-test, host builds and tests; a board's driver implements [`Storage`] for its
/// own part. An access beyond the buffer is [`ErrorKind::Invalid`] and changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RamStorage<B>(pub B);

impl<B> ErrorType for RamStorage<B> {
    type Error = ErrorKind;
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> RamStorage<B> {
    /// The byte range `offset..offset + len`, if it lies within the buffer.
    fn span(&self, offset: u32, len: usize) -> Result<core::ops::Range<usize>, ErrorKind> {
        let start = usize::try_from(offset).map_err(|_| ErrorKind::Invalid)?;
        let end = start.checked_add(len).ok_or(ErrorKind::Invalid)?;
        if end > self.0.as_ref().len() {
            return Err(ErrorKind::Invalid);
        }
        Ok(start..end)
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Storage for RamStorage<B> {
    fn capacity(&self) -> u32 {
        u32::try_from(self.0.as_ref().len()).unwrap_or(u32::MAX)
    }
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), ErrorKind> {
        let r = self.span(offset, buf.len())?;
        buf.copy_from_slice(&self.0.as_ref()[r]);
        Ok(())
    }
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), ErrorKind> {
        let r = self.span(offset, data.len())?;
        self.0.as_mut()[r].copy_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_storage_reads_back_what_it_wrote_and_refuses_what_lies_beyond_it() {
        let mut s = RamStorage([0xFFu8; 16]);
        assert_eq!(s.capacity(), 16);
        s.write(12, &[1, 2, 3, 4]).unwrap();
        let mut b = [0u8; 5];
        s.read(11, &mut b).unwrap();
        assert_eq!(b, [0xFF, 1, 2, 3, 4]);
        assert_eq!(s.write(13, &[9, 9, 9, 9]), Err(ErrorKind::Invalid));
        assert_eq!(s.read(u32::MAX, &mut b), Err(ErrorKind::Invalid));
        s.read(12, &mut b[..4]).unwrap();
        assert_eq!(b[..4], [1, 2, 3, 4], "a refused write changes nothing");
        s.read(16, &mut []).unwrap();
    }
}
