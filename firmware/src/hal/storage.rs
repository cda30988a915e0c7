//! HAL trait of the LMU's non-volatile storage (settings and the event log).
//!
//! Byte-addressed, like an SPI NOR flash or FRAM behind a small driver; the firmware lays out records with
//! CRCs itself ([`crate::lmu::nvm`]), so a torn write is detected rather than trusted.

use super::ErrorType;

/// Byte-addressed non-volatile memory.
pub trait Storage: ErrorType {
    /// Size in bytes.
    fn capacity(&self) -> u32;
    /// Reads `buf.len()` bytes at `offset`.
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error>;
    /// Writes `data` at `offset`.
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Self::Error>;
}
