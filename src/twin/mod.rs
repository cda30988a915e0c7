//! Digital twins of LMU hardware (sensor front-end, contactor), of the feeder-head fuse or breaker the LMUs
//! coordinate with, the LMU agent joining them with the
//! firmware, the link LMUs talk over until the mesh carries their frames, feeder commissioning (placement,
//! sections, neighbours), the builder that puts them around a grid agent and scores faults (shared by the
//! world and the FLISR study case runner), the fault metrics and the case runner.

pub mod agent;
pub mod build;
pub mod cellular;
pub mod contactor;
pub mod feeder_head;
pub mod link;
pub mod metrics;
pub mod placement;
pub mod scenario;
pub mod sensor;
pub mod study;
pub mod uart;

use crate::grid::model::GridSnapshot;
use std::sync::Arc;

/// Messages of the LMU agents.
#[derive(Clone, Debug)]
pub enum LmuMsg {
    /// A solved grid state (sent by the grid host to subscribed LMUs at class SENSE).
    Snapshot(Arc<GridSnapshot>),
    /// A FLISR frame from neighbour `from` (4 bytes in clear, or sealed: see [`gridtwin_firmware::sec`]).
    Frame { from: u16, bytes: Vec<u8> },
    /// A FLISR frame this LMU's radio began to receive (its synchronisation header caught) but a jammer
    /// corrupted (it would have been received without the jammer): what the radio reports as a frame failing
    /// its check at a strong signal, the evidence of jamming a reactive jammer leaves.
    Corrupted,
    /// A copy of a FLISR frame from `from` to `to`, as a radio in range hears it (eavesdroppers).
    Overheard { from: u16, to: u16, bytes: Vec<u8> },
    /// An LMU's contactor changed state: the grid opens or closes switch `switch`.
    SetSwitch { switch: usize, closed: bool, lmu: u16 },
    /// Injects a contactor failure.
    InjectContactor(contactor::ContactorFailure),
    /// A key operation on the LMU's frame security (rotation, removal from the network).
    Keys(crate::security::KeyOp),
    /// The voltage harmonics at the LMU's bus from now on: (order, percent of the fundamental, degrees).
    Harmonics(Vec<(u32, f64, f64)>),
    /// The grid frequency from now on (Hz).
    Frequency(f64),
}
