//! HAL trait of the LMU's line contactor: a coil output and an auxiliary contact input.
//!
//! The coil is monostable: energised means the main contacts are commanded closed. The auxiliary contact
//! mirrors the main contacts mechanically, so the firmware can confirm that an open or close really happened
//! (a welded or stuck contactor shows up as an auxiliary contact that disagrees with the coil).

use super::ErrorType;

/// A line contactor with coil drive and auxiliary (position) contact.
pub trait Contactor: ErrorType {
    /// Energises (`true`, close) or de-energises (`false`, open) the coil.
    fn set_coil(&mut self, energised: bool) -> Result<(), Self::Error>;
    /// Reads the auxiliary contact: `true` when the main contacts are closed.
    fn aux_closed(&mut self) -> Result<bool, Self::Error>;
}
