//! Mesh firmware: the RPL-style routing state machine ([`router`]) and the network frame codecs ([`frame`]).
//!
//! Both are `no_std` with `alloc`, sans-IO, and act on the radio only through [`crate::hal::radio::Radio`].

pub mod frame;
pub mod router;

pub use frame::{Frame, FrameError, UpKind};
pub use router::{Delivery, DeliveryKind, ETX_ONE, INFINITE_RANK, Router, RouterConfig, RouterStats, SendError};
