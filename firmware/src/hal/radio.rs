//! HAL trait for the low-power mesh radio, at the MAC service boundary.
//!
//! The radio (chip plus driver) owns the IEEE 802.15.4 MAC: unslotted CSMA/CA, acknowledgements and
//! retransmissions, as radios with an automatic retransmission mode do in hardware. Routing firmware hands it
//! whole network frames addressed to a 16-bit link address and later receives the outcome through
//! [`TxStatus`] (for every frame queued) and received frames through its own `on_frame` input, both fed by
//! whatever drives the firmware (a board's interrupt loop or the simulator's radio twin).

use super::ErrorType;

/// A 16-bit short link address; [`BROADCAST`] reaches every node in range.
pub type LinkAddr = u16;

/// The broadcast link address (frames sent to it are neither acknowledged nor retried).
pub const BROADCAST: LinkAddr = 0xFFFF;

/// Traffic class of a queued frame, lowest first. A radio with priority queues sends a frame ahead of every
/// queued frame of a lower class (also of one its MAC holds in backoff, not yet on the air), and, if the queue
/// is full, in place of the newest frame of a lower class; protection classes also start their channel access
/// with a shorter backoff and retry it when they find the channel busy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxClass {
    /// Readings and routing: first come, first served.
    #[default]
    Normal,
    /// Protection reports that many LMUs send about one event (every LMU beyond a break reports its lost
    /// phase, and only the nearest one's report decides): ahead of normal traffic, behind protection commands
    /// and answers, so their burst does not hold back a question and its answer at the same nodes.
    Report,
    /// Protection commands and answers (query, passage, open, restore, ...).
    Protection,
}

/// The outcome of one queued frame, reported back with its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// A unicast frame was acknowledged after `attempts` transmissions (1 = first try).
    Acked { attempts: u8 },
    /// A unicast frame was never acknowledged after `attempts` transmissions.
    NoAck { attempts: u8 },
    /// CSMA/CA found the channel busy too often (after `attempts` transmissions of this frame).
    ChannelBusy { attempts: u8 },
    /// A broadcast frame went on the air (no acknowledgement exists for broadcasts).
    Sent,
}

impl TxStatus {
    /// Transmissions made for the frame.
    pub fn attempts(self) -> u8 {
        match self {
            TxStatus::Acked { attempts } | TxStatus::NoAck { attempts } | TxStatus::ChannelBusy { attempts } => {
                attempts
            }
            TxStatus::Sent => 1,
        }
    }
}

/// A radio with an 802.15.4 MAC that queues frames for transmission.
pub trait Radio: ErrorType {
    /// Queues `frame` (a network-layer frame, without MAC header) for `dst`. `token` comes back with the frame's
    /// [`TxStatus`]. Fails with `WouldBlock` when the transmit queue is full and `Invalid` when the frame is
    /// longer than [`Radio::max_frame_len`].
    fn transmit(&mut self, dst: LinkAddr, token: u32, frame: &[u8]) -> Result<(), Self::Error>;
    /// Queues `frame` in traffic class `class` (see [`TxClass`]). A radio without priority queues treats it
    /// as [`Radio::transmit`].
    fn transmit_class(&mut self, dst: LinkAddr, token: u32, frame: &[u8], class: TxClass) -> Result<(), Self::Error> {
        let _ = class;
        self.transmit(dst, token, frame)
    }
    /// Longest network frame the radio can carry in one MAC frame, in bytes.
    fn max_frame_len(&self) -> usize;
}
