//! The hardware seam: small, clock-free HAL traits in the style of embedded-hal 1.0.
//!
//! Each trait has an associated error type and every operation is fallible. Time is never read here:
//! callers pass `now` into the state machines, which act through these traits.
//! The simulator implements them with digital twins (`gridtwin::twin`); a board implements them with drivers.

/// Classifies a HAL error so portable code can react without knowing the concrete type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The device did not answer or is not present.
    NotResponding,
    /// A buffer or queue is full; retry later.
    WouldBlock,
    /// The request is invalid for this device (out of range, too long).
    Invalid,
    /// Any other device fault.
    Other,
}

/// Implemented by every HAL error type.
pub trait Error: core::fmt::Debug {
    fn kind(&self) -> ErrorKind;
}

impl Error for ErrorKind {
    fn kind(&self) -> ErrorKind {
        *self
    }
}

/// Declares the error type of a HAL trait implementation.
pub trait ErrorType {
    type Error: Error;
}

pub mod contactor;
pub mod metering;
pub mod radio;
pub mod storage;
