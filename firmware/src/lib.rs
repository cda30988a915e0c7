//! gridtwin-firmware: the portable logic of gridtwin's devices (LMUs, coordinator, gateway, validators).
//!
//! Everything here is `no_std` (with `alloc` only where a module says so) and sans-IO: a state machine takes
//! the current time `now` (integer nanoseconds, [`Instant`]) and an input, acts through the small HAL traits in
//! [`hal`], and returns its next deadline. Nothing here reads a clock, blocks, allocates on a hot path or panics
//! on bad input. The simulator implements the HAL with digital twins; a real board implements it with drivers.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod app;
pub mod consensus;
pub mod gateway;
pub mod hal;
pub mod ledger;
pub mod link;
pub mod lmu;
pub mod mesh;
pub mod mqtt;
pub mod report;
pub mod time;

pub use time::{Duration, Instant};
