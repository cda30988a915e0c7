//! Digital twins of LMU hardware (sensor front-end, contactor), the LMU agent joining them with the
//! firmware, the link LMUs talk over, and the fault metrics.

pub mod contactor;
pub mod sensor;

/// Messages of the LMU twins and agents (filled in with the LMU model).
#[derive(Clone, Debug)]
pub enum LmuMsg {}
